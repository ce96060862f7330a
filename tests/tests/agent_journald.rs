//! The agent's systemd journal source: entries of the chosen units become records with
//! the journal's time, priority, unit, identifier and pid; the journal cursor is a read
//! position like a file offset, so an agent restart loses and doubles nothing; a
//! journalctl that dies is restarted; a missing one leaves the rest of the agent working.
//!
//! Why not a real journal: the machines these tests run on (containers, CI runners) have
//! no running systemd-journald, and a test could not write to a real journal without
//! privileges anyway. The agent reads the journal only through `journalctl --follow
//! --output=json`, so `tests/python/fake_journalctl.py` stands in for journalctl: it
//! serves entries from a JSON-lines file the test appends to, honours `--after-cursor`
//! and `--unit`, and records the arguments of every invocation.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epitaph_tests::agent::{InstanceIdentity, JournaldSection};
use epitaph_tests::lines::append_lines;
use epitaph_tests::python::script;
use epitaph_tests::{
    Agent, AgentConfig, Hit, Identity, Server, unique_token, wait_for_bodies_exactly_once,
};

/// How long to keep looking for late duplicates once everything arrived: more than a
/// commit interval of the server, so a duplicate stored then would be searchable.
const SETTLE: Duration = Duration::from_millis(1500);

/// A journal file, the fake journalctl that serves it, and the log of its invocations.
struct FakeJournal {
    journal: PathBuf,
    calls: PathBuf,
    journalctl: PathBuf,
    next_entry: u64,
}

impl FakeJournal {
    fn new(dir: &Path) -> FakeJournal {
        let journal = dir.join("journal.jsonl");
        let calls = dir.join("journalctl-calls.jsonl");
        std::fs::write(&journal, "").unwrap();
        let journalctl = dir.join("journalctl");
        std::fs::write(
            &journalctl,
            format!(
                "#!/bin/sh\nexec python3 '{}' '{}' '{}' \"$@\"\n",
                script("fake_journalctl.py").display(),
                journal.display(),
                calls.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&journalctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeJournal {
            journal,
            calls,
            journalctl,
            next_entry: 1,
        }
    }

    /// Appends one entry per message, for `unit`, returning their cursors.
    fn append(&mut self, unit: &str, priority: u8, messages: &[String]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut cursors = Vec::new();
        for message in messages {
            let cursor = format!("s=fake;i={:x}", self.next_entry);
            let realtime_micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros();
            let entry = serde_json::json!({
                "__CURSOR": cursor,
                "__REALTIME_TIMESTAMP": realtime_micros.to_string(),
                "__MONOTONIC_TIMESTAMP": self.next_entry.to_string(),
                "_BOOT_ID": "0f1e2d3c",
                "MESSAGE": message,
                "PRIORITY": priority.to_string(),
                "_SYSTEMD_UNIT": unit,
                "SYSLOG_IDENTIFIER": unit.trim_end_matches(".service"),
                "_PID": "4242",
            });
            lines.push(entry.to_string());
            cursors.push(cursor);
            self.next_entry += 1;
        }
        append_lines(&self.journal, &lines);
        cursors
    }

    fn append_exit_marker(&self, id: &str) {
        append_lines(
            &self.journal,
            &[serde_json::json!({ "__fake_exit": id }).to_string()],
        );
    }

    /// The arguments of every journalctl invocation so far.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn section(&self, units: &[&str]) -> JournaldSection {
        JournaldSection {
            enabled: true,
            units: units.iter().map(|unit| unit.to_string()).collect(),
            journalctl: self.journalctl.clone(),
        }
    }
}

fn agent_config(server_grpc_url: &str, dir: &Path, files: &[&Path]) -> AgentConfig {
    AgentConfig::new(
        server_grpc_url,
        &dir.join("agent-state"),
        files,
        Identity::for_service(&unique_token("svc"), "2026.11.26-3f2a"),
        InstanceIdentity {
            host_id: unique_token("i"),
            host_name: "journal-1".to_string(),
            generation: "3".to_string(),
        },
    )
}

fn no_files(dir: &Path) -> PathBuf {
    dir.join("no-such-dir").join("*.log")
}

fn messages(marker: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| format!("journal entry {i} {marker}"))
        .collect()
}

fn attribute<'hit>(hit: &'hit Hit, dotted_key: &str) -> Option<&'hit serde_json::Value> {
    if let Some(value) = hit.attributes.get(dotted_key) {
        return Some(value);
    }
    let mut parts = dotted_key.split('.');
    let mut value = hit.attributes.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn after_cursor_argument(call: &[String]) -> Option<&str> {
    call.iter()
        .find_map(|argument| argument.strip_prefix("--after-cursor="))
}

#[test]
fn journal_entries_of_the_chosen_unit_are_shipped_and_the_cursor_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut journal = FakeJournal::new(dir.path());
    let marker = unique_token("jrnl");
    let mut expected = messages(&marker, 0, 20);
    journal.append("app.service", 3, &expected);
    journal.append("other.service", 6, &messages(&marker, 1000, 5));

    let mut config = agent_config(&server.grpc_url(), dir.path(), &[&no_files(dir.path())]);
    config.journald = Some(journal.section(&["app.service"]));
    let mut agent = Agent::start(config);
    wait_for_bodies_exactly_once(&server, &marker, &expected, Duration::from_secs(15), SETTLE);

    let hits = server.search(&marker);
    let hit = &hits[0];
    assert_eq!(hit.level, "error", "PRIORITY 3: {hit:?}");
    assert_eq!(hit.generation, "3", "{hit:?}");
    assert_eq!(
        attribute(hit, "systemd.unit").and_then(|v| v.as_str()),
        Some("app.service"),
        "{hit:?}"
    );
    assert_eq!(
        attribute(hit, "syslog.identifier").and_then(|v| v.as_str()),
        Some("app"),
        "{hit:?}"
    );
    assert_eq!(
        attribute(hit, "process.pid").and_then(|v| v.as_i64()),
        Some(4242),
        "{hit:?}"
    );
    let first_call = &journal.calls()[0];
    assert!(
        first_call.contains(&"--unit=app.service".to_string()),
        "{first_call:?}"
    );
    assert!(
        first_call.contains(&"--follow".to_string()),
        "{first_call:?}"
    );
    assert_eq!(after_cursor_argument(first_call), None, "{first_call:?}");

    // A clean stop commits the cursor once the server acknowledged its batch; entries
    // written while the agent is down are read after it at the next start.
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
    let last_cursor_before_stop = format!("s=fake;i={:x}", 20);
    let while_down = messages(&marker, 20, 10);
    journal.append("app.service", 6, &while_down);
    expected.extend(while_down);
    agent.restart();
    wait_for_bodies_exactly_once(&server, &marker, &expected, Duration::from_secs(15), SETTLE);
    let calls = journal.calls();
    assert_eq!(
        after_cursor_argument(calls.last().unwrap()),
        Some(last_cursor_before_stop.as_str()),
        "{calls:?}"
    );

    // kill -9: whatever was read but not acknowledged is read again from the durable
    // cursor and stored once.
    let before_kill = messages(&marker, 30, 10);
    journal.append("app.service", 6, &before_kill);
    expected.extend(before_kill);
    wait_for_bodies_exactly_once(&server, &marker, &expected, Duration::from_secs(15), SETTLE);
    agent.kill9();
    let after_kill = messages(&marker, 40, 10);
    journal.append("app.service", 6, &after_kill);
    expected.extend(after_kill);
    agent.restart();
    wait_for_bodies_exactly_once(&server, &marker, &expected, Duration::from_secs(15), SETTLE);
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
}

#[test]
fn a_journalctl_that_dies_is_restarted_after_the_last_entry_it_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let mut journal = FakeJournal::new(dir.path());
    let marker = unique_token("died");
    let mut expected = messages(&marker, 0, 5);
    let cursors = journal.append("app.service", 6, &expected);
    journal.append_exit_marker("first");
    let after_restart = messages(&marker, 5, 5);
    journal.append("app.service", 6, &after_restart);
    expected.extend(after_restart);

    let mut config = agent_config(&server.grpc_url(), dir.path(), &[&no_files(dir.path())]);
    config.journald = Some(journal.section(&[]));
    let mut agent = Agent::start(config);
    wait_for_bodies_exactly_once(&server, &marker, &expected, Duration::from_secs(20), SETTLE);
    let calls = journal.calls();
    assert!(calls.len() >= 2, "journalctl was not restarted: {calls:?}");
    assert_eq!(
        after_cursor_argument(&calls[1]),
        Some(cursors.last().unwrap().as_str()),
        "{calls:?}"
    );
    assert!(agent.is_running(), "{}", agent.stderr_report());
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
}

#[test]
fn without_journalctl_the_journal_source_stays_idle_and_files_still_ship() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let log_path = dir.path().join("app.log");
    let marker = unique_token("nojrnl");
    let lines = messages(&marker, 0, 10);
    append_lines(&log_path, &lines);

    let mut config = agent_config(&server.grpc_url(), dir.path(), &[&log_path]);
    config.journald = Some(JournaldSection {
        enabled: true,
        units: Vec::new(),
        journalctl: dir.path().join("not-installed").join("journalctl"),
    });
    let mut agent = Agent::start(config);
    wait_for_bodies_exactly_once(&server, &marker, &lines, Duration::from_secs(15), SETTLE);
    assert!(agent.is_running(), "{}", agent.stderr_report());
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
    let report = agent.stderr_report();
    assert_eq!(
        report.matches("journalctl not found").count(),
        1,
        "the missing journalctl is logged once:\n{report}"
    );
}
