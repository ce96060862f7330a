//! `/api/v1/search` speaks the query language: identity fields, phrases, regexes,
//! severity ranges, attributes and `version:latest` work through the real server, a bad
//! query is a 400 that says where, and splits whose identity sets or time range cannot
//! match are skipped.

use std::time::{Duration, SystemTime};

use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{export_request, log_record, resource, unix_nanos};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};

fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn record(body: String, severity: i32, minutes_ago: u64, status: Option<i64>) -> LogRecord {
    let mut record = log_record(&body);
    record.severity_number = severity;
    record.severity_text = String::new();
    record.time_unix_nano = unix_nanos(SystemTime::now() - Duration::from_secs(60 * minutes_ago));
    if let Some(status) = status {
        record.attributes.push(int_attribute("http.status", status));
    }
    record
}

fn sealed_splits(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["sealed_splits"]
        .as_u64()
        .unwrap_or(0)
}

/// Exports one batch and waits until the split holding it is sealed, so the next batch
/// lands in a split of its own.
fn export_into_own_split(
    server: &Server,
    client: &OtlpClient,
    identity: &[(&str, &str)],
    records: Vec<LogRecord>,
) {
    let sealed_before = sealed_splits(server);
    client
        .export(export_request(Some(resource(identity)), records), None)
        .expect("export accepted");
    eventually(Duration::from_secs(10), || {
        (sealed_splits(server) > sealed_before).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no split sealed after the batch: {}",
            server.stderr_report()
        )
    });
}

fn bodies(server: &Server, query: &str) -> Vec<String> {
    let mut bodies: Vec<String> = server
        .search(query)
        .into_iter()
        .map(|hit| hit.body)
        .collect();
    bodies.sort();
    bodies
}

#[test]
fn search_speaks_the_query_language_and_prunes_splits_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("query");
    let web = unique_token("web");
    let api = unique_token("api");
    let line = |text: &str| format!("{marker} {text}");

    // web 1.0 (ten minutes ago), then web 2.0 (five minutes ago), then api 9.0: three
    // splits, one identity each.
    export_into_own_split(
        &server,
        &client,
        &[
            (keys::SERVICE_NAME, &web),
            (keys::IMAGE_VERSION, "1.0"),
            (keys::GENERATION, "1"),
        ],
        vec![
            record(line("connection refused by 10.0.0.7"), 17, 10, Some(500)),
            record(line("request served"), 9, 10, Some(200)),
        ],
    );
    export_into_own_split(
        &server,
        &client,
        &[
            (keys::SERVICE_NAME, &web),
            (keys::IMAGE_VERSION, "2.0"),
            (keys::GENERATION, "2"),
        ],
        vec![
            record(line("timeout talking to db"), 13, 5, None),
            record(line("request served again"), 9, 5, None),
        ],
    );
    export_into_own_split(
        &server,
        &client,
        &[(keys::SERVICE_NAME, &api), (keys::IMAGE_VERSION, "9.0")],
        vec![record(line("cache warm"), 5, 0, None)],
    );
    eventually(Duration::from_secs(5), || {
        (server.search(&marker).len() == 5).then_some(())
    })
    .unwrap_or_else(|| panic!("not all lines searchable: {:?}", bodies(&server, &marker)));

    let web_v1 = [
        line("connection refused by 10.0.0.7"),
        line("request served"),
    ];
    let mut web_v1_sorted = web_v1.to_vec();
    web_v1_sorted.sort();

    // Identity fields.
    assert_eq!(bodies(&server, &format!("{marker} service:{web}")).len(), 4);
    assert_eq!(
        bodies(&server, &format!("{marker} service:{web} version:1.0")),
        web_v1_sorted
    );
    assert_eq!(
        bodies(&server, &format!("{marker} generation:2 -version:1.0")).len(),
        2
    );
    // A phrase, and a word with dots (a phrase of its tokens).
    assert_eq!(
        bodies(&server, &format!("{marker} \"connection refused\"")),
        [line("connection refused by 10.0.0.7")]
    );
    assert!(bodies(&server, &format!("{marker} \"refused connection\"")).is_empty());
    assert_eq!(bodies(&server, &format!("{marker} 10.0.0.7")).len(), 1);
    // Regexes and wildcards.
    assert_eq!(
        bodies(&server, &format!("{marker} service:/web.*/")).len(),
        4
    );
    assert_eq!(
        bodies(&server, &format!("{marker} /tim.o.t/")),
        [line("timeout talking to db")]
    );
    assert_eq!(bodies(&server, &format!("{marker} serv*")).len(), 2);
    // Severity ranges.
    assert_eq!(bodies(&server, &format!("{marker} severity:>=13")).len(), 2);
    assert_eq!(
        bodies(&server, &format!("{marker} severity:[5 TO 9]")).len(),
        3
    );
    // Attributes, by value and by comparison.
    assert_eq!(
        bodies(&server, &format!("{marker} attrs.http.status:500")),
        [line("connection refused by 10.0.0.7")]
    );
    assert_eq!(
        bodies(&server, &format!("{marker} attrs.http.status:<400")),
        [line("request served")]
    );
    // version:latest is each service's newest version by first seen.
    let mut latest = vec![
        line("timeout talking to db"),
        line("request served again"),
        line("cache warm"),
    ];
    latest.sort();
    assert_eq!(bodies(&server, &format!("{marker} version:latest")), latest);
    assert_eq!(
        bodies(&server, &format!("{marker} service:{web} version:previous")),
        web_v1_sorted
    );

    // Pruning: a search for the api service skips both web splits without opening them.
    let everything = server.get("/api/v1/search", &[("q", &marker)]).json();
    let only_api = server
        .get(
            "/api/v1/search",
            &[("q", &format!("{marker} service:{api}"))],
        )
        .json();
    assert_eq!(only_api["hits"].as_array().unwrap().len(), 1, "{only_api}");
    let skipped = |page: &serde_json::Value| page["splits_skipped"].as_u64().unwrap();
    let searched = |page: &serde_json::Value| page["splits_searched"].as_u64().unwrap();
    assert!(
        skipped(&only_api) >= skipped(&everything) + 2,
        "everything: {everything}\nonly api: {only_api}"
    );
    assert_eq!(
        searched(&only_api) + 2,
        searched(&everything),
        "everything: {everything}\nonly api: {only_api}"
    );
    // And by the filter's own time bounds: the web lines are five and ten minutes old.
    let recent = server
        .get(
            "/api/v1/search",
            &[("q", &format!("{marker} timestamp:>now-2m"))],
        )
        .json();
    assert_eq!(recent["hits"].as_array().unwrap().len(), 1, "{recent}");
    assert_eq!(searched(&recent) + 2, searched(&everything), "{recent}");
}

#[test]
fn a_bad_query_is_a_400_that_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    let cases: [(&str, usize, &str); 4] = [
        ("service:(web AND", 16, "expected"),
        ("level:error nosuchfield:x", 12, "nosuchfield"),
        ("service:web | stats count()", 14, "/api/v1/aggregate"),
        ("value:>3", 0, "value"),
    ];
    for (query, start, must_mention) in cases {
        let answer = server.get("/api/v1/search", &[("q", query)]);
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        let json = answer.json();
        let error = json["error"].as_str().unwrap_or_else(|| panic!("{json}"));
        assert!(error.contains(must_mention), "{query}: {json}");
        assert_eq!(
            json["position"]["start"].as_u64(),
            Some(start as u64),
            "{query}: {json}"
        );
        let end = json["position"]["end"].as_u64().unwrap();
        assert!(
            end >= start as u64 && end <= query.len() as u64,
            "{query}: {json}"
        );
    }
}
