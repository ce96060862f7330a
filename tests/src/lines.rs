//! Numbered log lines written at a steady pace, and the exactly-once check over them.
//!
//! The crash tests need an application that keeps logging while a process is killed:
//! [`LineWriter`] appends `line-000123 <tag> payload` lines from a helper thread (which
//! only writes a file, it never spawns a process) and returns, when stopped, exactly what
//! it wrote. [`wait_for_bodies_exactly_once`] then compares that with what the server
//! holds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::poll::eventually_every;
use crate::server::Server;

/// Appends numbered lines to a file from a background thread.
pub struct LineWriter {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<String>>>,
    path: PathBuf,
}

impl LineWriter {
    /// Starts appending one line every `pace` to `path` (created if missing). Each line is
    /// one `write` of the whole line with its newline, as a logging library would do.
    pub fn start(path: &Path, tag: &str, pace: Duration) -> LineWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
        let tag = tag.to_string();
        let thread_stop = Arc::clone(&stop);
        let thread_written = Arc::clone(&written);
        let thread = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            let started = Instant::now();
            let mut number: u32 = 0;
            while !thread_stop.load(Ordering::Acquire) {
                number += 1;
                let body = format!("line-{number:06} {tag} payload");
                file.write_all(format!("{body}\n").as_bytes())
                    .expect("appending a log line");
                bodies.push(body);
                thread_written.store(bodies.len(), Ordering::Release);
                // Pace against the start time so that slow writes do not slow the rate.
                let due = started + pace * number;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            bodies
        });
        LineWriter {
            stop,
            written,
            thread: Some(thread),
            path: path.to_path_buf(),
        }
    }

    /// How many lines are written so far.
    pub fn written_so_far(&self) -> usize {
        self.written.load(Ordering::Acquire)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops writing and returns every body written, in order.
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .expect("stop is called once")
            .join()
            .expect("the line writer thread panicked")
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends the given lines (each followed by a newline) to a file in one write.
pub fn append_lines(path: &Path, bodies: &[String]) {
    let mut text = String::new();
    for body in bodies {
        text.push_str(body);
        text.push('\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
    file.write_all(text.as_bytes())
        .expect("appending log lines");
}

/// The difference between the bodies written and the bodies stored.
#[derive(Debug, Default)]
pub struct BodyComparison {
    pub missing: Vec<String>,
    pub duplicated: Vec<(String, usize)>,
    pub unexpected: Vec<String>,
    pub stored_hits: usize,
}

impl BodyComparison {
    pub fn compare(expected: &[String], stored: &[String]) -> BodyComparison {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for body in stored {
            *counts.entry(body.as_str()).or_default() += 1;
        }
        let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        BodyComparison {
            missing: expected
                .iter()
                .filter(|body| !counts.contains_key(body.as_str()))
                .cloned()
                .collect(),
            duplicated: counts
                .iter()
                .filter(|(_, count)| **count > 1)
                .map(|(body, count)| (body.to_string(), *count))
                .collect(),
            unexpected: counts
                .keys()
                .filter(|body| !expected_set.contains(*body))
                .map(|body| body.to_string())
                .collect(),
            stored_hits: stored.len(),
        }
    }

    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }

    /// A readable account: counts and the first few offenders of each kind.
    pub fn describe(&self, expected_count: usize) -> String {
        const SHOWN: usize = 10;
        format!(
            "expected {expected_count} distinct lines, the server returned {} hits; \
             {} missing (first: {:?}), {} duplicated (first: {:?}), {} unexpected (first: {:?})",
            self.stored_hits,
            self.missing.len(),
            &self.missing[..self.missing.len().min(SHOWN)],
            self.duplicated.len(),
            &self.duplicated[..self.duplicated.len().min(SHOWN)],
            self.unexpected.len(),
            &self.unexpected[..self.unexpected.len().min(SHOWN)],
        )
    }
}

/// Asserts right now that `query` returns each expected body exactly once and nothing else.
pub fn assert_bodies_exactly_once(server: &Server, query: &str, expected: &[String]) {
    let stored: Vec<String> = server
        .search_all(query)
        .into_iter()
        .map(|hit| hit.body)
        .collect();
    let comparison = BodyComparison::compare(expected, &stored);
    assert!(
        comparison.is_exact(),
        "{}",
        comparison.describe(expected.len())
    );
}

/// Waits (at most `timeout`) until every expected body is stored, then waits `settle`
/// more — a late duplicate (a retried batch, a replayed spool) can only show up after
/// everything arrived, and no poll can prove that none will — and asserts that `query`
/// returns each expected body exactly once and nothing else.
pub fn wait_for_bodies_exactly_once(
    server: &Server,
    query: &str,
    expected: &[String],
    timeout: Duration,
    settle: Duration,
) {
    let started = Instant::now();
    let mut last = BodyComparison::default();
    let all_arrived = eventually_every(timeout, Duration::from_millis(500), || {
        let stored: Vec<String> = server
            .search_all(query)
            .into_iter()
            .map(|hit| hit.body)
            .collect();
        last = BodyComparison::compare(expected, &stored);
        last.missing.is_empty().then_some(())
    });
    assert!(
        all_arrived.is_some(),
        "not every line arrived within {:?}: {}",
        started.elapsed(),
        last.describe(expected.len())
    );
    std::thread::sleep(settle);
    assert_bodies_exactly_once(server, query, expected);
}
