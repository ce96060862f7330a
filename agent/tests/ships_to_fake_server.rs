//! The agent's real main loop against a tiny in-process OTLP + lifecycle server (see
//! `common`).
//!
//! The tests write log lines, stop the agent through its shutdown trigger and check what
//! a server would have stored: every line once, sequences contiguous from 1, and a
//! goodbye naming the final sequence.

mod common;

use std::time::Duration;

use common::*;
use epitaph_agent::config::Config;
use epitaph_agent::spool::{SpoolConfig, WhenFull};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_exactly_once_with_contiguous_sequences() {
    let server = FakeServer::new(3);
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "old line written before the agent started\n");

    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_for_first_scan(&state_dir).await;

    let mut expected = Vec::new();
    for chunk in 0..6 {
        let lines = numbered(
            "app.log",
            "level=info request",
            chunk * 50..(chunk + 1) * 50,
        );
        let text: String = lines.iter().map(|(_, body)| format!("{body}\n")).collect();
        append(&app_log, &text);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // A file that appears after the start is read from its beginning.
    let worker_log = logs_dir.join("worker.log");
    let worker_lines = numbered("worker.log", "ERROR job failed", 0..50);
    append(
        &worker_log,
        &worker_lines
            .iter()
            .map(|(_, body)| format!("{body}\r\n"))
            .collect::<String>(),
    );
    expected.extend(worker_lines);
    let full_lines = expected.len();
    wait_until("every complete line to be stored", || {
        server.stored_line_count() >= full_lines
    })
    .await;

    // An unterminated last line goes out at shutdown.
    append(&app_log, "last words without a newline");
    expected.push((
        "app.log".to_string(),
        "last words without a newline".to_string(),
    ));
    stop.send(()).unwrap();
    let report = agent.await.unwrap().unwrap();

    let agent_id = std::fs::read_to_string(state_dir.join("agent-id"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(report.agent_id, agent_id);
    let (sequences, stored) = stored_in_sequence_order(&server, &agent_id);
    assert_each_line_once(&stored, &expected);
    let app_order: Vec<&(String, String)> = stored
        .iter()
        .filter(|(file, _)| file == "app.log")
        .collect();
    let expected_order: Vec<&(String, String)> = expected
        .iter()
        .filter(|(file, _)| file == "app.log")
        .collect();
    assert_eq!(
        app_order, expected_order,
        "lines of one file keep their order across batches"
    );
    assert_eq!(
        sequences,
        (1..=report.final_sequence).collect::<Vec<u64>>(),
        "contiguous from 1"
    );
    assert!(
        report.final_sequence >= 9,
        "40-record batches: {}",
        report.final_sequence
    );

    assert!(!report.deadline_hit);
    assert_eq!(report.unsent_records, 0);
    assert_eq!(report.acked_batches, report.final_sequence);
    assert_eq!(report.record_complete, Some(true));
    server.recorded(|recorded| {
        assert_eq!(
            recorded.refused_exports, 3,
            "the first exports were refused and retried"
        );
        assert_eq!(recorded.exports_without_header, 0);
        assert_eq!(recorded.hellos.len(), 1);
        assert_eq!(recorded.hellos[0].agent_id, agent_id);
        assert_eq!(recorded.hellos[0].last_sequence, 0);
        assert_eq!(
            recorded.hellos[0]
                .resource
                .get("service.name")
                .map(String::as_str),
            Some("web")
        );
        assert!(
            !recorded.heartbeats.is_empty(),
            "heartbeats at the server's 50 ms interval"
        );
        assert_eq!(recorded.goodbyes.len(), 1);
        let goodbye = &recorded.goodbyes[0];
        assert_eq!(goodbye.agent_id, agent_id);
        assert_eq!(goodbye.final_sequence, report.final_sequence);
        assert_eq!(goodbye.reason, "shutdown");
        assert_eq!(goodbye.unsent_records, 0);
    });
    assert!(
        spool_files(&state_dir).is_empty(),
        "acked batches leave the spool"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("state")).unwrap()).unwrap();
    assert_eq!(state["last_acked_sequence"], report.final_sequence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_are_resent_with_their_sequences_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");

    // First life: the server never accepts an export, and the deadline is short.
    let refusing = FakeServer::new(usize::MAX);
    let address = start_fake_server(refusing.clone()).await;
    let mut config = test_config(address, &state_dir, &logs_dir);
    config.shutdown_deadline = Duration::from_millis(300);
    let (stop, agent) = start_agent(config);
    wait_for_first_scan(&state_dir).await;
    let first_lines = numbered("app.log", "first life", 0..60);
    append(
        &app_log,
        &first_lines
            .iter()
            .map(|(_, body)| format!("{body}\n"))
            .collect::<String>(),
    );
    wait_until("batches in the spool", || {
        spool_files(&state_dir).len() >= 2
    })
    .await;
    stop.send(()).unwrap();
    let first = agent.await.unwrap().unwrap();
    assert!(first.deadline_hit);
    assert_eq!(first.unsent_records, 60);
    assert_eq!(first.final_sequence, 2, "60 lines in 40-record batches");
    refusing.recorded(|recorded| {
        assert!(recorded.stored.is_empty());
        assert_eq!(
            recorded.goodbyes.len(),
            1,
            "goodbye even after the deadline"
        );
        assert_eq!(recorded.goodbyes[0].final_sequence, 2);
        assert_eq!(recorded.goodbyes[0].unsent_records, 60);
    });

    // Second life: a healthy server. The spooled batches go out under their sequences.
    let healthy = FakeServer::new(0);
    let address = start_fake_server(healthy.clone()).await;
    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_until("the spooled batches", || healthy.stored_line_count() >= 60).await;
    let second_lines = numbered("app.log", "second life", 0..30);
    append(
        &app_log,
        &second_lines
            .iter()
            .map(|(_, body)| format!("{body}\n"))
            .collect::<String>(),
    );
    wait_until("the new lines", || healthy.stored_line_count() >= 90).await;
    stop.send(()).unwrap();
    let second = agent.await.unwrap().unwrap();

    assert_eq!(
        second.agent_id, first.agent_id,
        "the agent id survives restarts"
    );
    let (sequences, stored) = stored_in_sequence_order(&healthy, &second.agent_id);
    let expected: Vec<(String, String)> = first_lines.into_iter().chain(second_lines).collect();
    assert_each_line_once(&stored, &expected);
    assert_eq!(stored, expected, "order is kept across the restart");
    assert_eq!(sequences, (1..=second.final_sequence).collect::<Vec<u64>>());
    healthy.recorded(|recorded| {
        assert_eq!(
            recorded.hellos[0].last_sequence, 2,
            "hello reports the last assigned sequence"
        );
        let first_life: Vec<u64> = recorded
            .stored
            .iter()
            .filter(|stored| {
                stored
                    .lines
                    .iter()
                    .any(|(_, body)| body.starts_with("first life"))
            })
            .map(|stored| stored.batch.sequence)
            .collect();
        assert_eq!(
            first_life.iter().copied().max(),
            Some(2),
            "resent under their original sequences"
        );
        assert_eq!(recorded.goodbyes[0].final_sequence, second.final_sequence);
    });
    assert!(spool_files(&state_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_starts_and_stops_cleanly_while_the_server_is_down() {
    // Nothing listens on this port: hello and goodbye fail, the agent still exits.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = unused.local_addr().unwrap();
    drop(unused);
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let mut config = test_config(address, &state_dir, &logs_dir);
    config.shutdown_deadline = Duration::from_millis(300);
    let (stop, agent) = start_agent(config);
    wait_for_first_scan(&state_dir).await;
    append(&logs_dir.join("app.log"), "one line\n");
    wait_until("a spooled batch", || !spool_files(&state_dir).is_empty()).await;
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(report.deadline_hit);
    assert_eq!(report.final_sequence, 1);
    assert_eq!(report.unsent_records, 1);
    assert_eq!(report.record_complete, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stuck_batch_caps_the_spool_at_max_bytes_instead_of_growing_it() {
    let server = FakeServer {
        stuck_sequence: 1,
        ..FakeServer::new(0)
    };
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let max_bytes = 32 * 1024;
    let config = Config {
        shutdown_deadline: Duration::from_millis(200),
        spool: SpoolConfig {
            max_bytes,
            when_full: WhenFull::Block,
        },
        ..test_config(address, &state_dir, &logs_dir)
    };
    let agent = start_agent_with_stats(config);
    wait_for_first_scan(&state_dir).await;
    let lines = numbered("app.log", "line", 0..20_000);
    append(&logs_dir.join("app.log"), &as_text(&lines, "\n"));

    // Batch 1 is never acked, so nothing after it can be committed and deleted: the
    // acked batches behind it fill the spool up to `max_bytes`, and reading pauses.
    wait_until("a full spool", || {
        spool_bytes(&state_dir) + 2048 > max_bytes
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes_then = spool_bytes(&state_dir);
    assert!(bytes_then <= max_bytes, "{bytes_then} bytes");
    let read_then = agent.stats.snapshot().lines_read;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        agent.stats.snapshot().lines_read,
        read_then,
        "reading paused"
    );
    assert!(read_then < 20_000);
    assert_eq!(agent.stats.snapshot().dropped_records, 0);
    let stored = server.recorded(|recorded| recorded.stored.len()) as u64;
    let report = agent.shut_down().await;
    assert!(report.deadline_hit);
    assert_eq!(
        report.final_sequence,
        stored + 1,
        "all but the stuck batch are acked"
    );
    assert_eq!(report.unsent_records, 40, "only the stuck batch is unsent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_during_an_outage_is_not_sealed_into_a_batch_per_timeout() {
    let server = FakeServer::new(0);
    server.refuse_all_exports();
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_for_first_scan(&state_dir).await;

    // One line every 60 ms against a 50 ms batch timeout: one batch per line, were the
    // timeout applied while batches only queue behind the ones being retried.
    let lines = numbered("app.log", "trickle", 0..30);
    for (_, body) in &lines {
        append(&app_log, &format!("{body}\n"));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let spooled = spool_files(&state_dir).len();
    assert!(
        spooled <= 4 + 5,
        "{spooled} batches: 4 being retried, at most 5 queued, the rest still open"
    );

    server.accept_exports();
    stop.send(()).unwrap();
    let report = agent.await.unwrap().unwrap();
    let (sequences, stored) = stored_in_sequence_order(&server, &report.agent_id);
    assert_each_line_once(&stored, &lines);
    assert_eq!(sequences, (1..=report.final_sequence).collect::<Vec<u64>>());
}
