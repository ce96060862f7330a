//! A full spool, in both `when_full` modes, while the server refuses every export.
//!
//! - `block`: reading pauses at `max_bytes`, the lines wait in their file, and once the
//!   server accepts again every line arrives once: nothing is lost.
//! - `drop_oldest`: the agent keeps reading; the oldest batches that are not being sent
//!   are replaced by loss markers (one record each, closing the sequence gap), the loss
//!   is counted and reported with `ReportLoss`, and lines written later still arrive.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use epitaph_agent::config::Config;
use epitaph_agent::spool::{SpoolConfig, WhenFull};
use epitaph_proto::common::v1::any_value;

const MAX_BYTES: u64 = 64 * 1024;
const LINES: usize = 6000;

/// Numbered lines with a pseudo-random tail, so that batches do not compress to
/// nothing and the spool fills at a realistic pace.
fn noisy_lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|n| {
            let mut state = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut noise = String::new();
            for _ in 0..3 {
                state ^= state >> 31;
                state = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                noise.push_str(&format!("{state:016x}"));
            }
            ("app.log".to_string(), format!("{prefix} {n:05} {noise}"))
        })
        .collect()
}

fn config(
    address: std::net::SocketAddr,
    state_dir: &Path,
    logs_dir: &Path,
    when_full: WhenFull,
) -> Config {
    Config {
        batch_max_records: 100,
        spool: SpoolConfig {
            max_bytes: MAX_BYTES,
            when_full,
        },
        ..test_config(address, state_dir, logs_dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_in_block_mode_pauses_reading_and_loses_nothing() {
    let server = FakeServer::new(0);
    server.refuse_all_exports();
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let agent = start_agent_with_stats(config(address, &state_dir, &logs_dir, WhenFull::Block));
    wait_for_first_scan(&state_dir).await;

    let before = noisy_lines("before", 0..LINES);
    append(&app_log, &as_text(&before, "\n"));
    wait_until("a full spool", || {
        spool_bytes(&state_dir) + 8 * 1024 > MAX_BYTES
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read_then = agent.stats.snapshot().lines_read;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        spool_bytes(&state_dir) <= MAX_BYTES,
        "{} bytes",
        spool_bytes(&state_dir)
    );
    assert_eq!(
        agent.stats.snapshot().lines_read,
        read_then,
        "reading paused"
    );
    assert!((read_then as usize) < LINES, "the rest waits in the file");

    server.accept_exports();
    wait_up_to(Duration::from_secs(20), "the lines held back", || {
        server.stored_line_count() >= LINES
    })
    .await;
    let after = noisy_lines("after", 0..100);
    append(&app_log, &as_text(&after, "\n"));
    wait_until("the later lines", || {
        server.stored_line_count() >= LINES + 100
    })
    .await;
    let report = agent.shut_down().await;

    let (sequences, stored) = stored_in_sequence_order(&server, &report.agent_id);
    let expected: Vec<(String, String)> = before.into_iter().chain(after).collect();
    assert_each_line_once(&stored, &expected);
    assert_eq!(stored, expected, "order is kept");
    assert_eq!(sequences, (1..=report.final_sequence).collect::<Vec<u64>>());
    assert_eq!(report.record_complete, Some(true));
    assert_eq!(report.stats.dropped_records, 0);
    server.recorded(|recorded| assert!(recorded.losses.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_in_drop_oldest_mode_counts_reports_and_marks_the_loss() {
    let server = FakeServer::new(0);
    server.refuse_all_exports();
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let agent =
        start_agent_with_stats(config(address, &state_dir, &logs_dir, WhenFull::DropOldest));
    wait_for_first_scan(&state_dir).await;

    let before = noisy_lines("before", 0..LINES);
    append(&app_log, &as_text(&before, "\n"));
    // Dropping makes room: the agent reads everything although nothing is acked.
    wait_up_to(Duration::from_secs(20), "every line read", || {
        agent.stats.snapshot().lines_read as usize >= LINES
    })
    .await;
    assert!(
        agent.stats.snapshot().dropped_records > 0,
        "batches were dropped"
    );
    assert!(
        spool_bytes(&state_dir) <= MAX_BYTES,
        "{} bytes",
        spool_bytes(&state_dir)
    );

    server.accept_exports();
    let data_lines = |server: &FakeServer| {
        server.recorded(|recorded| {
            recorded
                .stored
                .iter()
                .flat_map(|batch| &batch.lines)
                .filter(|(file, _)| !file.is_empty())
                .count() as u64
        })
    };
    let dropped_so_far = || agent.stats.snapshot().dropped_records;
    wait_up_to(Duration::from_secs(20), "everything not dropped", || {
        data_lines(&server) + dropped_so_far() >= LINES as u64
    })
    .await;
    let after = noisy_lines("after", 0..100);
    append(&app_log, &as_text(&after, "\n"));
    wait_until("the later lines", || {
        data_lines(&server) + dropped_so_far() >= (LINES + 100) as u64
    })
    .await;
    let dropped = dropped_so_far();
    wait_until("the loss report", || {
        server.recorded(|recorded| recorded.losses.iter().map(|loss| loss.records).sum::<u64>())
            >= dropped
    })
    .await;
    let report = agent.shut_down().await;

    // No gap: every sequence is stored, dropped ones as markers.
    let (sequences, stored) = stored_in_sequence_order(&server, &report.agent_id);
    assert_eq!(sequences, (1..=report.final_sequence).collect::<Vec<u64>>());
    assert_eq!(report.record_complete, Some(true));

    // Lines: each delivered at most once; the missing ones are exactly the dropped count,
    // all from the flood before the server came back; later lines all arrive.
    let data: Vec<&(String, String)> = stored.iter().filter(|(file, _)| !file.is_empty()).collect();
    let delivered: HashSet<&String> = data.iter().map(|(_, body)| body).collect();
    assert_eq!(delivered.len(), data.len(), "no line delivered twice");
    let missing = before
        .iter()
        .filter(|(_, body)| !delivered.contains(body))
        .count();
    assert_eq!(missing as u64, dropped);
    assert!(after.iter().all(|(_, body)| delivered.contains(body)));

    // Markers: one per dropped batch, their counts add up, sequences after the batches
    // that were in flight (those are never dropped), oldest first.
    let markers: Vec<(u64, u64)> = server.recorded(|recorded| {
        let mut markers: Vec<(u64, u64)> = recorded
            .stored
            .iter()
            .filter(|batch| batch.lines.iter().any(|(file, _)| file.is_empty()))
            .map(|batch| {
                assert_eq!(batch.records.len(), 1, "a marker is one record");
                let record = &batch.records[0];
                let Some(any_value::Value::IntValue(records)) =
                    attribute(record, "epitaph.loss.records")
                else {
                    panic!("marker without epitaph.loss.records");
                };
                assert_eq!(
                    string_value(&record.body).unwrap(),
                    format!("epitaph-agent dropped {records} records (spool full)")
                );
                assert_eq!(record.severity_text, "WARN");
                (batch.batch.sequence, records as u64)
            })
            .collect();
        markers.sort_unstable();
        markers
    });
    assert_eq!(
        markers.iter().map(|(_, records)| records).sum::<u64>(),
        dropped
    );
    let first_marker = markers[0].0;
    assert!(
        first_marker > 4,
        "batches 1-4 were being sent and are never dropped"
    );
    let marker_sequences: Vec<u64> = markers.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(
        marker_sequences,
        (first_marker..first_marker + markers.len() as u64).collect::<Vec<u64>>(),
        "the oldest unsent batches are the ones dropped"
    );

    // The loss report: counted, with the time range, acknowledged.
    server.recorded(|recorded| {
        let total: u64 = recorded.losses.iter().map(|loss| loss.records).sum();
        assert_eq!(total, dropped);
        for loss in &recorded.losses {
            assert_eq!(loss.agent_id, report.agent_id);
            assert_eq!(loss.reason, "spool_full");
            assert!(loss.first_observed_unix_nano > 0);
            assert!(loss.first_observed_unix_nano <= loss.last_observed_unix_nano);
        }
    });
    assert_eq!(report.stats.dropped_records, dropped);
    assert_eq!(report.unreported_lost_records, 0);
    assert!(report.stats.loss_reports_acked >= 1);
}
