//! Tailing log files matched by glob patterns.
//!
//! A file is tracked by its `(device, inode)` pair, not its path: a log that is renamed
//! away keeps being read through its open descriptor until it has been out of every
//! pattern for [`ROTATED_FILE_GRACE`] and has nothing left to read, and a new file that
//! takes the old path is a new file. Inode numbers are reused once a file is deleted, so
//! each position also stores a fingerprint — a hash of the file's first bytes (up to
//! [`FINGERPRINT_BYTES`]) — and a restored position only applies to a file whose first
//! bytes still hash the same. A file that shrinks below the read offset, or whose first
//! bytes change, was truncated (or rewritten): it is read again from its start.
//!
//! Reading never consumes a partial line: a line is only handed out with its trailing
//! `\n`, so a writer that is halfway through a line is never split into two records. The
//! exception is an explicit final drain (shutdown, or a rotated-away file being
//! retired), where an unterminated last line is sent as it is.
//!
//! Lines are records: the trailing `\n` or `\r\n` is stripped, bytes that are not UTF-8
//! are replaced by U+FFFD (lossy conversion — OTLP string values must be UTF-8, and a log
//! line with one bad byte is still worth shipping), and a line longer than
//! [`MAX_RECORD_BYTES`] is cut at that length and flagged `truncated`, its remainder
//! skipped up to the next newline.
//!
//! Positions are only moved by [`FileSource::advance`], which the collector calls after
//! a line is in the open batch; [`FileSource::read_available`] itself has no side effect
//! on positions.
//!
//! Later work (copytruncate races, multiline joining) fits here without changing that
//! contract.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

/// The longest record body; longer lines are cut here and flagged as truncated.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// How many leading bytes of a file its fingerprint covers.
pub const FINGERPRINT_BYTES: u64 = 256;
/// How long a file that no longer matches any pattern (renamed or deleted) keeps being
/// read, so that the last lines a writer puts in a rotated file are not lost.
pub const ROTATED_FILE_GRACE: Duration = Duration::from_secs(5);
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    pub device: u64,
    pub inode: u64,
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
    /// Where the file was last seen; informational (identity is device and inode).
    pub path: String,
    /// Byte offset just past the last line that is in a batch.
    pub offset: u64,
    pub fingerprint: Fingerprint,
}

impl FilePosition {
    pub fn key(&self) -> FileKey {
        FileKey {
            device: self.device,
            inode: self.inode,
        }
    }
}

/// One line read from a file, not yet consumed.
#[derive(Debug, Clone)]
pub struct FileLine {
    pub key: FileKey,
    pub path: Arc<str>,
    pub file_name: Arc<str>,
    pub text: String,
    pub truncated: bool,
    /// The file offset just past this line; pass it to [`FileSource::advance`].
    pub end_offset: u64,
}

/// What one [`FileSource::read_available`] call found.
#[derive(Debug, Default)]
pub struct ReadLines {
    pub lines: Vec<FileLine>,
    /// Some file had more to read than the per-file budget allowed.
    pub more_available: bool,
}

struct TrackedFile {
    file: File,
    path: PathBuf,
    path_text: Arc<str>,
    file_name: Arc<str>,
    offset: u64,
    fingerprint: Fingerprint,
    /// When the file stopped matching every pattern; `None` while it matches.
    unseen_since: Option<Instant>,
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
            fingerprint,
            unseen_since: None,
        }
    }

    fn rename(&mut self, path: PathBuf) {
        let (path_text, file_name) = path_strings(&path);
        self.path = path;
        self.path_text = path_text;
        self.file_name = file_name;
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

/// Tails every file matched by a set of glob patterns.
pub struct FileSource {
    patterns: Vec<String>,
    tracked: BTreeMap<FileKey, TrackedFile>,
    /// Positions from the spool or state file that no file has claimed yet.
    restored: HashMap<FileKey, FilePosition>,
    /// Paths already reported as unreadable, so a bad permission is logged once.
    unreadable: HashSet<PathBuf>,
}

impl FileSource {
    /// Expands the patterns once and starts tracking every file found. A file with a
    /// restored position (same device, inode and fingerprint) resumes there; any other
    /// file starts at its end when `start_existing_at_end` (the agent's first start
    /// without `read_from_beginning`), else at its beginning. Files found by later
    /// scans are always read from their beginning: they are new.
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
        };
        source.discover(start_existing_at_end);
        for position in source.restored.values() {
            info!(path = %position.path, "previously tailed file not found; it resumes if it reappears");
        }
        source
    }

    /// How many files are being tailed.
    pub fn tracked_count(&self) -> usize {
        self.tracked.len()
    }

    /// Finds new files, notices files that no longer match, and detects truncation.
    pub fn scan(&mut self) {
        self.discover(false);
        self.detect_truncation();
    }

    fn discover(&mut self, start_new_files_at_end: bool) {
        let mut seen = HashSet::new();
        for pattern in self.patterns.clone() {
            let paths = match glob::glob(&pattern) {
                Ok(paths) => paths,
                Err(error) => {
                    // Config validation parses every pattern, so this cannot happen.
                    warn!(%pattern, %error, "invalid file pattern");
                    continue;
                }
            };
            for entry in paths {
                match entry {
                    Ok(path) => self.consider(path, start_new_files_at_end, &mut seen),
                    Err(error) => {
                        debug!(%error, "cannot read a directory while expanding a pattern")
                    }
                }
            }
        }
        let now = Instant::now();
        for (key, tracked) in &mut self.tracked {
            if seen.contains(key) {
                tracked.unseen_since = None;
            } else if tracked.unseen_since.is_none() {
                debug!(path = %tracked.path_text, "file no longer matches, draining it");
                tracked.unseen_since = Some(now);
            }
        }
    }

    fn consider(&mut self, path: PathBuf, start_at_end: bool, seen: &mut HashSet<FileKey>) {
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => metadata,
            _ => return,
        };
        let key = FileKey {
            device: metadata.dev(),
            inode: metadata.ino(),
        };
        if !seen.insert(key) {
            return; // the same file through a second pattern or a link
        }
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
        let (offset, reason) = match self.restored.remove(&key) {
            Some(position) => match fingerprint_matches(&file, size, position.fingerprint) {
                Ok(true) if size < position.offset => (0, "truncated while the agent was away"),
                Ok(true) => (position.offset, "resuming"),
                Ok(false) => (0, "inode reused by a new file"),
                Err(error) => {
                    warn!(path = %path.display(), %error, "cannot read log file");
                    return;
                }
            },
            None if start_at_end => (size, "existed before the agent's first start"),
            None => (0, "new file"),
        };
        let fingerprint = match read_fingerprint(&file, size) {
            Ok(fingerprint) => fingerprint,
            Err(error) => {
                warn!(path = %path.display(), %error, "cannot read log file");
                return;
            }
        };
        info!(path = %path.display(), offset, reason, "tailing file");
        self.tracked
            .insert(key, TrackedFile::new(file, path, offset, fingerprint));
    }

    fn detect_truncation(&mut self) {
        for tracked in self.tracked.values_mut() {
            let size = match tracked.file.metadata() {
                Ok(metadata) => metadata.len(),
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
            if size < tracked.offset || !same_start {
                warn!(
                    path = %tracked.path_text,
                    offset = tracked.offset,
                    size,
                    "log file was truncated or rewritten, reading it again from the start"
                );
                tracked.offset = 0;
            }
            if !same_start || tracked.fingerprint.len < FINGERPRINT_BYTES.min(size) {
                match read_fingerprint(&tracked.file, size) {
                    Ok(fingerprint) => tracked.fingerprint = fingerprint,
                    Err(error) => warn!(path = %tracked.path_text, %error, "cannot read log file"),
                }
            }
        }
    }

    /// Reads the complete lines after each file's position, up to about `budget_per_file`
    /// bytes per file. With `take_final_partial`, an unterminated last line is returned
    /// too (shutdown). Files that no longer match any pattern are retired here once they
    /// have been gone for [`ROTATED_FILE_GRACE`] and are read to their end.
    ///
    /// Positions do not move until [`FileSource::advance`] is called for each line.
    pub fn read_available(
        &mut self,
        budget_per_file: usize,
        take_final_partial: bool,
    ) -> ReadLines {
        let now = Instant::now();
        let mut read = ReadLines::default();
        let mut retired = Vec::new();
        for (key, tracked) in &mut self.tracked {
            let retiring = tracked
                .unseen_since
                .is_some_and(|since| now.duration_since(since) >= ROTATED_FILE_GRACE);
            let mut emit = |text: String, truncated: bool, end_offset: u64| {
                read.lines.push(FileLine {
                    key: *key,
                    path: tracked.path_text.clone(),
                    file_name: tracked.file_name.clone(),
                    text,
                    truncated,
                    end_offset,
                });
            };
            let outcome = read_lines(
                &tracked.file,
                tracked.offset,
                budget_per_file,
                take_final_partial || retiring,
                &mut emit,
            );
            match outcome {
                Ok(outcome) => {
                    read.more_available |= outcome.hit_budget;
                    if retiring && outcome.lines == 0 {
                        retired.push(*key);
                    }
                }
                Err(error) => warn!(path = %tracked.path_text, %error, "cannot read log file"),
            }
        }
        for key in retired {
            if let Some(tracked) = self.tracked.remove(&key) {
                info!(path = %tracked.path_text, "stopped tailing file that no longer matches");
            }
        }
        read
    }

    /// Marks everything up to `end_offset` of a file as consumed.
    pub fn advance(&mut self, key: FileKey, end_offset: u64) {
        if let Some(tracked) = self.tracked.get_mut(&key) {
            debug_assert!(end_offset >= tracked.offset, "positions only move forward");
            tracked.offset = end_offset;
        }
    }

    /// The current read marks of every tracked file.
    pub fn positions(&self) -> Vec<FilePosition> {
        self.tracked
            .iter()
            .map(|(key, tracked)| FilePosition {
                device: key.device,
                inode: key.inode,
                path: tracked.path_text.to_string(),
                offset: tracked.offset,
                fingerprint: tracked.fingerprint,
            })
            .collect()
    }
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
    lines: usize,
    hit_budget: bool,
}

/// Reads lines from `start`, calling `emit(text, truncated, end_offset)` for each.
fn read_lines(
    file: &File,
    start: u64,
    budget: usize,
    take_final_partial: bool,
    emit: &mut dyn FnMut(String, bool, u64),
) -> io::Result<ReadOutcome> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader.seek(SeekFrom::Start(start))?;
    let mut offset = start;
    let mut outcome = ReadOutcome {
        lines: 0,
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
        emit(text, truncated, offset);
        outcome.lines += 1;
        if !line.terminated {
            return Ok(outcome);
        }
    }
}

struct RawLine {
    /// Bytes consumed, including the newline.
    consumed: u64,
    /// Length of the line without its newline.
    length: u64,
    terminated: bool,
}

/// Reads one line, keeping at most `MAX_RECORD_BYTES + 1` of its bytes in `content`
/// (one more than the cap, so that a `\r` just past the cap can be told apart from
/// real overflow).
fn read_one_line(reader: &mut impl BufRead, content: &mut Vec<u8>) -> io::Result<RawLine> {
    let keep = MAX_RECORD_BYTES + 1;
    let mut line = RawLine {
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
    fn consume(source: &mut FileSource, take_final_partial: bool) -> Vec<String> {
        source.scan();
        let read = source.read_available(usize::MAX, take_final_partial);
        for line in &read.lines {
            source.advance(line.key, line.end_offset);
        }
        read.lines.into_iter().map(|line| line.text).collect()
    }

    fn pattern(dir: &Path) -> Vec<String> {
        vec![format!("{}/*.log", dir.display())]
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
        let mut lines = consume(&mut source, false);
        lines.sort();
        assert_eq!(lines, vec!["after the agent", "in a new file"]);
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
        source.advance(read.lines[0].key, read.lines[0].end_offset);
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
        let mut lines = consume(&mut source, false);
        lines.sort();
        assert_eq!(lines, vec!["fresh", "late write to the rotated file"]);
        assert_eq!(source.tracked_count(), 2);
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
}
