//! Process count by status, from the state letter of every `/proc/<pid>/stat`.
//!
//! `/proc/stat`'s `procs_running` and `procs_blocked` count runnable *threads*; an
//! operator asking "how many processes" means processes, so the agent lists
//! `/proc`'s numeric entries (a few hundred on a server; one small read each) and counts
//! their states. A process that exits during the scan is simply not counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};

const PROCESSES_COUNT: Descriptor = Descriptor {
    name: "system.processes.count",
    description: "Processes in each status.",
    unit: "{processes}",
    kind: Kind::UpDownCounter,
};

/// The `status` value for a state letter of `/proc/<pid>/stat` (see proc(5)).
pub fn status_of(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "blocked",
        'T' | 't' => "stopped",
        'Z' => "zombies",
        'I' => "idle",
        'W' => "paging",
        _ => "unknown",
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the first field after the command
/// name, which is in parentheses and may itself hold spaces and parentheses.
pub fn parse_state(stat: &str) -> Option<char> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Counts the processes under `proc_root` by status.
pub fn count_processes(proc_root: &Path) -> std::io::Result<BTreeMap<&'static str, u64>> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let is_pid = name
            .to_str()
            .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited meanwhile
        };
        if let Some(state) = parse_state(&stat) {
            *counts.entry(status_of(state)).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

pub fn push_processes(
    counts: &BTreeMap<&'static str, u64>,
    boot: SystemTime,
    metrics: &mut MetricSet,
) {
    let points = counts
        .iter()
        .map(|(status, count)| Point::int(vec![("status", status.to_string())], *count))
        .collect();
    metrics.push(PROCESSES_COUNT, boot, points);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::fixture_root;

    #[test]
    fn the_state_follows_the_last_parenthesis_of_the_name() {
        assert_eq!(parse_state("42 (my (odd) name) R 1 42"), Some('R'));
        assert_eq!(parse_state("7 (a) b) Z 1"), Some('Z'));
        assert_eq!(parse_state("garbage"), None);
        assert_eq!(parse_state("1 (x)"), None);
    }

    #[test]
    fn processes_are_counted_by_status_skipping_non_pid_entries() {
        let counts = count_processes(&fixture_root()).unwrap();
        let expected = BTreeMap::from([
            ("blocked", 1),
            ("idle", 1),
            ("running", 1),
            ("sleeping", 1),
            ("zombies", 1),
        ]);
        assert_eq!(counts, expected, "`self`, `net`, `sys` are not processes");
    }
}
