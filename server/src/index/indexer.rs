//! The indexer: applies WAL records, in LSN order, to the splits, the batch ledger and
//! the instance registry, and checkpoints them.
//!
//! It runs on its own thread and is fed by the WAL writer right after each fsync. Every
//! `commit_interval` it commits the open split (making new lines searchable), saves a
//! checkpoint, deletes the WAL segments the checkpoint covers, and seals the open split
//! once its window has passed.
//!
//! Recovery uses the same [`Indexer::apply`]: records up to the checkpoint are skipped,
//! records after it update the ledger and registry, and log records are indexed only if
//! newer than the last LSN the splits committed, so nothing is indexed twice.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use epitaph_proto::BatchId;
use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::lifecycle::{GoodbyeRequest, HeartbeatRequest, HelloRequest, LossReport};
use prost::Message;
use tracing::{info, warn};

use super::catalog::{SearchableSplit, SplitCatalog};
use super::schema::{LogSchema, ROW_INDEX_BITS};
use super::split::{OpenSplit, SealedSplit, read_sealed_metadata};
use crate::checkpoint::Checkpoint;
use crate::ingest::backlog::IndexingBacklog;
use crate::ingest::ledger::BatchLedger;
use crate::registry::InstanceRegistry;
use crate::wal::{RecordContent, RecordKind, WalSegments};

/// A record's content, decoded once by ingest and handed over in memory after fsync;
/// recovery decodes the same from the WAL.
#[derive(Debug)]
pub enum RecordPayload {
    Logs(Arc<ExportLogsServiceRequest>),
    Hello(HelloRequest),
    Heartbeat(HeartbeatRequest),
    Goodbye(GoodbyeRequest),
    Loss(LossReport),
}

/// A durable record on its way to the indexer.
#[derive(Debug)]
pub struct DurableRecord {
    pub received_at_nanos: i64,
    pub batch: Option<BatchId>,
    pub payload: RecordPayload,
    /// Bytes counted in the indexing backlog until this record is applied.
    pub backlog_bytes: u64,
}

impl DurableRecord {
    pub fn decode(content: RecordContent) -> anyhow::Result<DurableRecord> {
        let payload = match content.kind {
            RecordKind::Logs => RecordPayload::Logs(Arc::new(ExportLogsServiceRequest::decode(
                content.payload.as_slice(),
            )?)),
            RecordKind::Hello => {
                RecordPayload::Hello(HelloRequest::decode(content.payload.as_slice())?)
            }
            RecordKind::Heartbeat => {
                RecordPayload::Heartbeat(HeartbeatRequest::decode(content.payload.as_slice())?)
            }
            RecordKind::Goodbye => {
                RecordPayload::Goodbye(GoodbyeRequest::decode(content.payload.as_slice())?)
            }
            RecordKind::Loss => {
                RecordPayload::Loss(LossReport::decode(content.payload.as_slice())?)
            }
        };
        Ok(DurableRecord {
            received_at_nanos: content.received_at_nanos,
            batch: content.batch,
            payload,
            backlog_bytes: 0,
        })
    }
}

pub struct IndexerSettings {
    pub data_dir: PathBuf,
    pub commit_interval: Duration,
    pub split_window: Duration,
    pub split_max_docs: u64,
    pub threads: usize,
    pub memory_bytes: usize,
}

pub struct Indexer {
    settings: IndexerSettings,
    splits_dir: PathBuf,
    schema: LogSchema,
    open: Option<OpenSplit>,
    open_since: Instant,
    catalog: Arc<SplitCatalog>,
    ledger: BatchLedger,
    registry: Arc<RwLock<InstanceRegistry>>,
    /// Every record up to this LSN is applied to the ledger and registry.
    applied_lsn: u64,
    /// Every log record up to this LSN is in a split (committed or pending).
    indexed_lsn: u64,
    checkpointed_lsn: u64,
    backlog: Arc<IndexingBacklog>,
}

impl Indexer {
    /// Opens the splits and the checkpoint in `data_dir`, ready for WAL replay.
    pub fn open(
        settings: IndexerSettings,
        catalog: Arc<SplitCatalog>,
        registry: Arc<RwLock<InstanceRegistry>>,
        backlog: Arc<IndexingBacklog>,
    ) -> anyhow::Result<Indexer> {
        let schema = LogSchema::new();
        let splits_dir = settings.data_dir.join("splits");
        std::fs::create_dir_all(&splits_dir)
            .with_context(|| format!("creating {}", splits_dir.display()))?;
        let checkpoint = Checkpoint::load(&settings.data_dir)?;
        let mut indexed_lsn = 0;
        let mut unsealed: Vec<PathBuf> = Vec::new();
        let mut directories: Vec<PathBuf> = std::fs::read_dir(&splits_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        directories.sort();
        for directory in directories {
            match read_sealed_metadata(&directory)? {
                Some(metadata) => {
                    indexed_lsn = indexed_lsn.max(metadata.last_lsn);
                    let split = SealedSplit::open(directory, metadata)?;
                    catalog.publish_sealed(
                        SearchableSplit {
                            metadata: split.metadata,
                            reader: split.reader,
                        },
                        false,
                    );
                }
                None => unsealed.push(directory),
            }
        }
        let mut open = None;
        // Normally at most one split is unsealed; older ones (from a crash during a
        // seal) are sealed now.
        let newest_unsealed = unsealed.pop();
        for directory in unsealed {
            let split = OpenSplit::reopen(directory, settings.threads, settings.memory_bytes)?;
            indexed_lsn = indexed_lsn.max(split.committed.last_lsn);
            let sealed = split.seal(now_nanos())?;
            catalog.publish_sealed(
                SearchableSplit {
                    metadata: sealed.metadata,
                    reader: sealed.reader,
                },
                false,
            );
        }
        if let Some(directory) = newest_unsealed {
            let split = OpenSplit::reopen(directory, settings.threads, settings.memory_bytes)?;
            indexed_lsn = indexed_lsn.max(split.committed.last_lsn);
            catalog.publish_open(SearchableSplit {
                metadata: split.committed.clone(),
                reader: split.reader.clone(),
            });
            open = Some(split);
        }
        *registry.write().expect("registry lock poisoned") = checkpoint.registry;
        info!(
            checkpoint_lsn = checkpoint.lsn,
            indexed_lsn,
            splits = catalog.totals().splits,
            "opened splits and checkpoint"
        );
        Ok(Indexer {
            splits_dir,
            schema,
            open,
            open_since: Instant::now(),
            catalog,
            ledger: checkpoint.ledger,
            registry,
            applied_lsn: checkpoint.lsn,
            indexed_lsn: indexed_lsn.max(checkpoint.lsn),
            checkpointed_lsn: checkpoint.lsn,
            backlog,
            settings,
        })
    }

    /// The next LSN the WAL may assign: past everything the checkpoint and splits hold,
    /// even if the WAL segments holding them are gone.
    pub fn lsn_floor(&self) -> u64 {
        self.applied_lsn.max(self.indexed_lsn) + 1
    }

    pub fn ledger(&self) -> &BatchLedger {
        &self.ledger
    }

    pub fn schema(&self) -> &LogSchema {
        &self.schema
    }

    /// Applies one durable record.
    pub fn apply(&mut self, lsn: u64, record: DurableRecord) -> anyhow::Result<()> {
        self.backlog.release(record.backlog_bytes);
        if lsn <= self.applied_lsn {
            return Ok(());
        }
        debug_assert_eq!(
            lsn,
            self.applied_lsn + 1,
            "records arrive in lsn order without gaps"
        );
        let at = record.received_at_nanos;
        match &record.payload {
            RecordPayload::Logs(request) => {
                if lsn > self.indexed_lsn {
                    self.index_logs(lsn, request, at)?;
                }
                if let Some(batch) = &record.batch {
                    self.ledger.record(batch);
                    let watermark = self.ledger.watermark(&batch.agent_id);
                    let mut registry = self.registry.write().expect("registry lock poisoned");
                    registry.apply_batch(&batch.agent_id, batch.sequence, watermark, at);
                }
            }
            RecordPayload::Hello(hello) => {
                let mut registry = self.registry.write().expect("registry lock poisoned");
                registry.apply_hello(hello, at);
                let watermark = self.ledger.watermark(&hello.agent_id);
                registry.apply_batch(&hello.agent_id, 0, watermark, at);
            }
            RecordPayload::Heartbeat(heartbeat) => {
                self.registry
                    .write()
                    .expect("registry lock poisoned")
                    .apply_heartbeat(heartbeat, at);
            }
            RecordPayload::Goodbye(goodbye) => {
                self.registry
                    .write()
                    .expect("registry lock poisoned")
                    .apply_goodbye(goodbye, at);
            }
            RecordPayload::Loss(loss) => {
                self.registry
                    .write()
                    .expect("registry lock poisoned")
                    .apply_loss(loss, at);
            }
        }
        self.applied_lsn = lsn;
        Ok(())
    }

    fn index_logs(
        &mut self,
        lsn: u64,
        request: &ExportLogsServiceRequest,
        received_at_nanos: i64,
    ) -> anyhow::Result<()> {
        if self.open.is_none() {
            let split = OpenSplit::create(
                &self.splits_dir,
                &self.schema,
                now_nanos(),
                lsn,
                self.settings.threads,
                self.settings.memory_bytes,
            )?;
            self.open = Some(split);
            self.open_since = Instant::now();
        }
        let split = self.open.as_mut().expect("open split was just ensured");
        let row_base = lsn << ROW_INDEX_BITS;
        let mut failure = None;
        self.schema.documents_from_request(
            request,
            received_at_nanos,
            row_base,
            |document, facts| {
                if failure.is_some() {
                    return;
                }
                split
                    .pending
                    .observe(facts.identity, facts.timestamp_nanos, facts.body_bytes);
                if let Err(e) = split.add_document(document) {
                    failure = Some(e);
                }
            },
        );
        if let Some(error) = failure {
            return Err(error);
        }
        split.pending.last_lsn = lsn;
        self.indexed_lsn = lsn;
        Ok(())
    }

    /// Commits the open split, saves a checkpoint, trims the WAL and seals the split if
    /// its window is over. Cheap when nothing changed.
    pub fn commit_and_checkpoint(&mut self, wal: Option<&WalSegments>) -> anyhow::Result<()> {
        if let Some(split) = self.open.as_mut()
            && split.has_uncommitted()
        {
            split.commit()?;
            self.catalog.publish_open(SearchableSplit {
                metadata: split.committed.clone(),
                reader: split.reader.clone(),
            });
        }
        if self.applied_lsn > self.checkpointed_lsn {
            let checkpoint = Checkpoint {
                lsn: self.applied_lsn,
                ledger: self.ledger.clone(),
                registry: self
                    .registry
                    .read()
                    .expect("registry lock poisoned")
                    .clone(),
            };
            checkpoint.save(&self.settings.data_dir)?;
            self.checkpointed_lsn = self.applied_lsn;
            if let Some(wal) = wal {
                wal.remove_segments_through(self.checkpointed_lsn)?;
            }
        }
        let window_over = self.open_since.elapsed() >= self.settings.split_window;
        let full = self
            .open
            .as_ref()
            .is_some_and(|s| s.committed.num_docs >= self.settings.split_max_docs);
        if window_over || full {
            self.seal_open_split()?;
        }
        Ok(())
    }

    fn seal_open_split(&mut self) -> anyhow::Result<()> {
        let Some(split) = self.open.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let sealed = split.seal(now_nanos())?;
        info!(
            split = %sealed.metadata.split_id,
            docs = sealed.metadata.num_docs,
            disk_bytes = sealed.metadata.disk_bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "sealed split"
        );
        self.catalog.publish_sealed(
            SearchableSplit {
                metadata: sealed.metadata,
                reader: sealed.reader,
            },
            true,
        );
        Ok(())
    }

    /// The indexer thread's loop: apply records as they come, commit on the interval,
    /// and on shutdown (the channel closing) commit what is left.
    pub fn run(mut self, records: Receiver<(u64, DurableRecord)>, wal: WalSegments) {
        let mut next_commit = Instant::now() + self.settings.commit_interval;
        loop {
            let wait = next_commit.saturating_duration_since(Instant::now());
            match records.recv_timeout(wait) {
                Ok((lsn, record)) => {
                    if let Err(error) = self.apply(lsn, record) {
                        // The record is safe in the WAL; stopping here keeps the splits
                        // consistent, and a restart replays it.
                        tracing::error!(lsn, error = %format!("{error:#}"), "indexing failed; indexer stops until restart");
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_commit {
                if let Err(error) = self.commit_and_checkpoint(Some(&wal)) {
                    warn!(error = %format!("{error:#}"), "commit or checkpoint failed; will retry");
                }
                next_commit = Instant::now() + self.settings.commit_interval;
            }
        }
        if let Err(error) = self.commit_and_checkpoint(Some(&wal)) {
            warn!(error = %format!("{error:#}"), "final commit failed; the wal still holds everything");
        }
        info!("indexer stopped");
    }
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The splits directory inside a data directory.
pub fn splits_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("splits")
}
