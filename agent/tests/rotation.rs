//! Log rotation under a steady writer: every line arrives once, whatever the rotation.
//!
//! A writer thread appends numbered lines to `app.log` at a steady pace and rotates the
//! file every few hundred lines, the way logrotate would:
//!
//! - by rename: older copies are shifted (`app.log.1` → `app.log.2`, ...), `app.log`
//!   becomes `app.log.1`, two more lines still go to the renamed file through the
//!   writer's old handle (a writer that reopens late), then the writer opens a new
//!   `app.log`;
//! - by copytruncate: `app.log` is copied to `app.log.1` and truncated in place, the
//!   writer keeps its `O_APPEND` handle. The writer is paused around the copy and the
//!   truncation, so the inherent copytruncate race (lines written between the two are
//!   in neither file) does not apply, and nothing may be lost: the lines the agent had
//!   not read before the copy must be read from the copy.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use epitaph_agent::config::Config;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rotation {
    Rename,
    CopyTruncate,
}

const TOTAL_LINES: usize = 3000;
const ROTATE_EVERY: usize = 450;

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn line_text(n: usize) -> String {
    format!("line {n:06} of the steady writer, padded so that lines have some length")
}

/// `app.log.N` → `app.log.N+1`, newest last, so that no rotated file is overwritten.
fn shift_rotated(logs_dir: &Path) {
    let rotated = |n: usize| logs_dir.join(format!("app.log.{n}"));
    let mut highest = 0;
    while rotated(highest + 1).exists() {
        highest += 1;
    }
    for n in (1..=highest).rev() {
        std::fs::rename(rotated(n), rotated(n + 1)).unwrap();
    }
}

/// Writes [`TOTAL_LINES`] lines, about one every 0.8 ms, rotating every
/// [`ROTATE_EVERY`]; returns the lines written.
fn steady_writer(logs_dir: PathBuf, rotation: Rotation) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let path = logs_dir.join("app.log");
        let mut file = open_append(&path);
        let mut written = Vec::with_capacity(TOTAL_LINES);
        let write = |file: &mut File, written: &mut Vec<String>| {
            let text = line_text(written.len());
            writeln!(file, "{text}").unwrap();
            written.push(text);
        };
        while written.len() < TOTAL_LINES {
            write(&mut file, &mut written);
            let due = written.len() % ROTATE_EVERY == 0 && written.len() + 2 < TOTAL_LINES;
            if due {
                shift_rotated(&logs_dir);
                match rotation {
                    Rotation::Rename => {
                        std::fs::rename(&path, logs_dir.join("app.log.1")).unwrap();
                        write(&mut file, &mut written);
                        write(&mut file, &mut written);
                        file = open_append(&path);
                    }
                    Rotation::CopyTruncate => {
                        std::fs::copy(&path, logs_dir.join("app.log.1")).unwrap();
                        OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .unwrap()
                            .set_len(0)
                            .unwrap();
                    }
                }
            }
            if written.len().is_multiple_of(10) {
                std::thread::sleep(Duration::from_millis(8));
            }
        }
        written
    })
}

async fn rotation_under_a_steady_writer(rotation: Rotation, pattern: &str) {
    let server = FakeServer::new(0);
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    append(&logs_dir.join("app.log"), "");
    let config = Config {
        files: vec![format!("{}/{pattern}", logs_dir.display())],
        ..test_config(address, &state_dir, &logs_dir)
    };
    let agent = start_agent_with_stats(config);
    wait_for_first_scan(&state_dir).await;

    let writer = steady_writer(logs_dir.clone(), rotation);
    let written = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(written.len(), TOTAL_LINES);
    wait_up_to(Duration::from_secs(20), "every line to be stored", || {
        server.stored_line_count() >= TOTAL_LINES
    })
    .await;
    // Longer than a poll: anything read twice would show up now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = agent.shut_down().await;

    let (sequences, stored) = stored_in_sequence_order(&server, &report.agent_id);
    let bodies: Vec<String> = stored.into_iter().map(|(_, body)| body).collect();
    assert_each_body_once(&bodies, &written);
    assert_eq!(sequences, (1..=report.final_sequence).collect::<Vec<u64>>());
    assert_eq!(report.record_complete, Some(true));
    assert!(
        logs_dir
            .join(format!("app.log.{}", TOTAL_LINES / ROTATE_EVERY))
            .exists(),
        "the writer rotated {} times",
        TOTAL_LINES / ROTATE_EVERY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_under_a_steady_writer_loses_and_doubles_nothing() {
    rotation_under_a_steady_writer(Rotation::Rename, "*.log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_copytruncate_under_a_steady_writer_loses_and_doubles_nothing() {
    rotation_under_a_steady_writer(Rotation::CopyTruncate, "*.log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_whose_copies_match_the_pattern_doubles_nothing() {
    // `app.log*` matches the copies too: each is recognised as a copy of `app.log` and
    // read only from where `app.log` was truncated.
    rotation_under_a_steady_writer(Rotation::CopyTruncate, "app.log*").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_whose_rotated_files_match_the_pattern_doubles_nothing() {
    rotation_under_a_steady_writer(Rotation::Rename, "app.log*").await;
}
