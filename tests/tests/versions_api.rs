//! `/api/v1/versions` through the real server: per service, image versions newest first
//! by first seen, with lines, instances and generations counted from the index, the
//! `latest`/`previous` aliases the query language resolves, and the registry's view of
//! the instances a real agent runs.

use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::lines::append_lines;
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::{Agent, AgentConfig, Identity, OtlpClient, Server, eventually, unique_token};
use serde_json::{Value, json};

/// 2026-11-25T10:00:00Z in seconds.
const BASE_SECONDS: u64 = 1_795_600_800;

fn records(count: usize, offset_seconds: u64) -> Vec<LogRecord> {
    let mut record = log_record("version test line");
    record.time_unix_nano = (BASE_SECONDS + offset_seconds) * 1_000_000_000;
    vec![record; count]
}

fn export(
    client: &OtlpClient,
    service: &str,
    version: &str,
    generation: &str,
    instance: &str,
    records: Vec<LogRecord>,
) {
    let identity = [
        (keys::SERVICE_NAME, service),
        (keys::IMAGE_VERSION, version),
        (keys::GENERATION, generation),
        (keys::HOST_ID, instance),
    ];
    client
        .export(export_request(Some(resource(&identity)), records), None)
        .expect("export accepted");
}

fn versions(server: &Server, params: &[(&str, &str)]) -> Value {
    let answer = server.get("/api/v1/versions", params);
    assert_eq!(answer.status, 200, "{params:?}: {}", answer.body);
    answer.json()
}

fn service<'v>(response: &'v Value, name: &str) -> &'v Value {
    response["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["service"] == name)
        .unwrap_or_else(|| panic!("no service {name}: {response}"))
}

#[test]
fn versions_are_listed_newest_first_with_counts_from_index_and_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--split-window", "1s", "--commit-interval", "200ms"],
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let web = unique_token("web");
    // web v1: generation 1 on two instances; v2: generations 2 and 3.
    export(&client, &web, "v1", "1", "i-1", records(3, 0));
    export(&client, &web, "v1", "1", "i-2", records(2, 100));
    export(&client, &web, "v2", "2", "i-3", records(4, 200));
    export(&client, &web, "v2", "3", "i-4", records(1, 300));
    export(&client, "api", "v9", "1", "i-5", records(2, 50));

    // A real agent runs web v3 (generation 4): the registry knows it, and its line, logged
    // now, makes v3 the newest version.
    let log_path = dir.path().join("app.log");
    let marker = unique_token("agentline");
    append_lines(&log_path, &[format!("{marker} started")]);
    let agent_instance = unique_token("i");
    let mut agent = Agent::start(AgentConfig::new(
        &server.grpc_url(),
        &dir.path().join("agent-state"),
        &[&log_path],
        Identity::for_service(&web, "v3"),
        InstanceIdentity {
            host_id: agent_instance.clone(),
            host_name: "web-v3-1".to_string(),
            generation: "4".to_string(),
        },
    ));
    eventually(Duration::from_secs(15), || {
        let all = versions(&server, &[("service", &web)]);
        let lines: u64 = all["services"][0]["versions"]
            .as_array()?
            .iter()
            .map(|version| version["lines"].as_u64().unwrap_or(0))
            .sum();
        (lines == 11).then_some(())
    })
    .unwrap_or_else(|| panic!("not every line indexed: {}", server.stderr_report()));

    let answer = versions(&server, &[("service", &web)]);
    assert_eq!(answer["services"].as_array().unwrap().len(), 1, "{answer}");
    let listed = service(&answer, &web)["versions"].as_array().unwrap();
    let names: Vec<&str> = listed
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v3", "v2", "v1"], "{answer}");

    let v3 = &listed[0];
    assert_eq!(v3["alias"], json!("latest"));
    assert_eq!(v3["lines"], json!(1));
    assert_eq!(v3["instances"], json!(1));
    assert_eq!(
        v3["registry"],
        json!({"instances": 1, "live": 1, "terminated": 0, "lost": 0})
    );
    assert_eq!(v3["generations"][0]["generation"], json!("4"));

    let v2 = &listed[1];
    assert_eq!(v2["alias"], json!("previous"));
    assert_eq!(v2["first_seen"], json!("2026-11-25T10:03:20Z"));
    assert_eq!(v2["last_seen"], json!("2026-11-25T10:05:00Z"));
    assert_eq!(v2["lines"], json!(5));
    assert_eq!(v2["instances"], json!(2));
    assert_eq!(
        v2["generations"],
        json!([
            {"generation": "2", "lines": 4, "instances": 1,
             "first_line": "2026-11-25T10:03:20Z", "last_line": "2026-11-25T10:03:20Z"},
            {"generation": "3", "lines": 1, "instances": 1,
             "first_line": "2026-11-25T10:05:00Z", "last_line": "2026-11-25T10:05:00Z"}
        ])
    );
    // Lines sent by plain OTLP clients come from no registered agent.
    assert_eq!(v2["registry"]["instances"], json!(0));

    let v1 = &listed[2];
    assert_eq!(v1["alias"], Value::Null);
    assert_eq!(v1["first_seen"], json!("2026-11-25T10:00:00Z"));
    assert_eq!(v1["last_seen"], json!("2026-11-25T10:01:40Z"));
    assert_eq!(v1["lines"], json!(5));
    assert_eq!(v1["instances"], json!(2));
    assert_eq!(v1["generations"].as_array().unwrap().len(), 1);

    // The aliases agree with what the query language resolves.
    let latest = server.search(&format!("service:{web} version:latest"));
    assert!(
        !latest.is_empty() && latest.iter().all(|hit| hit.version == "v3"),
        "{latest:?}"
    );

    // Without `service`, every service is listed.
    let everything = versions(&server, &[]);
    let api = service(&everything, "api")["versions"].as_array().unwrap();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0]["lines"], json!(2));
    assert_eq!(api[0]["alias"], json!("latest"));

    // A service with no lines and no instances has no versions; an unknown parameter is
    // a 400.
    let nobody = versions(&server, &[("service", "no-such-service")]);
    assert_eq!(nobody["services"], json!([]));
    let typo = server.get("/api/v1/versions", &[("servce", "web")]);
    assert_eq!(typo.status, 400, "{}", typo.body);

    agent.sigterm_and_wait(Duration::from_secs(15));
}
