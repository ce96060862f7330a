//! SIGTERM while the server is slow: every line written before the signal is either
//! acknowledged by the server or left in the spool — and counted in the goodbye's
//! `unsent_records` — and the next start delivers the rest, each line once.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use epitaph_agent::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_server_is_slow_leaves_every_line_acked_or_spooled_and_counted() {
    let server = FakeServer::new(0);
    server.set_export_delay(Duration::from_millis(400));
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let config = Config {
        max_inflight_batches: 2,
        shutdown_deadline: Duration::from_secs(1),
        ..test_config(address, &state_dir, &logs_dir)
    };
    let agent = start_agent_with_stats(config.clone());
    wait_for_first_scan(&state_dir).await;

    let lines = numbered("app.log", "before the signal", 0..2000);
    append(&app_log, &as_text(&lines[..1000], "\n"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&app_log, &as_text(&lines[1000..], "\n"));
    append(&app_log, "and an unterminated last line");
    // The signal right away: the shutdown drain must read all of it.
    let report = agent.shut_down().await;
    assert!(
        report.deadline_hit,
        "2000 lines at 2 × 40 per 400 ms take longer than 1 s"
    );

    let spooled = spooled_bodies(&state_dir);
    assert_eq!(
        report.unsent_records,
        spooled.len() as u64,
        "the spool is what is counted"
    );
    assert!(report.unsent_records > 0);
    let stored: Vec<String> = server.recorded(|recorded| {
        recorded
            .stored
            .iter()
            .flat_map(|batch| batch.lines.iter().map(|(_, body)| body.clone()))
            .collect()
    });
    let acked_or_spooled: HashSet<&String> = stored.iter().chain(&spooled).collect();
    for (_, body) in &lines {
        assert!(
            acked_or_spooled.contains(body),
            "{body:?} neither acked nor spooled"
        );
    }
    assert!(acked_or_spooled.contains(&"and an unterminated last line".to_string()));
    server.recorded(|recorded| {
        assert_eq!(recorded.goodbyes.len(), 1);
        assert_eq!(recorded.goodbyes[0].unsent_records, report.unsent_records);
        assert_eq!(recorded.goodbyes[0].final_sequence, report.final_sequence);
    });

    // The next start, with the server fast again, sends the rest under the same
    // sequences; the server stores each sequence once.
    server.set_export_delay(Duration::ZERO);
    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_until("the spooled lines", || {
        server.stored_line_count() > lines.len()
    })
    .await;
    stop.send(()).unwrap();
    let second = agent.await.unwrap().unwrap();
    let (sequences, stored) = stored_in_sequence_order(&server, &second.agent_id);
    let mut expected = lines.clone();
    expected.push((
        "app.log".to_string(),
        "and an unterminated last line".to_string(),
    ));
    assert_each_line_once(&stored, &expected);
    assert_eq!(sequences, (1..=second.final_sequence).collect::<Vec<u64>>());
    assert_eq!(
        second.final_sequence, report.final_sequence,
        "nothing new to send"
    );
    assert_eq!(second.record_complete, Some(true));
}
