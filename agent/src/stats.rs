//! The agent's own health counters.
//!
//! One [`AgentStats`] is shared (`Arc`) by every stage of the pipeline; each stage bumps
//! the counters it owns with relaxed atomics, which cost next to nothing on the hot path
//! and need no lock. Readers take a [`StatsSnapshot`]: the run loop logs one at shutdown,
//! and the host-metrics sender ships them as the agent's own metrics. The counters are
//! totals since the process started; `spool_bytes` and `spool_batches` are gauges.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges, updated by the collector, the spool and the shipper.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Physical lines read from files and put into records (a multiline event counts
    /// each of its lines).
    pub lines_read: AtomicU64,
    /// Records put into batches (one per line, or one per multiline event).
    pub records_read: AtomicU64,
    /// Batches written to the spool.
    pub batches_spooled: AtomicU64,
    /// Batches the server acknowledged.
    pub batches_acked: AtomicU64,
    /// Batches given up after a non-retryable error (or unreadable in the spool).
    pub batches_rejected: AtomicU64,
    /// Export attempts that failed and were retried.
    pub export_retries: AtomicU64,
    /// Bytes of batch files in the spool now (gauge).
    pub spool_bytes: AtomicU64,
    /// Batch files in the spool now (gauge).
    pub spool_batches: AtomicU64,
    /// Records dropped because the spool was full (`when_full = "drop_oldest"`).
    pub dropped_records: AtomicU64,
    /// Loss reports the server acknowledged.
    pub loss_reports_acked: AtomicU64,
}

/// A plain copy of [`AgentStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub lines_read: u64,
    pub records_read: u64,
    pub batches_spooled: u64,
    pub batches_acked: u64,
    pub batches_rejected: u64,
    pub export_retries: u64,
    pub spool_bytes: u64,
    pub spool_batches: u64,
    pub dropped_records: u64,
    pub loss_reports_acked: u64,
}

impl AgentStats {
    /// Adds `amount` to a counter.
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            lines_read: read(&self.lines_read),
            records_read: read(&self.records_read),
            batches_spooled: read(&self.batches_spooled),
            batches_acked: read(&self.batches_acked),
            batches_rejected: read(&self.batches_rejected),
            export_retries: read(&self.export_retries),
            spool_bytes: read(&self.spool_bytes),
            spool_batches: read(&self.spool_batches),
            dropped_records: read(&self.dropped_records),
            loss_reports_acked: read(&self.loss_reports_acked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_every_counter() {
        let stats = AgentStats::default();
        AgentStats::add(&stats.lines_read, 3);
        AgentStats::add(&stats.lines_read, 2);
        AgentStats::set(&stats.spool_bytes, 40);
        AgentStats::set(&stats.spool_bytes, 10);
        AgentStats::add(&stats.dropped_records, 7);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.lines_read, 5);
        assert_eq!(snapshot.spool_bytes, 10);
        assert_eq!(snapshot.dropped_records, 7);
        assert_eq!(snapshot.batches_acked, 0);
    }
}
