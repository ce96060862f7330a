//! The collector's side of the spool: taking batches, within `[spool] max_bytes`.
//!
//! Taking a batch assigns the next sequence and writes the batch's file durably (step 2
//! of the protocol in [`crate::spool`]). Before that, the writer checks the spool's size:
//! if the new file would take it past `max_bytes`,
//!
//! - `when_full = "block"`: the batch is refused ([`TakeError::Full`]); the collector
//!   keeps it and stops reading until acks free room. The lines wait in their files,
//!   whose positions have not moved: nothing is lost while the files exist.
//! - `when_full = "drop_oldest"`: the oldest batches that are not being sent are
//!   replaced by loss markers until the new one fits (see [`super::loss`]). If none can
//!   be dropped (all in flight, or acked but waiting behind one that is not), the batch
//!   is refused as with `block`.
//!
//! An empty spool takes any batch, however large, so a small `max_bytes` cannot wedge
//! the agent.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use epitaph_proto::resource::v1::Resource;
use prost::bytes::Bytes;
use tracing::{info, warn};

use super::format::{BatchCompressor, BatchFacts, BatchKind, read_entry};
use super::loss::write_loss_marker;
use super::{Spool, SpoolConfig, WhenFull, remove_file_logged, write_new_file};
use crate::batch::{BatchBuilder, Envelope};
use crate::sources::Positions;
use crate::stats::AgentStats;

/// Why a batch could not be taken; the caller still holds its records.
#[derive(Debug)]
pub enum TakeError {
    /// The gate is closed (shutdown deadline passed).
    Closed,
    /// The spool is at `max_bytes` and nothing could be dropped to make room.
    Full,
    /// The spool write failed (disk full, ...); nothing was assigned.
    Io(io::Error),
}

/// A batch that is now durably in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub sequence: u64,
    pub record_count: u64,
}

/// Recently taken batches kept in memory, as the gRPC frames the shipper sends, so that
/// it does not read back from disk what it is about to send anyway. Bounded: when the
/// shipper falls behind, later batches live on disk only and are read back when their
/// turn comes.
#[derive(Debug)]
pub struct BatchCache {
    capacity: usize,
    frames: Mutex<BTreeMap<u64, Bytes>>,
}

impl BatchCache {
    pub fn new(capacity: usize) -> BatchCache {
        BatchCache {
            capacity,
            frames: Mutex::new(BTreeMap::new()),
        }
    }

    fn offer(&self, sequence: u64, frame: Bytes) {
        let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if frames.len() < self.capacity {
            frames.insert(sequence, frame);
        }
    }

    /// Takes a batch's frame out of the cache, if it is there.
    pub fn take(&self, sequence: u64) -> Option<Bytes> {
        self.frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&sequence)
    }
}

/// Takes batches into the spool; owned by the collector.
pub struct SpoolWriter {
    spool: Arc<Spool>,
    limits: SpoolConfig,
    /// For loss markers.
    resource: Resource,
    /// The resource and scope around every batch's records, encoded once.
    envelope: Envelope,
    compressor: BatchCompressor,
    /// The encoded request of the batch being taken; reused from batch to batch.
    request: Vec<u8>,
    /// Records dropped since the spool last had room, for one summary log line.
    dropped_since_room: u64,
}

enum NoRoom {
    Full,
    Io(io::Error),
}

impl SpoolWriter {
    pub fn new(spool: Arc<Spool>, limits: SpoolConfig, resource: Resource) -> SpoolWriter {
        SpoolWriter {
            spool,
            limits,
            envelope: Envelope::new(&resource),
            resource,
            // Creating a zstd context fails only when memory is exhausted.
            compressor: BatchCompressor::new().expect("creating a zstd compression context"),
            request: Vec::new(),
            dropped_since_room: 0,
        }
    }

    /// Whether the gate is closed: no batch will be taken any more.
    pub fn is_closed(&self) -> bool {
        self.spool.gate.is_closed()
    }

    /// Bytes in the spool now.
    pub fn spool_bytes(&self) -> u64 {
        self.spool.ledger().spool_bytes()
    }

    /// Batches in the spool waiting for the shipper to start sending them.
    pub fn queued_batches(&self) -> usize {
        self.spool.ledger().queued_batches()
    }

    /// Assigns the next sequence and makes the records of `batch`, read up to
    /// `positions`, durable as one batch, making room first. The builder is left as it
    /// is: the caller clears it once the batch is taken, and keeps it on an error.
    pub fn take(&mut self, batch: &BatchBuilder, positions: Positions) -> Result<Taken, TakeError> {
        self.envelope
            .write_request(batch.encoded_records(), &mut self.request);
        let (first_observed_unix_nano, last_observed_unix_nano) = batch.observed_range();
        let facts = BatchFacts {
            record_count: batch.len() as u64,
            kind: BatchKind::Data,
            first_observed_unix_nano,
            last_observed_unix_nano,
        };
        let encoded = self
            .compressor
            .encode(&self.request, facts, &positions)
            .map_err(TakeError::Io)?;
        // Held across the write so that `close` cannot return a final sequence while a
        // batch that will exist is still being written.
        let spool = self.spool.clone();
        let mut gate = spool.gate.lock();
        if gate.closed {
            return Err(TakeError::Closed);
        }
        match self.make_room(encoded.file_len()) {
            Ok(()) => {}
            Err(NoRoom::Full) => return Err(TakeError::Full),
            Err(NoRoom::Io(error)) => return Err(TakeError::Io(error)),
        }
        let sequence = gate.last_assigned + 1;
        let path = spool.paths.batch_file(sequence);
        if let Err(error) = write_new_file(&path, &encoded.file_bytes(sequence)) {
            // The file may be whole when only its fsync failed; it must not outlive the
            // failure, or a later start would send a batch the goodbye never counted.
            remove_file_logged(&path);
            return Err(TakeError::Io(error));
        }
        let entry = encoded.entry(sequence);
        spool.ledger().register(entry);
        spool.gate.assigned(&mut gate, sequence);
        drop(gate);
        spool.cache.offer(sequence, encoded.frame());
        spool.wakeup.notify_one();
        AgentStats::add(&spool.stats.batches_spooled, 1);
        Ok(Taken {
            sequence,
            record_count: entry.record_count,
        })
    }

    fn make_room(&mut self, needed: u64) -> Result<(), NoRoom> {
        loop {
            let used = self.spool_bytes();
            if used == 0 || used + needed <= self.limits.max_bytes {
                if self.dropped_since_room > 0 {
                    warn!(
                        records = self.dropped_since_room,
                        "the spool has room again after dropping its oldest batches"
                    );
                    self.dropped_since_room = 0;
                }
                return Ok(());
            }
            if self.limits.when_full == WhenFull::Block {
                return Err(NoRoom::Full);
            }
            if !self.drop_oldest_batch().map_err(NoRoom::Io)? {
                return Err(NoRoom::Full);
            }
        }
    }

    /// Replaces the oldest droppable batch by a loss marker; false if there is none.
    fn drop_oldest_batch(&mut self) -> io::Result<bool> {
        let Some(victim) = self.spool.ledger().begin_drop() else {
            return Ok(false);
        };
        let replaced = (|| {
            let (_, positions) = read_entry(&self.spool.paths.batch_file(victim.sequence))
                .map_err(io::Error::other)?;
            self.spool.loss.record_drop(&victim)?;
            let marker = write_loss_marker(&self.spool.paths, &self.resource, &victim, &positions)?;
            self.spool.loss.drop_completed(victim.sequence);
            Ok(marker)
        })();
        // Out of the cache before the marker becomes sendable, or the shipper could
        // send the dropped records after all.
        let _ = self.spool.cache.take(victim.sequence);
        match replaced {
            Ok(marker) => {
                self.spool.ledger().end_drop(victim.sequence, Some(marker));
                self.spool.wakeup.notify_one();
                AgentStats::add(&self.spool.stats.dropped_records, victim.record_count);
                if self.dropped_since_room == 0 {
                    warn!(
                        sequence = victim.sequence,
                        records = victim.record_count,
                        max_bytes = self.limits.max_bytes,
                        "spool is full: dropping its oldest batches"
                    );
                } else {
                    info!(
                        sequence = victim.sequence,
                        records = victim.record_count,
                        "dropped a spooled batch"
                    );
                }
                self.dropped_since_room += victim.record_count;
                Ok(true)
            }
            Err(error) => {
                // The batch stays and will be sent. If the loss was already counted, it
                // is over-reported (and a restart finishes the drop if the batch is
                // still unsent): with a failing disk, the safe side.
                self.spool.ledger().end_drop(victim.sequence, None);
                Err(error)
            }
        }
    }
}
