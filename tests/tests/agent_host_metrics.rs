//! The agent's host metrics reach the real server and chart per image version: two
//! agents of one service on two image versions, both sending every second.

use std::collections::BTreeMap;
use std::time::Duration;

use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::lines::append_lines;
use epitaph_tests::otlp::unix_millis_now;
use epitaph_tests::{Agent, AgentConfig, Identity, Server, eventually, unique_token};
use serde_json::Value;

/// `{first column: second column}` of an aggregate answer's rows.
fn by_first_column(answer: &Value) -> BTreeMap<String, f64> {
    answer["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| Some((row[0].as_str()?.to_string(), row[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn host_metrics_chart_per_image_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let service = unique_token("hm");
    let started = (unix_millis_now() - 1_000).to_string();
    let mut lines_written = BTreeMap::new();
    let mut agents = Vec::new();
    for (version, lines) in [("v1", 5), ("v2", 3)] {
        let log_path = dir.path().join(format!("{version}.log"));
        let bodies: Vec<String> = (0..lines)
            .map(|n| format!("line {n} of {version}"))
            .collect();
        append_lines(&log_path, &bodies);
        let mut config = AgentConfig::new(
            &server.grpc_url(),
            &dir.path().join(format!("state-{version}")),
            &[&log_path],
            Identity::for_service(&service, version),
            InstanceIdentity {
                host_id: unique_token("i"),
                host_name: format!("host-{version}"),
                generation: "1".to_string(),
            },
        );
        config.metrics_interval = Some("1s".to_string());
        agents.push(Agent::start(config));
        lines_written.insert(version.to_string(), f64::from(lines));
    }
    let aggregate = |query: String| {
        let answer = server.get("/api/v1/aggregate", &[("q", &query), ("start", &started)]);
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        answer.json()
    };

    // The agent's own counter of lines read, per version, is what was written: the
    // series began inside the range, so its first point counts whole.
    let lines_query =
        format!("metric:epitaph.agent.lines.read service:{service} | stats increase() by version");
    eventually(Duration::from_secs(20), || {
        (by_first_column(&aggregate(lines_query.clone())) == lines_written).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "lines read per version never matched {lines_written:?}: {}",
            aggregate(lines_query.clone())
        )
    });

    // Kernel counters: CPU time goes up on both instances between two intervals.
    let cpu = eventually(Duration::from_secs(20), || {
        let rates = by_first_column(&aggregate(format!(
            "metric:system.cpu.time service:{service} | stats rate() by version"
        )));
        (rates.len() == 2 && rates.values().all(|rate| *rate > 0.0)).then_some(rates)
    });
    assert!(cpu.is_some(), "system.cpu.time never rose on both versions");

    // Gauges chart per version over time.
    let chart = aggregate(format!(
        "metric:system.memory.usage service:{service} | timechart span=1s max(value) by version"
    ));
    assert_eq!(
        chart["columns"],
        serde_json::json!(["time", "version", "max(value)"]),
        "{chart}"
    );
    let versions: std::collections::BTreeSet<&str> = chart["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row[1].as_str())
        .collect();
    assert_eq!(versions, ["v1", "v2"].into_iter().collect(), "{chart}");
    for row in chart["rows"].as_array().unwrap() {
        assert!(row[2].as_f64().unwrap() > 0.0, "{chart}");
    }
    drop(agents);
}
