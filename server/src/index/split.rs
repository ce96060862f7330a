//! Splits: ordinary tantivy indexes, one per window of ingest time, immutable once sealed.
//!
//! A split directory holds the tantivy files and, once sealed, `split.json` (and a metric
//! split's series table, `series.json.zst`). While a split is open its metadata travels
//! inside every tantivy commit as the commit payload, so the metadata and the documents
//! it describes are always committed together: a crash between the two cannot leave a
//! split whose metadata misses a service or an instance (which would make pruning skip
//! data that is there).
//!
//! The metadata names the WAL range a split holds (`last_lsn`): it is what recovery uses
//! to replay the WAL into the index without indexing any record twice. It also keeps the
//! time range and the sets of services, image versions, generations and instances, so a
//! query skips every split that cannot match without opening it. Nothing in it depends on
//! the local disk's layout, so splits can later move to object storage as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tantivy::directory::Directory;
use tantivy::index::SegmentComponent;
use tantivy::indexer::UserOperation;
use tantivy::schema::Schema;
use tantivy::store::StoreWriter;
use tantivy::{
    Document, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument,
};

use super::metric_schema::{MetricFacts, MetricSchema, SERIES_FIELD};
use super::point_document::PointDocument;
use super::schema::DocumentIdentity;
use super::series::SeriesTable;

pub const SEALED_METADATA_FILE: &str = "split.json";
/// A sealed metric split's series table, zstd-compressed JSON.
pub const SEALED_SERIES_FILE: &str = "series.json.zst";
const SERIES_ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMetadata {
    pub split_id: String,
    pub created_at_nanos: i64,
    pub sealed_at_nanos: Option<i64>,
    /// Every WAL record with an LSN up to this one is in this split or an older one.
    pub last_lsn: u64,
    pub num_docs: u64,
    /// Body bytes as received, to report bytes on disk per raw byte.
    pub raw_bytes: u64,
    pub min_timestamp_nanos: Option<i64>,
    pub max_timestamp_nanos: Option<i64>,
    /// Bytes of the split's files; known once sealed.
    pub disk_bytes: u64,
    pub services: BTreeSet<String>,
    pub versions: BTreeSet<String>,
    pub generations: BTreeSet<String>,
    pub instances: BTreeSet<String>,
    /// Per service, per image version: the earliest timestamp of its lines in this
    /// split. The server takes the minimum over all splits as a version's "first seen",
    /// which is what `version:latest` / `version:previous` order by. Splits written
    /// before this field existed read it as empty (see [`SplitMetadata::first_seen`]).
    #[serde(default)]
    pub version_first_seen: BTreeMap<String, BTreeMap<String, i64>>,
    /// In a metric split, the metric names it holds; empty in log splits.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub metrics: BTreeSet<String>,
    /// In a metric split, what each series is, by the ordinal its points carry in their
    /// `series` column; empty in log splits.
    #[serde(default, skip_serializing_if = "SeriesTable::is_empty")]
    pub series: SeriesTable,
    /// For a split compacted from others, their ids: once this split is sealed they are
    /// redundant, and a server that finds them still on disk (a crash between the two
    /// steps) deletes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

impl SplitMetadata {
    pub fn observe(
        &mut self,
        identity: &DocumentIdentity<'_>,
        timestamp_nanos: i64,
        raw_bytes: usize,
    ) {
        self.observe_documents(identity, 1, (timestamp_nanos, timestamp_nanos));
        self.raw_bytes += raw_bytes as u64;
    }

    /// Counts `documents` of one resource whose times span `(earliest, latest)`.
    fn observe_documents(
        &mut self,
        identity: &DocumentIdentity<'_>,
        documents: u64,
        (earliest, latest): (i64, i64),
    ) {
        self.num_docs += documents;
        self.min_timestamp_nanos = Some(
            self.min_timestamp_nanos
                .map_or(earliest, |t| t.min(earliest)),
        );
        self.max_timestamp_nanos = Some(self.max_timestamp_nanos.map_or(latest, |t| t.max(latest)));
        let service = identity.get("service");
        let version = identity.get("version");
        insert_if_new(&mut self.services, service);
        insert_if_new(&mut self.versions, version);
        insert_if_new(&mut self.generations, identity.get("generation"));
        insert_if_new(&mut self.instances, identity.get("instance"));
        // Look up before inserting: this runs per document, and the keys are allocated
        // only the first time a (service, version) shows up in the split.
        let versions = match self.version_first_seen.get_mut(service) {
            Some(versions) => versions,
            None => self
                .version_first_seen
                .entry(service.to_string())
                .or_default(),
        };
        match versions.get_mut(version) {
            Some(first_seen) => *first_seen = (*first_seen).min(earliest),
            None => {
                versions.insert(version.to_string(), earliest);
            }
        }
    }

    /// Adds what `other` holds (documents, time range, identity values, metrics) to this
    /// split's metadata; the series table is not merged.
    pub fn absorb(&mut self, other: &SplitMetadata) {
        self.last_lsn = self.last_lsn.max(other.last_lsn);
        self.num_docs += other.num_docs;
        self.raw_bytes += other.raw_bytes;
        self.min_timestamp_nanos = earliest(self.min_timestamp_nanos, other.min_timestamp_nanos);
        self.max_timestamp_nanos = latest(self.max_timestamp_nanos, other.max_timestamp_nanos);
        self.services.extend(other.services.iter().cloned());
        self.versions.extend(other.versions.iter().cloned());
        self.generations.extend(other.generations.iter().cloned());
        self.instances.extend(other.instances.iter().cloned());
        self.metrics.extend(other.metrics.iter().cloned());
        for (service, versions) in &other.version_first_seen {
            let mine = self.version_first_seen.entry(service.clone()).or_default();
            for (version, seen) in versions {
                let first = mine.entry(version.clone()).or_insert(*seen);
                *first = (*first).min(*seen);
            }
        }
    }

    /// Counts one metric data point, as [`SplitMetadata::observe`] counts a log line.
    /// Counts the stored points of one metric of one resource.
    pub fn observe_metric(&mut self, facts: &MetricFacts<'_>) {
        self.observe_documents(
            &facts.identity,
            facts.points,
            (facts.min_timestamp_nanos, facts.max_timestamp_nanos),
        );
        insert_if_new(&mut self.metrics, facts.metric);
    }

    /// `(service, version, earliest timestamp in this split)` for every pair the split
    /// holds. Splits from before `version_first_seen` existed only know which services
    /// and versions they hold, not which go together: they answer when that is
    /// unambiguous (one service or one version), with the split's earliest timestamp.
    pub fn first_seen(&self) -> Vec<(&str, &str, i64)> {
        let mut pairs = Vec::new();
        if !self.version_first_seen.is_empty() {
            for (service, versions) in &self.version_first_seen {
                for (version, first_seen) in versions {
                    pairs.push((service.as_str(), version.as_str(), *first_seen));
                }
            }
            return pairs;
        }
        let Some(min_timestamp) = self.min_timestamp_nanos else {
            return pairs;
        };
        if self.services.len() == 1 || self.versions.len() == 1 {
            for service in &self.services {
                for version in &self.versions {
                    pairs.push((service.as_str(), version.as_str(), min_timestamp));
                }
            }
        }
        pairs
    }

    /// Whether any document of the split may fall in `[start, end]` (nanoseconds).
    pub fn overlaps(&self, start: Option<i64>, end: Option<i64>) -> bool {
        let (Some(min), Some(max)) = (self.min_timestamp_nanos, self.max_timestamp_nanos) else {
            return false;
        };
        start.is_none_or(|s| max >= s) && end.is_none_or(|e| min <= e)
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.into_iter().chain(b).min()
}

fn latest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.into_iter().chain(b).max()
}

fn insert_if_new(set: &mut BTreeSet<String>, value: &str) {
    if !set.contains(value) {
        set.insert(value.to_string());
    }
}

/// A split open for writing: the only mutable index at any time. Log splits take
/// tantivy's documents, metric splits [`PointDocument`]s.
pub struct OpenSplit<D: Document = TantivyDocument> {
    pub directory: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
    writer: IndexWriter<D>,
    /// The writer's memory budget, which a seal's rewrite gets too.
    memory_bytes: usize,
    /// Metadata including documents added since the last commit.
    pub pending: SplitMetadata,
    /// Metadata as of the last commit: what searches may rely on.
    pub committed: SplitMetadata,
}

impl<D: Document> OpenSplit<D> {
    pub fn create(
        splits_dir: &Path,
        schema: Schema,
        settings: IndexSettings,
        created_at_nanos: i64,
        first_lsn: u64,
        threads: usize,
        memory_bytes: usize,
    ) -> anyhow::Result<Self> {
        let split_id = format!("{}-{first_lsn:016x}", created_at_nanos / 1_000_000);
        let directory = splits_dir.join(&split_id);
        let metadata = SplitMetadata {
            split_id,
            created_at_nanos,
            last_lsn: first_lsn.saturating_sub(1),
            ..Default::default()
        };
        Self::create_in(directory, schema, settings, metadata, threads, memory_bytes)
    }

    /// A new split in `directory` that starts with `metadata`.
    pub fn create_in(
        directory: PathBuf,
        schema: Schema,
        settings: IndexSettings,
        metadata: SplitMetadata,
        threads: usize,
        memory_bytes: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("creating split {}", directory.display()))?;
        let index = Index::builder()
            .schema(schema)
            .settings(settings)
            .create_in_dir(&directory)
            .with_context(|| format!("creating split index {}", directory.display()))?;
        let mut split = Self::with_index(directory, index, metadata, threads, memory_bytes)?;
        // An empty first commit gives the split its payload, so a crash at any later
        // moment leaves a split that `reopen` can read.
        split.commit()?;
        Ok(split)
    }

    /// Reopens a split that was open when the server stopped; documents added after its
    /// last commit are gone from it and come back from the WAL.
    pub fn reopen(directory: PathBuf, threads: usize, memory_bytes: usize) -> anyhow::Result<Self> {
        let index = Index::open_in_dir(&directory)
            .with_context(|| format!("opening split {}", directory.display()))?;
        let metadata = committed_metadata(&index)
            .with_context(|| format!("reading commit metadata of split {}", directory.display()))?;
        Self::with_index(directory, index, metadata, threads, memory_bytes)
    }

    fn with_index(
        directory: PathBuf,
        index: Index,
        metadata: SplitMetadata,
        threads: usize,
        memory_bytes: usize,
    ) -> anyhow::Result<Self> {
        let writer = index
            .writer_with_num_threads(threads, memory_bytes)
            .context("opening split writer")?;
        writer.set_merge_policy(Box::new(merge_policy()));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("opening split reader")?;
        Ok(OpenSplit {
            directory,
            index,
            reader,
            writer,
            memory_bytes,
            pending: metadata.clone(),
            committed: metadata,
        })
    }

    pub fn add_document(&mut self, document: D) -> anyhow::Result<()> {
        self.writer
            .add_document(document)
            .context("adding document to split")?;
        Ok(())
    }

    /// Adds `documents` as one batch: one hand-over to an indexing thread, which puts
    /// them all in the same segment.
    pub fn add_documents(&mut self, documents: Vec<D>) -> anyhow::Result<()> {
        self.writer
            .run(documents.into_iter().map(UserOperation::Add))
            .context("adding documents to split")?;
        Ok(())
    }

    pub fn has_uncommitted(&self) -> bool {
        self.pending != self.committed
    }

    /// Commits everything added so far with its metadata, and makes it searchable.
    pub fn commit(&mut self) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&self.pending).context("encoding split metadata")?;
        let mut prepared = self
            .writer
            .prepare_commit()
            .context("preparing split commit")?;
        prepared.set_payload(&payload);
        prepared.commit().context("committing split")?;
        self.reader.reload().context("reloading split reader")?;
        self.committed = self.pending.clone();
        Ok(())
    }

    /// Commits, waits for merges, and writes `split.json`: from then on the split never
    /// changes.
    ///
    /// A metric split is first rewritten as one segment in series order (see
    /// `rewrite_in_series_order`): one run per series through the whole split is what
    /// lets its columns pack small. Log splits keep their segments.
    pub fn seal(self, sealed_at_nanos: i64) -> anyhow::Result<SealedSplit> {
        self.seal_with(sealed_at_nanos, false)
    }

    /// [`OpenSplit::seal`] for a metric split whose points were added in series order
    /// by one indexing thread (a compaction): its segments are merged in that order, not
    /// rewritten.
    pub fn seal_written_in_series_order(self, sealed_at_nanos: i64) -> anyhow::Result<SealedSplit> {
        self.seal_with(sealed_at_nanos, true)
    }

    fn seal_with(
        mut self,
        sealed_at_nanos: i64,
        in_series_order: bool,
    ) -> anyhow::Result<SealedSplit> {
        self.pending.sealed_at_nanos = Some(sealed_at_nanos);
        self.commit()?;
        self.writer
            .wait_merging_threads()
            .context("waiting for split merges")?;
        let has_series = !self.committed.series.is_empty();
        if has_series && self.index.schema() == MetricSchema::new().schema() {
            if in_series_order {
                merge_in_series_order(&self.index)?;
            } else {
                let payload =
                    serde_json::to_string(&self.committed).context("encoding split metadata")?;
                rewrite_in_series_order(&self.index, &payload, self.memory_bytes)?;
            }
        } else if self.index.settings().sort_by_field.is_some() {
            // A metric split of an older server: sorted by tantivy as it was written.
            merge_into_one_segment(&self.index)?;
        }
        let mut metadata = self.committed;
        if has_series {
            write_sealed_series(&self.directory, &metadata.series)?;
        }
        metadata.disk_bytes = directory_bytes(&self.directory)?;
        write_sealed_metadata(&self.directory, &metadata)?;
        if has_series {
            // The sealed files hold the series table now; the copy in the commit payload
            // is no longer read, and is far larger.
            commit_payload(&self.index, SEALED_PAYLOAD)?;
            empty_doc_stores(&self.index, &self.directory)?;
            metadata.disk_bytes = directory_bytes(&self.directory)?;
            write_sealed_metadata(&self.directory, &metadata)?;
        }
        let reader = self
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SealedSplit {
            directory: self.directory,
            index: self.index,
            reader,
            metadata,
        })
    }
}

/// tantivy's smallest indexing memory budget, for seal steps that add no documents.
const SEALING_MEMORY_BYTES: usize = 15_000_000;

/// A writer for the steps of a seal: one thread, `memory_bytes`, and no merges of its
/// own.
fn sealing_writer<D: Document>(
    index: &Index,
    memory_bytes: usize,
) -> anyhow::Result<IndexWriter<D>> {
    let writer: IndexWriter<D> = index
        .writer_with_num_threads(1, memory_bytes)
        .context("opening split writer to seal")?;
    writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    Ok(writer)
}

/// Writes a metric split's points again, sorted by series (then time), as the split's
/// only segment, in one commit with the same payload.
///
/// Open metric splits take points in the order they arrive, so that commits do no
/// sorting (tantivy's own index sorting reorders every segment at every commit, doc store
/// included, which took a sixth of the ingest's CPU). The seal reads the committed points
/// back and adds them in order under a new commit that drops the old segments; a crash
/// before that commit leaves the split as it was. Points that outgrow the writer's memory
/// budget make more than one segment, each a stretch of the order, which are merged in
/// that order.
fn rewrite_in_series_order(
    index: &Index,
    payload: &str,
    memory_bytes: usize,
) -> anyhow::Result<()> {
    let schema = MetricSchema::new();
    let reader: IndexReader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .context("opening split reader to seal")?;
    let searcher = reader.searcher();
    let points = schema
        .stored_points(&searcher)
        .context("reading the split's points")?;
    let writer = sealing_writer::<PointDocument>(index, memory_bytes)?;
    writer
        .delete_all_documents()
        .context("replacing the split's segments")?;
    for &(key, _, segment, doc) in &points.order {
        let document = schema
            .stored_document(&points, segment, doc, key)
            .context("reading a point of the split")?;
        writer
            .add_document(document)
            .context("adding document to split")?;
    }
    commit_and_close(writer, payload)?;
    merge_in_series_order(index)
}

/// Merges the segments of a split written in series order into one, each segment's
/// points after those of the segment whose first series key is lower.
fn merge_in_series_order(index: &Index) -> anyhow::Result<()> {
    let searcher = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map(|reader: IndexReader| reader.searcher())
        .context("opening split reader to seal")?;
    if searcher.segment_readers().len() < 2 {
        return Ok(());
    }
    let mut segments = Vec::new();
    for segment in searcher.segment_readers() {
        let first_key = segment.fast_fields().u64(SERIES_FIELD)?.first(0);
        segments.push((first_key, segment.segment_id()));
    }
    drop(searcher);
    segments.sort();
    let ids: Vec<_> = segments.into_iter().map(|(_, id)| id).collect();
    merge_segments(index, &ids)
}

/// Merges every segment of `index` into one, keeping the last commit's payload.
fn merge_into_one_segment(index: &Index) -> anyhow::Result<()> {
    let segments = index
        .searchable_segment_ids()
        .context("listing split segments")?;
    if segments.len() < 2 {
        return Ok(());
    }
    merge_segments(index, &segments)
}

/// Merges `segments`, in that order, into one, keeping the last commit's payload.
fn merge_segments(index: &Index, segments: &[tantivy::index::SegmentId]) -> anyhow::Result<()> {
    let mut writer = sealing_writer::<TantivyDocument>(index, SEALING_MEMORY_BYTES)?;
    writer
        .merge(segments)
        .wait()
        .context("merging split segments")?;
    writer
        .garbage_collect_files()
        .wait()
        .context("removing merged segment files")?;
    writer
        .wait_merging_threads()
        .context("waiting for split merge")?;
    Ok(())
}

/// Replaces the doc store of every segment of a sealed metric split by an empty one.
///
/// Metric documents store no field, yet tantivy keeps an entry for each in the doc store
/// (a byte and a four-byte offset, which compress to about 2.4 bytes): as much as the
/// rest of a point. Nothing ever reads a metric document back (queries read columns and
/// the series table), so a sealed split, which takes no more documents and is never
/// merged, keeps a valid store that holds none; fetching one answers tantivy's "failed
/// to lookup doc" error. Done after `split.json` is written, so a split that may still
/// take documents (an unsealed one reopened after a crash) always has its full store,
/// and each file is replaced atomically, so a crash leaves either store.
fn empty_doc_stores(index: &Index, directory: &Path) -> anyhow::Result<()> {
    let empty = empty_store_bytes(index.settings())?;
    for segment in index.searchable_segments()? {
        let path = directory.join(segment.relative_path(SegmentComponent::Store));
        crate::fsutil::write_atomically(&path, &empty)?;
    }
    Ok(())
}

/// The bytes of a doc store with no document, footer included, as tantivy writes it.
fn empty_store_bytes(settings: &IndexSettings) -> anyhow::Result<Vec<u8>> {
    let scratch = Index::create_in_ram(Schema::builder().build());
    let path = Path::new("empty.store");
    let writer = scratch.directory().open_write(path)?;
    StoreWriter::new(
        writer,
        settings.docstore_compression,
        settings.docstore_blocksize,
        false,
    )?
    .close()?;
    Ok(scratch.directory().atomic_read(path)?)
}

/// The commit payload of a sealed split whose metadata is only in `split.json`.
const SEALED_PAYLOAD: &str = "{\"sealed\":\"see split.json\"}";

/// Commits `payload` to `index` with no other change.
fn commit_payload(index: &Index, payload: &str) -> anyhow::Result<()> {
    commit_and_close(
        sealing_writer::<TantivyDocument>(index, SEALING_MEMORY_BYTES)?,
        payload,
    )
}

/// Commits what `writer` holds with `payload`, then closes it.
fn commit_and_close<D: Document>(mut writer: IndexWriter<D>, payload: &str) -> anyhow::Result<()> {
    let mut prepared = writer.prepare_commit().context("preparing split commit")?;
    prepared.set_payload(payload);
    prepared.commit().context("committing split")?;
    writer
        .wait_merging_threads()
        .context("closing split writer")?;
    Ok(())
}

/// A sealed, immutable split.
pub struct SealedSplit {
    pub directory: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
    pub metadata: SplitMetadata,
}

impl SealedSplit {
    pub fn open(directory: PathBuf, metadata: SplitMetadata) -> anyhow::Result<SealedSplit> {
        let index = Index::open_in_dir(&directory)
            .with_context(|| format!("opening split {}", directory.display()))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SealedSplit {
            directory,
            index,
            reader,
            metadata,
        })
    }
}

pub fn read_sealed_metadata(directory: &Path) -> anyhow::Result<Option<SplitMetadata>> {
    let path = directory.join(SEALED_METADATA_FILE);
    let mut metadata: SplitMetadata = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let path = directory.join(SEALED_SERIES_FILE);
    match std::fs::read(&path) {
        Ok(compressed) => {
            let json = zstd::decode_all(compressed.as_slice())
                .with_context(|| format!("decompressing {}", path.display()))?;
            metadata.series = serde_json::from_slice(&json)
                .with_context(|| format!("parsing {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    Ok(Some(metadata))
}

/// Writes a metric split's series table beside `split.json`, in [`SEALED_SERIES_FILE`]:
/// the table is most of a sealed metric split's metadata, and its labels repeat from
/// series to series, so zstd makes it about 16 times smaller. It is written before
/// `split.json`, which is what makes the split sealed.
fn write_sealed_series(directory: &Path, series: &SeriesTable) -> anyhow::Result<()> {
    let json = serde_json::to_vec(series)?;
    let compressed = zstd::encode_all(json.as_slice(), SERIES_ZSTD_LEVEL)?;
    crate::fsutil::write_atomically(&directory.join(SEALED_SERIES_FILE), &compressed)
}

/// Writes `split.json`: the metadata without its series table (see
/// [`write_sealed_series`]).
fn write_sealed_metadata(directory: &Path, metadata: &SplitMetadata) -> anyhow::Result<()> {
    let without_series = SplitMetadata {
        series: SeriesTable::default(),
        ..metadata.clone()
    };
    let bytes = serde_json::to_vec(&without_series)?;
    crate::fsutil::write_atomically(&directory.join(SEALED_METADATA_FILE), &bytes)
}

fn committed_metadata(index: &Index) -> anyhow::Result<SplitMetadata> {
    let metas = index.load_metas()?;
    match metas.payload {
        Some(payload) => Ok(serde_json::from_str(&payload)?),
        None => anyhow::bail!("split has no commit payload"),
    }
}

/// Segments of an open split merged sixteen at a time rather than tantivy's eight: a
/// split takes a commit (a few segments) every commit interval, and merging in larger
/// steps rewrites each document fewer times, which is most of what commits cost beyond
/// indexing. Searches then see a few more segments per split.
fn merge_policy() -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_min_num_segments(16);
    policy
}

fn directory_bytes(directory: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(directory)? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            total += metadata.len();
        }
    }
    Ok(total)
}
