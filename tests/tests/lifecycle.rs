//! An instance's lifecycle as the registry shows it: a graceful stop makes the record
//! complete and the instance `terminated`; silence without goodbye makes it `lost`.

use std::time::{Duration, Instant};

use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::lines::append_lines;
use epitaph_tests::{
    Agent, AgentConfig, Identity, Instance, Server, eventually, unique_token,
    wait_for_bodies_exactly_once,
};

fn find_instance(server: &Server, host_id: &str) -> Option<Instance> {
    server
        .instances()
        .into_iter()
        .find(|entry| entry.instance == host_id)
}

#[test]
fn agent_sigterm_delivers_everything_and_marks_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let log_path = dir.path().join("app.log");
    let marker = unique_token("m");
    let mut written = vec![format!("line-000000 {marker} first")];
    append_lines(&log_path, &written);
    let instance = InstanceIdentity {
        host_id: unique_token("i"),
        host_name: "term-1".to_string(),
        generation: "3".to_string(),
    };
    let mut agent = Agent::start(AgentConfig::new(
        &server.grpc_url(),
        &dir.path().join("agent-state"),
        &[&log_path],
        Identity::for_service(&unique_token("svc"), "2026.11.26-3f2a"),
        instance.clone(),
    ));

    // Once the agent is up and shipping...
    eventually(Duration::from_secs(10), || {
        (!server.search(&marker).is_empty()).then_some(())
    })
    .expect("the first line was not searchable within 10 s");
    let registered = find_instance(&server, &instance.host_id)
        .expect("the instance is registered once it ships");
    assert_eq!(registered.state, "live", "{registered:?}");

    // ...the application writes a burst and the instance is shut down right away: the
    // agent has to read the burst, ship it and wait for the acks after SIGTERM.
    let burst: Vec<String> = (1..=2000)
        .map(|n| format!("line-{n:06} {marker} burst"))
        .collect();
    append_lines(&log_path, &burst);
    written.extend(burst);
    let stopping = Instant::now();
    // shutdown_deadline is 10 s; allow scheduling slack on a loaded machine.
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(
        status.success(),
        "the agent exited with {status} after SIGTERM\n{}",
        agent.stderr_report()
    );
    eprintln!("agent exited {:?} after SIGTERM", stopping.elapsed());

    // Every line written before SIGTERM was acked, hence is (or soon is) searchable.
    wait_for_bodies_exactly_once(
        &server,
        &marker,
        &written,
        Duration::from_secs(10),
        Duration::from_millis(1500),
    );

    let mut last = None;
    let terminated = eventually(Duration::from_secs(5), || {
        last = find_instance(&server, &instance.host_id);
        last.clone().filter(|entry| entry.state == "terminated")
    })
    .unwrap_or_else(|| {
        panic!("instance not terminated within 5 s of the agent's exit; last: {last:?}")
    });
    assert!(
        terminated.record_complete,
        "record not complete: {terminated:?}"
    );
    let final_sequence = terminated
        .final_sequence
        .unwrap_or_else(|| panic!("terminated instance without final_sequence: {terminated:?}"));
    assert!(final_sequence >= 1, "{terminated:?}");
    assert_eq!(
        terminated.stored_watermark, final_sequence,
        "{terminated:?}"
    );
    assert_eq!(terminated.lost_since, None, "{terminated:?}");
}

#[test]
fn vanished_agent_shows_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let lost_after = Duration::from_secs(2);
    let server = Server::start(
        &dir.path().join("data"),
        &["--lost-after", "2s", "--heartbeat-interval", "500ms"],
    );
    let log_path = dir.path().join("app.log");
    append_lines(
        &log_path,
        &[format!(
            "hello from a doomed instance {}",
            unique_token("m")
        )],
    );
    let instance = InstanceIdentity {
        host_id: unique_token("i"),
        host_name: "doomed-1".to_string(),
        generation: "4".to_string(),
    };
    // The agent's own heartbeat setting is the slow default: it must follow the interval
    // the server asks for in its HelloResponse, or it would look lost while alive.
    let mut agent = Agent::start(AgentConfig::new(
        &server.grpc_url(),
        &dir.path().join("agent-state"),
        &[&log_path],
        Identity::for_service(&unique_token("svc"), "2026.11.26-3f2a"),
        instance.clone(),
    ));

    let mut last = None;
    eventually(Duration::from_secs(10), || {
        last = find_instance(&server, &instance.host_id);
        last.clone().filter(|entry| entry.state == "live")
    })
    .unwrap_or_else(|| {
        panic!("instance not live within 10 s of the agent's start; last: {last:?}")
    });

    // Alive and heartbeating, it stays live for longer than the lost-after silence.
    let watch_until = Instant::now() + lost_after + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        let entry = find_instance(&server, &instance.host_id)
            .expect("a registered instance stays registered");
        assert_eq!(
            entry.state, "live",
            "a heartbeating agent's instance is not live: {entry:?}"
        );
        assert_eq!(entry.lost_since, None, "{entry:?}");
        std::thread::sleep(Duration::from_millis(250));
    }

    agent.kill9();
    let killed_at = Instant::now();
    let lost = eventually(Duration::from_secs(10), || {
        last = find_instance(&server, &instance.host_id);
        last.clone().filter(|entry| entry.state == "lost")
    })
    .unwrap_or_else(|| panic!("instance not lost within 10 s of kill -9; last: {last:?}"));
    eprintln!("instance lost {:?} after kill -9", killed_at.elapsed());
    assert!(
        lost.lost_since
            .as_deref()
            .is_some_and(|since| !since.is_empty()),
        "lost instance without lost_since: {lost:?}"
    );
    assert!(
        !lost.record_complete,
        "a lost instance's record cannot be known complete: {lost:?}"
    );
}
