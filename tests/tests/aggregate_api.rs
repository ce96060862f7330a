//! `/api/v1/aggregate` through the real server: `stats`, `timechart` and `top` over lines
//! spread across several splits give exactly the counts computed here from what was
//! ingested, `sort`/`limit` shape the rows, `start`/`end` bound the lines, and what cannot
//! run is a 400 that says why (and where).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::{OtlpClient, Server, eventually};
use serde_json::{Value, json};

/// 2026-11-25T10:00:00Z: a fixed past minute, so bucket labels are known strings.
const BASE_SECONDS: u64 = 1_795_600_800;

/// One ingested line: who logged it, at which level, how many seconds after `BASE`.
#[derive(Clone, Copy)]
struct Line {
    service: &'static str,
    version: &'static str,
    instance: &'static str,
    level: &'static str,
    offset_seconds: u64,
}

fn severity(level: &str) -> i32 {
    match level {
        "info" => 9,
        "warn" => 13,
        "error" => 17,
        other => panic!("no severity for {other}"),
    }
}

/// Five batches, each its own split: (service, version, instance) and its lines.
fn batches() -> Vec<Vec<Line>> {
    let lines = |service, version, instance, spec: &[(&'static str, u64, usize)]| {
        let mut lines = Vec::new();
        for &(level, offset_seconds, copies) in spec {
            for _ in 0..copies {
                lines.push(Line {
                    service,
                    version,
                    instance,
                    level,
                    offset_seconds,
                });
            }
        }
        lines
    };
    vec![
        lines("web", "v1", "i-1", &[("error", 10, 3), ("info", 70, 2)]),
        lines(
            "web",
            "v2",
            "i-2",
            &[("error", 20, 1), ("warn", 80, 2), ("info", 130, 4)],
        ),
        lines("web", "v2", "i-3", &[("info", 15, 1)]),
        lines("api", "v1", "i-4", &[("info", 30, 5)]),
        lines("batch", "v3", "i-5", &[("error", 140, 1)]),
    ]
}

fn record(line: &Line) -> LogRecord {
    let mut record = log_record(&format!("{} says hello", line.service));
    record.severity_number = severity(line.level);
    record.severity_text = String::new();
    record.time_unix_nano = (BASE_SECONDS + line.offset_seconds) * 1_000_000_000;
    record
}

fn sealed_splits(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["sealed_splits"]
        .as_u64()
        .unwrap_or(0)
}

/// Exports each batch and waits for its split to seal, so every batch is a split.
fn ingest(server: &Server, client: &OtlpClient, batches: &[Vec<Line>]) {
    for batch in batches {
        let first = batch[0];
        let identity = [
            (keys::SERVICE_NAME, first.service),
            (keys::IMAGE_VERSION, first.version),
            (keys::HOST_ID, first.instance),
        ];
        let sealed_before = sealed_splits(server);
        client
            .export(
                export_request(
                    Some(resource(&identity)),
                    batch.iter().map(record).collect(),
                ),
                None,
            )
            .expect("export accepted");
        eventually(Duration::from_secs(10), || {
            (sealed_splits(server) > sealed_before).then_some(())
        })
        .unwrap_or_else(|| panic!("no split sealed: {}", server.stderr_report()));
    }
}

fn aggregate(server: &Server, params: &[(&str, &str)]) -> Value {
    let answer = server.get("/api/v1/aggregate", params);
    assert_eq!(answer.status, 200, "{params:?}: {}", answer.body);
    answer.json()
}

fn rows(response: &Value) -> Vec<Value> {
    response["rows"].as_array().unwrap().clone()
}

fn tally(
    lines: &[Line],
    key: impl Fn(&Line) -> Vec<&'static str>,
) -> BTreeMap<Vec<&'static str>, u64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(key(line)).or_insert(0) += 1;
    }
    counts
}

/// `counts` as rows `[key..., count]`, keys ascending (the order the API answers in).
fn as_rows(counts: &BTreeMap<Vec<&'static str>, u64>) -> Vec<Value> {
    counts
        .iter()
        .map(|(key, count)| {
            let mut row: Vec<Value> = key.iter().map(|part| json!(part)).collect();
            row.push(json!(count));
            Value::Array(row)
        })
        .collect()
}

fn minute_label(offset_seconds: u64) -> &'static str {
    [
        "2026-11-25T10:00:00Z",
        "2026-11-25T10:01:00Z",
        "2026-11-25T10:02:00Z",
    ][usize::try_from(offset_seconds / 60).unwrap()]
}

#[test]
fn aggregations_over_several_splits_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let batches = batches();
    ingest(&server, &client, &batches);
    let lines: Vec<Line> = batches.concat();
    eventually(Duration::from_secs(10), || {
        let total = aggregate(&server, &[("q", "* | stats count()")]);
        (total["rows"] == json!([[lines.len()]])).then_some(())
    })
    .unwrap_or_else(|| panic!("not every line aggregated: {}", server.stderr_report()));

    // stats count() by version, level: one row per group, groups in value order.
    let by_version_level = aggregate(&server, &[("q", "* | stats count() by version, level")]);
    assert_eq!(
        by_version_level["columns"],
        json!(["version", "level", "count"])
    );
    assert_eq!(
        rows(&by_version_level),
        as_rows(&tally(&lines, |line| vec![line.version, line.level])),
        "{by_version_level}"
    );
    assert_eq!(by_version_level["splits_searched"], json!(batches.len()));

    // timechart span=1m count() by level.
    let chart = aggregate(&server, &[("q", "* | timechart span=1m count() by level")]);
    assert_eq!(chart["columns"], json!(["time", "level", "count"]));
    assert_eq!(chart["span_seconds"], json!(60));
    assert_eq!(
        rows(&chart),
        as_rows(&tally(&lines, |line| vec![
            minute_label(line.offset_seconds),
            line.level
        ])),
        "{chart}"
    );

    // top 3 service: by count, most first.
    let top = aggregate(&server, &[("q", "* | top 3 service")]);
    assert_eq!(top["columns"], json!(["service", "count"]));
    let mut by_service: Vec<(u64, &str)> = tally(&lines, |line| vec![line.service])
        .into_iter()
        .map(|(key, count)| (count, key[0]))
        .collect();
    by_service.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let expected_top: Vec<Value> = by_service
        .iter()
        .take(3)
        .map(|(count, service)| json!([service, count]))
        .collect();
    assert_eq!(rows(&top), expected_top, "{top}");

    // stats count_distinct(instance) by version.
    let distinct = aggregate(
        &server,
        &[("q", "* | stats count_distinct(instance) by version")],
    );
    let mut instances: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for line in &lines {
        instances
            .entry(line.version)
            .or_default()
            .insert(line.instance);
    }
    let expected_distinct: Vec<Value> = instances
        .iter()
        .map(|(version, set)| json!([version, set.len()]))
        .collect();
    assert_eq!(rows(&distinct), expected_distinct, "{distinct}");

    // stats count() by level | sort by count desc | limit 2.
    let sorted = aggregate(
        &server,
        &[(
            "q",
            "* | stats count() by level | sort by count desc | limit 2",
        )],
    );
    let mut by_level: Vec<(u64, &str)> = tally(&lines, |line| vec![line.level])
        .into_iter()
        .map(|(key, count)| (count, key[0]))
        .collect();
    by_level.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    assert_ne!(
        by_level[1].0, by_level[2].0,
        "the test data must not tie at the cut"
    );
    let expected_sorted: Vec<Value> = by_level
        .iter()
        .take(2)
        .map(|(count, level)| json!([level, count]))
        .collect();
    assert_eq!(rows(&sorted), expected_sorted, "{sorted}");

    // A filter prunes splits; `start`/`end` bound the lines and the range `rate` uses.
    let web_errors = aggregate(
        &server,
        &[("q", "service:web level:error | stats count() by version")],
    );
    assert_eq!(
        rows(&web_errors),
        as_rows(&tally(
            &lines
                .iter()
                .filter(|line| line.service == "web" && line.level == "error")
                .copied()
                .collect::<Vec<_>>(),
            |line| vec![line.version]
        ))
    );
    assert_eq!(web_errors["splits_skipped"], json!(2), "{web_errors}");
    let start = "2026-11-25T10:01:00Z";
    let end = "2026-11-25T10:11:00Z";
    let late = aggregate(
        &server,
        &[
            ("q", "* | stats count(), rate()"),
            ("start", start),
            ("end", end),
        ],
    );
    let late_lines = lines
        .iter()
        .filter(|line| line.offset_seconds >= 60)
        .count();
    assert_eq!(
        rows(&late),
        [json!([late_lines, late_lines as f64 / 600.0])],
        "{late}"
    );
}

#[test]
fn what_cannot_be_aggregated_is_a_400_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    let cases: [(&str, usize, &str); 4] = [
        ("service:web", 0, "/api/v1/search"),
        ("service:web | limit 3", 14, "/api/v1/search"),
        (
            "* | stats count() by attrs.user",
            21,
            "field `attrs.user` cannot be aggregated yet; aggregatable fields are service,",
        ),
        ("* | stats count() by", 20, "expected a field name"),
    ];
    for (query, start, must_mention) in cases {
        let answer = server.get("/api/v1/aggregate", &[("q", query)]);
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        let json = answer.json();
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{json}"));
        assert!(error.contains(must_mention), "{query}: {json}");
        assert_eq!(
            json["position"]["start"].as_u64(),
            Some(start as u64),
            "{query}: {json}"
        );
    }
    let unknown = server.get(
        "/api/v1/aggregate",
        &[("q", "* | top 1 level"), ("limit", "3")],
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);
}
