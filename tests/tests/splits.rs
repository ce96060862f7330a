//! Splits: the open one is sealed when its window ends, sealed splits stay searchable
//! across a crash, and a time-bounded search skips the splits that cannot match.

use std::time::{Duration, SystemTime};

use epitaph_tests::otlp::{export_request, log_record, resource, unix_nanos};
use epitaph_tests::{OtlpClient, Server, assert_bodies_exactly_once, eventually, unique_token};

fn stats(server: &Server) -> serde_json::Value {
    server.get("/api/v1/stats", &[]).json()
}

#[test]
fn sealed_splits_survive_a_crash_and_are_pruned_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("seal");
    let service = unique_token("svc");

    // The first split holds lines an hour old; once its window is over it is sealed.
    let an_hour_ago = unix_nanos(SystemTime::now() - Duration::from_secs(3600));
    let old_bodies: Vec<String> = (0..5).map(|n| format!("{marker} old {n}")).collect();
    let old_records = old_bodies
        .iter()
        .map(|body| {
            let mut record = log_record(body);
            record.time_unix_nano = an_hour_ago;
            record
        })
        .collect();
    client
        .export(
            export_request(Some(resource(&[("service.name", &service)])), old_records),
            None,
        )
        .expect("old batch");
    eventually(Duration::from_secs(10), || {
        (stats(&server)["sealed_splits"].as_u64() >= Some(1)).then_some(())
    })
    .unwrap_or_else(|| panic!("no split sealed: {}", stats(&server)));

    // The next lines open a new split.
    let new_bodies: Vec<String> = (0..5).map(|n| format!("{marker} new {n}")).collect();
    let new_records = new_bodies.iter().map(|body| log_record(body)).collect();
    client
        .export(
            export_request(Some(resource(&[("service.name", &service)])), new_records),
            None,
        )
        .expect("new batch");
    let mut expected = old_bodies.clone();
    expected.extend(new_bodies.iter().cloned());
    eventually(Duration::from_secs(5), || {
        (server.search(&marker).len() == expected.len()).then_some(())
    })
    .expect("both batches searchable");

    server.kill9();
    server.restart();
    assert_bodies_exactly_once(&server, &marker, &expected);
    let totals = stats(&server);
    assert!(totals["splits"].as_u64() >= Some(2), "{totals}");

    // A search over the last ten minutes never opens the hour-old split.
    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(600);
    let start_millis = (unix_nanos(ten_minutes_ago) / 1_000_000).to_string();
    let answer = server.get(
        "/api/v1/search",
        &[("q", &marker), ("start", &start_millis)],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let page = answer.json();
    let bodies: Vec<&str> = page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), new_bodies.len(), "{page}");
    assert!(bodies.iter().all(|body| body.contains(" new ")), "{page}");
    assert!(page["splits_skipped"].as_u64() >= Some(1), "{page}");
}

#[test]
fn search_pages_through_every_hit_newest_first_with_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--commit-interval", "200ms"]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("page");
    // Equal timestamps everywhere: the cursor must still neither skip nor repeat a line.
    let now = unix_nanos(SystemTime::now());
    let bodies: Vec<String> = (0..25).map(|n| format!("{marker} line {n:02}")).collect();
    let records = bodies
        .iter()
        .map(|body| {
            let mut record = log_record(body);
            record.time_unix_nano = now;
            record
        })
        .collect();
    client
        .export(export_request(None, records), None)
        .expect("batch");
    eventually(Duration::from_secs(5), || {
        (server.search(&marker).len() == bodies.len()).then_some(())
    })
    .expect("batch searchable");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..10 {
        let mut params = vec![("q", marker.as_str()), ("limit", "7")];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.as_str()));
        }
        let page = server.get("/api/v1/search", &params).json();
        for hit in page["hits"].as_array().unwrap() {
            seen.push(hit["body"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    // Same timestamp: ingest order decides, newest (last written) first.
    let mut expected = bodies.clone();
    expected.reverse();
    assert_eq!(seen, expected);
}
