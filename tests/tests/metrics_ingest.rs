//! OTLP metrics through the real server: bad points are refused with a partial success
//! and never stored; a replayed `epitaph-batch` is stored once, apart from the same
//! agent's log batches; acknowledged points survive `kill -9`; and a sealed metric split
//! (one segment, its series table compressed beside `split.json`) answers as it did while
//! open.

use std::path::Path;
use std::time::{Duration, SystemTime};

use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
use epitaph_proto::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use epitaph_tests::otlp::{bodies_request, resource, string_attribute, unix_nanos};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use prost::Message;
use tonic::Code;

fn point(value: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: unix_nanos(SystemTime::now()),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, values: &[f64]) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: values.iter().map(|v| point(*v)).collect(),
        })),
        ..Default::default()
    }
}

fn request(service: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(&[
                ("service.name", service),
                ("host.image.version", "v7"),
            ])),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `count()` of the metric points a query matches, once it is non-zero.
fn count_points(server: &Server, query: &str) -> i64 {
    let count = || {
        let answer = server.get("/api/v1/aggregate", &[("q", query)]);
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        answer.json()["rows"][0][0].as_i64().unwrap_or(0)
    };
    eventually(Duration::from_secs(10), || {
        let n = count();
        (n > 0).then_some(n)
    })
    .unwrap_or_else(|| panic!("{query:?} found no points"))
}

/// `count()` of `metric`'s points of `service` that match `filter`, as the server
/// answers now (0 when none match).
fn count_now(server: &Server, metric: &str, service: &str, filter: &str) -> i64 {
    let query = format!("metric:{metric} service:{service} ({filter}) | stats count()");
    let answer = server.get("/api/v1/aggregate", &[("q", &query)]);
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.json()["rows"][0][0].as_i64().unwrap_or(0)
}

#[test]
fn bad_points_are_refused_with_a_partial_success_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("bad");
    let mismatched = Metric {
        name: "bad.histogram".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: unix_nanos(SystemTime::now()),
                count: 3,
                bucket_counts: vec![1, 1, 1],
                explicit_bounds: vec![10.0],
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let negative_counter = Metric {
        name: "bad.counter".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![point(-1.0)],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let response = client
        .export_metrics(
            request(
                &service,
                vec![
                    gauge("good.gauge", &[1.0]),
                    gauge("bad.gauge", &[f64::NAN, f64::NEG_INFINITY]),
                    mismatched,
                    negative_counter,
                ],
            ),
            None,
        )
        .expect("a request with some bad points is still answered OK");
    let partial = response.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 4, "{partial:?}");
    for reason in ["bad.gauge", "NaN", "bad.histogram", "bucket counts"] {
        assert!(
            partial.error_message.contains(reason),
            "{reason:?} missing from {:?}",
            partial.error_message
        );
    }

    // Only bad points: refused, nothing stored, still OK.
    let response = client
        .export_metrics(
            request(&service, vec![gauge("bad.only", &[f64::INFINITY])]),
            None,
        )
        .unwrap();
    assert_eq!(response.partial_success.unwrap().rejected_data_points, 1);

    assert_eq!(
        count_points(
            &server,
            &format!("metric:good.gauge service:{service} | stats count()")
        ),
        1
    );
    // Every stored point of the service is the good one: the rest never reached a split,
    // and aggregates over the service stay finite.
    let answer = server.get(
        "/api/v1/aggregate",
        &[(
            "q",
            &format!("metric:* service:{service} | stats count(), max(value) by metric"),
        )],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["rows"],
        serde_json::json!([["good.gauge", 1, 1]]),
        "{}",
        answer.body
    );
    // `value` filters compare the point's value, here sent as a double.
    let count_with = |filter: &str| count_now(&server, "good.gauge", &service, filter);
    assert_eq!(count_with("value:>0.5"), 1);
    assert_eq!(count_with("value:1"), 1);
    assert_eq!(count_with("value:*"), 1);
    assert_eq!(count_with("value:<1"), 0);
    assert_eq!(server.get("/readyz", &[]).status, 200);
}

#[test]
fn malformed_requests_are_invalid_argument_and_a_field_set_twice_reads_as_protobuf_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("wire");

    // Invalid UTF-8 in an attribute's value, and a request cut short.
    let mut with_route = point(1.0);
    with_route.attributes = vec![string_attribute("route", "/routeX")];
    let mut metric = gauge("wire.gauge", &[]);
    if let Some(metric::Data::Gauge(gauge)) = &mut metric.data {
        gauge.data_points = vec![with_route];
    }
    let bytes = request(&service, vec![metric]).encode_to_vec();
    let position = bytes
        .windows(7)
        .position(|window| window == b"/routeX")
        .expect("the attribute is in the encoded request");
    let mut not_utf8 = bytes.clone();
    not_utf8[position + 6] = 0xFF;
    let status = client
        .export_metrics_raw(not_utf8, None)
        .expect_err("an attribute with invalid UTF-8 was accepted");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("UTF-8"),
        "the message does not say the problem is UTF-8: {status:?}"
    );
    let status = client
        .export_metrics_raw(bytes[..bytes.len() - 3].to_vec(), None)
        .expect_err("a request cut short was accepted");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // `ResourceMetrics { resource: {service.name}, resource: {host.image.version} }`:
    // protobuf merges the two resources into one with both attributes.
    let resource_bytes = |key: &str, value: &str| {
        let mut field = Vec::new();
        prost::encoding::message::encode(1, &resource(&[(key, value)]), &mut field);
        field
    };
    let scope = ScopeMetrics {
        metrics: vec![gauge("wire.merged", &[2.0])],
        ..Default::default()
    };
    let mut resource_metrics = resource_bytes("service.name", &service);
    resource_metrics.extend(resource_bytes("host.image.version", "v9"));
    prost::encoding::message::encode(2, &scope, &mut resource_metrics);
    let mut merged = Vec::new();
    prost::encoding::bytes::encode(1, &resource_metrics, &mut merged);
    client
        .export_metrics_raw(merged, None)
        .expect("a request with a field set twice is valid protobuf");
    assert_eq!(
        count_points(
            &server,
            &format!("metric:wire.merged service:{service} version:v9 | stats count()")
        ),
        1
    );
    assert_eq!(count_now(&server, "wire.gauge", &service, "value:*"), 0);
    assert_eq!(server.get("/readyz", &[]).status, 200);
}

#[test]
fn a_replayed_metrics_batch_is_stored_once_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("dedup");
    let agent = unique_token("agent");
    let header = format!("{agent}/1");
    let values: Vec<f64> = (0..10).map(f64::from).collect();
    let metrics = request(&service, vec![gauge("dedup.gauge", &values)]);
    client
        .export_metrics(metrics.clone(), Some(&header))
        .unwrap();
    client.export_metrics(metrics, Some(&header)).unwrap();
    // The same agent's log batch 1 is another batch: stored too.
    let marker = unique_token("line");
    client
        .export(
            bodies_request(&service, std::slice::from_ref(&marker)),
            Some(&header),
        )
        .unwrap();

    let query = format!("metric:dedup.gauge service:{service} | stats count(), sum(value)");
    assert_eq!(count_points(&server, &query), 10);
    let hits = eventually(Duration::from_secs(10), || {
        let hits = server.search(&marker);
        (!hits.is_empty()).then_some(hits)
    })
    .expect("the log batch with the same number is stored too");
    assert_eq!(hits.len(), 1);

    server.kill9();
    server.restart();
    // Replayed from the WAL (or read from a committed split), never twice.
    let client = OtlpClient::connect(&server.grpc_url());
    let metrics = request(&service, vec![gauge("dedup.gauge", &values)]);
    client.export_metrics(metrics, Some(&header)).unwrap();
    let answer = server.get("/api/v1/aggregate", &[("q", &query)]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["rows"],
        serde_json::json!([[10, 45]]),
        "{}",
        answer.body
    );
}

/// A cumulative counter of `version`'s instance `host`, one point per `(second, value)`
/// after `start_nanos`, every point with the attribute `route`.
fn counter_request(
    service: &str,
    version: &str,
    host: &str,
    route: &str,
    start_nanos: u64,
    points: &[(u64, i64)],
) -> ExportMetricsServiceRequest {
    let data_points = points
        .iter()
        .map(|(second, value)| NumberDataPoint {
            start_time_unix_nano: start_nanos,
            time_unix_nano: start_nanos + second * 1_000_000_000,
            value: Some(number_data_point::Value::AsInt(*value)),
            attributes: vec![string_attribute("route", route)],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(&[
                ("service.name", service),
                ("host.image.version", version),
                ("host.id", host),
            ])),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "seal.requests".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The sealed metric split directories under `data_dir`.
fn sealed_metric_splits(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut splits: Vec<_> = std::fs::read_dir(data_dir.join("metric-splits"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("split.json").exists())
        .collect();
    splits.sort();
    splits
}

const SECOND: u64 = 1_000_000_000;

/// `increase()` and `count()` of `seal.requests` by version and route, from 30 s after
/// `start` (to `end`, or now).
fn increase_by_route(
    server: &Server,
    service: &str,
    start: u64,
    end: Option<u64>,
) -> serde_json::Value {
    let query = format!(
        "metric:seal.requests service:{service} | stats increase(), count() by version, attrs.route"
    );
    let mut params = vec![
        ("q", query),
        ("start", ((start + 30 * SECOND) / 1_000_000).to_string()),
    ];
    if let Some(end) = end {
        params.push(("end", (end / 1_000_000).to_string()));
    }
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = server.get("/api/v1/aggregate", &params);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["rows"].clone()
}

/// Asserts that a split is one segment whose points are in series order, then time.
fn assert_in_series_order(searcher: &tantivy::Searcher) {
    assert_eq!(searcher.segment_readers().len(), 1);
    let segment = searcher.segment_reader(0);
    let fast = segment.fast_fields();
    let (series, timestamp) = (fast.u64("series").unwrap(), fast.i64("timestamp").unwrap());
    let order: Vec<(u64, i64)> = (0..segment.max_doc())
        .map(|doc| (series.first(doc).unwrap(), timestamp.first(doc).unwrap()))
        .collect();
    assert!(order.is_sorted(), "{order:?}");
}

#[test]
fn a_sealed_metric_split_is_one_segment_with_its_series_and_answers_the_same_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // Commits every 200 ms put each export below in a segment of its own, which the
    // seal merges into one.
    let mut server = Server::start(
        &data_dir,
        &["--metric-split-window", "3s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("seal");
    let start = unix_nanos(SystemTime::now()) - 600 * SECOND;
    // Several exports per series, the later points of v1's `/a` sent first: a split is
    // sorted by series and time, not by arrival.
    let exports = [
        counter_request(&service, "v1", "i-1", "/a", start, &[(300, 40), (360, 50)]),
        counter_request(&service, "v1", "i-1", "/b", start, &[(60, 1), (120, 3)]),
        counter_request(&service, "v1", "i-1", "/a", start, &[(60, 10), (120, 20)]),
        counter_request(&service, "v2", "i-2", "/a", start, &[(60, 100), (120, 160)]),
        counter_request(&service, "v1", "i-1", "/b", start, &[(180, 6)]),
    ];
    for export in exports {
        let response = client.export_metrics(export, None).unwrap();
        assert_eq!(response.partial_success, None);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Each series started before the range queried, so its first point counts as the
    // base: /a of v1 went 10 → 50, /b 1 → 6, /a of v2 100 → 160.
    let expected =
        serde_json::json!([["v1", "/a", 40, 4], ["v1", "/b", 5, 3], ["v2", "/a", 60, 2]]);
    let answer = |server: &Server| increase_by_route(server, &service, start, None);
    eventually(Duration::from_secs(10), || {
        (answer(&server) == expected).then_some(())
    })
    .unwrap_or_else(|| panic!("never answered {expected}: {}", answer(&server)));

    // Once the window is over the split is sealed: one segment, and the series table
    // is in `series.json.zst`, no longer in the commit payload.
    let sealed = eventually(Duration::from_secs(15), || {
        let stats = server.get("/api/v1/stats", &[]).json();
        let metrics = &stats["metrics"];
        let all_sealed = metrics["splits"].as_u64() == metrics["sealed_splits"].as_u64()
            && metrics["points"].as_u64() == Some(9);
        let splits = sealed_metric_splits(&data_dir);
        (all_sealed && !splits.is_empty()).then_some(splits)
    })
    .expect("the metric split is sealed");
    for split in &sealed {
        let segments = std::fs::read_dir(split)
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().path().extension() == Some("fast".as_ref()))
            .count();
        assert_eq!(segments, 1, "{}", split.display());
        let compressed = std::fs::read(split.join("series.json.zst")).unwrap();
        let table: serde_json::Value =
            serde_json::from_slice(&zstd::decode_all(compressed.as_slice()).unwrap()).unwrap();
        let series = table["series"].as_array().unwrap();
        assert!(!series.is_empty(), "{table}");
        assert!(
            series.iter().all(|s| s["metric"] == "seal.requests"),
            "{table}"
        );
        let meta = std::fs::read_to_string(split.join("meta.json")).unwrap();
        assert!(!meta.contains("seal.requests"), "{meta}");
        let metadata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(split.join("split.json")).unwrap()).unwrap();
        assert_eq!(metadata["metrics"], serde_json::json!(["seal.requests"]));
        assert!(metadata.get("series").is_none(), "{metadata}");
        // No doc-store bytes: the sealed split's store holds no document, and fetching
        // one is an error, not a panic.
        let index = tantivy::Index::open_in_dir(split).unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.num_docs(), 9);
        for doc in 0..9 {
            let fetched: tantivy::Result<tantivy::TantivyDocument> =
                searcher.doc(tantivy::DocAddress::new(0, doc));
            assert!(fetched.is_err(), "document {doc} is still in the store");
        }
        // Points arrived out of order; the seal wrote them in series order, then time.
        assert_in_series_order(&searcher);
    }
    assert_eq!(answer(&server), expected);
    // `value` filters compare the point's value, here sent as an integer.
    let count_with = |filter: &str| count_now(&server, "seal.requests", &service, filter);
    assert_eq!(count_with("value:>=40"), 4);
    assert_eq!(count_with("value:[3 TO 10]"), 3);
    assert_eq!(count_with("value:>2.5 AND value:<3.5"), 1);
    assert_eq!(count_with("value:*"), 9);
    // Filters on series labels are matched once per series, and combine with filters on
    // each point's value as any filter does.
    assert_eq!(count_with("attrs.route:\"/a\""), 6);
    assert_eq!(count_with("NOT attrs.route:\"/a\""), 3);
    assert_eq!(count_with("version:v3"), 0);
    assert_eq!(count_with("version:v2 OR value:<2"), 3);
    assert_eq!(
        count_with("(version:v1 AND value:>=20) OR attrs.route:\"/b\""),
        6
    );
    assert_eq!(count_with("NOT (version:v1 AND value:<10)"), 6);
    assert_eq!(count_with("instance:i-* AND NOT value:[20 TO 100]"), 5);

    server.kill9();
    server.restart();
    assert_eq!(answer(&server), expected);
}

#[test]
fn a_finished_days_metric_splits_are_compacted_into_one_that_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(
        &data_dir,
        &["--metric-split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("compact");
    // 10:00 UTC three days ago: that day is over, so its splits are compacted as soon as
    // there are two.
    const DAY: u64 = 86_400 * SECOND;
    let day_start = unix_nanos(SystemTime::now()) / DAY * DAY - 3 * DAY;
    let start = day_start + 10 * 3600 * SECOND;
    let exports = [
        counter_request(&service, "v1", "i-1", "/a", start, &[(60, 10), (120, 20)]),
        counter_request(&service, "v1", "i-1", "/b", start, &[(60, 1), (120, 3)]),
        counter_request(&service, "v1", "i-1", "/a", start, &[(180, 30), (240, 45)]),
        counter_request(&service, "v2", "i-2", "/a", start, &[(60, 100), (120, 160)]),
    ];
    let answer =
        |server: &Server| increase_by_route(server, &service, start, Some(start + 3600 * SECOND));
    let expected =
        serde_json::json!([["v1", "/a", 35, 4], ["v1", "/b", 2, 2], ["v2", "/a", 60, 2]]);
    // Each export in a split of its own: the next one goes out once the last is sealed.
    for (sent, export) in exports.into_iter().enumerate() {
        let response = client.export_metrics(export, None).unwrap();
        assert_eq!(response.partial_success, None);
        eventually(Duration::from_secs(10), || {
            let stats = server.get("/api/v1/stats", &[]).json();
            let metrics = &stats["metrics"];
            (metrics["points"].as_u64() >= Some(2 * sent as u64 + 2)
                && metrics["splits"].as_u64() == metrics["sealed_splits"].as_u64())
            .then_some(())
        })
        .expect("the export's split is sealed");
    }
    // The four splits become one, which replaces them on disk.
    let compacted = eventually(Duration::from_secs(15), || {
        let splits = sealed_metric_splits(&data_dir);
        (splits.len() == 1).then_some(splits)
    })
    .unwrap_or_else(|| panic!("not compacted: {:?}", sealed_metric_splits(&data_dir)));
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(compacted[0].join("split.json")).unwrap()).unwrap();
    assert!(
        metadata["replaces"].as_array().unwrap().len() >= 2,
        "{metadata}"
    );
    assert_eq!(metadata["num_docs"], 8);
    // Written in series order, then time, as one segment, like a sealed split.
    let index = tantivy::Index::open_in_dir(&compacted[0]).unwrap();
    assert_in_series_order(&index.reader().unwrap().searcher());
    let stats = server.get("/api/v1/stats", &[]).json();
    assert_eq!(stats["metrics"]["splits"], 1, "{stats}");
    assert_eq!(stats["metrics"]["points"], 8, "{stats}");
    assert_eq!(answer(&server), expected);
    let count_with =
        |server: &Server, filter: &str| count_now(server, "seal.requests", &service, filter);
    assert_eq!(count_with(&server, "attrs.route:\"/a\" AND value:>=30"), 4);

    server.kill9();
    server.restart();
    assert_eq!(answer(&server), expected);
    assert_eq!(count_with(&server, "version:v1"), 6);
    assert_eq!(sealed_metric_splits(&data_dir).len(), 1);
}
