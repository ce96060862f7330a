//! Query limits through the real server: a query past `query_time_limit` is a 503 that
//! names the setting, result caps set in the configuration file are 400s that name theirs,
//! and every route the OpenAPI document lists is served.

use std::time::Duration;

use epitaph_tests::otlp::bodies_request;
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use serde_json::json;

fn server_with_config(dir: &std::path::Path, config: &str) -> Server {
    let path = dir.join("server.toml");
    std::fs::write(&path, config).unwrap();
    Server::start(
        &dir.join("data"),
        &[
            "--commit-interval",
            "200ms",
            "--config",
            path.to_str().unwrap(),
        ],
    )
}

fn stored_documents(server: &Server) -> u64 {
    server.get("/api/v1/stats", &[]).json()["documents"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_query_past_its_time_limit_is_a_503_that_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    // No query over a split can finish within a nanosecond.
    let server = server_with_config(dir.path(), "query_time_limit = \"1ns\"\n");
    let client = OtlpClient::connect(&server.grpc_url());
    client
        .export(bodies_request("web", &[unique_token("line")]), None)
        .expect("export accepted");
    eventually(Duration::from_secs(10), || {
        (stored_documents(&server) >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the line was not indexed: {}", server.stderr_report()));

    for (path, query) in [
        ("/api/v1/search", "*"),
        ("/api/v1/aggregate", "* | stats count() by level"),
        ("/api/v1/aggregate", "* | patterns"),
        ("/api/v1/fields", "*"),
    ] {
        let answer = server.get(path, &[("q", query)]);
        assert_eq!(answer.status, 503, "{path} {query}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["limit"], json!("query_time_limit"), "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("time limit of 1ns"),
            "{body}"
        );
    }
}

#[test]
fn result_caps_come_from_the_configuration_and_name_their_setting() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_config(
        dir.path(),
        "max_search_hits = 5\nmax_context_lines = 2\nmax_facet_values = 3\nsearch_threads = 1\n",
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("capped");
    let bodies: Vec<String> = (0..8).map(|n| format!("{marker} n{n}")).collect();
    client
        .export(bodies_request("web", &bodies), None)
        .expect("export accepted");
    let hits = eventually(Duration::from_secs(10), || {
        let page = server.api().search_page(&[("q", &marker), ("limit", "5")]);
        (page.hits.len() == 5).then_some(page)
    })
    .unwrap_or_else(|| panic!("lines not searchable: {}", server.stderr_report()));
    assert!(hits.next_cursor.is_some());

    let too_many = server.get("/api/v1/search", &[("q", &marker), ("limit", "6")]);
    assert_eq!(too_many.status, 400, "{}", too_many.body);
    assert!(
        too_many.body.contains("max_search_hits"),
        "{}",
        too_many.body
    );

    let cursor = server
        .get("/api/v1/search", &[("q", &marker), ("limit", "1")])
        .json()["hits"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let context = server.get(
        "/api/v1/context",
        &[("cursor", &cursor), ("before", "2"), ("after", "0")],
    );
    assert_eq!(context.status, 200, "{}", context.body);
    assert_eq!(context.json()["before"].as_array().unwrap().len(), 2);
    let wide = server.get("/api/v1/context", &[("cursor", &cursor), ("before", "3")]);
    assert_eq!(wide.status, 400, "{}", wide.body);
    assert!(wide.body.contains("max_context_lines"), "{}", wide.body);

    let facets = server.get("/api/v1/fields", &[("q", &marker), ("size", "4")]);
    assert_eq!(facets.status, 400, "{}", facets.body);
    assert!(facets.body.contains("max_facet_values"), "{}", facets.body);
}

#[test]
fn every_documented_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let answer = server.get("/api/v1/openapi.json", &[]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let document = answer.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/search",
        "/api/v1/aggregate",
        "/api/v1/context",
        "/api/v1/fields",
        "/api/v1/versions",
        "/api/v1/tail",
        "/api/v1/instances",
        "/api/v1/stats",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    for path in paths.keys() {
        // The tail is a stream that does not end by itself.
        if path == "/api/v1/tail" {
            continue;
        }
        let answer = server.get(path, &[]);
        let unrouted = answer.status == 404 && answer.body.contains("no such endpoint");
        assert!(!unrouted, "{path} is documented but not served");
    }
    let unknown = server.get("/api/v1/nope", &[]);
    assert_eq!(unknown.status, 404);
}
