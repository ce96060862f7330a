//! Durable batches and read positions: how the agent delivers every line exactly once
//! across `kill -9`.
//!
//! ## On disk (`state_dir/`)
//!
//! - `agent-id` — the agent's UUID, created on first start.
//! - `spool/<sequence, 20 digits>.batch` — one file per batch that is taken but not yet
//!   committed: magic, sequence, record count, the read positions of every source
//!   *after* this batch, the zstd-compressed `ExportLogsServiceRequest`, and a CRC32 of
//!   all of it.
//! - `state` — JSON: the last committed sequence and the read positions after it.
//! - `lock` — held (`flock`) while an agent runs, so two agents never share a spool.
//!
//! ## The protocol
//!
//! 1. The collector reads lines into an open batch; positions move only in memory.
//! 2. To *take* a batch: assign the next sequence, write the spool file (temp name,
//!    fsync, rename, fsync the directory). Only then does the batch exist — it may be
//!    sent, and its sequence is used. If the write fails, neither happened.
//! 3. The shipper sends it with `epitaph-batch: <agent>/<sequence>`. Acks may come out
//!    of order; the [`AckLedger`] commits only the contiguous prefix: once every batch up
//!    to N is finished (acked, or dropped as unsendable), the state file is replaced
//!    atomically with (N, positions after N), and then spool files up to N are deleted.
//!    Deleting a finished batch earlier would be unsafe: after a crash the agent would
//!    re-read its lines and send them under a new sequence.
//! 4. On start ([`recover`]): stale temp files are removed; every spool file is
//!    verified, a torn or corrupt one (crash mid-write) is deleted — it was never sent,
//!    so its sequence was never used; files at or below the committed sequence are
//!    deleted (crash between state write and delete). The remaining batches are resent
//!    with their original sequences, reading resumes at the newest spool entry's
//!    positions (or the state file's when the spool is empty), and the next sequence
//!    is `max(committed, newest valid spool entry) + 1`, so sequences neither repeat
//!    nor skip.
//!
//! The server de-duplicates by `(agent, sequence)`, so a batch sent twice (crash after
//! the ack, before the commit) is stored once: exactly-once effect.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::batch::record_count;
use crate::sources::Positions;

const SPOOL_MAGIC: &[u8; 8] = b"EPSPOOL1";
const SPOOL_SUFFIX: &str = ".batch";
const TEMP_SUFFIX: &str = ".tmp";
/// Fast rather than small: the spool holds a few batches at most and lives briefly.
const SPOOL_ZSTD_LEVEL: i32 = 1;

/// The files under the state directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub state_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub state_file: PathBuf,
    pub agent_id_file: PathBuf,
    pub lock_file: PathBuf,
}

impl StatePaths {
    pub fn new(state_dir: &Path) -> StatePaths {
        StatePaths {
            state_dir: state_dir.to_path_buf(),
            spool_dir: state_dir.join("spool"),
            state_file: state_dir.join("state"),
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

/// A batch that is durably in the spool.
#[derive(Debug, Clone)]
pub struct SpooledBatch {
    pub sequence: u64,
    pub record_count: u64,
    pub request: Arc<ExportLogsServiceRequest>,
    /// Read positions after this batch.
    pub positions: Positions,
}

/// A batch payload encoded for the spool, sequence not yet assigned.
struct EncodedBatch {
    record_count: u64,
    positions_json: Vec<u8>,
    payload: Vec<u8>,
}

fn encode_batch(
    request: &ExportLogsServiceRequest,
    positions: &Positions,
) -> io::Result<EncodedBatch> {
    let payload = zstd::bulk::compress(&request.encode_to_vec(), SPOOL_ZSTD_LEVEL)?;
    let positions_json = serde_json::to_vec(positions).map_err(io::Error::other)?;
    Ok(EncodedBatch {
        record_count: record_count(request),
        positions_json,
        payload,
    })
}

fn spool_file_bytes(sequence: u64, batch: &EncodedBatch) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40 + batch.positions_json.len() + batch.payload.len());
    bytes.extend_from_slice(SPOOL_MAGIC);
    bytes.extend_from_slice(&sequence.to_le_bytes());
    bytes.extend_from_slice(&batch.record_count.to_le_bytes());
    bytes.extend_from_slice(&(batch.positions_json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&batch.positions_json);
    bytes.extend_from_slice(&(batch.payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&batch.payload);
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Parses and verifies a spool file; the error says what is wrong with it.
fn decode_spool_file(bytes: &[u8]) -> Result<SpooledBatch, String> {
    let Some((body, checksum)) = bytes.split_last_chunk::<4>() else {
        return Err("shorter than a checksum".to_string());
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*checksum) {
        return Err("checksum mismatch".to_string());
    }
    let mut reader = ByteReader { bytes: body };
    if reader.take(SPOOL_MAGIC.len())? != SPOOL_MAGIC {
        return Err("not a spool file".to_string());
    }
    let sequence = reader.u64()?;
    let record_count = reader.u64()?;
    let positions_len = reader.u32()? as usize;
    let positions: Positions = serde_json::from_slice(reader.take(positions_len)?)
        .map_err(|error| format!("positions: {error}"))?;
    let payload_len = reader.u32()? as usize;
    let payload = reader.take(payload_len)?;
    if !reader.bytes.is_empty() {
        return Err("trailing bytes".to_string());
    }
    let encoded =
        zstd::stream::decode_all(payload).map_err(|error| format!("decompressing: {error}"))?;
    let request = ExportLogsServiceRequest::decode(encoded.as_slice())
        .map_err(|error| format!("decoding: {error}"))?;
    Ok(SpooledBatch {
        sequence,
        record_count,
        request: Arc::new(request),
        positions,
    })
}

struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < len {
            return Err("truncated".to_string());
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("took 8 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("took 4 bytes"),
        ))
    }
}

/// What [`recover`] found in the state directory.
#[derive(Debug)]
pub struct Recovery {
    /// Every batch up to here is finished.
    pub last_acked_sequence: u64,
    /// The highest sequence ever used; the next batch gets this plus one.
    pub last_assigned_sequence: u64,
    /// Spooled batches to resend, in sequence order.
    pub batches: Vec<SpooledBatch>,
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
        spool_files.push((sequence, entry.path()));
    }
    spool_files.sort();

    let mut batches: Vec<SpooledBatch> = Vec::new();
    let mut discarded = Vec::new();
    for (sequence, path) in spool_files {
        if sequence <= last_acked_sequence {
            // Committed, but the process died before deleting the file.
            remove_file_logged(&path);
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match decode_spool_file(&bytes) {
            Ok(batch) if batch.sequence == sequence => batches.push(batch),
            Ok(batch) => {
                warn!(file = %path.display(), inner = batch.sequence, "spool file name and content disagree, discarding it");
                discarded.push(sequence);
                remove_file_logged(&path);
            }
            Err(reason) => {
                warn!(file = %path.display(), %reason, "discarding torn spool file; it was never sent");
                discarded.push(sequence);
                remove_file_logged(&path);
            }
        }
    }
    let newest_valid = batches.last().map(|batch| batch.sequence).unwrap_or(0);
    for sequence in discarded
        .iter()
        .filter(|sequence| **sequence < newest_valid)
    {
        // Writes are sequential and fsynced, so only the newest file can be torn by a
        // crash; an older one was damaged later and its lines are lost.
        error!(
            sequence,
            "a corrupt spool file preceded valid ones; the server will miss this batch"
        );
    }

    let last_assigned_sequence = last_acked_sequence.max(newest_valid);
    let positions = match (batches.last(), &state) {
        (Some(newest), _) => newest.positions.clone(),
        (None, Some(state)) => state.positions.clone(),
        (None, None) => Positions::default(),
    };
    Ok(Recovery {
        last_acked_sequence,
        last_assigned_sequence,
        first_start: state.is_none() && batches.is_empty(),
        batches,
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

/// Hands out sequences; closing it at the shutdown deadline fixes the final sequence.
#[derive(Debug)]
pub struct SequenceGate {
    state: Mutex<GateState>,
    last_assigned: AtomicU64,
}

#[derive(Debug)]
struct GateState {
    last_assigned: u64,
    closed: bool,
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
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        state.last_assigned
    }
}

/// Why a batch could not be taken; the request comes back so no record is lost.
pub enum TakeError {
    /// The gate is closed (shutdown deadline passed).
    Closed(ExportLogsServiceRequest),
    /// The spool write failed (disk full, ...); nothing was assigned.
    Io(io::Error, ExportLogsServiceRequest),
}

/// The collector's side of the spool: takes batches.
pub struct SpoolWriter {
    paths: StatePaths,
    gate: Arc<SequenceGate>,
    ledger: Arc<Mutex<AckLedger>>,
}

impl SpoolWriter {
    pub fn new(paths: StatePaths, gate: Arc<SequenceGate>, ledger: Arc<Mutex<AckLedger>>) -> Self {
        SpoolWriter {
            paths,
            gate,
            ledger,
        }
    }

    /// Whether the gate is closed: no batch will be taken any more.
    pub fn is_closed(&self) -> bool {
        self.gate
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
    }

    /// How many batches are in the spool now.
    pub fn spooled_batches(&self) -> usize {
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spooled_batches()
    }

    /// Assigns the next sequence and makes the batch durable (step 2 of the protocol).
    pub fn take(
        &self,
        request: ExportLogsServiceRequest,
        positions: Positions,
    ) -> Result<SpooledBatch, TakeError> {
        let encoded = match encode_batch(&request, &positions) {
            Ok(encoded) => encoded,
            Err(error) => return Err(TakeError::Io(error, request)),
        };
        // Held across the write so that `close` cannot return a final sequence while a
        // batch that will exist is still being written.
        let mut gate = self
            .gate
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if gate.closed {
            return Err(TakeError::Closed(request));
        }
        let sequence = gate.last_assigned + 1;
        let path = self.paths.batch_file(sequence);
        if let Err(error) = write_durably(&path, &spool_file_bytes(sequence, &encoded)) {
            // The rename may have happened before the directory fsync failed; the file
            // must not outlive the failure, or a later start would send a batch the
            // goodbye never counted.
            remove_file_logged(&path);
            return Err(TakeError::Io(error, request));
        }
        self.ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(sequence, encoded.record_count, positions.clone());
        gate.last_assigned = sequence;
        self.gate.last_assigned.store(sequence, Ordering::SeqCst);
        Ok(SpooledBatch {
            sequence,
            record_count: encoded.record_count,
            request: Arc::new(request),
            positions,
        })
    }
}

/// Tracks which spooled batches are finished and what may be committed.
#[derive(Debug)]
pub struct AckLedger {
    watermark: u64,
    pending: BTreeMap<u64, PendingBatch>,
}

#[derive(Debug)]
struct PendingBatch {
    records: u64,
    positions: Positions,
    finished: bool,
}

/// A contiguous run of finished batches to record in the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub watermark: u64,
    pub positions: Positions,
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
    pub fn new(watermark: u64) -> AckLedger {
        AckLedger {
            watermark,
            pending: BTreeMap::new(),
        }
    }

    /// Records a batch that is now in the spool. Sequences arrive in increasing order.
    pub fn register(&mut self, sequence: u64, records: u64, positions: Positions) {
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
                records,
                positions,
                finished: false,
            },
        );
    }

    /// Marks a batch acked (or dropped). Returns what can be committed now: the longest
    /// run of finished batches at the front.
    pub fn finish(&mut self, sequence: u64) -> Option<Commit> {
        match self.pending.get_mut(&sequence) {
            Some(batch) => batch.finished = true,
            None => {
                warn!(sequence, "finished a batch the ledger does not know");
                return None;
            }
        }
        let mut commit: Option<Commit> = None;
        while let Some(entry) = self.pending.first_entry() {
            if !entry.get().finished {
                break;
            }
            let (sequence, batch) = entry.remove_entry();
            self.watermark = sequence;
            let commit = commit.get_or_insert_with(|| Commit {
                watermark: sequence,
                positions: Positions::default(),
                sequences: Vec::new(),
            });
            commit.watermark = sequence;
            commit.positions = batch.positions;
            commit.sequences.push(sequence);
        }
        commit
    }

    /// The committed watermark.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Records in batches that are spooled but not finished.
    pub fn unfinished_records(&self) -> u64 {
        self.pending
            .values()
            .filter(|batch| !batch.finished)
            .map(|batch| batch.records)
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
            .filter(|batch| !batch.finished)
            .count()
    }
}

/// Step 3 of the protocol: state file first, then the spool files.
pub fn apply_commit(paths: &StatePaths, commit: &Commit) -> io::Result<()> {
    let state = State {
        last_acked_sequence: commit.watermark,
        positions: commit.positions.clone(),
    };
    write_state(paths, &state)?;
    for sequence in &commit.sequences {
        remove_file_logged(&paths.batch_file(*sequence));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::export_request;
    use crate::sources::file::{FilePosition, Fingerprint};
    use epitaph_proto::common::v1::{AnyValue, any_value};
    use epitaph_proto::logs::v1::LogRecord;
    use epitaph_proto::resource::v1::Resource;

    fn positions_at(offset: u64) -> Positions {
        Positions {
            files: vec![FilePosition {
                device: 1,
                inode: 2,
                path: "/var/log/app/web.log".to_string(),
                offset,
                fingerprint: Fingerprint::of(b"first bytes"),
            }],
        }
    }

    fn request_of(lines: &[&str]) -> ExportLogsServiceRequest {
        let records = lines
            .iter()
            .map(|line| LogRecord {
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
        paths: StatePaths,
        gate: Arc<SequenceGate>,
        ledger: Arc<Mutex<AckLedger>>,
        writer: SpoolWriter,
    }

    fn harness_after(recovery_dir: Option<tempfile::TempDir>) -> (Harness, Recovery) {
        let dir = recovery_dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let paths = StatePaths::new(dir.path());
        let recovery = recover(&paths).unwrap();
        let gate = Arc::new(SequenceGate::new(recovery.last_assigned_sequence));
        let ledger = Arc::new(Mutex::new(AckLedger::new(recovery.last_acked_sequence)));
        for batch in &recovery.batches {
            ledger.lock().unwrap().register(
                batch.sequence,
                batch.record_count,
                batch.positions.clone(),
            );
        }
        let writer = SpoolWriter::new(paths.clone(), gate.clone(), ledger.clone());
        (
            Harness {
                _dir: dir,
                paths,
                gate,
                ledger,
                writer,
            },
            recovery,
        )
    }

    fn take(harness: &Harness, lines: &[&str], offset: u64) -> SpooledBatch {
        match harness.writer.take(request_of(lines), positions_at(offset)) {
            Ok(batch) => batch,
            Err(_) => panic!("take failed"),
        }
    }

    fn finish_and_commit(harness: &Harness, sequence: u64) {
        let commit = harness.ledger.lock().unwrap().finish(sequence);
        if let Some(commit) = commit {
            apply_commit(&harness.paths, &commit).unwrap();
        }
    }

    #[test]
    fn spool_file_round_trips() {
        let batch = request_of(&["a", "b"]);
        let encoded = encode_batch(&batch, &positions_at(7)).unwrap();
        let decoded = decode_spool_file(&spool_file_bytes(9, &encoded)).unwrap();
        assert_eq!(decoded.sequence, 9);
        assert_eq!(decoded.record_count, 2);
        assert_eq!(decoded.positions, positions_at(7));
        assert_eq!(*decoded.request, batch);
    }

    #[test]
    fn every_truncation_of_a_spool_file_is_detected() {
        let encoded = encode_batch(&request_of(&["a", "b", "c"]), &positions_at(7)).unwrap();
        let bytes = spool_file_bytes(3, &encoded);
        for len in 0..bytes.len() {
            assert!(
                decode_spool_file(&bytes[..len]).is_err(),
                "accepted a {len}-byte prefix"
            );
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode_spool_file(&flipped).is_err());
    }

    #[test]
    fn first_start_has_no_state_and_sequences_start_at_one() {
        let (harness, recovery) = harness_after(None);
        assert!(recovery.first_start);
        assert_eq!(recovery.last_assigned_sequence, 0);
        assert_eq!(take(&harness, &["a"], 2).sequence, 1);
        assert_eq!(take(&harness, &["b"], 4).sequence, 2);
        assert_eq!(harness.gate.last_assigned(), 2);
    }

    #[test]
    fn positions_resume_from_newest_spool_entry() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        take(&harness, &["b"], 20);
        take(&harness, &["c"], 30);
        finish_and_commit(&harness, 1);
        let Harness { _dir: dir, .. } = harness;

        let (harness, recovery) = harness_after(Some(dir));
        assert!(!recovery.first_start);
        assert_eq!(recovery.last_acked_sequence, 1);
        assert_eq!(recovery.last_assigned_sequence, 3);
        assert_eq!(recovery.positions, positions_at(30));
        let resent: Vec<u64> = recovery
            .batches
            .iter()
            .map(|batch| batch.sequence)
            .collect();
        assert_eq!(resent, vec![2, 3]);
        assert_eq!(*recovery.batches[0].request, request_of(&["b"]));
        assert_eq!(take(&harness, &["d"], 40).sequence, 4);
    }

    #[test]
    fn positions_resume_from_state_file_when_spool_is_empty() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        take(&harness, &["b"], 20);
        finish_and_commit(&harness, 2);
        finish_and_commit(&harness, 1);
        assert!(
            fs::read_dir(&harness.paths.spool_dir)
                .unwrap()
                .next()
                .is_none()
        );
        let Harness { _dir: dir, .. } = harness;

        let (harness, recovery) = harness_after(Some(dir));
        assert!(recovery.batches.is_empty());
        assert_eq!(recovery.positions, positions_at(20));
        assert_eq!(take(&harness, &["c"], 30).sequence, 3);
    }

    #[test]
    fn sequence_is_reused_after_torn_spool_write() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        finish_and_commit(&harness, 1);
        take(&harness, &["b"], 20);
        let torn = take(&harness, &["c"], 30);
        assert_eq!(torn.sequence, 3);
        // The crash hit while sequence 3 was being written: cut its file short.
        let path = harness.paths.batch_file(3);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let Harness { _dir: dir, .. } = harness;

        let (harness, recovery) = harness_after(Some(dir));
        assert_eq!(recovery.last_assigned_sequence, 2);
        assert_eq!(recovery.batches.len(), 1);
        assert_eq!(
            recovery.positions,
            positions_at(20),
            "lines of the torn batch are read again"
        );
        assert!(!path.exists(), "the torn file is removed");
        assert_eq!(
            take(&harness, &["c"], 30).sequence,
            3,
            "its sequence was never used"
        );
    }

    #[test]
    fn stale_temp_file_is_removed_and_does_not_count() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        let temp = harness.paths.spool_dir.join(format!("{:020}.batch.tmp", 2));
        fs::write(&temp, b"half a batch").unwrap();
        let Harness { _dir: dir, .. } = harness;
        let (harness, recovery) = harness_after(Some(dir));
        assert!(!temp.exists());
        assert_eq!(recovery.last_assigned_sequence, 1);
        assert_eq!(take(&harness, &["b"], 20).sequence, 2);
    }

    #[test]
    fn failed_spool_write_uses_no_sequence() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        fs::remove_dir_all(&harness.paths.spool_dir).unwrap();
        match harness.writer.take(request_of(&["b"]), positions_at(20)) {
            Err(TakeError::Io(_, request)) => assert_eq!(request, request_of(&["b"])),
            _ => panic!("a write into a missing directory succeeded"),
        }
        assert_eq!(harness.gate.last_assigned(), 1);
        assert_eq!(harness.ledger.lock().unwrap().unfinished_batches(), 1);
        fs::create_dir_all(&harness.paths.spool_dir).unwrap();
        assert_eq!(take(&harness, &["b"], 20).sequence, 2);
    }

    #[test]
    fn committed_spool_file_left_by_a_crash_is_not_resent() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        take(&harness, &["b"], 20);
        // Crash between writing the state file and deleting the spool file.
        let commit = harness.ledger.lock().unwrap().finish(1).unwrap();
        write_state(
            &harness.paths,
            &State {
                last_acked_sequence: 1,
                positions: commit.positions,
            },
        )
        .unwrap();
        let Harness { _dir: dir, .. } = harness;

        let (harness, recovery) = harness_after(Some(dir));
        let resent: Vec<u64> = recovery
            .batches
            .iter()
            .map(|batch| batch.sequence)
            .collect();
        assert_eq!(resent, vec![2]);
        assert!(!harness.paths.batch_file(1).exists());
        assert_eq!(take(&harness, &["c"], 30).sequence, 3);
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut ledger = AckLedger::new(4);
        for sequence in 5..=8 {
            ledger.register(sequence, 10, positions_at(sequence * 100));
        }
        assert_eq!(ledger.finish(6), None);
        assert_eq!(ledger.finish(8), None);
        assert_eq!(ledger.unfinished_records(), 20);
        let commit = ledger.finish(5).unwrap();
        assert_eq!(commit.watermark, 6);
        assert_eq!(commit.positions, positions_at(600));
        assert_eq!(commit.sequences, vec![5, 6]);
        let commit = ledger.finish(7).unwrap();
        assert_eq!(commit.watermark, 8);
        assert_eq!(commit.sequences, vec![7, 8]);
        assert_eq!(ledger.unfinished_records(), 0);
        assert_eq!(ledger.watermark(), 8);
    }

    #[test]
    fn closed_gate_refuses_batches_and_returns_them() {
        let (harness, _) = harness_after(None);
        take(&harness, &["a"], 10);
        assert_eq!(harness.gate.close(), 1);
        match harness.writer.take(request_of(&["b"]), positions_at(20)) {
            Err(TakeError::Closed(request)) => assert_eq!(request, request_of(&["b"])),
            _ => panic!("a closed gate took a batch"),
        }
        assert!(!harness.paths.batch_file(2).exists());
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
