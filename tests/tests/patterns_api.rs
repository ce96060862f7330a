//! `| patterns` through the real server: lines over several splits grouped by message
//! template with exact counts and the newest line as example; `patterns unique by
//! version` over `version:(latest OR previous)` answers "what does the new version log
//! that the previous one never did" in one query; and the per-group cap on lines read is
//! reported, not hidden.

use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use serde_json::{Value, json};

/// 2026-11-25T10:00:00Z in seconds.
const BASE_SECONDS: u64 = 1_795_600_800;

fn record(body: &str, offset_seconds: u64) -> LogRecord {
    let mut record = log_record(body);
    record.time_unix_nano = (BASE_SECONDS + offset_seconds) * 1_000_000_000;
    record
}

fn sealed_splits(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["sealed_splits"]
        .as_u64()
        .unwrap_or(0)
}

/// Exports one batch of `service` at `version` and waits until its split is sealed.
fn export_split(
    server: &Server,
    client: &OtlpClient,
    service: &str,
    version: &str,
    lines: &[(&str, u64)],
) {
    let sealed_before = sealed_splits(server);
    let identity = [
        (keys::SERVICE_NAME, service),
        (keys::IMAGE_VERSION, version),
    ];
    let records = lines
        .iter()
        .map(|(body, offset)| record(body, *offset))
        .collect();
    client
        .export(export_request(Some(resource(&identity)), records), None)
        .expect("export accepted");
    eventually(Duration::from_secs(10), || {
        (sealed_splits(server) > sealed_before).then_some(())
    })
    .unwrap_or_else(|| panic!("no split sealed: {}", server.stderr_report()));
}

fn aggregate(server: &Server, query: &str) -> Value {
    let answer = server.get("/api/v1/aggregate", &[("q", query)]);
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.json()
}

/// v1 (older) and v2 (newer) of one service, each over two splits.
fn ingest_two_versions(server: &Server, client: &OtlpClient, service: &str) {
    export_split(
        server,
        client,
        service,
        "v1",
        &[
            ("user 1 logged in", 0),
            ("user 2 logged in", 1),
            ("cache miss for key 7", 2),
            ("started in 3s", 3),
        ],
    );
    export_split(
        server,
        client,
        service,
        "v1",
        &[("user 3 logged in", 10), ("cache miss for key 8", 11)],
    );
    export_split(
        server,
        client,
        service,
        "v2",
        &[
            ("user 9 logged in", 100),
            ("schema migration 12 failed", 101),
            ("started in 5s", 102),
        ],
    );
    export_split(
        server,
        client,
        service,
        "v2",
        &[
            ("user 10 logged in", 110),
            ("schema migration 13 failed", 111),
        ],
    );
}

#[test]
fn patterns_group_lines_by_template_and_compare_versions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("svc");
    ingest_two_versions(&server, &client, &service);
    let all_query = format!("service:{service} | patterns");
    eventually(Duration::from_secs(10), || {
        (aggregate(&server, &all_query)["lines_matched"] == json!(11)).then_some(())
    })
    .unwrap_or_else(|| panic!("not every line searchable: {}", server.stderr_report()));

    // Every line, grouped: most lines first, ties by pattern; the newest line as example.
    let all = aggregate(&server, &all_query);
    assert_eq!(all["columns"], json!(["pattern", "count", "example"]));
    assert_eq!(
        all["rows"],
        json!([
            ["user <num> logged in", 5, "user 10 logged in"],
            ["cache miss for key <num>", 2, "cache miss for key 8"],
            [
                "schema migration <num> failed",
                2,
                "schema migration 13 failed"
            ],
            ["started in <duration>", 2, "started in 5s"],
        ]),
        "{all}"
    );
    assert_eq!(all["lines_scanned"], json!(11));
    assert_eq!(all["truncated"], json!(false));
    assert!(all.get("note").is_none(), "{all}");
    assert_eq!(all["splits_searched"], json!(4));

    // By version: a row per (version, pattern).
    let by_version = aggregate(
        &server,
        &format!("service:{service} | patterns by version | sort by version, pattern"),
    );
    assert_eq!(
        by_version["columns"],
        json!(["version", "pattern", "count", "example"])
    );
    assert_eq!(
        by_version["rows"].as_array().unwrap().len(),
        6,
        "{by_version}"
    );

    // What v2 logs that v1 never did, and what v1 logged that v2 no longer does, in one
    // query, through the version aliases.
    let compared = aggregate(
        &server,
        &format!(
            "service:{service} version:(latest OR previous) | patterns unique by version | sort by version"
        ),
    );
    assert_eq!(
        compared["rows"],
        json!([
            ["v1", "cache miss for key <num>", 2, "cache miss for key 8"],
            [
                "v2",
                "schema migration <num> failed",
                2,
                "schema migration 13 failed"
            ],
        ]),
        "{compared}"
    );
    // Shaped like any table.
    let only_patterns = aggregate(
        &server,
        &format!(
            "service:{service} version:(latest OR previous) | patterns unique by version | sort by count desc, pattern | fields pattern | limit 1"
        ),
    );
    assert_eq!(only_patterns["rows"], json!([["cache miss for key <num>"]]));

    // Errors: `unique` without `by`, `by` a field without a column.
    let answer = server.get("/api/v1/aggregate", &[("q", "* | patterns unique")]);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["expected"], json!(["by"]));
    let answer = server.get("/api/v1/aggregate", &[("q", "* | patterns by trace_id")]);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["position"]["start"], json!(16));
}

#[test]
fn patterns_read_at_most_the_configured_lines_per_group_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "patterns_max_lines = 3\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--split-window",
            "1s",
            "--commit-interval",
            "200ms",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let service = unique_token("svc");
    ingest_two_versions(&server, &client, &service);
    let query = format!("service:{service} | patterns by version");
    eventually(Duration::from_secs(10), || {
        (aggregate(&server, &query)["lines_matched"] == json!(11)).then_some(())
    })
    .unwrap_or_else(|| panic!("not every line searchable: {}", server.stderr_report()));

    let capped = aggregate(&server, &query);
    // v1 has 6 lines and v2 5: the newest 3 of each were read.
    assert_eq!(capped["lines_scanned"], json!(6), "{capped}");
    assert_eq!(capped["truncated"], json!(true));
    let note = capped["note"].as_str().unwrap();
    assert!(note.contains("patterns_max_lines"), "{note}");
    assert!(note.contains("`v1`") && note.contains("`v2`"), "{note}");
    let counted: u64 = capped["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[2].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 6);
    // The newest three of v2: lines at +102, +110 and +111.
    let v2_rows: Vec<&Value> = capped["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row[0] == "v2")
        .collect();
    assert_eq!(
        v2_rows,
        [
            &json!([
                "v2",
                "schema migration <num> failed",
                1,
                "schema migration 13 failed"
            ]),
            &json!(["v2", "started in <duration>", 1, "started in 5s"]),
            &json!(["v2", "user <num> logged in", 1, "user 10 logged in"]),
        ],
        "{capped}"
    );
}
