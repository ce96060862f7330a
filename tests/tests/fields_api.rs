//! `/api/v1/fields` through the real server: the facets of a filter are the exact counts
//! of every keyword field's values among the matching lines, over several splits, most
//! frequent first, bounded by `size`, `start` and `end`.

use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use serde_json::{Value, json};

/// 2026-11-25T10:00:00Z in seconds.
const BASE_SECONDS: u64 = 1_795_600_800;

fn record(marker: &str, severity: i32, offset_seconds: u64) -> LogRecord {
    let mut record = log_record(&format!("{marker} something happened"));
    record.severity_number = severity;
    record.severity_text = String::new();
    record.time_unix_nano = (BASE_SECONDS + offset_seconds) * 1_000_000_000;
    record
}

fn sealed_splits(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["sealed_splits"]
        .as_u64()
        .unwrap_or(0)
}

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
    .unwrap_or_else(|| panic!("no split sealed: {}", server.stderr_report()));
}

fn field<'v>(response: &'v Value, name: &str) -> &'v Value {
    response["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {response}"))
        .iter()
        .find(|facet| facet["field"] == name)
        .unwrap_or_else(|| panic!("no facet for {name}: {response}"))
}

fn fields(server: &Server, params: &[(&str, &str)]) -> Value {
    let answer = server.get("/api/v1/fields", params);
    assert_eq!(answer.status, 200, "{params:?}: {}", answer.body);
    answer.json()
}

#[test]
fn facets_count_every_keyword_value_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("facet");
    let web = |version, instance| {
        [
            (keys::SERVICE_NAME, "web"),
            (keys::IMAGE_VERSION, version),
            (keys::HOST_ID, instance),
        ]
    };
    // web v1 on i-1: 3 errors at +0 s, 2 infos at +100 s.
    let mut first = vec![record(&marker, 17, 0); 3];
    first.extend(vec![record(&marker, 9, 100); 2]);
    export_into_own_split(&server, &client, &web("v1", "i-1"), first);
    // web v2 on i-2: 4 infos at +200 s; on i-3: 1 warn at +300 s.
    export_into_own_split(
        &server,
        &client,
        &web("v2", "i-2"),
        vec![record(&marker, 9, 200); 4],
    );
    export_into_own_split(
        &server,
        &client,
        &web("v2", "i-3"),
        vec![record(&marker, 13, 300)],
    );
    // api v9 on i-4: 2 errors at +400 s.
    export_into_own_split(
        &server,
        &client,
        &[
            (keys::SERVICE_NAME, "api"),
            (keys::IMAGE_VERSION, "v9"),
            (keys::HOST_ID, "i-4"),
        ],
        vec![record(&marker, 17, 400); 2],
    );
    eventually(Duration::from_secs(10), || {
        (fields(&server, &[("q", &marker)])["lines"] == json!(12)).then_some(())
    })
    .unwrap_or_else(|| panic!("not every line searchable: {}", server.stderr_report()));

    let all = fields(&server, &[("q", &marker)]);
    assert_eq!(
        field(&all, "service")["values"],
        json!([{"value": "web", "count": 10}, {"value": "api", "count": 2}])
    );
    assert_eq!(
        field(&all, "version")["values"],
        json!([
            {"value": "v1", "count": 5},
            {"value": "v2", "count": 5},
            {"value": "v9", "count": 2}
        ])
    );
    assert_eq!(
        field(&all, "level")["values"],
        json!([
            {"value": "info", "count": 6},
            {"value": "error", "count": 5},
            {"value": "warn", "count": 1}
        ])
    );
    // Every keyword field is there, identity first; unset ones count under "".
    let names: Vec<&str> = all["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|facet| facet["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "service",
            "image",
            "version",
            "image_id",
            "generation",
            "instance",
            "host",
            "env",
            "region",
            "zone",
            "level",
            "source"
        ]
    );
    assert_eq!(
        field(&all, "zone")["values"],
        json!([{"value": "", "count": 12}])
    );
    assert_eq!(all["splits_searched"], json!(4), "{all}");

    // The filter narrows the lines, and prunes splits.
    let web_errors = fields(
        &server,
        &[("q", &format!("{marker} service:web level:error"))],
    );
    assert_eq!(web_errors["lines"], json!(3));
    assert_eq!(
        field(&web_errors, "instance")["values"],
        json!([{"value": "i-1", "count": 3}])
    );
    assert_eq!(web_errors["splits_skipped"], json!(1), "{web_errors}");

    // size keeps the most frequent values and counts the rest.
    let top_one = fields(&server, &[("q", &marker), ("size", "1")]);
    assert_eq!(
        field(&top_one, "instance")["values"],
        json!([{"value": "i-1", "count": 5}])
    );
    assert_eq!(field(&top_one, "instance")["other_count"], json!(7));

    // start/end bound the lines: +150 s to +350 s holds web v2 only.
    let window = fields(
        &server,
        &[
            ("q", &marker),
            ("start", "2026-11-25T10:02:30Z"),
            ("end", "2026-11-25T10:05:50Z"),
        ],
    );
    assert_eq!(window["lines"], json!(5));
    assert_eq!(
        field(&window, "version")["values"],
        json!([{"value": "v2", "count": 5}])
    );

    // Errors: a stage, a size beyond the cap.
    let staged = server.get("/api/v1/fields", &[("q", "* | top 3 host")]);
    assert_eq!(staged.status, 400, "{}", staged.body);
    let staged = staged.json();
    assert!(
        staged["error"].as_str().unwrap().contains("/api/v1/fields"),
        "{staged}"
    );
    assert_eq!(staged["position"]["start"], json!(4));
    let huge = server.get("/api/v1/fields", &[("size", "100000")]);
    assert_eq!(huge.status, 400, "{}", huge.body);
    assert!(huge.body.contains("max_facet_values"), "{}", huge.body);
}
