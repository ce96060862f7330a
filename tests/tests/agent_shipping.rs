//! The agent's happy path: a line appended to a tailed file becomes a searchable log record
//! that carries the instance's identity.

use std::time::Duration;

use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::lines::append_lines;
use epitaph_tests::{Agent, AgentConfig, Identity, Server, eventually, unique_token};

#[test]
fn agent_lines_are_searchable_with_identity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    let service = unique_token("web");
    let image_version = "2026.11.26-3f2a";
    let instance = InstanceIdentity {
        host_id: unique_token("i"),
        host_name: "web-1".to_string(),
        generation: "7".to_string(),
    };
    let log_path = dir.path().join("app.log");
    let marker = unique_token("m");
    let written_before_start: Vec<String> = (1..=3)
        .map(|n| format!("before agent start {n} {marker}"))
        .collect();
    append_lines(&log_path, &written_before_start);

    let config = AgentConfig::new(
        &server.grpc_url(),
        &dir.path().join("agent-state"),
        &[&log_path],
        Identity::for_service(&service, image_version),
        instance.clone(),
    );
    let _agent = Agent::start(config);

    let written_after_start: Vec<String> = (1..=3)
        .map(|n| format!("after agent start {n} {marker}"))
        .collect();
    append_lines(&log_path, &written_after_start);
    let mut expected: Vec<String> = written_before_start
        .iter()
        .chain(&written_after_start)
        .cloned()
        .collect();
    expected.sort();

    let mut last_bodies = Vec::new();
    let hits = eventually(Duration::from_secs(5), || {
        let hits = server.search(&marker);
        last_bodies = hits.iter().map(|hit| hit.body.clone()).collect();
        last_bodies.sort();
        (last_bodies == expected).then_some(hits)
    })
    .unwrap_or_else(|| {
        panic!("within 5 s expected bodies {expected:?}, last search returned {last_bodies:?}")
    });

    for hit in &hits {
        assert_eq!(hit.service, service, "service of {hit:?}");
        assert_eq!(hit.image, format!("{service}-golden"), "image of {hit:?}");
        assert_eq!(hit.version, image_version, "version of {hit:?}");
        assert_eq!(
            hit.image_id,
            format!("ami-{service}"),
            "image_id of {hit:?}"
        );
        assert_eq!(hit.generation, instance.generation, "generation of {hit:?}");
        assert_eq!(hit.instance, instance.host_id, "instance of {hit:?}");
        assert_eq!(hit.host, instance.host_name, "host of {hit:?}");
        assert_eq!(
            hit.source,
            log_path.display().to_string(),
            "source of {hit:?}"
        );
        assert!(hit.timestamp_nanos > 0, "timestamp of {hit:?}");
    }
    // Newest first.
    let timestamps: Vec<i64> = hits.iter().map(|hit| hit.timestamp_nanos).collect();
    assert!(
        timestamps.windows(2).all(|pair| pair[0] >= pair[1]),
        "hits are not newest first: {timestamps:?}"
    );

    // The identity fields are indexed: a query on them finds these lines, a query on a
    // neighbouring generation finds none.
    let by_identity = format!(
        "service:{service} AND version:{image_version} AND generation:{} AND instance:{}",
        instance.generation, instance.host_id
    );
    assert_eq!(
        server.search(&by_identity).len(),
        expected.len(),
        "hits of {by_identity:?}"
    );
    let other_generation = format!("service:{service} AND generation:8");
    assert_eq!(
        server.search(&other_generation).len(),
        0,
        "hits of {other_generation:?}"
    );

    // The registry knows the instance, live, with the same identity.
    let registered = eventually(Duration::from_secs(5), || {
        server
            .instances()
            .into_iter()
            .find(|entry| entry.instance == instance.host_id)
    })
    .unwrap_or_else(|| {
        panic!(
            "instance {} never appeared in /api/v1/instances",
            instance.host_id
        )
    });
    assert_eq!(registered.state, "live", "{registered:?}");
    assert_eq!(registered.service, service, "{registered:?}");
    assert_eq!(registered.version, image_version, "{registered:?}");
    assert_eq!(registered.generation, instance.generation, "{registered:?}");
    assert_eq!(registered.host, instance.host_name, "{registered:?}");
    assert!(!registered.agent_version.is_empty(), "{registered:?}");
    assert_eq!(registered.lost_since, None, "{registered:?}");
}
