//! Exactly-once delivery across crashes: whichever side is killed with `kill -9` while an
//! application keeps logging, the server ends up holding every line, each once.
//!
//! The moments of the kills are random within bounds; the seed is printed, and
//! `EPITAPH_TEST_SEED=<seed>` replays the same schedule.

use std::time::Duration;

use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::{
    Agent, AgentConfig, Identity, LineWriter, Server, free_loopback_port, unique_token,
    wait_for_bodies_exactly_once,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One line every 3 ms: a busy service, and enough lines in flight at every kill.
const WRITE_PACE: Duration = Duration::from_millis(3);
/// How long the server may take to hold every line once writing stopped (it includes the
/// agent's retry back-off after the last restart).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(35);
/// How long to keep looking for late duplicates after everything arrived: more than two
/// commit intervals (1 s), so a duplicate stored right then would be searchable.
const SETTLE: Duration = Duration::from_millis(2500);

fn seeded_rng() -> StdRng {
    let seed = std::env::var("EPITAPH_TEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("kill schedule seed: {seed} (replay with EPITAPH_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

fn agent_config(
    server_grpc_url: &str,
    dir: &std::path::Path,
    log_path: &std::path::Path,
) -> AgentConfig {
    AgentConfig::new(
        server_grpc_url,
        &dir.join("agent-state"),
        &[log_path],
        Identity::for_service(&unique_token("svc"), "2026.11.26-3f2a"),
        InstanceIdentity {
            host_id: unique_token("i"),
            host_name: "crash-1".to_string(),
            generation: "1".to_string(),
        },
    )
}

#[test]
fn server_kill9_during_streaming_loses_and_duplicates_nothing() {
    let mut rng = seeded_rng();
    let dir = tempfile::tempdir().unwrap();
    // The agent is configured with one address, so the server must come back on it.
    let grpc_addr = format!("127.0.0.1:{}", free_loopback_port());
    let mut server = Server::start(&dir.path().join("data"), &["--grpc-addr", &grpc_addr]);
    let log_path = dir.path().join("app.log");
    std::fs::File::create(&log_path).unwrap();
    let _agent = Agent::start(agent_config(&server.grpc_url(), dir.path(), &log_path));
    let writer = LineWriter::start(&log_path, "serverkill", WRITE_PACE);

    for kill in 1..=3 {
        std::thread::sleep(Duration::from_millis(rng.random_range(600..1800)));
        let lines_so_far = writer.written_so_far();
        server.kill9();
        let downtime = Duration::from_millis(rng.random_range(0..500));
        eprintln!(
            "kill -9 #{kill} of the server after {lines_so_far} lines, down for {downtime:?}"
        );
        std::thread::sleep(downtime);
        server.restart();
        assert_eq!(
            server.grpc_addr().to_string(),
            grpc_addr,
            "the server came back on another gRPC address"
        );
    }
    // Some streaming after the last restart, then the application stops logging.
    std::thread::sleep(Duration::from_millis(500));
    let written = writer.stop();
    eprintln!("{} lines written", written.len());

    wait_for_bodies_exactly_once(&server, "*", &written, DELIVERY_TIMEOUT, SETTLE);
}

#[test]
fn agent_kill9_and_restart_loses_and_duplicates_nothing() {
    let mut rng = seeded_rng();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let log_path = dir.path().join("app.log");
    std::fs::File::create(&log_path).unwrap();
    let mut agent = Agent::start(agent_config(&server.grpc_url(), dir.path(), &log_path));
    let writer = LineWriter::start(&log_path, "agentkill", WRITE_PACE);

    for kill in 1..=2 {
        std::thread::sleep(Duration::from_millis(rng.random_range(700..2000)));
        let lines_so_far = writer.written_so_far();
        agent.kill9();
        // The application keeps logging while the agent is down.
        let downtime = Duration::from_millis(rng.random_range(0..600));
        eprintln!("kill -9 #{kill} of the agent after {lines_so_far} lines, down for {downtime:?}");
        std::thread::sleep(downtime);
        agent.restart();
    }
    std::thread::sleep(Duration::from_millis(500));
    let written = writer.stop();
    eprintln!("{} lines written", written.len());

    wait_for_bodies_exactly_once(&server, "*", &written, DELIVERY_TIMEOUT, SETTLE);
}
