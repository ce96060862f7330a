//! Tailing log files matched by glob patterns.
//!
//! ## Identity
//!
//! A file is tracked by its `(device, inode)` pair, not its path: a log that is renamed
//! away keeps being read through its open descriptor until it has been out of every
//! pattern for [`ROTATED_FILE_GRACE`] and has nothing left to read, and a new file that
//! takes the old path is a new file. A pattern that matches a symlink follows it: the
//! identity is the target's, so a link re-pointed to a new file (`current.log ->
//! app-2.log`) drains the old target and reads the new one from its start.
//!
//! Inode numbers are reused once a file is deleted, so each position also stores a
//! fingerprint — a hash of the file's first bytes (up to [`FINGERPRINT_BYTES`]) — and a
//! restored position only applies to a file whose first bytes still hash the same. A file
//! that shrinks below the read offset, or whose first bytes change, was truncated (or
//! rewritten): it is read again from its start.
//!
//! ## Rotation
//!
//! - **rename and create** (`app.log` → `app.log.1`, new `app.log`): the renamed file is
//!   the same inode and is drained to its end through the open descriptor; the new file
//!   is new and read from offset 0. If the agent restarts before it drained the renamed
//!   file, the saved position is matched to it by inode and fingerprint in the directory
//!   the file was last seen in, so its last lines are still read.
//! - **copytruncate** (`app.log` copied to `app.log.1`, then `app.log` truncated): the
//!   truncation is seen as the size dropping below the read offset (or the first bytes
//!   changing), and the file is read again from 0. The lines between the agent's last
//!   read and the copy are only in the copy, so the source looks for it: a sibling whose
//!   name starts with the file's stem and whose first bytes carry the truncated file's
//!   fingerprint. Found, it is read from the truncated file's committed offset to its
//!   end and then forgotten. If the copy matches a pattern itself (`app.log*`), it is
//!   recognised when it appears as a *copy* of a tailed file (same fingerprint) and held
//!   unread; it is read from that offset once its original is truncated, or from its
//!   start if no truncation follows within [`ROTATED_FILE_GRACE`] (then it was an
//!   independent file that merely starts with the same bytes).
//!
//!   **The copytruncate race**, inherent to the method: lines written between the end of
//!   the copy and the truncation are in neither file and are lost, whatever the reader
//!   does — unless the agent happened to read them in that window. logrotate's docs say
//!   as much; `create` (rename) rotation has no such window and should be preferred.
//!   Also, a writer that does not open its log with `O_APPEND` keeps writing at its old
//!   offset after the truncation, which leaves a hole of NUL bytes at the start.
//!
//! ## Reading and positions
//!
//! Each tracked file has two offsets. The *read* offset is how far lines have been handed
//! to the collector (or to the multiline assembler); the *committed* offset is just past
//! the last line that is in a batch, and is what [`FileSource::positions`] reports and
//! the spool makes durable. The collector calls [`FileSource::advance`] once a record is
//! in the open batch. If it cannot take what it read (the spool refused a batch), it
//! hands the records back with [`FileSource::rewind`], which moves every read offset back
//! to the committed one: the lines are read again later. Records whose file was truncated
//! meanwhile cannot be read again; `rewind` keeps them in memory and hands them out
//! first. A truncation bumps the file's *generation*, and an `advance` for an older
//! generation is ignored, so a record of the old content never moves the offset in the
//! new content.
//!
//! Reading never consumes a partial line: a line is only handed out with its trailing
//! `\n`, so a writer that is halfway through a line is never split into two records. The
//! exception is an explicit final drain (shutdown, or a rotated-away file being retired),
//! where an unterminated last line is sent as it is.
//!
//! Lines are records: the trailing `\n` or `\r\n` is stripped, bytes that are not UTF-8
//! are replaced by U+FFFD (lossy conversion — OTLP string values must be UTF-8, and a log
//! line with one bad byte is still worth shipping), and a line longer than
//! [`MAX_RECORD_BYTES`] is cut at that length and flagged `truncated`, its remainder
//! skipped up to the next newline. With a multiline rule, lines are joined into events
//! first (see [`super::multiline`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{self, File, Metadata};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::multiline::{Assembler, Event, MultilineRule, RawLine};

/// The longest record body; longer lines are cut here and flagged as truncated.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// How many leading bytes of a file its fingerprint covers.
pub const FINGERPRINT_BYTES: u64 = 256;
/// How long a file that no longer matches any pattern (renamed or deleted) keeps being
/// read, so that the last lines a writer puts in a rotated file are not lost; also how
/// long a suspected copy waits for its original to be truncated.
pub const ROTATED_FILE_GRACE: Duration = Duration::from_secs(5);
/// A new file is taken for a copy of a tailed one only if the tailed file's fingerprint
/// covers at least this many bytes: two files that merely start with the same short
/// header are not copies of each other.
const MIN_COPY_FINGERPRINT_BYTES: u64 = 64;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileKey {
    pub device: u64,
    pub inode: u64,
}

impl FileKey {
    fn of(metadata: &Metadata) -> FileKey {
        FileKey {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes (FNV-1a, 64 bit: stable across builds, unlike
/// std's `DefaultHasher`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint {
            len: bytes.len() as u64,
            hash,
        }
    }
}

/// The durable read mark of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub device: u64,
    pub inode: u64,
    /// Where the file was last seen; used to find it again if it was renamed while the
    /// agent was down (identity is device, inode and fingerprint).
    pub path: String,
    /// Byte offset just past the last line that is in a batch.
    pub offset: u64,
    pub fingerprint: Fingerprint,
    /// Set while the file is held unread as a copy of this tailed file (copytruncate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<FileKey>,
}

impl FilePosition {
    pub fn key(&self) -> FileKey {
        FileKey {
            device: self.device,
            inode: self.inode,
        }
    }
}

/// One record read from a file (a line, or a multiline event), not yet consumed.
#[derive(Debug, Clone)]
pub struct FileLine {
    pub key: FileKey,
    /// The file's generation when this was read; pass it to [`FileSource::advance`].
    pub generation: u64,
    pub path: Arc<str>,
    pub file_name: Arc<str>,
    pub text: String,
    pub truncated: bool,
    /// The file offset just past this record's last line; pass it to
    /// [`FileSource::advance`].
    pub end_offset: u64,
    /// How many physical lines it holds (more than one for a multiline event).
    pub line_count: u32,
}

/// What one [`FileSource::read_available`] call found.
#[derive(Debug, Default)]
pub struct ReadLines {
    pub lines: Vec<FileLine>,
    /// Some file had more to read than the per-file budget allowed.
    pub more_available: bool,
}

/// A file held unread because it looks like a copy of a tailed file.
#[derive(Debug, Clone, Copy)]
struct Shadow {
    original: FileKey,
    since: Instant,
}

struct TrackedFile {
    file: File,
    path: PathBuf,
    path_text: Arc<str>,
    file_name: Arc<str>,
    /// Committed: just past the last line that is in a batch.
    offset: u64,
    /// Just past the last line handed out or held by the assembler.
    read_offset: u64,
    /// Bumped when the file is truncated, so stale records cannot move `offset`.
    generation: u64,
    fingerprint: Fingerprint,
    /// When the file stopped matching every pattern; `None` while it matches.
    unseen_since: Option<Instant>,
    copy_of: Option<Shadow>,
    /// A rotated copy found by the source itself: read to its end, then forgotten.
    retire_when_drained: bool,
    assembler: Assembler,
}

impl TrackedFile {
    fn new(file: File, path: PathBuf, offset: u64, fingerprint: Fingerprint) -> TrackedFile {
        let (path_text, file_name) = path_strings(&path);
        TrackedFile {
            file,
            path,
            path_text,
            file_name,
            offset,
            read_offset: offset,
            generation: 0,
            fingerprint,
            unseen_since: None,
            copy_of: None,
            retire_when_drained: false,
            assembler: Assembler::default(),
        }
    }

    fn rename(&mut self, path: PathBuf) {
        let (path_text, file_name) = path_strings(&path);
        self.path = path;
        self.path_text = path_text;
        self.file_name = file_name;
    }

    fn record(&self, key: FileKey, event: Event) -> FileLine {
        FileLine {
            key,
            generation: self.generation,
            path: self.path_text.clone(),
            file_name: self.file_name.clone(),
            text: event.text,
            truncated: event.truncated,
            end_offset: event.end_offset,
            line_count: event.line_count,
        }
    }

    /// Whether the file is on its way out: read it to its end, final partial line
    /// included, and forget it once nothing is left.
    fn retiring(&self, now: Instant) -> bool {
        self.retire_when_drained
            || self
                .unseen_since
                .is_some_and(|since| now.saturating_duration_since(since) >= ROTATED_FILE_GRACE)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

fn path_strings(path: &Path) -> (Arc<str>, Arc<str>) {
    let path_text: Arc<str> = path.to_string_lossy().into();
    let file_name: Arc<str> = path
        .file_name()
        .map(|name| name.to_string_lossy().into())
        .unwrap_or_else(|| path_text.clone());
    (path_text, file_name)
}

/// A truncation seen by a scan (or at start), waiting for its copy to be looked for.
struct Truncation {
    key: FileKey,
    path: PathBuf,
    /// The committed offset in the old content: where a copy resumes.
    committed_offset: u64,
    /// The read offset in the old content: a copy shorter than this lacks lines that
    /// only the open event still holds.
    read_offset: u64,
    fingerprint: Fingerprint,
    /// The multiline event that was being assembled from the old content.
    open_event: Option<FileLine>,
}

/// Tails every file matched by a set of glob patterns.
pub struct FileSource {
    patterns: Vec<String>,
    tracked: BTreeMap<FileKey, TrackedFile>,
    /// Positions from the spool or state file that no file has claimed yet.
    restored: HashMap<FileKey, FilePosition>,
    /// Paths already reported as unreadable, so a bad permission is logged once.
    unreadable: HashSet<PathBuf>,
    multiline: Option<MultilineRule>,
    /// Records whose file was truncated while they were in memory: they cannot be read
    /// again, so they are handed out before anything else.
    orphans: VecDeque<FileLine>,
}

impl FileSource {
    /// Expands the patterns once and starts tracking every file found. A file with a
    /// restored position (same device, inode and fingerprint) resumes there; any other
    /// file starts at its end when `start_existing_at_end` (the agent's first start
    /// without `read_from_beginning`), else at its beginning. Files found by later
    /// scans are always read from their beginning: they are new. A restored position
    /// that no pattern matches any more is looked for by inode in its old directory
    /// (the file was rotated while the agent was down) and drained.
    pub fn open(
        patterns: Vec<String>,
        restored: &[FilePosition],
        start_existing_at_end: bool,
    ) -> FileSource {
        let restored = restored
            .iter()
            .map(|position| (position.key(), position.clone()))
            .collect();
        let mut source = FileSource {
            patterns,
            tracked: BTreeMap::new(),
            restored,
            unreadable: HashSet::new(),
            multiline: None,
            orphans: VecDeque::new(),
        };
        let now = Instant::now();
        let mut truncations = Vec::new();
        source.discover(start_existing_at_end, now, &mut truncations);
        source.find_rotated_restored_files(now);
        for truncation in truncations {
            source.recover_from_truncation(truncation);
        }
        for position in source.restored.values() {
            info!(path = %position.path, "previously tailed file not found; it resumes if it reappears");
        }
        source
    }

    /// Joins lines into multiline events by `rule` (none: one record per line).
    pub fn with_multiline(mut self, rule: Option<MultilineRule>) -> FileSource {
        self.multiline = rule;
        self
    }

    /// How many files are being tailed.
    pub fn tracked_count(&self) -> usize {
        self.tracked.len()
    }

    /// Finds new files, notices files that no longer match, detects truncation and
    /// looks for the copies of truncated files. Call it only when every record handed
    /// out has been advanced past or rewound.
    pub fn scan(&mut self) {
        let now = Instant::now();
        let mut truncations = Vec::new();
        self.discover(false, now, &mut truncations);
        self.detect_truncation(&mut truncations);
        for truncation in truncations {
            self.recover_from_truncation(truncation);
        }
        self.settle_suspected_copies(now);
    }

    fn discover(
        &mut self,
        start_new_files_at_end: bool,
        now: Instant,
        truncations: &mut Vec<Truncation>,
    ) {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for pattern in &self.patterns {
            let paths = match glob::glob(pattern) {
                Ok(paths) => paths,
                Err(error) => {
                    // Config validation parses every pattern, so this cannot happen.
                    warn!(%pattern, %error, "invalid file pattern");
                    continue;
                }
            };
            for entry in paths {
                let path = match entry {
                    Ok(path) => path,
                    Err(error) => {
                        debug!(%error, "cannot read a directory while expanding a pattern");
                        continue;
                    }
                };
                // `metadata` follows symlinks: a link's identity is its target's.
                let metadata = match fs::metadata(&path) {
                    Ok(metadata) if metadata.is_file() => metadata,
                    _ => continue,
                };
                let key = FileKey::of(&metadata);
                if seen.insert(key) {
                    found.push((path, metadata, key));
                } // else: the same file through a second pattern or a link
            }
        }
        // Known files first, so that a copy is compared with its original even when the
        // pattern lists the copy before it.
        found.sort_by_key(|(_, _, key)| {
            !(self.tracked.contains_key(key) || self.restored.contains_key(key))
        });
        for (path, metadata, key) in found {
            self.consider(
                path,
                &metadata,
                key,
                start_new_files_at_end,
                now,
                truncations,
            );
        }
        for (key, tracked) in &mut self.tracked {
            if seen.contains(key) {
                tracked.unseen_since = None;
            } else if tracked.unseen_since.is_none() && !tracked.retire_when_drained {
                debug!(path = %tracked.path_text, "file no longer matches, draining it");
                tracked.unseen_since = Some(now);
            }
        }
    }

    fn consider(
        &mut self,
        path: PathBuf,
        metadata: &Metadata,
        key: FileKey,
        start_at_end: bool,
        now: Instant,
        truncations: &mut Vec<Truncation>,
    ) {
        if let Some(tracked) = self.tracked.get_mut(&key) {
            if tracked.path != path {
                info!(from = %tracked.path_text, to = %path.display(), "tailed file was renamed");
                tracked.rename(path);
            }
            return;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                if self.unreadable.insert(path.clone()) {
                    warn!(path = %path.display(), %error, "cannot open log file");
                }
                return;
            }
        };
        self.unreadable.remove(&path);
        let size = metadata.len();
        let fingerprint = match read_fingerprint(&file, size) {
            Ok(fingerprint) => fingerprint,
            Err(error) => {
                warn!(path = %path.display(), %error, "cannot read log file");
                return;
            }
        };
        let (offset, copy_of, reason) = match self.restored.remove(&key) {
            Some(position) => match fingerprint_matches(&file, size, position.fingerprint) {
                Ok(true) if size >= position.offset => {
                    let copy_of = position.copy_of.map(|original| Shadow {
                        original,
                        since: now,
                    });
                    (position.offset, copy_of, "resuming")
                }
                Ok(same_start) => {
                    truncations.push(Truncation {
                        key,
                        path: path.clone(),
                        committed_offset: position.offset,
                        read_offset: position.offset,
                        fingerprint: position.fingerprint,
                        open_event: None,
                    });
                    let reason = if same_start {
                        "truncated while the agent was away"
                    } else {
                        "rewritten, or its inode reused, while the agent was away"
                    };
                    (0, None, reason)
                }
                Err(error) => {
                    warn!(path = %path.display(), %error, "cannot read log file");
                    return;
                }
            },
            None if start_at_end => (size, None, "existed before the agent's first start"),
            None => match self.original_of_copy(&file, size) {
                Some(original) => (
                    0,
                    Some(Shadow {
                        original,
                        since: now,
                    }),
                    "looks like a copy of a tailed file; held unread unless that file is truncated",
                ),
                None => (0, None, "new file"),
            },
        };
        info!(path = %path.display(), offset, reason, "tailing file");
        let mut tracked = TrackedFile::new(file, path, offset, fingerprint);
        tracked.copy_of = copy_of;
        self.tracked.insert(key, tracked);
    }

    /// The tailed file that `file` (new, `size` bytes) starts exactly like, if any.
    fn original_of_copy(&self, file: &File, size: u64) -> Option<FileKey> {
        let prefix = read_prefix(file, size.min(FINGERPRINT_BYTES)).ok()?;
        self.tracked
            .iter()
            .find(|(_, tracked)| {
                let len = tracked.fingerprint.len;
                tracked.copy_of.is_none()
                    && len >= MIN_COPY_FINGERPRINT_BYTES
                    && prefix.len() as u64 >= len
                    && Fingerprint::of(&prefix[..len as usize]) == tracked.fingerprint
            })
            .map(|(key, _)| *key)
    }

    /// Restored positions that no pattern matched: the file may have been rotated away
    /// (renamed in its directory) while the agent was down. Found by inode and
    /// fingerprint, it is drained like any rotated file.
    fn find_rotated_restored_files(&mut self, now: Instant) {
        let unclaimed: Vec<FilePosition> = self
            .restored
            .values()
            .filter(|position| position.copy_of.is_none())
            .cloned()
            .collect();
        for position in unclaimed {
            let Some(directory) = Path::new(&position.path).parent() else {
                continue;
            };
            let Ok(listing) = fs::read_dir(directory) else {
                continue;
            };
            for entry in listing.flatten() {
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if !metadata.is_file() || FileKey::of(&metadata) != position.key() {
                    continue;
                }
                let path = entry.path();
                let Ok(file) = File::open(&path) else {
                    break;
                };
                let size = metadata.len();
                let same_file = fingerprint_matches(&file, size, position.fingerprint)
                    .unwrap_or(false)
                    && size >= position.offset;
                if !same_file {
                    break;
                }
                let Ok(fingerprint) = read_fingerprint(&file, size) else {
                    break;
                };
                info!(from = %position.path, to = %path.display(), offset = position.offset, "found a file rotated while the agent was away; draining it");
                let mut tracked = TrackedFile::new(file, path, position.offset, fingerprint);
                tracked.unseen_since = Some(now);
                self.tracked.insert(position.key(), tracked);
                self.restored.remove(&position.key());
                break;
            }
        }
    }

    fn detect_truncation(&mut self, truncations: &mut Vec<Truncation>) {
        for (key, tracked) in &mut self.tracked {
            if tracked.copy_of.is_some() {
                continue; // held unread: nothing to lose
            }
            let size = match tracked.size() {
                Ok(size) => size,
                Err(error) => {
                    warn!(path = %tracked.path_text, %error, "cannot stat log file");
                    continue;
                }
            };
            let same_start = match fingerprint_matches(&tracked.file, size, tracked.fingerprint) {
                Ok(same_start) => same_start,
                Err(error) => {
                    warn!(path = %tracked.path_text, %error, "cannot read log file");
                    continue;
                }
            };
            if size < tracked.read_offset || !same_start {
                warn!(
                    path = %tracked.path_text,
                    offset = tracked.offset,
                    size,
                    "log file was truncated or rewritten, reading it again from the start"
                );
                let open_event = tracked
                    .assembler
                    .take()
                    .map(|event| tracked.record(*key, event));
                truncations.push(Truncation {
                    key: *key,
                    path: tracked.path.clone(),
                    committed_offset: tracked.offset,
                    read_offset: tracked.read_offset,
                    fingerprint: tracked.fingerprint,
                    open_event,
                });
                tracked.offset = 0;
                tracked.read_offset = 0;
                tracked.generation += 1;
            }
            if !same_start || tracked.fingerprint.len < FINGERPRINT_BYTES.min(size) {
                match read_fingerprint(&tracked.file, size) {
                    Ok(fingerprint) => tracked.fingerprint = fingerprint,
                    Err(error) => warn!(path = %tracked.path_text, %error, "cannot read log file"),
                }
            }
        }
    }

    /// After a truncation, reads what the agent had not yet committed from the file's
    /// copy (copytruncate), if there is one that holds it; otherwise hands out the event
    /// that was being assembled from the old content as it is.
    fn recover_from_truncation(&mut self, truncation: Truncation) {
        let Truncation {
            key,
            path,
            committed_offset,
            read_offset,
            fingerprint,
            open_event,
        } = truncation;
        let mut recovered_from_copy = false;
        let shadow = self
            .tracked
            .iter()
            .find(|(_, tracked)| tracked.copy_of.is_some_and(|shadow| shadow.original == key))
            .map(|(shadow_key, _)| *shadow_key);
        if let Some(shadow_key) = shadow {
            let tracked = self.tracked.get_mut(&shadow_key).expect("found above");
            tracked.copy_of = None;
            let size = tracked.size().unwrap_or(0);
            if size >= read_offset {
                tracked.offset = committed_offset;
                tracked.read_offset = committed_offset;
                recovered_from_copy = true;
            } else {
                // Everything in it was read through the original already.
                tracked.offset = size;
                tracked.read_offset = size;
            }
            info!(copy = %tracked.path_text, offset = tracked.offset, "reading the rest of a truncated file from its copy");
        } else if committed_offset > 0
            && let Some(copy) =
                find_rotated_copy(&path, fingerprint, committed_offset, &self.tracked)
            && copy.size >= read_offset
        {
            info!(copy = %copy.path.display(), offset = committed_offset, "reading the rest of a truncated file from its rotated copy");
            let mut tracked =
                TrackedFile::new(copy.file, copy.path, committed_offset, copy.fingerprint);
            tracked.retire_when_drained = true;
            self.tracked.insert(copy.key, tracked);
            recovered_from_copy = true;
        }
        if !recovered_from_copy && let Some(event) = open_event {
            self.orphans.push_back(event);
        }
    }

    /// A suspected copy whose original was not truncated within the grace period is an
    /// independent file after all: read it from its start.
    fn settle_suspected_copies(&mut self, now: Instant) {
        for tracked in self.tracked.values_mut() {
            let Some(shadow) = tracked.copy_of else {
                continue;
            };
            if now.saturating_duration_since(shadow.since) >= ROTATED_FILE_GRACE {
                info!(path = %tracked.path_text, "suspected copy was not followed by a truncation; reading it as a file of its own");
                tracked.copy_of = None;
            }
        }
    }

    /// Reads the complete lines after each file's read offset, up to about
    /// `budget_per_file` bytes per file, and returns the finished records (lines, or
    /// multiline events). When `draining`, an unterminated last line is taken too and
    /// every open multiline event is finished (shutdown). Files that no longer match any
    /// pattern are retired here once they have been gone for [`ROTATED_FILE_GRACE`] and
    /// are read to their end.
    ///
    /// Committed positions do not move until [`FileSource::advance`] is called for each
    /// record.
    pub fn read_available(&mut self, budget_per_file: usize, draining: bool) -> ReadLines {
        let now = Instant::now();
        let mut read = ReadLines {
            lines: self.orphans.drain(..).collect(),
            more_available: false,
        };
        let mut retired = Vec::new();
        let mut events = Vec::new();
        for (key, tracked) in &mut self.tracked {
            let retiring = tracked.retiring(now);
            if tracked.copy_of.is_some() {
                if retiring {
                    retired.push(*key);
                }
                continue;
            }
            let take_final_partial = draining || retiring;
            let outcome = match read_lines(
                &tracked.file,
                tracked.read_offset,
                budget_per_file,
                take_final_partial,
            ) {
                Ok(outcome) => outcome,
                Err(error) => {
                    warn!(path = %tracked.path_text, %error, "cannot read log file");
                    continue;
                }
            };
            read.more_available |= outcome.hit_budget;
            let nothing_read = outcome.lines.is_empty();
            for line in outcome.lines {
                tracked.read_offset = line.end_offset;
                match &self.multiline {
                    Some(rule) => tracked.assembler.push(rule, line, now, &mut events),
                    None => events.push(line.into()),
                }
            }
            if let Some(rule) = &self.multiline {
                if take_final_partial && !outcome.hit_budget {
                    tracked.assembler.flush(&mut events);
                } else {
                    tracked.assembler.flush_if_idle(rule, now, &mut events);
                }
            }
            let emitted = !events.is_empty();
            for event in events.drain(..) {
                read.lines.push(tracked.record(*key, event));
            }
            if retiring && nothing_read && !emitted && !tracked.assembler.is_open() {
                retired.push(*key);
            }
        }
        for key in retired {
            if let Some(tracked) = self.tracked.remove(&key) {
                info!(path = %tracked.path_text, "stopped tailing file that no longer matches");
            }
        }
        read
    }

    /// Marks everything up to `end_offset` of a file as consumed (in a batch). A record
    /// of an older generation (read before the file was truncated) moves nothing.
    pub fn advance(&mut self, key: FileKey, generation: u64, end_offset: u64) {
        let Some(tracked) = self.tracked.get_mut(&key) else {
            return;
        };
        if tracked.generation != generation {
            return;
        }
        debug_assert!(end_offset >= tracked.offset, "positions only move forward");
        debug_assert!(
            end_offset <= tracked.read_offset,
            "advance only past what was read"
        );
        tracked.offset = end_offset;
    }

    /// Gives back records the collector could not take: every file is read again from
    /// its committed offset (open multiline events are forgotten and re-assembled), and
    /// records that cannot be read again (their file was truncated) are kept, in order,
    /// to be handed out first.
    pub fn rewind(&mut self, unaccepted: Vec<FileLine>) {
        for tracked in self.tracked.values_mut() {
            tracked.read_offset = tracked.offset;
            tracked.assembler.clear();
        }
        for line in unaccepted.into_iter().rev() {
            if !self.can_read_again(&line) {
                self.orphans.push_front(line);
            }
        }
    }

    /// Whether a record handed out can be read again from its file after a
    /// [`FileSource::rewind`] (false once its file was truncated or forgotten).
    pub fn can_read_again(&self, line: &FileLine) -> bool {
        self.tracked
            .get(&line.key)
            .is_some_and(|tracked| tracked.generation == line.generation)
    }

    /// The committed read marks of every tracked file.
    pub fn positions(&self) -> Vec<FilePosition> {
        self.tracked
            .iter()
            .map(|(key, tracked)| FilePosition {
                device: key.device,
                inode: key.inode,
                path: tracked.path_text.to_string(),
                offset: tracked.offset,
                fingerprint: tracked.fingerprint,
                copy_of: tracked.copy_of.map(|shadow| shadow.original),
            })
            .collect()
    }
}

/// A rotated copy of a truncated file.
struct RotatedCopy {
    path: PathBuf,
    file: File,
    key: FileKey,
    size: u64,
    fingerprint: Fingerprint,
}

/// Looks beside `original` (through symlinks: rotation happens at the target) for an
/// untracked file whose name starts with the original's stem (`app.log.1`,
/// `app.log-20260101`, `app-1.log` for `app.log`), which is longer than `longer_than`
/// and starts with the bytes `fingerprint` was taken of. The newest such file wins.
fn find_rotated_copy(
    original: &Path,
    fingerprint: Fingerprint,
    longer_than: u64,
    tracked: &BTreeMap<FileKey, TrackedFile>,
) -> Option<RotatedCopy> {
    if fingerprint.len == 0 {
        return None; // an empty prefix matches anything
    }
    let original = fs::canonicalize(original).unwrap_or_else(|_| original.to_path_buf());
    let directory = original.parent()?;
    let name = original.file_name()?;
    let stem = original.file_stem()?.to_string_lossy().into_owned();
    let mut best: Option<(std::time::SystemTime, RotatedCopy)> = None;
    for entry in fs::read_dir(directory).ok()?.flatten() {
        let entry_name = entry.file_name();
        if entry_name == name || !entry_name.to_string_lossy().starts_with(&stem) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let key = FileKey::of(&metadata);
        if !metadata.is_file() || metadata.len() <= longer_than || tracked.contains_key(&key) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if !fingerprint_matches(&file, metadata.len(), fingerprint).unwrap_or(false) {
            continue;
        }
        let modified = metadata.modified().unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_some_and(|(newest, _)| *newest >= modified) {
            continue;
        }
        let Ok(own_fingerprint) = read_fingerprint(&file, metadata.len()) else {
            continue;
        };
        let copy = RotatedCopy {
            path,
            file,
            key,
            size: metadata.len(),
            fingerprint: own_fingerprint,
        };
        best = Some((modified, copy));
    }
    best.map(|(_, copy)| copy)
}

fn read_prefix(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0; len as usize];
    let mut filled = 0;
    while filled < buffer.len() {
        let read = file.read_at(&mut buffer[filled..], filled as u64)?;
        if read == 0 {
            break; // shrank meanwhile
        }
        filled += read;
    }
    buffer.truncate(filled);
    Ok(buffer)
}

fn read_fingerprint(file: &File, size: u64) -> io::Result<Fingerprint> {
    Ok(Fingerprint::of(&read_prefix(
        file,
        size.min(FINGERPRINT_BYTES),
    )?))
}

/// Whether the file still starts with the bytes `fingerprint` was taken of.
fn fingerprint_matches(file: &File, size: u64, fingerprint: Fingerprint) -> io::Result<bool> {
    if size < fingerprint.len {
        return Ok(false);
    }
    let prefix = read_prefix(file, fingerprint.len)?;
    Ok(Fingerprint::of(&prefix) == fingerprint)
}

struct ReadOutcome {
    lines: Vec<RawLine>,
    hit_budget: bool,
}

/// Reads lines from `start`, at most about `budget` bytes of them.
fn read_lines(
    file: &File,
    start: u64,
    budget: usize,
    take_final_partial: bool,
) -> io::Result<ReadOutcome> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader.seek(SeekFrom::Start(start))?;
    let mut offset = start;
    let mut outcome = ReadOutcome {
        lines: Vec::new(),
        hit_budget: false,
    };
    let mut content = Vec::new();
    loop {
        if offset - start >= budget as u64 {
            outcome.hit_budget = true;
            return Ok(outcome);
        }
        content.clear();
        let line = read_one_line(&mut reader, &mut content)?;
        if line.consumed == 0 {
            return Ok(outcome);
        }
        if !line.terminated && !take_final_partial {
            return Ok(outcome); // a writer is halfway through this line
        }
        offset += line.consumed;
        let (text, truncated) = line_text(&mut content, line.length);
        outcome.lines.push(RawLine {
            text,
            truncated,
            end_offset: offset,
        });
        if !line.terminated {
            return Ok(outcome);
        }
    }
}

struct LineExtent {
    /// Bytes consumed, including the newline.
    consumed: u64,
    /// Length of the line without its newline.
    length: u64,
    terminated: bool,
}

/// Reads one line, keeping at most `MAX_RECORD_BYTES + 1` of its bytes in `content`
/// (one more than the cap, so that a `\r` just past the cap can be told apart from
/// real overflow).
fn read_one_line(reader: &mut impl BufRead, content: &mut Vec<u8>) -> io::Result<LineExtent> {
    let keep = MAX_RECORD_BYTES + 1;
    let mut line = LineExtent {
        consumed: 0,
        length: 0,
        terminated: false,
    };
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(line);
        }
        let (chunk, used, terminated) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(newline) => (&buffer[..newline], newline + 1, true),
            None => (buffer, buffer.len(), false),
        };
        let room = keep.saturating_sub(content.len());
        content.extend_from_slice(&chunk[..chunk.len().min(room)]);
        line.length += chunk.len() as u64;
        line.consumed += used as u64;
        reader.consume(used);
        if terminated {
            line.terminated = true;
            return Ok(line);
        }
    }
}

/// Turns a line's kept bytes into a record body: strips a trailing `\r`, cuts at
/// [`MAX_RECORD_BYTES`] (never inside a UTF-8 sequence) and converts lossily.
fn line_text(content: &mut Vec<u8>, length: u64) -> (String, bool) {
    let mut length = length;
    if content.len() as u64 == length && content.last() == Some(&b'\r') {
        content.pop();
        length -= 1;
    }
    let truncated = length > MAX_RECORD_BYTES as u64;
    if truncated {
        content.truncate(MAX_RECORD_BYTES);
        trim_incomplete_utf8_tail(content);
    }
    let text = match std::str::from_utf8(content) {
        Ok(text) => text.to_string(),
        Err(_) => String::from_utf8_lossy(content).into_owned(),
    };
    (text, truncated)
}

/// Drops a UTF-8 sequence cut short at the end of `bytes` by truncation.
fn trim_incomplete_utf8_tail(bytes: &mut Vec<u8>) {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // continuation byte: look further back for the sequence start
        }
        let expected = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        if expected > back {
            bytes.truncate(len - back);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text).unwrap();
    }

    /// Reads everything available and consumes it, as the collector does.
    fn consume(source: &mut FileSource, draining: bool) -> Vec<String> {
        source.scan();
        let read = source.read_available(usize::MAX, draining);
        for line in &read.lines {
            source.advance(line.key, line.generation, line.end_offset);
        }
        read.lines.into_iter().map(|line| line.text).collect()
    }

    fn sorted(mut lines: Vec<String>) -> Vec<String> {
        lines.sort();
        lines
    }

    fn pattern(dir: &Path) -> Vec<String> {
        vec![format!("{}/*.log", dir.display())]
    }

    fn numbered_lines(prefix: &str, range: std::ops::Range<usize>) -> String {
        range
            .map(|n| format!("{prefix} line number {n:04} with some padding to make it longer\n"))
            .collect()
    }

    #[test]
    fn partial_line_is_not_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(&path, b"one\ntw");
        assert_eq!(consume(&mut source, false), vec!["one"]);
        assert_eq!(source.positions()[0].offset, 4);
        assert!(consume(&mut source, false).is_empty());
        append(&path, b"o\nthr");
        assert_eq!(consume(&mut source, false), vec!["two"]);
        // At shutdown the unterminated last line goes out as it is.
        assert_eq!(consume(&mut source, true), vec!["thr"]);
        assert_eq!(source.positions()[0].offset, 11);
    }

    #[test]
    fn truncated_file_is_read_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(
            &path,
            b"first line of the old content\nsecond line of the old content\n",
        );
        assert_eq!(consume(&mut source, false).len(), 2);
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"after\n");
        assert_eq!(consume(&mut source, false), vec!["after"]);
    }

    #[test]
    fn rewritten_file_longer_than_the_offset_is_read_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(&path, b"a\n");
        assert_eq!(consume(&mut source, false), vec!["a"]);
        std::fs::write(&path, b"bb\ncc\n").unwrap();
        assert_eq!(consume(&mut source, false), vec!["bb", "cc"]);
    }

    #[test]
    fn existing_files_start_at_their_end_on_first_start_and_new_files_at_their_start() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("old.log"), b"before the agent\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], true);
        append(&dir.path().join("old.log"), b"after the agent\n");
        append(&dir.path().join("new.log"), b"in a new file\n");
        assert_eq!(
            sorted(consume(&mut source, false)),
            vec!["after the agent", "in a new file"]
        );
    }

    #[test]
    fn read_from_beginning_reads_existing_files_whole() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("old.log"), b"before the agent\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        assert_eq!(consume(&mut source, false), vec!["before the agent"]);
    }

    #[test]
    fn restored_position_resumes_and_reused_inode_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"shipped\nnot yet\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        let read = source.read_available(usize::MAX, false);
        source.advance(read.lines[0].key, 0, read.lines[0].end_offset);
        let positions = source.positions();
        drop(source);

        let mut resumed = FileSource::open(pattern(dir.path()), &positions, true);
        assert_eq!(consume(&mut resumed, false), vec!["not yet"]);

        // Same device and inode but different first bytes: another file.
        let mut foreign = positions.clone();
        foreign[0].fingerprint = Fingerprint::of(b"something else entirely");
        let mut reused = FileSource::open(pattern(dir.path()), &foreign, true);
        assert_eq!(consume(&mut reused, false), vec!["shipped", "not yet"]);
    }

    #[test]
    fn crlf_is_stripped_and_invalid_utf8_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"windows\r\nbad \xff byte\n\nlast\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        assert_eq!(
            consume(&mut source, false),
            vec!["windows", "bad \u{fffd} byte", "", "last"]
        );
    }

    #[test]
    fn long_line_is_truncated_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let mut long = "é".repeat(MAX_RECORD_BYTES); // two bytes each: twice the cap
        long.push('\n');
        append(&path, long.as_bytes());
        append(&path, b"short\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        source.scan();
        let read = source.read_available(usize::MAX, false);
        assert_eq!(read.lines.len(), 2);
        assert!(read.lines[0].truncated);
        assert_eq!(read.lines[0].text.len(), MAX_RECORD_BYTES);
        assert!(read.lines[0].text.chars().all(|c| c == 'é'));
        assert!(!read.lines[1].truncated);
        assert_eq!(read.lines[1].text, "short");
    }

    #[test]
    fn renamed_file_is_drained_and_its_replacement_read_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(&path, b"one\n");
        assert_eq!(consume(&mut source, false), vec!["one"]);
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        append(&rotated, b"late write to the rotated file\n");
        append(&path, b"fresh\n");
        assert_eq!(
            sorted(consume(&mut source, false)),
            vec!["fresh", "late write to the rotated file"]
        );
        assert_eq!(source.tracked_count(), 2);
    }

    #[test]
    fn file_rotated_while_the_agent_was_down_is_found_by_inode_and_drained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"shipped\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        assert_eq!(consume(&mut source, false), vec!["shipped"]);
        let positions = source.positions();
        drop(source);

        append(&path, b"written before the rotation\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, b"new file\n");
        let mut restarted = FileSource::open(pattern(dir.path()), &positions, false);
        assert_eq!(
            sorted(consume(&mut restarted, false)),
            vec!["new file", "written before the rotation"]
        );
    }

    #[test]
    fn copytruncate_reads_the_unread_tail_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(&path, numbered_lines("old", 0..10).as_bytes());
        assert_eq!(consume(&mut source, false).len(), 10);
        // Written after the agent's last read, then copied and truncated away.
        append(&path, numbered_lines("old", 10..15).as_bytes());
        std::fs::copy(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"after the truncation\n");
        let lines = consume(&mut source, false);
        let mut expected: Vec<String> = numbered_lines("old", 10..15)
            .lines()
            .map(str::to_string)
            .collect();
        expected.push("after the truncation".to_string());
        assert_eq!(sorted(lines), sorted(expected));
        // The copy is forgotten once drained; nothing is read twice.
        assert!(consume(&mut source, false).is_empty());
        assert!(consume(&mut source, false).is_empty());
        assert_eq!(source.tracked_count(), 1);
    }

    #[test]
    fn copy_matching_the_pattern_is_held_until_its_original_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let patterns = vec![format!("{}/app.log*", dir.path().display())];
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(patterns, &[], false);
        append(&path, numbered_lines("old", 0..10).as_bytes());
        assert_eq!(consume(&mut source, false).len(), 10);
        append(&path, numbered_lines("old", 10..12).as_bytes());
        std::fs::copy(&path, dir.path().join("app.log.1")).unwrap();
        // The copy is seen before the truncation: it is held, not read from its start.
        let lines = consume(&mut source, false);
        assert_eq!(lines.len(), 2, "only the original's new lines: {lines:?}");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"after\n");
        assert_eq!(consume(&mut source, false), vec!["after"]);
        assert!(consume(&mut source, false).is_empty());
        let positions = source.positions();
        assert!(positions.iter().all(|position| position.copy_of.is_none()));
    }

    #[test]
    fn symlink_is_followed_and_repointing_it_reads_the_new_target() {
        let dir = tempfile::tempdir().unwrap();
        let targets = dir.path().join("targets");
        let links = dir.path().join("links");
        std::fs::create_dir_all(&targets).unwrap();
        std::fs::create_dir_all(&links).unwrap();
        let first = targets.join("app-1.txt");
        append(&first, b"");
        let link = links.join("current.log");
        std::os::unix::fs::symlink(&first, &link).unwrap();
        let mut source = FileSource::open(pattern(&links), &[], false);
        append(&first, b"through the link\n");
        source.scan();
        let read = source.read_available(usize::MAX, false);
        assert_eq!(read.lines.len(), 1);
        assert_eq!(&*read.lines[0].file_name, "current.log");
        let target_metadata = std::fs::metadata(&first).unwrap();
        assert_eq!(
            read.lines[0].key.inode,
            target_metadata.ino(),
            "the target's identity"
        );
        source.advance(read.lines[0].key, 0, read.lines[0].end_offset);

        let second = targets.join("app-2.txt");
        append(&second, b"new target\n");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&second, &link).unwrap();
        append(&first, b"last words of the old target\n");
        assert_eq!(
            sorted(consume(&mut source, false)),
            vec!["last words of the old target", "new target"]
        );
    }

    #[test]
    fn deleted_and_recreated_file_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        append(&path, b"before\n");
        assert_eq!(consume(&mut source, false), vec!["before"]);
        std::fs::remove_file(&path).unwrap();
        append(&path, b"recreated\n");
        assert_eq!(consume(&mut source, false), vec!["recreated"]);
    }

    #[test]
    fn budget_limits_one_read_and_reports_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"aaaa\nbbbb\ncccc\n");
        let mut source = FileSource::open(pattern(dir.path()), &[], false);
        let read = source.read_available(6, false);
        assert_eq!(read.lines.len(), 2);
        assert!(read.more_available);
    }

    fn multiline_source(dir: &Path) -> FileSource {
        let rule = MultilineRule::new(r"^\d{4}", 1024, Duration::from_secs(3600)).unwrap();
        FileSource::open(pattern(dir), &[], false).with_multiline(Some(rule))
    }

    #[test]
    fn open_multiline_event_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = multiline_source(dir.path());
        append(
            &path,
            b"2026-01-01 first\n  more\n2026-01-01 second\n  detail\n",
        );
        assert_eq!(
            consume(&mut source, false),
            vec!["2026-01-01 first\n  more"]
        );
        // Committed only past the first event: the second one is still open.
        assert_eq!(source.positions()[0].offset, 24);
        let positions = source.positions();
        drop(source);
        // A restart reads the open event's lines again.
        let rule = MultilineRule::new(r"^\d{4}", 1024, Duration::from_secs(3600)).unwrap();
        let mut restarted =
            FileSource::open(pattern(dir.path()), &positions, false).with_multiline(Some(rule));
        assert_eq!(
            consume(&mut restarted, true),
            vec!["2026-01-01 second\n  detail"]
        );
    }

    #[test]
    fn rewind_reads_unaccepted_records_and_open_events_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = multiline_source(dir.path());
        append(&path, b"2026 a\n a2\n2026 b\n2026 c\n c2\n");
        source.scan();
        let read = source.read_available(usize::MAX, false);
        assert_eq!(read.lines.len(), 2); // `c` is still open
        source.advance(read.lines[0].key, 0, read.lines[0].end_offset);
        source.rewind(read.lines[1..].to_vec());
        assert_eq!(consume(&mut source, true), vec!["2026 b", "2026 c\n c2"]);
    }

    #[test]
    fn open_event_of_a_file_truncated_without_a_copy_is_still_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"");
        let mut source = multiline_source(dir.path());
        append(
            &path,
            b"2026 an event that is still open\n  with a continuation\n",
        );
        assert!(consume(&mut source, false).is_empty());
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"2026 new\n");
        let lines = consume(&mut source, true);
        assert_eq!(
            lines,
            vec![
                "2026 an event that is still open\n  with a continuation",
                "2026 new"
            ]
        );
        assert_eq!(
            source.positions()[0].offset,
            9,
            "the old event moved nothing"
        );
    }
}
