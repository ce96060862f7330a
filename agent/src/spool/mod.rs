//! Durable batches and read positions: how the agent delivers every line exactly once
//! across `kill -9`, and rides out a server that is away.
//!
//! ## On disk (`state_dir/`)
//!
//! - `agent-id` — the agent's UUID, created on first start.
//! - `spool/<sequence, 20 digits>.batch` — one file per batch that is taken but not yet
//!   committed ([`mod@format`]): a header with the sequence, record count, observed-time
//!   range, kind and the read positions of every source *after* this batch, then the
//!   zstd-compressed `ExportLogsServiceRequest`, and a CRC32 of all of it.
//! - `state` — JSON: the last committed sequence and the read positions after it.
//! - `loss` — JSON: records dropped from a full spool and not yet acknowledged by the
//!   server ([`loss`]).
//! - `lock` — held (`flock`) while an agent runs, so two agents never share a spool.
//!
//! ## The protocol
//!
//! 1. The collector reads lines into an open batch; positions move only in memory.
//! 2. To *take* a batch ([`SpoolWriter::take`]): write the spool file of the next
//!    sequence (fsync), then assign the sequence. Only then does the batch exist. If
//!    the write fails, neither happened (the file is removed; one a crash tore is found
//!    by its checksum at the next start). Before a batch is *sent*, the spool directory
//!    is fsynced ([`Spool::make_durable`]) so that its file's name survives a power
//!    loss: from then on its sequence is used. One directory fsync covers every file
//!    written before it, and it happens on the shipper's side, so the collector waits
//!    for one fsync per batch, not two.
//! 3. The shipper sends batches oldest first with `epitaph-batch: <agent>/<sequence>`,
//!    reading each back from the spool (or from a small in-memory cache of the newest
//!    ones). Acks may come out of order; the [`AckLedger`] commits only the contiguous
//!    prefix: once every batch up to N is finished (acked, or given up as unsendable),
//!    the state file is replaced atomically with (N, the positions in N's header), and
//!    then spool files up to N are deleted. Deleting a finished batch earlier would be
//!    unsafe: after a crash the agent would re-read its lines and send them under a new
//!    sequence. Committing later is safe, so the shipper commits acked batches in
//!    groups (see [`crate::ship`]): one state-file write per group instead of one per
//!    batch; a crash before the commit only means the group is sent again, under the
//!    same sequences.
//! 4. On start ([`recover`]): stale temp files are removed; files at or below the
//!    committed sequence are deleted (crash between state write and delete); files
//!    after a missing sequence are deleted (never sent: see step 2); the newest
//!    spool file is verified whole, and a torn or corrupt one (crash mid-write) is
//!    deleted — it was never sent, so its sequence was never used; older files are only
//!    read up to their header (their checksum is verified when they are sent). The
//!    remaining batches are resent with their original sequences, reading resumes at the
//!    newest spool entry's positions (or the state file's when the spool is empty), and
//!    the next sequence is `max(committed, newest valid spool entry) + 1`, so sequences
//!    neither repeat nor skip.
//!
//! The server de-duplicates by `(agent, sequence)`, so a batch sent twice (crash after
//! the ack, before the commit) is stored once: exactly-once effect.
//!
//! ## Limits
//!
//! The spool is bounded by `[spool] max_bytes` (the sum of its files' sizes, default
//! 256 MiB). While the server is slow or away, the collector keeps reading and batches
//! pile up on disk — compressed, and not in memory — to be sent oldest first when it is
//! back. Acked batches waiting for their group commit (at most 16 batches, or 1 s) no
//! longer count, though their files are still on disk. What happens when the spool is
//! full is `[spool] when_full` ([`writer`]):
//! `block` stops reading (nothing is lost while the log files exist), `drop_oldest`
//! replaces the oldest unsent batches by loss markers and reports the loss ([`loss`]).

pub mod format;
pub mod ledger;
pub mod loss;
pub mod writer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, bail};
use epitaph_proto::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{error, info, warn};

pub use format::{BatchKind, SpoolEntry, read_batch_frame, read_batch_request};
pub use ledger::{AckLedger, Commit, SequenceGate, apply_commit};
pub use loss::{LossLedger, LossRange, SPOOL_FULL_REASON};
pub use writer::{BatchCache, SpoolWriter, TakeError, Taken};

use crate::sources::Positions;
use crate::stats::AgentStats;

const SPOOL_SUFFIX: &str = ".batch";
const TEMP_SUFFIX: &str = ".tmp";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Below this a spool holds too few batches to ride out anything.
pub const MIN_SPOOL_MAX_BYTES: u64 = 16 * 1024;

/// What to do when the spool is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop reading until there is room; lines wait in their files.
    #[default]
    Block,
    /// Replace the oldest unsent batches by loss markers, count and report the loss.
    DropOldest,
}

/// The `[spool]` table of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// The most bytes of batch files the spool may hold.
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            when_full: WhenFull::Block,
        }
    }
}

/// The files under the state directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub state_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub state_file: PathBuf,
    pub loss_file: PathBuf,
    pub agent_id_file: PathBuf,
    pub lock_file: PathBuf,
}

impl StatePaths {
    pub fn new(state_dir: &Path) -> StatePaths {
        StatePaths {
            state_dir: state_dir.to_path_buf(),
            spool_dir: state_dir.join("spool"),
            state_file: state_dir.join("state"),
            loss_file: state_dir.join("loss"),
            agent_id_file: state_dir.join("agent-id"),
            lock_file: state_dir.join("lock"),
        }
    }

    pub fn batch_file(&self, sequence: u64) -> PathBuf {
        self.spool_dir.join(format!("{sequence:020}{SPOOL_SUFFIX}"))
    }

    /// Creates the directories.
    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.spool_dir)
            .with_context(|| format!("creating state directory {}", self.spool_dir.display()))
    }
}

/// Holds the state directory's lock until dropped; the kernel releases it if the process
/// dies, so a crashed agent never blocks its successor.
#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
}

/// Takes the state directory's lock, failing if another agent holds it.
pub fn lock_state_dir(paths: &StatePaths) -> anyhow::Result<StateDirLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock_file)
        .with_context(|| format!("opening {}", paths.lock_file.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(StateDirLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another epitaph-agent is running with state directory {}",
            paths.state_dir.display()
        ),
        Err(fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", paths.lock_file.display()))
        }
    }
}

/// Writes `bytes` to `path` so that after a crash the file has either its old content
/// or all of the new: temp file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(TEMP_SUFFIX);
    let temp_path = PathBuf::from(temp_name);
    let result = (|| {
        let mut file = File::create(&temp_path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp_path, path)?;
        sync_parent_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    result
}

/// Writes the file of a sequence no batch uses yet: write and fsync — no temp name and
/// rename (a crash mid-write leaves a torn file, which [`recover`] finds by its checksum
/// and deletes), and no directory fsync: the file's name becomes durable with the
/// spool's next [`Spool::make_durable`], which the shipper calls before sending it.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// The agent's persistent id, created (durably) on first start.
pub fn load_or_create_agent_id(paths: &StatePaths) -> anyhow::Result<String> {
    let path = &paths.agent_id_file;
    match fs::read_to_string(path) {
        Ok(text) => {
            let id = uuid::Uuid::parse_str(text.trim()).with_context(|| {
                format!(
                    "{} does not hold a UUID; remove it to get a new agent id",
                    path.display()
                )
            })?;
            Ok(id.to_string())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            write_durably(path, format!("{id}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            info!(agent_id = %id, "created a new agent id");
            Ok(id)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The committed state: every batch up to `last_acked_sequence` is finished, and reading
/// resumes from `positions` if the spool is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub last_acked_sequence: u64,
    pub positions: Positions,
}

pub fn read_state(paths: &StatePaths) -> anyhow::Result<Option<State>> {
    let bytes = match fs::read(&paths.state_file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", paths.state_file.display()));
        }
    };
    let state = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing state file {}", paths.state_file.display()))?;
    Ok(Some(state))
}

pub fn write_state(paths: &StatePaths, state: &State) -> io::Result<()> {
    // Serializing plain integers and strings cannot fail.
    let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
    write_durably(&paths.state_file, &bytes)
}

/// What [`recover`] found in the state directory.
#[derive(Debug)]
pub struct Recovery {
    /// Every batch up to here is finished.
    pub last_acked_sequence: u64,
    /// The highest sequence ever used; the next batch gets this plus one.
    pub last_assigned_sequence: u64,
    /// Spooled batches to resend, in sequence order.
    pub entries: Vec<SpoolEntry>,
    /// Where reading resumes.
    pub positions: Positions,
    /// No state file and no spool: the agent has never run with this state directory.
    pub first_start: bool,
}

/// Reads the state file and the spool after a (clean or unclean) stop.
pub fn recover(paths: &StatePaths) -> anyhow::Result<Recovery> {
    paths.create()?;
    remove_temp_files(&paths.state_dir)?;
    remove_temp_files(&paths.spool_dir)?;
    let state = read_state(paths)?;
    let last_acked_sequence = state
        .as_ref()
        .map(|state| state.last_acked_sequence)
        .unwrap_or(0);

    let mut spool_files = Vec::new();
    let listing = fs::read_dir(&paths.spool_dir)
        .with_context(|| format!("listing {}", paths.spool_dir.display()))?;
    for entry in listing {
        let entry = entry.with_context(|| format!("listing {}", paths.spool_dir.display()))?;
        let name = entry.file_name();
        let Some(sequence) = name
            .to_str()
            .and_then(|name| name.strip_suffix(SPOOL_SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            warn!(file = %entry.path().display(), "ignoring unexpected file in the spool");
            continue;
        };
        if sequence <= last_acked_sequence {
            // Committed, but the process died before deleting the file.
            remove_file_logged(&entry.path());
            continue;
        }
        spool_files.push((sequence, entry.path()));
    }
    spool_files.sort();
    // A batch is sent only once its file's name is durable, and names become durable in
    // sequence order (one directory fsync covers every file written before it). So
    // files after a missing sequence were never sent: their names outlived a crash
    // that the missing one did not. Their lines are read again from the positions
    // before the gap.
    let contiguous = spool_files
        .iter()
        .zip(last_acked_sequence + 1..)
        .take_while(|((sequence, _), expected)| sequence == expected)
        .count();
    for (sequence, path) in spool_files.split_off(contiguous) {
        warn!(sequence, file = %path.display(), "discarding a spool file after a gap; it was never sent");
        remove_file_logged(&path);
    }

    // Only the newest file can be torn by a crash (writes are sequential, each fsynced
    // before the next): verify it whole, and the next one if it was torn.
    let mut newest: Option<(SpoolEntry, Positions)> = None;
    while let Some((sequence, path)) = spool_files.pop() {
        let verified = fs::read(&path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| format::decode_spool_file(&bytes));
        match verified {
            Ok(decoded) if decoded.entry.sequence == sequence => {
                newest = Some((decoded.entry, decoded.positions));
                break;
            }
            Ok(decoded) => {
                warn!(file = %path.display(), inner = decoded.entry.sequence, "spool file name and content disagree, discarding it");
                remove_file_logged(&path);
            }
            Err(reason) => {
                warn!(file = %path.display(), %reason, "discarding torn spool file; it was never sent");
                remove_file_logged(&path);
            }
        }
    }
    let mut entries = Vec::with_capacity(spool_files.len() + 1);
    for (sequence, path) in spool_files {
        match format::read_entry(&path) {
            Ok((entry, _)) if entry.sequence == sequence => entries.push(entry),
            Ok(_) | Err(_) => {
                // Damaged after it was written: its lines are lost.
                error!(
                    sequence,
                    file = %path.display(),
                    "a corrupt spool file preceded valid ones; the server will miss this batch"
                );
                remove_file_logged(&path);
            }
        }
    }
    let newest_valid = newest
        .as_ref()
        .map(|(entry, _)| entry.sequence)
        .unwrap_or(0);
    // Files this start found may have names that are not durable yet (the previous run
    // crashed, the machine did not): make them durable before any is sent again.
    File::open(&paths.spool_dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("syncing {}", paths.spool_dir.display()))?;
    let positions = match (newest, &state) {
        (Some((entry, positions)), _) => {
            entries.push(entry);
            positions
        }
        (None, Some(state)) => state.positions.clone(),
        (None, None) => Positions::default(),
    };
    Ok(Recovery {
        last_acked_sequence,
        last_assigned_sequence: last_acked_sequence.max(newest_valid),
        first_start: state.is_none() && entries.is_empty(),
        entries,
        positions,
    })
}

fn remove_temp_files(dir: &Path) -> anyhow::Result<()> {
    let listing = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in listing.flatten() {
        if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
            remove_file_logged(&entry.path());
        }
    }
    Ok(())
}

fn remove_file_logged(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        warn!(file = %path.display(), %error, "cannot remove spool file");
    }
}

/// What the collector's writer, the shipper and the loss reporter share.
#[derive(Debug)]
pub struct Spool {
    pub paths: StatePaths,
    pub gate: SequenceGate,
    ledger: Mutex<AckLedger>,
    pub cache: BatchCache,
    pub loss: LossLedger,
    /// Woken when a batch becomes sendable (taken, or replaced by a marker).
    pub wakeup: Notify,
    pub stats: Arc<AgentStats>,
    /// Every spool file up to this sequence has a durable name (see
    /// [`Spool::make_durable`]); the lock serializes the directory fsyncs.
    durable_through: Mutex<u64>,
    durable_through_hint: AtomicU64,
}

impl Spool {
    /// The spool as [`recover`] found it, with the loss file, and a cache of the frames
    /// of `cache_batches` batches.
    pub fn open(
        paths: StatePaths,
        recovery: &Recovery,
        cache_batches: usize,
        stats: Arc<AgentStats>,
    ) -> anyhow::Result<Spool> {
        let loss = LossLedger::load(&paths)?;
        let mut ledger = AckLedger::new(recovery.last_acked_sequence, stats.clone());
        for entry in &recovery.entries {
            ledger.register(*entry);
        }
        Ok(Spool {
            paths,
            gate: SequenceGate::new(recovery.last_assigned_sequence),
            ledger: Mutex::new(ledger),
            cache: BatchCache::new(cache_batches),
            loss,
            wakeup: Notify::new(),
            stats,
            durable_through: Mutex::new(recovery.last_assigned_sequence),
            durable_through_hint: AtomicU64::new(recovery.last_assigned_sequence),
        })
    }

    /// Whether batch `sequence`'s file name is durable already (no fsync needed).
    pub fn is_durable(&self, sequence: u64) -> bool {
        self.durable_through_hint.load(Ordering::Acquire) >= sequence
    }

    /// Makes the names of every spool file written so far durable, if `sequence`'s is
    /// not yet: one fsync of the spool directory. The collector fsyncs each file it
    /// writes but not the directory, so that it does not wait for a second fsync per
    /// batch; the shipper calls this before sending, off the collector's thread, and
    /// one call covers every batch written meanwhile.
    pub fn make_durable(&self, sequence: u64) -> io::Result<()> {
        let mut durable_through = self
            .durable_through
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *durable_through >= sequence {
            return Ok(());
        }
        // Files up to the last assigned sequence are written and fsynced (a sequence is
        // assigned after its file is): the directory fsync below covers their names.
        let written_through = self.gate.last_assigned();
        File::open(&self.paths.spool_dir)?.sync_all()?;
        *durable_through = written_through.max(*durable_through);
        self.durable_through_hint
            .store(*durable_through, Ordering::Release);
        Ok(())
    }

    pub fn ledger(&self) -> MutexGuard<'_, AckLedger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Finishes drops that a crash interrupted between counting the loss and replacing
    /// the batch by its marker (call before anything is sent).
    pub fn complete_interrupted_drops(&self, resource: &Resource) -> anyhow::Result<()> {
        for sequence in self.loss.interrupted_drops() {
            let entry = self.ledger().entry(sequence);
            if let Some(entry) = entry
                && entry.kind == BatchKind::Data
            {
                let path = self.paths.batch_file(sequence);
                let (_, positions) = format::read_entry(&path)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("reading {}", path.display()))?;
                let marker = loss::write_loss_marker(&self.paths, resource, &entry, &positions)
                    .with_context(|| format!("replacing {} by a loss marker", path.display()))?;
                self.ledger().replace_queued(marker);
                info!(
                    sequence,
                    records = entry.record_count,
                    "finished dropping a batch after a restart"
                );
            }
            self.loss.drop_completed(sequence);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, encode_record, export_request};
    use crate::sources::file::{FilePosition, Fingerprint};
    use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
    use epitaph_proto::common::v1::{AnyValue, any_value};
    use epitaph_proto::logs::v1::LogRecord;

    pub(crate) fn positions_at(offset: u64) -> Positions {
        Positions {
            files: vec![FilePosition {
                device: 1,
                inode: 2,
                path: "/var/log/app/web.log".to_string(),
                offset,
                fingerprint: Fingerprint::of(b"first bytes"),
                copy_of: None,
            }],
            journal_cursor: None,
        }
    }

    /// One record per line, observed at 1 µs, 2 µs, ...
    pub(crate) fn request_of(lines: &[&str]) -> ExportLogsServiceRequest {
        let records = lines
            .iter()
            .enumerate()
            .map(|(index, line)| LogRecord {
                observed_time_unix_nano: (index as u64 + 1) * 1_000,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(line.to_string())),
                }),
                ..Default::default()
            })
            .collect();
        export_request(&Resource::default(), records)
    }

    struct Harness {
        _dir: tempfile::TempDir,
        spool: Arc<Spool>,
        writer: SpoolWriter,
    }

    impl Harness {
        fn paths(&self) -> &StatePaths {
            &self.spool.paths
        }

        fn into_dir(self) -> tempfile::TempDir {
            self._dir
        }
    }

    fn harness_after(dir: Option<tempfile::TempDir>, limits: SpoolConfig) -> (Harness, Recovery) {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let paths = StatePaths::new(dir.path());
        let recovery = recover(&paths).unwrap();
        let spool = Arc::new(Spool::open(paths, &recovery, 4, Arc::default()).unwrap());
        spool
            .complete_interrupted_drops(&Resource::default())
            .unwrap();
        let writer = SpoolWriter::new(spool.clone(), limits, Resource::default());
        (
            Harness {
                _dir: dir,
                spool,
                writer,
            },
            recovery,
        )
    }

    fn unlimited() -> SpoolConfig {
        SpoolConfig::default()
    }

    /// The records of `request` in a batch builder, as the collector would hold them.
    pub(crate) fn batch_of(request: &ExportLogsServiceRequest) -> BatchBuilder {
        let mut batch = BatchBuilder::new(usize::MAX, usize::MAX);
        let mut encoded = Vec::new();
        let records = request
            .resource_logs
            .iter()
            .flat_map(|resource_logs| &resource_logs.scope_logs)
            .flat_map(|scope_logs| &scope_logs.log_records);
        for record in records {
            encoded.clear();
            encode_record(record, &mut encoded);
            batch.push_encoded(&encoded, record.observed_time_unix_nano);
        }
        batch
    }

    fn take(harness: &mut Harness, lines: &[&str], offset: u64) -> Taken {
        match harness
            .writer
            .take(&batch_of(&request_of(lines)), positions_at(offset))
        {
            Ok(taken) => taken,
            Err(_) => panic!("take failed"),
        }
    }

    /// Sends and acks `sequence` (it must be the next one to send) and commits.
    fn ack(harness: &Harness, sequence: u64) {
        let commit = {
            let mut ledger = harness.spool.ledger();
            assert_eq!(ledger.next_to_send(), Some(sequence));
            ledger.finish(sequence)
        };
        if let Some(commit) = commit {
            apply_commit(harness.paths(), &commit).unwrap();
        }
    }

    fn spool_file_count(paths: &StatePaths) -> usize {
        fs::read_dir(&paths.spool_dir).unwrap().count()
    }

    #[test]
    fn first_start_has_no_state_and_sequences_start_at_one() {
        let (mut harness, recovery) = harness_after(None, unlimited());
        assert!(recovery.first_start);
        assert_eq!(recovery.last_assigned_sequence, 0);
        assert_eq!(take(&mut harness, &["a"], 2).sequence, 1);
        assert_eq!(take(&mut harness, &["b"], 4).sequence, 2);
        assert_eq!(harness.spool.gate.last_assigned(), 2);
        assert_eq!(harness.spool.stats.snapshot().spool_batches, 2);
    }

    #[test]
    fn positions_resume_from_newest_spool_entry() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        take(&mut harness, &["b"], 20);
        take(&mut harness, &["c"], 30);
        ack(&harness, 1);
        let dir = harness.into_dir();

        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        assert!(!recovery.first_start);
        assert_eq!(recovery.last_acked_sequence, 1);
        assert_eq!(recovery.last_assigned_sequence, 3);
        assert_eq!(recovery.positions, positions_at(30));
        let resent: Vec<u64> = recovery
            .entries
            .iter()
            .map(|entry| entry.sequence)
            .collect();
        assert_eq!(resent, vec![2, 3]);
        let request = read_batch_request(&harness.paths().batch_file(2), 2).unwrap();
        assert_eq!(request, request_of(&["b"]));
        assert_eq!(take(&mut harness, &["d"], 40).sequence, 4);
    }

    #[test]
    fn positions_resume_from_state_file_when_spool_is_empty() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        take(&mut harness, &["b"], 20);
        ack(&harness, 1);
        ack(&harness, 2);
        assert_eq!(spool_file_count(harness.paths()), 0);
        let dir = harness.into_dir();

        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        assert!(recovery.entries.is_empty());
        assert_eq!(recovery.positions, positions_at(20));
        assert_eq!(take(&mut harness, &["c"], 30).sequence, 3);
    }

    #[test]
    fn sequence_is_reused_after_torn_spool_write() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        ack(&harness, 1);
        take(&mut harness, &["b"], 20);
        let torn = take(&mut harness, &["c"], 30);
        assert_eq!(torn.sequence, 3);
        // The crash hit while sequence 3 was being written: cut its file short.
        let path = harness.paths().batch_file(3);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let dir = harness.into_dir();

        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        assert_eq!(recovery.last_assigned_sequence, 2);
        assert_eq!(recovery.entries.len(), 1);
        assert_eq!(
            recovery.positions,
            positions_at(20),
            "lines of the torn batch are read again"
        );
        assert!(!path.exists(), "the torn file is removed");
        assert_eq!(
            take(&mut harness, &["c"], 30).sequence,
            3,
            "its sequence was never used"
        );
    }

    #[test]
    fn files_after_a_gap_were_never_sent_and_are_discarded() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        take(&mut harness, &["b"], 20);
        take(&mut harness, &["c"], 30);
        // A power loss kept the names of batches 1 and 3 but not that of batch 2: none
        // of them was sent (sending needs the directory synced past them).
        fs::remove_file(harness.paths().batch_file(2)).unwrap();
        let batch_3 = harness.paths().batch_file(3);
        let dir = harness.into_dir();

        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        let resent: Vec<u64> = recovery
            .entries
            .iter()
            .map(|entry| entry.sequence)
            .collect();
        assert_eq!(resent, vec![1]);
        assert!(!batch_3.exists());
        assert_eq!(recovery.last_assigned_sequence, 1);
        assert_eq!(
            recovery.positions,
            positions_at(10),
            "the lines of 2 and 3 are read again"
        );
        assert_eq!(take(&mut harness, &["b"], 20).sequence, 2);
    }

    #[test]
    fn one_directory_sync_makes_every_batch_written_before_it_durable() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        take(&mut harness, &["b"], 20);
        take(&mut harness, &["c"], 30);
        assert!(!harness.spool.is_durable(1));
        harness.spool.make_durable(1).unwrap();
        assert!(harness.spool.is_durable(3));
        assert!(!harness.spool.is_durable(4));
        take(&mut harness, &["d"], 40);
        assert!(!harness.spool.is_durable(4));
        harness.spool.make_durable(4).unwrap();
        assert!(harness.spool.is_durable(4));
        // What a start finds is made durable before anything is sent.
        let dir = harness.into_dir();
        let (harness, _) = harness_after(Some(dir), unlimited());
        assert!(harness.spool.is_durable(4));
    }

    #[test]
    fn stale_temp_file_is_removed_and_does_not_count() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        let temp = harness
            .paths()
            .spool_dir
            .join(format!("{:020}.batch.tmp", 2));
        fs::write(&temp, b"half a batch").unwrap();
        let dir = harness.into_dir();
        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        assert!(!temp.exists());
        assert_eq!(recovery.last_assigned_sequence, 1);
        assert_eq!(take(&mut harness, &["b"], 20).sequence, 2);
    }

    #[test]
    fn failed_spool_write_uses_no_sequence() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        fs::remove_dir_all(&harness.paths().spool_dir).unwrap();
        match harness
            .writer
            .take(&batch_of(&request_of(&["b"])), positions_at(20))
        {
            Err(TakeError::Io(_)) => {}
            _ => panic!("a write into a missing directory succeeded"),
        }
        assert_eq!(harness.spool.gate.last_assigned(), 1);
        assert_eq!(harness.spool.ledger().unfinished_batches(), 1);
        fs::create_dir_all(&harness.paths().spool_dir).unwrap();
        assert_eq!(take(&mut harness, &["b"], 20).sequence, 2);
    }

    #[test]
    fn committed_spool_file_left_by_a_crash_is_not_resent() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        take(&mut harness, &["b"], 20);
        // Crash between writing the state file and deleting the spool file.
        write_state(
            harness.paths(),
            &State {
                last_acked_sequence: 1,
                positions: positions_at(10),
            },
        )
        .unwrap();
        let batch_1 = harness.paths().batch_file(1);
        let dir = harness.into_dir();

        let (mut harness, recovery) = harness_after(Some(dir), unlimited());
        let resent: Vec<u64> = recovery
            .entries
            .iter()
            .map(|entry| entry.sequence)
            .collect();
        assert_eq!(resent, vec![2]);
        assert!(!batch_1.exists());
        assert_eq!(take(&mut harness, &["c"], 30).sequence, 3);
    }

    #[test]
    fn closed_gate_refuses_batches_and_returns_them() {
        let (mut harness, _) = harness_after(None, unlimited());
        take(&mut harness, &["a"], 10);
        assert_eq!(harness.spool.gate.close(), 1);
        match harness
            .writer
            .take(&batch_of(&request_of(&["b"])), positions_at(20))
        {
            Err(TakeError::Closed) => {}
            _ => panic!("a closed gate took a batch"),
        }
        assert!(!harness.paths().batch_file(2).exists());
    }

    /// Sixty lines that compress poorly, so that a loss marker is much smaller.
    fn noisy_lines(tag: &str) -> Vec<String> {
        let mut state: u64 = tag.bytes().map(u64::from).sum();
        (0..60)
            .map(|n| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{tag} {n} {state:016x}{:016x}", state.rotate_left(29))
            })
            .collect()
    }

    fn take_lines(harness: &mut Harness, lines: &[String], offset: u64) -> Result<Taken, ()> {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        match harness
            .writer
            .take(&batch_of(&request_of(&lines)), positions_at(offset))
        {
            Ok(taken) => Ok(taken),
            Err(TakeError::Io(error)) => panic!("spool write failed: {error}"),
            Err(_) => {
                eprintln!("refused at {} bytes", harness.writer.spool_bytes());
                Err(())
            }
        }
    }

    #[test]
    fn full_spool_in_block_mode_refuses_until_acks_free_room() {
        let (mut harness, _) = harness_after(None, unlimited());
        let batch_bytes = {
            take_lines(&mut harness, &noisy_lines("probe"), 1).unwrap();
            harness.writer.spool_bytes()
        };
        let limits = SpoolConfig {
            max_bytes: batch_bytes * 3,
            when_full: WhenFull::Block,
        };
        let mut writer = SpoolWriter::new(harness.spool.clone(), limits, Resource::default());
        std::mem::swap(&mut harness.writer, &mut writer);
        take_lines(&mut harness, &noisy_lines("b"), 2).unwrap();
        take_lines(&mut harness, &noisy_lines("c"), 3).unwrap();
        match harness
            .writer
            .take(&batch_of(&request_of(&["d"; 60])), positions_at(4))
        {
            Err(TakeError::Full) => {}
            _ => panic!("a full spool took a batch"),
        }
        assert_eq!(harness.spool.gate.last_assigned(), 3, "no sequence used");
        ack(&harness, 1);
        take_lines(&mut harness, &noisy_lines("d"), 4).unwrap();
        assert_eq!(harness.spool.stats.snapshot().dropped_records, 0);
    }

    #[test]
    fn full_spool_in_drop_oldest_mode_replaces_the_oldest_unsent_batch_by_a_marker() {
        let (mut harness, _) = harness_after(None, unlimited());
        take_lines(&mut harness, &noisy_lines("a"), 1).unwrap();
        let batch_bytes = harness.writer.spool_bytes();
        let limits = SpoolConfig {
            max_bytes: batch_bytes * 7 / 2,
            when_full: WhenFull::DropOldest,
        };
        let mut writer = SpoolWriter::new(harness.spool.clone(), limits, Resource::default());
        std::mem::swap(&mut harness.writer, &mut writer);
        take_lines(&mut harness, &noisy_lines("b"), 2).unwrap();
        take_lines(&mut harness, &noisy_lines("c"), 3).unwrap();
        // Batch 1 is being sent: it cannot be dropped, batch 2 goes.
        assert_eq!(harness.spool.ledger().next_to_send(), Some(1));
        take_lines(&mut harness, &noisy_lines("d"), 4).unwrap();
        assert!(harness.writer.spool_bytes() <= batch_bytes * 7 / 2);
        assert_eq!(
            harness.spool.ledger().entry(3).unwrap().kind,
            BatchKind::Data,
            "one drop was enough"
        );
        let entry = harness.spool.ledger().entry(2).unwrap();
        assert_eq!(entry.kind, BatchKind::LossMarker);
        assert_eq!(entry.record_count, 1);
        let marker = read_batch_request(&harness.paths().batch_file(2), 2).unwrap();
        let record = &marker.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(
                "epitaph-agent dropped 60 records (spool full)".into()
            ))
        );
        assert_eq!(harness.spool.stats.snapshot().dropped_records, 60);
        assert_eq!(harness.spool.loss.unacknowledged_records(), 60);
        let loss = harness.spool.loss.begin_report().unwrap().unwrap();
        assert_eq!(loss.first_observed_unix_nano, 1_000);
        assert_eq!(loss.last_observed_unix_nano, 60_000);
        // The marker keeps the dropped batch's read positions.
        let (_, positions) = format::read_entry(&harness.paths().batch_file(2)).unwrap();
        assert_eq!(positions, positions_at(2));
    }

    #[test]
    fn drop_interrupted_by_a_crash_is_finished_at_the_next_start() {
        let (mut harness, _) = harness_after(None, unlimited());
        take_lines(&mut harness, &noisy_lines("a"), 1).unwrap();
        take_lines(&mut harness, &noisy_lines("b"), 2).unwrap();
        // The crash came after the loss was counted, before the file was replaced.
        let entry = harness.spool.ledger().entry(1).unwrap();
        harness.spool.loss.record_drop(&entry).unwrap();
        let dir = harness.into_dir();

        let (harness, recovery) = harness_after(Some(dir), unlimited());
        assert_eq!(recovery.entries.len(), 2);
        let entry = harness.spool.ledger().entry(1).unwrap();
        assert_eq!(entry.kind, BatchKind::LossMarker);
        assert_eq!(
            harness.spool.loss.unacknowledged_records(),
            60,
            "counted once"
        );
        assert_eq!(
            harness.spool.ledger().entry(2).unwrap().kind,
            BatchKind::Data
        );
    }

    #[test]
    fn agent_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path());
        paths.create().unwrap();
        let first = load_or_create_agent_id(&paths).unwrap();
        let second = load_or_create_agent_id(&paths).unwrap();
        assert_eq!(first, second);
        assert!(uuid::Uuid::parse_str(&first).is_ok());
    }

    #[test]
    fn second_agent_on_the_same_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path());
        paths.create().unwrap();
        let _held = lock_state_dir(&paths).unwrap();
        let error = lock_state_dir(&paths).unwrap_err();
        assert!(
            error.to_string().contains("another epitaph-agent"),
            "{error}"
        );
    }
}
