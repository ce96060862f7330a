//! Which spooled batches are waiting, being sent, being dropped, or finished — and what
//! may be committed.
//!
//! The [`AckLedger`] is the one place that knows every batch in the spool. The shipper
//! asks it for the oldest batch waiting to be sent ([`AckLedger::next_to_send`]), the
//! spool writer asks it for the oldest batch it may drop when the spool is full
//! ([`AckLedger::begin_drop`]; never one that is being sent, so a batch the server may
//! already have stored is never replaced), and acks and give-ups are reported with
//! [`AckLedger::finish`], which returns the contiguous run of finished batches that can
//! now be committed. It also keeps the spool's size in bytes, which the writer checks
//! against `[spool] max_bytes`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::warn;

use super::format::{BatchKind, SpoolEntry, read_entry};
use super::{State, StatePaths, remove_file_logged, write_state};
use crate::stats::AgentStats;

/// Where a spooled batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchState {
    /// In the spool, not being sent.
    Queued,
    /// An export is under way (or being retried).
    InFlight,
    /// Being replaced by a loss marker; neither sendable nor droppable meanwhile.
    Replacing,
    /// Acked, or given up; waiting for the batches before it to commit.
    Finished,
}

#[derive(Debug)]
struct PendingBatch {
    entry: SpoolEntry,
    state: BatchState,
}

/// Tracks the spooled batches and what may be committed.
#[derive(Debug)]
pub struct AckLedger {
    watermark: u64,
    pending: BTreeMap<u64, PendingBatch>,
    queued: BTreeSet<u64>,
    spool_bytes: u64,
    stats: Arc<AgentStats>,
}

/// A contiguous run of finished batches to record in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub watermark: u64,
    /// The spool files that may be deleted once the state file says `watermark`.
    pub sequences: Vec<u64>,
}

impl Commit {
    /// Folds an older commit that could not be written into a newer one.
    pub fn absorb(&mut self, older: Commit) {
        debug_assert!(older.watermark < self.watermark);
        let mut sequences = older.sequences;
        sequences.append(&mut self.sequences);
        self.sequences = sequences;
    }
}

impl AckLedger {
    pub fn new(watermark: u64, stats: Arc<AgentStats>) -> AckLedger {
        AckLedger {
            watermark,
            pending: BTreeMap::new(),
            queued: BTreeSet::new(),
            spool_bytes: 0,
            stats,
        }
    }

    /// Records a batch that is now in the spool. Sequences arrive in increasing order.
    pub fn register(&mut self, entry: SpoolEntry) {
        let sequence = entry.sequence;
        debug_assert!(
            sequence > self.watermark,
            "sequence {sequence} already committed"
        );
        debug_assert!(
            self.pending
                .last_key_value()
                .is_none_or(|(last, _)| *last < sequence),
            "sequences are registered in order"
        );
        self.pending.insert(
            sequence,
            PendingBatch {
                entry,
                state: BatchState::Queued,
            },
        );
        self.queued.insert(sequence);
        self.spool_bytes += entry.bytes;
        self.update_gauges();
    }

    /// The oldest batch waiting to be sent, now marked in flight.
    pub fn next_to_send(&mut self) -> Option<u64> {
        let sequence = self.queued.pop_first()?;
        let batch = self
            .pending
            .get_mut(&sequence)
            .expect("queued batches are pending");
        debug_assert_eq!(batch.state, BatchState::Queued);
        batch.state = BatchState::InFlight;
        Some(sequence)
    }

    /// Whether some batch waits to be sent (or will, once its replacement is written).
    pub fn has_unsent(&self) -> bool {
        !self.queued.is_empty()
            || self
                .pending
                .values()
                .any(|batch| batch.state == BatchState::Replacing)
    }

    /// Batches waiting to be sent (not in flight).
    pub fn queued_batches(&self) -> usize {
        self.queued.len()
    }

    /// The oldest data batch that is not being sent, now marked as being replaced. The
    /// caller replaces its file with a loss marker and reports with
    /// [`AckLedger::end_drop`].
    pub fn begin_drop(&mut self) -> Option<SpoolEntry> {
        let sequence = self
            .queued
            .iter()
            .copied()
            .find(|sequence| self.pending[sequence].entry.kind == BatchKind::Data)?;
        self.queued.remove(&sequence);
        let batch = self
            .pending
            .get_mut(&sequence)
            .expect("queued batches are pending");
        batch.state = BatchState::Replacing;
        Some(batch.entry)
    }

    /// Ends a drop started by [`AckLedger::begin_drop`]: with the marker's entry if the
    /// file was replaced, with `None` if it could not be (the batch stays as it was).
    pub fn end_drop(&mut self, sequence: u64, marker: Option<SpoolEntry>) {
        let Some(batch) = self.pending.get_mut(&sequence) else {
            warn!(sequence, "ended a drop of a batch the ledger does not know");
            return;
        };
        debug_assert_eq!(batch.state, BatchState::Replacing);
        if let Some(marker) = marker {
            self.spool_bytes = self.spool_bytes - batch.entry.bytes + marker.bytes;
            batch.entry = marker;
        }
        batch.state = BatchState::Queued;
        self.queued.insert(sequence);
        self.update_gauges();
    }

    /// Replaces a queued batch's entry (recovery finishing an interrupted drop).
    pub fn replace_queued(&mut self, marker: SpoolEntry) {
        if let Some(batch) = self.pending.get_mut(&marker.sequence) {
            debug_assert_eq!(batch.state, BatchState::Queued);
            self.spool_bytes = self.spool_bytes - batch.entry.bytes + marker.bytes;
            batch.entry = marker;
            self.update_gauges();
        }
    }

    /// The entry of a pending batch.
    pub fn entry(&self, sequence: u64) -> Option<SpoolEntry> {
        self.pending.get(&sequence).map(|batch| batch.entry)
    }

    /// Marks a batch acked (or given up). Returns what can be committed now: the longest
    /// run of finished batches at the front.
    pub fn finish(&mut self, sequence: u64) -> Option<Commit> {
        match self.pending.get_mut(&sequence) {
            Some(batch) => {
                debug_assert_eq!(batch.state, BatchState::InFlight);
                batch.state = BatchState::Finished;
            }
            None => {
                warn!(sequence, "finished a batch the ledger does not know");
                return None;
            }
        }
        let mut commit: Option<Commit> = None;
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().state != BatchState::Finished {
                break;
            }
            let (sequence, batch) = entry.remove_entry();
            self.watermark = sequence;
            self.spool_bytes -= batch.entry.bytes;
            let commit = commit.get_or_insert_with(|| Commit {
                watermark: sequence,
                sequences: Vec::new(),
            });
            commit.watermark = sequence;
            commit.sequences.push(sequence);
        }
        self.update_gauges();
        commit
    }

    /// The committed watermark.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Bytes of the spool files of every batch not yet committed.
    pub fn spool_bytes(&self) -> u64 {
        self.spool_bytes
    }

    /// Records in batches that are spooled but not finished.
    pub fn unfinished_records(&self) -> u64 {
        self.pending
            .values()
            .filter(|batch| batch.state != BatchState::Finished)
            .map(|batch| batch.entry.record_count)
            .sum()
    }

    /// Batches in the spool: unfinished ones and finished ones waiting for an earlier
    /// batch before they can be committed and deleted.
    pub fn spooled_batches(&self) -> usize {
        self.pending.len()
    }

    /// Batches that are spooled but not finished.
    pub fn unfinished_batches(&self) -> usize {
        self.pending
            .values()
            .filter(|batch| batch.state != BatchState::Finished)
            .count()
    }

    fn update_gauges(&self) {
        AgentStats::set(&self.stats.spool_bytes, self.spool_bytes);
        AgentStats::set(&self.stats.spool_batches, self.pending.len() as u64);
    }
}

/// Step 3 of the protocol: the state file first (with the positions stored in the
/// newest committed batch's header), then the spool files.
pub fn apply_commit(paths: &StatePaths, commit: &Commit) -> io::Result<()> {
    let (_, positions) = read_entry(&paths.batch_file(commit.watermark)).map_err(|reason| {
        io::Error::other(format!(
            "reading the positions of batch {}: {reason}",
            commit.watermark
        ))
    })?;
    let state = State {
        last_acked_sequence: commit.watermark,
        positions,
    };
    write_state(paths, &state)?;
    for sequence in &commit.sequences {
        remove_file_logged(&paths.batch_file(*sequence));
    }
    Ok(())
}

/// Hands out sequences; closing it at the shutdown deadline fixes the final sequence.
#[derive(Debug)]
pub struct SequenceGate {
    state: Mutex<GateState>,
    last_assigned: AtomicU64,
}

/// The gate's lock: held while a batch is written, so the final sequence is never
/// decided while a batch that will exist is still being written.
#[derive(Debug)]
pub struct GateState {
    pub last_assigned: u64,
    pub closed: bool,
}

impl SequenceGate {
    pub fn new(last_assigned: u64) -> SequenceGate {
        SequenceGate {
            state: Mutex::new(GateState {
                last_assigned,
                closed: false,
            }),
            last_assigned: AtomicU64::new(last_assigned),
        }
    }

    /// The highest sequence assigned so far.
    pub fn last_assigned(&self) -> u64 {
        self.last_assigned.load(Ordering::SeqCst)
    }

    /// Stops handing out sequences, waiting for a spool write in progress, and returns
    /// the final sequence.
    pub fn close(&self) -> u64 {
        let mut state = self.lock();
        state.closed = true;
        state.last_assigned
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a newly assigned sequence (under the lock).
    pub(crate) fn assigned(&self, state: &mut GateState, sequence: u64) {
        debug_assert_eq!(sequence, state.last_assigned + 1);
        state.last_assigned = sequence;
        self.last_assigned.store(sequence, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64, records: u64) -> SpoolEntry {
        SpoolEntry {
            sequence,
            record_count: records,
            bytes: 100,
            kind: BatchKind::Data,
            first_observed_unix_nano: sequence * 10,
            last_observed_unix_nano: sequence * 10 + 5,
        }
    }

    fn ledger_with(watermark: u64, sequences: std::ops::RangeInclusive<u64>) -> AckLedger {
        let mut ledger = AckLedger::new(watermark, Arc::default());
        for sequence in sequences {
            ledger.register(entry(sequence, 10));
        }
        ledger
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut ledger = ledger_with(4, 5..=8);
        for expected in 5..=8 {
            assert_eq!(ledger.next_to_send(), Some(expected));
        }
        assert_eq!(ledger.next_to_send(), None);
        assert_eq!(ledger.finish(6), None);
        assert_eq!(ledger.finish(8), None);
        assert_eq!(ledger.unfinished_records(), 20);
        let commit = ledger.finish(5).unwrap();
        assert_eq!(commit.watermark, 6);
        assert_eq!(commit.sequences, vec![5, 6]);
        assert_eq!(ledger.spool_bytes(), 200);
        let commit = ledger.finish(7).unwrap();
        assert_eq!(commit.watermark, 8);
        assert_eq!(commit.sequences, vec![7, 8]);
        assert_eq!(ledger.unfinished_records(), 0);
        assert_eq!(ledger.watermark(), 8);
        assert_eq!(ledger.spool_bytes(), 0);
    }

    #[test]
    fn drops_take_the_oldest_batch_not_in_flight_and_markers_are_sent_in_order() {
        let mut ledger = ledger_with(0, 1..=4);
        assert_eq!(ledger.next_to_send(), Some(1));
        let victim = ledger.begin_drop().unwrap();
        assert_eq!(victim.sequence, 2, "batch 1 is being sent: not droppable");
        assert!(ledger.has_unsent());
        assert_eq!(
            ledger.next_to_send(),
            Some(3),
            "a batch being replaced is skipped"
        );
        let marker = SpoolEntry {
            kind: BatchKind::LossMarker,
            record_count: 1,
            bytes: 30,
            ..victim
        };
        ledger.end_drop(2, Some(marker));
        assert_eq!(ledger.spool_bytes(), 330);
        assert_eq!(ledger.next_to_send(), Some(2), "the marker goes out next");
        let victim = ledger.begin_drop().unwrap();
        assert_eq!(victim.sequence, 4);
        ledger.end_drop(4, None); // the replacement failed: the batch stays
        assert_eq!(ledger.entry(4).unwrap().kind, BatchKind::Data);
        assert_eq!(ledger.next_to_send(), Some(4));
        assert_eq!(ledger.begin_drop(), None, "everything is in flight");
    }

    #[test]
    fn gate_counts_and_closes() {
        let gate = SequenceGate::new(3);
        {
            let mut state = gate.lock();
            gate.assigned(&mut state, 4);
        }
        assert_eq!(gate.last_assigned(), 4);
        assert_eq!(gate.close(), 4);
        assert!(gate.is_closed());
    }
}
