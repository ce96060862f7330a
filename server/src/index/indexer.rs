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
use tantivy::TantivyDocument;
use tracing::{info, warn};

use super::catalog::{SearchableSplit, SplitCatalog};
use super::compaction;
use super::metric_schema::{MetricSchema, MetricsRequest};
use super::point_document::PointDocument;
use super::schema::{LogSchema, ROW_INDEX_BITS, split_index_settings};
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
    Metrics(MetricsRequest),
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
            RecordKind::Metrics => {
                RecordPayload::Metrics(MetricsRequest::decode(content.payload.into())?)
            }
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
    pub metric_split_window: Duration,
    pub split_max_docs: u64,
    pub threads: usize,
    pub memory_bytes: usize,
}

/// Compacts `group` and puts the new split in the catalog in their place, then removes
/// their directories. Whether it succeeded.
fn compact_and_publish(
    directory: &Path,
    group: &[Arc<SearchableSplit>],
    catalog: &SplitCatalog,
    memory_bytes: usize,
    now: i64,
) -> bool {
    let started = Instant::now();
    match compaction::compact(directory, group, memory_bytes, now) {
        Ok(split) => {
            let replaced = split.metadata.replaces.clone();
            info!(
                split = %split.metadata.split_id,
                replaced = replaced.len(),
                docs = split.metadata.num_docs,
                disk_bytes = split.metadata.disk_bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "compacted splits"
            );
            catalog.replace_sealed(
                &replaced,
                SearchableSplit {
                    metadata: split.metadata,
                    reader: split.reader,
                },
            );
            if let Err(error) = compaction::remove_replaced(directory, &replaced) {
                warn!(error = %format!("{error:#}"), "could not remove compacted splits; the next start will");
            }
            true
        }
        Err(error) => {
            warn!(error = %format!("{error:#}"), "compaction failed; retrying in 10 minutes");
            false
        }
    }
}

/// How long after a failed compaction the next is tried.
const COMPACTION_RETRY: Duration = Duration::from_secs(600);

/// One kind of splits (logs or metrics): a directory of them, the open one, and the
/// catalog searches read. `D` is the type of its documents.
struct SplitSet<D: tantivy::Document> {
    directory: PathBuf,
    schema: tantivy::schema::Schema,
    index_settings: tantivy::IndexSettings,
    open: Option<OpenSplit<D>>,
    open_since: Instant,
    /// When a compaction may run next (later after one failed).
    next_compaction: Instant,
    /// The compaction running, if any: whether it succeeded once it is done.
    compaction: Option<std::thread::JoinHandle<bool>>,
    /// Ingest time after which the open split is sealed.
    window: Duration,
    catalog: Arc<SplitCatalog>,
    /// Every record of this kind up to this LSN is in a split (committed or pending).
    indexed_lsn: u64,
}

/// Whether the split in `directory` was created with `schema`.
fn has_schema(directory: &Path, schema: &tantivy::schema::Schema) -> anyhow::Result<bool> {
    let index = tantivy::Index::open_in_dir(directory)
        .with_context(|| format!("opening split {}", directory.display()))?;
    Ok(index.schema() == *schema)
}

impl<D: tantivy::Document> SplitSet<D> {
    /// Publishes the sealed splits of `directory`, seals all but the newest unsealed one
    /// (left over by a crash during a seal) and reopens that one.
    fn open(
        directory: PathBuf,
        schema: tantivy::schema::Schema,
        index_settings: tantivy::IndexSettings,
        window: Duration,
        catalog: Arc<SplitCatalog>,
        settings: &IndexerSettings,
    ) -> anyhow::Result<SplitSet<D>> {
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let mut indexed_lsn = 0;
        let mut unsealed: Vec<PathBuf> = Vec::new();
        let mut directories: Vec<PathBuf> = std::fs::read_dir(&directory)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        directories.sort();
        let mut sealed = Vec::new();
        for split_directory in directories {
            if compaction::is_leftover(&split_directory) {
                warn!(directory = %split_directory.display(), "removing what a compaction left");
                std::fs::remove_dir_all(&split_directory)
                    .with_context(|| format!("removing {}", split_directory.display()))?;
                continue;
            }
            match read_sealed_metadata(&split_directory)? {
                Some(metadata) => sealed.push((split_directory, metadata)),
                None => unsealed.push(split_directory),
            }
        }
        // Splits a compaction replaced, left behind by a crash before their removal.
        let replaced: Vec<String> = sealed
            .iter()
            .flat_map(|(_, metadata)| metadata.replaces.iter().cloned())
            .collect();
        for (split_directory, metadata) in sealed {
            if replaced.contains(&metadata.split_id) {
                info!(split = %metadata.split_id, "removing a split that a compaction replaced");
                compaction::remove_replaced(&directory, &[metadata.split_id])?;
                continue;
            }
            indexed_lsn = indexed_lsn.max(metadata.last_lsn);
            let split = SealedSplit::open(split_directory, metadata)?;
            catalog.publish_sealed(
                SearchableSplit {
                    metadata: split.metadata,
                    reader: split.reader,
                },
                false,
            );
        }
        let mut open = None;
        let mut newest_unsealed = unsealed.pop();
        // A split written with another schema (by an older server) cannot take this
        // server's documents, whose fields are numbered for the current schema: it is
        // sealed as it is, and new documents go to a new split.
        if let Some(split_directory) = &newest_unsealed
            && !has_schema(split_directory, &schema)?
        {
            unsealed.extend(newest_unsealed.take());
        }
        for split_directory in unsealed {
            let split =
                OpenSplit::<D>::reopen(split_directory, settings.threads, settings.memory_bytes)?;
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
        if let Some(split_directory) = newest_unsealed {
            let split =
                OpenSplit::<D>::reopen(split_directory, settings.threads, settings.memory_bytes)?;
            indexed_lsn = indexed_lsn.max(split.committed.last_lsn);
            catalog.publish_open(SearchableSplit {
                metadata: split.committed.clone(),
                reader: split.reader.clone(),
            });
            open = Some(split);
        }
        Ok(SplitSet {
            directory,
            schema,
            index_settings,
            open,
            open_since: Instant::now(),
            next_compaction: Instant::now(),
            compaction: None,
            window,
            catalog,
            indexed_lsn,
        })
    }

    /// The open split, created if there is none; `lsn` is the record about to go in.
    fn open_split(
        &mut self,
        lsn: u64,
        settings: &IndexerSettings,
    ) -> anyhow::Result<&mut OpenSplit<D>> {
        if self.open.is_none() {
            let split = OpenSplit::<D>::create(
                &self.directory,
                self.schema.clone(),
                self.index_settings.clone(),
                now_nanos(),
                lsn,
                settings.threads,
                settings.memory_bytes,
            )?;
            self.open = Some(split);
            self.open_since = Instant::now();
        }
        Ok(self.open.as_mut().expect("open split was just ensured"))
    }

    /// Commits the open split if anything changed, and publishes what it committed.
    fn commit(&mut self) -> anyhow::Result<()> {
        if let Some(split) = self.open.as_mut()
            && split.has_uncommitted()
        {
            split.commit()?;
            self.catalog.publish_open(SearchableSplit {
                metadata: split.committed.clone(),
                reader: split.reader.clone(),
            });
        }
        Ok(())
    }

    /// Starts compacting the sealed splits of the earliest finished day that has several
    /// (see [`compaction`]) on a thread of its own, so ingest goes on meanwhile; one
    /// compaction at a time. A failure is logged and retried later, the splits staying as
    /// they were.
    fn compact_if_due(&mut self, settings: &IndexerSettings) {
        if let Some(running) = &self.compaction {
            if !running.is_finished() {
                return;
            }
            let succeeded = self
                .compaction
                .take()
                .is_some_and(|running| running.join().unwrap_or(false));
            if !succeeded {
                self.next_compaction = Instant::now() + COMPACTION_RETRY;
            }
        }
        if Instant::now() < self.next_compaction {
            return;
        }
        let now = now_nanos();
        let window = i64::try_from(self.window.as_nanos()).unwrap_or(i64::MAX);
        let group = compaction::next_group(&self.catalog.sealed(), now, window);
        if group.is_empty() {
            return;
        }
        let directory = self.directory.clone();
        let catalog = self.catalog.clone();
        let memory_bytes = settings.memory_bytes;
        let spawned = std::thread::Builder::new()
            .name("compaction".into())
            .spawn(move || compact_and_publish(&directory, &group, &catalog, memory_bytes, now));
        match spawned {
            Ok(running) => self.compaction = Some(running),
            Err(error) => {
                warn!(%error, "could not start a compaction thread");
                self.next_compaction = Instant::now() + COMPACTION_RETRY;
            }
        }
    }

    /// Seals the open split once its window is over or it is full.
    fn seal_if_due(&mut self, settings: &IndexerSettings) -> anyhow::Result<()> {
        let window_over = self.open_since.elapsed() >= self.window;
        let full = self
            .open
            .as_ref()
            .is_some_and(|s| s.committed.num_docs >= settings.split_max_docs);
        if !(window_over || full) {
            return Ok(());
        }
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
}

pub struct Indexer {
    settings: IndexerSettings,
    schema: LogSchema,
    metric_schema: MetricSchema,
    logs: SplitSet<TantivyDocument>,
    metrics: SplitSet<PointDocument>,
    ledger: BatchLedger,
    registry: Arc<RwLock<InstanceRegistry>>,
    /// Every record up to this LSN is applied to the ledger and registry.
    applied_lsn: u64,
    checkpointed_lsn: u64,
    backlog: Arc<IndexingBacklog>,
}

impl Indexer {
    /// Opens the splits and the checkpoint in `data_dir`, ready for WAL replay.
    pub fn open(
        settings: IndexerSettings,
        catalog: Arc<SplitCatalog>,
        metric_catalog: Arc<SplitCatalog>,
        registry: Arc<RwLock<InstanceRegistry>>,
        backlog: Arc<IndexingBacklog>,
    ) -> anyhow::Result<Indexer> {
        let schema = LogSchema::new();
        let metric_schema = MetricSchema::new();
        let checkpoint = Checkpoint::load(&settings.data_dir)?;
        let mut logs = SplitSet::open(
            splits_dir(&settings.data_dir),
            schema.schema(),
            split_index_settings(),
            settings.split_window,
            catalog,
            &settings,
        )?;
        let mut metrics = SplitSet::open(
            metric_splits_dir(&settings.data_dir),
            metric_schema.schema(),
            MetricSchema::index_settings(),
            settings.metric_split_window,
            metric_catalog,
            &settings,
        )?;
        // The checkpoint is saved only after both open splits committed.
        logs.indexed_lsn = logs.indexed_lsn.max(checkpoint.lsn);
        metrics.indexed_lsn = metrics.indexed_lsn.max(checkpoint.lsn);
        *registry.write().expect("registry lock poisoned") = checkpoint.registry;
        info!(
            checkpoint_lsn = checkpoint.lsn,
            logs_indexed_lsn = logs.indexed_lsn,
            metrics_indexed_lsn = metrics.indexed_lsn,
            log_splits = logs.catalog.totals().splits,
            metric_splits = metrics.catalog.totals().splits,
            "opened splits and checkpoint"
        );
        Ok(Indexer {
            schema,
            metric_schema,
            logs,
            metrics,
            ledger: checkpoint.ledger,
            registry,
            applied_lsn: checkpoint.lsn,
            checkpointed_lsn: checkpoint.lsn,
            backlog,
            settings,
        })
    }

    /// The next LSN the WAL may assign: past everything the checkpoint and splits hold,
    /// even if the WAL segments holding them are gone.
    pub fn lsn_floor(&self) -> u64 {
        self.applied_lsn
            .max(self.logs.indexed_lsn)
            .max(self.metrics.indexed_lsn)
            + 1
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
                if lsn > self.logs.indexed_lsn {
                    self.index_logs(lsn, request, at)?;
                }
                if let Some(batch) = &record.batch {
                    self.ledger.record(batch);
                    let watermark = self.ledger.watermark(&batch.agent_id);
                    let mut registry = self.registry.write().expect("registry lock poisoned");
                    registry.apply_batch(&batch.agent_id, batch.sequence, watermark, at);
                }
            }
            RecordPayload::Metrics(request) => {
                if lsn > self.metrics.indexed_lsn {
                    self.index_metrics(lsn, request, at)?;
                }
                if let Some(batch) = &record.batch {
                    self.ledger.record(&metrics_batch(batch));
                    // Metrics batches say the agent is alive, but their sequences are
                    // not the log sequences a goodbye counts.
                    self.registry
                        .write()
                        .expect("registry lock poisoned")
                        .touch_if_known(&batch.agent_id, at);
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
        let split = self.logs.open_split(lsn, &self.settings)?;
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
        self.logs.indexed_lsn = lsn;
        Ok(())
    }

    fn index_metrics(
        &mut self,
        lsn: u64,
        request: &MetricsRequest,
        received_at_nanos: i64,
    ) -> anyhow::Result<()> {
        let split = self.metrics.open_split(lsn, &self.settings)?;
        let table = split.pending.series.clone();
        let mut series = table.writer();
        let mut documents = Vec::new();
        self.metric_schema.documents_from_request(
            request,
            received_at_nanos,
            &mut series,
            &mut documents,
            |facts| split.pending.observe_metric(facts),
        )?;
        drop(series);
        split.add_documents(documents)?;
        split.pending.last_lsn = lsn;
        self.metrics.indexed_lsn = lsn;
        Ok(())
    }

    /// Commits the open split, saves a checkpoint, trims the WAL and seals the split if
    /// its window is over. Cheap when nothing changed.
    pub fn commit_and_checkpoint(&mut self, wal: Option<&WalSegments>) -> anyhow::Result<()> {
        self.logs.commit()?;
        self.metrics.commit()?;
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
        self.logs.seal_if_due(&self.settings)?;
        self.metrics.seal_if_due(&self.settings)?;
        self.metrics.compact_if_due(&self.settings);
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

/// The log splits directory inside a data directory.
pub fn splits_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("splits")
}

/// The metric splits directory inside a data directory.
pub fn metric_splits_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("metric-splits")
}

/// The ledger key of a metrics batch. An agent numbers its metrics exports apart from
/// its log batches, so they are deduplicated apart; `#` never appears in the agent ids
/// agents generate (UUIDs).
pub fn metrics_batch(batch: &BatchId) -> BatchId {
    BatchId {
        agent_id: format!("{}#metrics", batch.agent_id),
        sequence: batch.sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_settings(dir: &Path) -> IndexerSettings {
        IndexerSettings {
            data_dir: dir.to_path_buf(),
            commit_interval: Duration::from_secs(1),
            split_window: Duration::from_secs(3600),
            metric_split_window: Duration::from_secs(3600),
            split_max_docs: 1_000_000,
            threads: 1,
            memory_bytes: 15_000_000,
        }
    }

    fn open_metric_splits(dir: &Path, catalog: Arc<SplitCatalog>) -> SplitSet<PointDocument> {
        let settings = test_settings(dir);
        SplitSet::open(
            dir.join("metric-splits"),
            MetricSchema::new().schema(),
            MetricSchema::index_settings(),
            settings.metric_split_window,
            catalog,
            &settings,
        )
        .unwrap()
    }

    #[test]
    fn a_start_removes_what_a_compaction_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let splits = dir.path().join("metric-splits");
        let sealed_split = |created_at: i64, replaces: Vec<String>| {
            let mut split = OpenSplit::<PointDocument>::create(
                &splits,
                MetricSchema::new().schema(),
                MetricSchema::index_settings(),
                created_at,
                1,
                1,
                15_000_000,
            )
            .unwrap();
            split.pending.replaces = replaces;
            split.seal(created_at).unwrap().metadata.split_id
        };
        let replaced = sealed_split(1_000_000_000, Vec::new());
        let kept = sealed_split(2_000_000_000, Vec::new());
        let compacted = sealed_split(3_000_000_000, vec![replaced.clone()]);
        let unfinished = splits.join(format!("{}x", compaction::IN_PROGRESS_PREFIX));
        std::fs::create_dir_all(&unfinished).unwrap();
        let half_removed = splits.join(".removing-y");
        std::fs::create_dir_all(&half_removed).unwrap();
        let catalog = Arc::new(SplitCatalog::default());
        open_metric_splits(dir.path(), catalog.clone());
        let mut published: Vec<String> = catalog
            .sealed()
            .iter()
            .map(|split| split.metadata.split_id.clone())
            .collect();
        published.sort();
        assert_eq!(published, [kept.clone(), compacted.clone()]);
        assert!(!splits.join(&replaced).exists());
        assert!(!unfinished.exists() && !half_removed.exists());
        assert!(splits.join(&kept).exists() && splits.join(&compacted).exists());
    }

    #[test]
    fn an_open_split_of_another_schema_is_sealed_and_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let splits = dir.path().join("metric-splits");
        let mut older = tantivy::schema::Schema::builder();
        older.add_text_field("service", tantivy::schema::STRING);
        older.add_u64_field("series", tantivy::schema::FAST);
        let older = older.build();
        drop(
            OpenSplit::<TantivyDocument>::create(
                &splits,
                older,
                tantivy::IndexSettings::default(),
                now_nanos(),
                1,
                1,
                15_000_000,
            )
            .unwrap(),
        );
        let catalog = Arc::new(SplitCatalog::default());
        let set = open_metric_splits(dir.path(), catalog.clone());
        assert!(
            set.open.is_none(),
            "the older split was reopened for writing"
        );
        assert_eq!(catalog.snapshot().len(), 1);
        assert!(catalog.snapshot()[0].metadata.sealed_at_nanos.is_some());
    }
}
