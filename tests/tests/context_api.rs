//! `/api/v1/context` through the real server: a search hit opened by its `cursor` gives
//! the lines just before and after it from the same instance and source, oldest first,
//! across split boundaries, skipping other instances' splits; bad and unknown cursors
//! and oversized requests are clear errors.

use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{export_request, log_record, resource, string_attribute};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use serde_json::Value;

/// 2026-11-25T10:00:00Z, in nanoseconds: lines are this plus whole seconds.
const BASE_NANOS: u64 = 1_795_600_800 * 1_000_000_000;

const APP_LOG: &str = "/var/log/app.log";
const OTHER_LOG: &str = "/var/log/other.log";

/// A line `<marker> <source tag> n<number>` at `BASE + second`, read from `path`.
fn line(marker: &str, path: &str, number: u64, second: u64) -> LogRecord {
    let tag = if path == APP_LOG { "app" } else { "other" };
    let mut record = log_record(&format!("{marker} {tag} n{number}"));
    record.time_unix_nano = BASE_NANOS + second * 1_000_000_000;
    record
        .attributes
        .push(string_attribute("log.file.path", path));
    record
}

fn sealed_splits(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["sealed_splits"]
        .as_u64()
        .unwrap_or(0)
}

/// Exports one batch from `instance` and waits until its split is sealed.
fn export_into_own_split(
    server: &Server,
    client: &OtlpClient,
    instance: &str,
    records: Vec<LogRecord>,
) {
    let sealed_before = sealed_splits(server);
    let identity = [(keys::SERVICE_NAME, "web"), (keys::HOST_ID, instance)];
    client
        .export(export_request(Some(resource(&identity)), records), None)
        .expect("export accepted");
    eventually(Duration::from_secs(10), || {
        (sealed_splits(server) > sealed_before).then_some(())
    })
    .unwrap_or_else(|| panic!("no split sealed: {}", server.stderr_report()));
}

fn bodies(lines: &Value) -> Vec<String> {
    lines
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {lines}"))
        .iter()
        .map(|line| line["body"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn context_gives_the_neighbours_from_the_same_instance_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("ctx");

    // i-a writes app.log lines n0..n9 (one split), then i-b writes app.log lines at the
    // same seconds (its own split), then i-a writes n10..n19 to app.log interleaved with
    // other.log lines at the same seconds (a third split).
    export_into_own_split(
        &server,
        &client,
        "i-a",
        (0..10).map(|n| line(&marker, APP_LOG, n, n)).collect(),
    );
    export_into_own_split(
        &server,
        &client,
        "i-b",
        (0..20)
            .map(|n| line(&marker, APP_LOG, 100 + n, n))
            .collect(),
    );
    let mut third = Vec::new();
    for n in 10..20 {
        third.push(line(&marker, OTHER_LOG, 200 + n, n));
        third.push(line(&marker, APP_LOG, n, n));
    }
    export_into_own_split(&server, &client, "i-a", third);

    let hits = eventually(Duration::from_secs(10), || {
        let hits = server.search(&format!("{marker} n12"));
        (hits.len() == 1).then_some(hits)
    })
    .unwrap_or_else(|| panic!("line n12 not searchable: {}", server.stderr_report()));
    let cursor_of_hit = server
        .get("/api/v1/search", &[("q", &format!("{marker} n12"))])
        .json()["hits"][0]["cursor"]
        .as_str()
        .expect("every hit has a cursor")
        .to_string();
    assert_eq!(hits[0].body, format!("{marker} app n12"));

    let answer = server.get(
        "/api/v1/context",
        &[("cursor", &cursor_of_hit), ("before", "3"), ("after", "3")],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let context = answer.json();
    let app = |n: u64| format!("{marker} app n{n}");
    assert_eq!(context["hit"]["body"], Value::from(app(12)), "{context}");
    assert_eq!(context["hit"]["cursor"], Value::from(cursor_of_hit.clone()));
    // n9 is in the first split: context crosses split boundaries; i-b's lines at the same
    // seconds and i-a's other.log lines are not part of it.
    assert_eq!(
        bodies(&context["before"]),
        [app(9), app(10), app(11)],
        "{context}"
    );
    assert_eq!(
        bodies(&context["after"]),
        [app(13), app(14), app(15)],
        "{context}"
    );
    // The split of i-b holds no line of i-a and is never opened.
    assert!(
        context["splits_skipped"].as_u64().unwrap() >= 2,
        "{context}"
    );

    // Near the start of the stream there are fewer lines than asked for.
    let wide = server
        .get(
            "/api/v1/context",
            &[("cursor", &cursor_of_hit), ("before", "50"), ("after", "0")],
        )
        .json();
    assert_eq!(
        bodies(&wide["before"]),
        (0..12).map(app).collect::<Vec<_>>(),
        "{wide}"
    );
    assert!(bodies(&wide["after"]).is_empty(), "{wide}");
    // Context of a line of the other source stays in that source.
    let other_cursor = server
        .get("/api/v1/search", &[("q", &format!("{marker} n215"))])
        .json()["hits"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let other = server
        .get(
            "/api/v1/context",
            &[("cursor", &other_cursor), ("before", "2"), ("after", "2")],
        )
        .json();
    let other_line = |n: u64| format!("{marker} other n{n}");
    assert_eq!(bodies(&other["before"]), [other_line(213), other_line(214)]);
    assert_eq!(bodies(&other["after"]), [other_line(216), other_line(217)]);

    // Errors: a cursor this server never issued, one whose line does not exist, too many
    // lines, a missing cursor.
    let garbage = server.get("/api/v1/context", &[("cursor", "not a cursor!")]);
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    // "MTox" is the URL-safe base64 of "1:1": 1 ns after the epoch, where no line is.
    let missing = server.get("/api/v1/context", &[("cursor", "MTox")]);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("no line")
    );
    let too_many = server.get(
        "/api/v1/context",
        &[("cursor", &cursor_of_hit), ("before", "1000000")],
    );
    assert_eq!(too_many.status, 400, "{}", too_many.body);
    assert!(
        too_many.body.contains("max_context_lines"),
        "{}",
        too_many.body
    );
    let no_cursor = server.get("/api/v1/context", &[]);
    assert_eq!(no_cursor.status, 400, "{}", no_cursor.body);
}
