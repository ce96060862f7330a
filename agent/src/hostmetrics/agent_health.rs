//! The agent's own health: its pipeline counters ([`crate::stats::AgentStats`]), the
//! metrics exporter's, and what the kernel says the agent process costs
//! (`/proc/self/stat`).
//!
//! Everything is under `epitaph.agent.*`. Counters start at the agent's start, so a
//! restart shows as a counter reset, which `rate()` handles.

use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};
use crate::stats::StatsSnapshot;

const fn counter(name: &'static str, description: &'static str, unit: &'static str) -> Descriptor {
    Descriptor {
        name,
        description,
        unit,
        kind: Kind::Counter,
    }
}

const LINES_READ: Descriptor = counter(
    "epitaph.agent.lines.read",
    "Lines read from log files (each line of a multiline event counts).",
    "{lines}",
);
const RECORDS_READ: Descriptor = counter(
    "epitaph.agent.records.read",
    "Log records put into batches.",
    "{records}",
);
const RECORDS_DROPPED: Descriptor = counter(
    "epitaph.agent.records.dropped",
    "Log records dropped from a full spool (when_full = \"drop_oldest\").",
    "{records}",
);
const BATCHES_SPOOLED: Descriptor = counter(
    "epitaph.agent.batches.spooled",
    "Log batches written to the spool.",
    "{batches}",
);
const BATCHES_ACKED: Descriptor = counter(
    "epitaph.agent.batches.acked",
    "Log batches the server acknowledged.",
    "{batches}",
);
const BATCHES_REJECTED: Descriptor = counter(
    "epitaph.agent.batches.rejected",
    "Log batches given up after a non-retryable error.",
    "{batches}",
);
const EXPORT_RETRIES: Descriptor = counter(
    "epitaph.agent.export.retries",
    "Log exports that failed and were retried.",
    "{retries}",
);
const LOSS_REPORTS_ACKED: Descriptor = counter(
    "epitaph.agent.loss_reports.acked",
    "Loss reports the server acknowledged.",
    "{reports}",
);
const SPOOL_USAGE: Descriptor = Descriptor {
    name: "epitaph.agent.spool.usage",
    description: "Bytes of log batches waiting in the spool.",
    unit: "By",
    kind: Kind::UpDownCounter,
};
const SPOOL_BATCHES: Descriptor = Descriptor {
    name: "epitaph.agent.spool.batches",
    description: "Log batches waiting in the spool.",
    unit: "{batches}",
    kind: Kind::UpDownCounter,
};
const METRICS_DROPPED: Descriptor = counter(
    "epitaph.agent.metrics.intervals.dropped",
    "Host-metrics intervals dropped unsent (the in-memory queue was full, or the server does not take metrics).",
    "{intervals}",
);
const METRICS_RETRIES: Descriptor = counter(
    "epitaph.agent.metrics.export.retries",
    "Metrics exports that failed and were retried.",
    "{retries}",
);
const CPU_TIME: Descriptor = counter(
    "epitaph.agent.cpu.time",
    "Seconds of CPU the agent process used, in user and system mode.",
    "s",
);
const MEMORY_RSS: Descriptor = Descriptor {
    name: "epitaph.agent.memory.rss",
    description: "Resident memory of the agent process.",
    unit: "By",
    kind: Kind::UpDownCounter,
};

/// The metrics exporter's own counters, since the agent started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterCounters {
    pub intervals_dropped: u64,
    pub export_retries: u64,
}

pub fn push_agent_stats(
    stats: &StatsSnapshot,
    exporter: ExporterCounters,
    agent_start: SystemTime,
    metrics: &mut MetricSet,
) {
    let counters = [
        (LINES_READ, stats.lines_read),
        (RECORDS_READ, stats.records_read),
        (RECORDS_DROPPED, stats.dropped_records),
        (BATCHES_SPOOLED, stats.batches_spooled),
        (BATCHES_ACKED, stats.batches_acked),
        (BATCHES_REJECTED, stats.batches_rejected),
        (EXPORT_RETRIES, stats.export_retries),
        (LOSS_REPORTS_ACKED, stats.loss_reports_acked),
        (SPOOL_USAGE, stats.spool_bytes),
        (SPOOL_BATCHES, stats.spool_batches),
        (METRICS_DROPPED, exporter.intervals_dropped),
        (METRICS_RETRIES, exporter.export_retries),
    ];
    for (descriptor, value) in counters {
        metrics.push(descriptor, agent_start, vec![Point::int(vec![], value)]);
    }
}

/// CPU ticks and resident pages of a `/proc/<pid>/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessCost {
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub resident_pages: u64,
}

/// Fields after the command name: state is the 3rd field of the line, utime the 14th,
/// stime the 15th, rss the 24th (proc(5)).
pub fn parse_process_cost(stat: &str) -> Result<ProcessCost, String> {
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or("no command name")?;
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    // `fields[0]` is the line's 3rd field.
    let field = |line_field: usize| -> Result<u64, String> {
        let value = fields
            .get(line_field - 3)
            .ok_or_else(|| format!("no field {line_field}"))?;
        value
            .parse()
            .map_err(|_| format!("field {line_field} `{value}` is not a number"))
    };
    Ok(ProcessCost {
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        resident_pages: field(24)?,
    })
}

pub fn push_process_cost(
    cost: ProcessCost,
    ticks_per_second: u64,
    page_size: u64,
    agent_start: SystemTime,
    metrics: &mut MetricSet,
) {
    let seconds = |ticks: u64| ticks as f64 / ticks_per_second.max(1) as f64;
    metrics.push(
        CPU_TIME,
        agent_start,
        vec![
            Point::double(
                vec![("state", "user".to_string())],
                seconds(cost.user_ticks),
            ),
            Point::double(
                vec![("state", "system".to_string())],
                seconds(cost.system_ticks),
            ),
        ],
    );
    metrics.push(
        MEMORY_RSS,
        agent_start,
        vec![Point::int(
            vec![],
            cost.resident_pages.saturating_mul(page_size),
        )],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::fixture;
    use crate::hostmetrics::tests::points_of;

    #[test]
    fn the_agent_process_cost_comes_from_its_stat_line() {
        let cost = parse_process_cost(&fixture("self/stat")).unwrap();
        assert_eq!(
            cost,
            ProcessCost {
                user_ticks: 250,
                system_ticks: 75,
                resident_pages: 1500,
            }
        );
        let mut metrics = MetricSet::new(SystemTime::now());
        push_process_cost(cost, 100, 4096, SystemTime::UNIX_EPOCH, &mut metrics);
        let cpu = points_of(metrics, "epitaph.agent.cpu.time");
        assert_eq!(cpu["user"], 2.5);
        assert_eq!(cpu["system"], 0.75);
        assert!(parse_process_cost("1 (x) S 1 2").is_err());
    }

    #[test]
    fn every_health_counter_is_sent() {
        let stats = StatsSnapshot {
            lines_read: 10,
            dropped_records: 2,
            spool_bytes: 4096,
            ..StatsSnapshot::default()
        };
        let exporter = ExporterCounters {
            intervals_dropped: 3,
            export_retries: 4,
        };
        let mut metrics = MetricSet::new(SystemTime::now());
        push_agent_stats(&stats, exporter, SystemTime::UNIX_EPOCH, &mut metrics);
        assert_eq!(metrics.len(), 12);
        let mut metrics = MetricSet::new(SystemTime::now());
        push_agent_stats(&stats, exporter, SystemTime::UNIX_EPOCH, &mut metrics);
        assert_eq!(points_of(metrics, "epitaph.agent.records.dropped")[""], 2.0);
    }
}
