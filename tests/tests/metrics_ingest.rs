//! OTLP metrics through the real server: bad points are refused with a partial success
//! and never stored; a replayed `epitaph-batch` is stored once, apart from the same
//! agent's log batches; and acknowledged points survive `kill -9`.

use std::time::{Duration, SystemTime};

use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
use epitaph_proto::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use epitaph_tests::otlp::{bodies_request, resource, unix_nanos};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};

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
