//! The write-ahead log: every acknowledged request is here, fsynced, before its ack.
//!
//! The WAL is a directory of append-only segment files named by the LSN (log sequence
//! number) of their first record. One writer thread owns the active segment and does
//! group commit: it takes every append request that is waiting, writes their frames with
//! one `write`, and serves them all with one `fdatasync`. Only then are the requests'
//! acks sent, and their records handed, in LSN order, to the indexer through a sink.
//!
//! Recovery reads the segments in order. A torn tail — a frame cut short or failing its
//! checksum at the end of the last segment, left by a crash mid-write — was never
//! acknowledged, so it is cut off with a warning. The same damage anywhere else means
//! the disk lost acknowledged data, and the server refuses to start rather than hide it.
//!
//! Segments are deleted once a checkpoint covers every record in them (see
//! [`WalSegments::remove_segments_through`]).

pub mod record;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use record::{FRAME_HEADER_BYTES, MAX_BODY_BYTES, frame, frame_checksum};
pub use record::{RecordContent, RecordKind};

/// Appends waiting for the writer; a full queue makes callers wait, which is how a slow
/// disk slows ingest instead of growing memory.
const APPEND_QUEUE_DEPTH: usize = 1024;
/// Upper bound of bytes one group commit writes, so a flood of appends still gets acks
/// at a steady pace.
const GROUP_COMMIT_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log cannot write: {0}")]
    Io(String),
    #[error("write-ahead log stopped after an fsync failure; restart the server")]
    Poisoned,
    #[error("write-ahead log is shutting down")]
    Closed,
}

#[derive(Debug, Clone)]
struct Segment {
    first_lsn: u64,
    path: PathBuf,
}

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

fn list_segments(dir: &Path) -> anyhow::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("listing wal directory {}", dir.display()))?
    {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("wal") {
            continue;
        }
        let Ok(first_lsn) = stem.parse::<u64>() else {
            warn!(file = %path.display(), "ignoring wal file with an unexpected name");
            continue;
        };
        segments.push(Segment { first_lsn, path });
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// One record read back from disk.
pub struct RecoveredRecord {
    pub lsn: u64,
    pub body: Vec<u8>,
}

/// Reads every intact record of the WAL in `dir`, cutting a torn tail of the last
/// segment, and calls `visit` for each in LSN order. Returns the next LSN to assign.
pub fn recover(
    dir: &Path,
    mut visit: impl FnMut(RecoveredRecord) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating wal directory {}", dir.display()))?;
    let segments = list_segments(dir)?;
    let mut next_lsn = 1;
    let segment_count = segments.len();
    for (position, segment) in segments.into_iter().enumerate() {
        let is_last = position + 1 == segment_count;
        let mut bytes = Vec::new();
        File::open(&segment.path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("reading wal segment {}", segment.path.display()))?;
        let mut offset = 0usize;
        let mut expected_lsn = segment.first_lsn;
        let damage = loop {
            if offset == bytes.len() {
                break None;
            }
            match parse_frame(&bytes[offset..], expected_lsn) {
                Ok((lsn, body, frame_len)) => {
                    visit(RecoveredRecord {
                        lsn,
                        body: body.to_vec(),
                    })?;
                    offset += frame_len;
                    expected_lsn = lsn + 1;
                }
                Err(reason) => break Some(reason),
            }
        };
        if let Some(reason) = damage {
            if !is_last {
                bail!(
                    "wal segment {} is damaged at byte {offset} ({reason}) and is not the last segment: acknowledged data may be lost; move the file aside to start anyway",
                    segment.path.display()
                );
            }
            warn!(segment = %segment.path.display(), offset, reason, "wal tail is torn, truncating");
            let file = OpenOptions::new().write(true).open(&segment.path)?;
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        if offset == 0 && is_last {
            // Nothing intact in it: remove it so the writer can reuse its name.
            std::fs::remove_file(&segment.path)?;
            sync_dir(dir)?;
        }
        if offset > 0 {
            next_lsn = expected_lsn;
        } else {
            next_lsn = next_lsn.max(segment.first_lsn);
        }
    }
    Ok(next_lsn)
}

/// Parses one frame at the start of `bytes`: (lsn, body, frame length).
fn parse_frame(bytes: &[u8], expected_lsn: u64) -> Result<(u64, &[u8], usize), String> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err("frame header cut short".into());
    }
    let body_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if body_len > MAX_BODY_BYTES {
        return Err(format!("frame length {body_len} is implausible"));
    }
    let Some(body) = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len) else {
        return Err("frame body cut short".into());
    };
    if frame_checksum(lsn, body) != checksum {
        return Err("frame checksum mismatch".into());
    }
    if lsn != expected_lsn {
        return Err(format!("frame has lsn {lsn}, expected {expected_lsn}"));
    }
    Ok((lsn, body, FRAME_HEADER_BYTES + body_len))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

struct AppendRequest<T> {
    body: Vec<u8>,
    item: T,
    reply: oneshot::Sender<Result<u64, WalError>>,
}

enum WalMessage<T> {
    Append(AppendRequest<T>),
    /// Stop after what was queued before: see [`WalHandle::close`].
    Close,
}

/// The cloneable handle through which requests append to the WAL. The writer thread
/// stops when [`WalHandle::close`] is called or every handle is dropped.
pub struct WalHandle<T> {
    sender: mpsc::Sender<WalMessage<T>>,
    segments: WalSegments,
}

impl<T> Clone for WalHandle<T> {
    fn clone(&self) -> Self {
        WalHandle {
            sender: self.sender.clone(),
            segments: self.segments.clone(),
        }
    }
}

/// The WAL's segment files, for trimming after checkpoints; holding it does not keep
/// the writer alive.
#[derive(Clone)]
pub struct WalSegments {
    segments: Arc<Mutex<Vec<Segment>>>,
    dir: PathBuf,
}

impl<T: Send + 'static> WalHandle<T> {
    /// Appends a compressed record body (see [`record::encode_body`]) and resolves with
    /// its LSN once it is fsynced; `item` then goes to the sink, in LSN order.
    pub async fn append(&self, body: Vec<u8>, item: T) -> Result<u64, WalError> {
        let (reply, response) = oneshot::channel();
        self.sender
            .send(WalMessage::Append(AppendRequest { body, item, reply }))
            .await
            .map_err(|_| WalError::Closed)?;
        response.await.map_err(|_| WalError::Closed)?
    }

    /// Stops the writer once the appends queued before this call are written; later
    /// appends fail with [`WalError::Closed`]. Handles held elsewhere (say, by connections
    /// still open at shutdown) do not keep the writer alive.
    pub async fn close(&self) {
        let _ = self.sender.send(WalMessage::Close).await;
    }

    pub fn segments(&self) -> WalSegments {
        self.segments.clone()
    }
}

impl WalSegments {
    /// Deletes every segment whose records all have an LSN ≤ `lsn`. The active segment
    /// is never deleted.
    pub fn remove_segments_through(&self, lsn: u64) -> anyhow::Result<usize> {
        let mut segments = self
            .segments
            .lock()
            .expect("wal segment list lock poisoned");
        let mut removable = 0;
        while removable + 1 < segments.len() && segments[removable + 1].first_lsn <= lsn + 1 {
            removable += 1;
        }
        for segment in segments.drain(..removable) {
            std::fs::remove_file(&segment.path)
                .with_context(|| format!("removing wal segment {}", segment.path.display()))?;
        }
        if removable > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removable)
    }

    /// Bytes of WAL on disk, for readiness and metrics.
    pub fn disk_bytes(&self) -> u64 {
        let segments = self
            .segments
            .lock()
            .expect("wal segment list lock poisoned");
        segments
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Starts the writer thread. `next_lsn` comes from [`recover`]. The thread ends when
/// every handle is dropped, after serving what was queued.
pub fn start_writer<T: Send + 'static>(
    dir: &Path,
    next_lsn: u64,
    segment_bytes: u64,
    mut sink: impl FnMut(u64, T) + Send + 'static,
) -> anyhow::Result<(WalHandle<T>, JoinHandle<()>)> {
    let segments = Arc::new(Mutex::new(list_segments(dir)?));
    let (sender, mut receiver) = mpsc::channel::<WalMessage<T>>(APPEND_QUEUE_DEPTH);
    let handle = WalHandle {
        sender,
        segments: WalSegments {
            segments: segments.clone(),
            dir: dir.to_path_buf(),
        },
    };
    let mut writer = SegmentWriter {
        dir: dir.to_path_buf(),
        segment_bytes,
        segments,
        active: None,
        next_lsn,
    };
    let thread = std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || {
            let mut poisoned = false;
            let mut frames = Vec::with_capacity(GROUP_COMMIT_MAX_BYTES);
            let mut closing = false;
            while !closing {
                let Some(WalMessage::Append(first)) = receiver.blocking_recv() else {
                    break;
                };
                let mut group_bytes = first.body.len();
                let mut group = vec![first];
                while group_bytes < GROUP_COMMIT_MAX_BYTES {
                    match receiver.try_recv() {
                        Ok(WalMessage::Append(next)) => {
                            group_bytes += next.body.len();
                            group.push(next);
                        }
                        Ok(WalMessage::Close) => {
                            closing = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if poisoned {
                    for request in group {
                        let _ = request.reply.send(Err(WalError::Poisoned));
                    }
                    continue;
                }
                frames.clear();
                let first_lsn = writer.next_lsn;
                for (i, request) in group.iter().enumerate() {
                    frame(first_lsn + i as u64, &request.body, &mut frames);
                }
                match writer.write_and_sync(&frames, group.len() as u64) {
                    Ok(()) => {
                        for (i, request) in group.into_iter().enumerate() {
                            let lsn = first_lsn + i as u64;
                            // Handed on before the ack: whoever saw the ack (and then
                            // opened a live tail, say) never sees the record arrive later.
                            let reply = request.reply;
                            sink(lsn, request.item);
                            let _ = reply.send(Ok(lsn));
                        }
                    }
                    Err(WriteFailure::Recoverable(message)) => {
                        warn!(error = %message, "wal write failed, rejecting this group");
                        for request in group {
                            let _ = request.reply.send(Err(WalError::Io(message.clone())));
                        }
                    }
                    Err(WriteFailure::Fatal(message)) => {
                        error!(error = %message, "wal fsync failed; refusing further writes");
                        poisoned = true;
                        for request in group {
                            let _ = request.reply.send(Err(WalError::Poisoned));
                        }
                    }
                }
            }
            // Whatever is still queued was never written: fail it so its sender retries.
            receiver.close();
            while let Ok(message) = receiver.try_recv() {
                if let WalMessage::Append(request) = message {
                    let _ = request.reply.send(Err(WalError::Closed));
                }
            }
            info!("wal writer stopped");
        })?;
    Ok((handle, thread))
}

enum WriteFailure {
    /// Nothing of the group is on disk; later groups may succeed (e.g. disk was full).
    Recoverable(String),
    /// The file's state is unknown after a failed fsync.
    Fatal(String),
}

struct ActiveSegment {
    file: File,
    len: u64,
}

struct SegmentWriter {
    dir: PathBuf,
    segment_bytes: u64,
    segments: Arc<Mutex<Vec<Segment>>>,
    active: Option<ActiveSegment>,
    next_lsn: u64,
}

impl SegmentWriter {
    fn write_and_sync(&mut self, frames: &[u8], record_count: u64) -> Result<(), WriteFailure> {
        if self
            .active
            .as_ref()
            .is_none_or(|a| a.len >= self.segment_bytes)
        {
            self.roll()
                .map_err(|e| WriteFailure::Recoverable(format!("creating wal segment: {e}")))?;
        }
        let active = self.active.as_mut().expect("roll leaves an active segment");
        if let Err(write_error) = active.file.write_all(frames) {
            // Cut off whatever part of the group reached the file, so the next group
            // starts at a frame boundary.
            let restored = active
                .file
                .set_len(active.len)
                .and_then(|_| active.file.seek(SeekFrom::Start(active.len)));
            return match restored {
                Ok(_) => Err(WriteFailure::Recoverable(write_error.to_string())),
                Err(e) => Err(WriteFailure::Fatal(format!(
                    "{write_error}; then truncating failed: {e}"
                ))),
            };
        }
        if let Err(e) = active.file.sync_data() {
            return Err(WriteFailure::Fatal(e.to_string()));
        }
        active.len += frames.len() as u64;
        self.next_lsn += record_count;
        Ok(())
    }

    fn roll(&mut self) -> std::io::Result<()> {
        if let Some(previous) = self.active.take() {
            previous.file.sync_all()?;
        }
        let path = segment_path(&self.dir, self.next_lsn);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        self.segments
            .lock()
            .expect("wal segment list lock poisoned")
            .push(Segment {
                first_lsn: self.next_lsn,
                path,
            });
        self.active = Some(ActiveSegment { file, len: 0 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{decode_body, encode_body};

    fn body(text: &str) -> Vec<u8> {
        encode_body(&RecordContent {
            kind: RecordKind::Logs,
            received_at_nanos: 1,
            batch: None,
            payload: text.as_bytes().to_vec(),
        })
        .unwrap()
    }

    fn read_all(dir: &Path) -> (Vec<(u64, String)>, u64) {
        let mut records = Vec::new();
        let next = recover(dir, |r| {
            let content = decode_body(&r.body).unwrap();
            records.push((r.lsn, String::from_utf8(content.payload).unwrap()));
            Ok(())
        })
        .unwrap();
        (records, next)
    }

    async fn append_texts(
        dir: &Path,
        next_lsn: u64,
        segment_bytes: u64,
        texts: &[&str],
    ) -> Vec<u64> {
        let (sink_sender, sink_receiver) = std::sync::mpsc::channel();
        let (wal, thread) = start_writer(dir, next_lsn, segment_bytes, move |lsn, item: String| {
            sink_sender.send((lsn, item)).unwrap();
        })
        .unwrap();
        let mut lsns = Vec::new();
        for text in texts {
            lsns.push(wal.append(body(text), text.to_string()).await.unwrap());
        }
        drop(wal);
        thread.join().unwrap();
        let sunk: Vec<(u64, String)> = sink_receiver.iter().collect();
        assert_eq!(
            sunk.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            lsns,
            "sink sees records in lsn order"
        );
        lsns
    }

    #[tokio::test]
    async fn appended_records_are_recovered_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let lsns = append_texts(dir.path(), 1, 64, &["a", "b", "c", "d"]).await;
        assert_eq!(lsns, vec![1, 2, 3, 4]);
        assert!(
            list_segments(dir.path()).unwrap().len() > 1,
            "small segments roll"
        );
        let (records, next) = read_all(dir.path());
        assert_eq!(
            records,
            vec![
                (1, "a".into()),
                (2, "b".into()),
                (3, "c".into()),
                (4, "d".into())
            ]
        );
        assert_eq!(next, 5);
        let lsns = append_texts(dir.path(), next, 64, &["e"]).await;
        assert_eq!(lsns, vec![5]);
        assert_eq!(read_all(dir.path()).0.len(), 5);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_writing_resumes() {
        let dir = tempfile::tempdir().unwrap();
        append_texts(dir.path(), 1, 1 << 20, &["one", "two"]).await;
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let full_len = std::fs::metadata(&segment.path).unwrap().len();
        // Simulate a crash mid-write: half of a third frame.
        let mut file = OpenOptions::new().append(true).open(&segment.path).unwrap();
        file.write_all(&[7, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(file);
        let (records, next) = read_all(dir.path());
        assert_eq!(records.len(), 2);
        assert_eq!(next, 3);
        assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), full_len);
        append_texts(dir.path(), next, 1 << 20, &["three"]).await;
        assert_eq!(
            read_all(dir.path()).0.last().unwrap(),
            &(3, "three".to_string())
        );
    }

    #[tokio::test]
    async fn flipped_bit_in_the_last_frame_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        append_texts(dir.path(), 1, 1 << 20, &["one", "two"]).await;
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut bytes = std::fs::read(&segment.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&segment.path, &bytes).unwrap();
        let (records, next) = read_all(dir.path());
        assert_eq!(records, vec![(1, "one".into())]);
        assert_eq!(next, 2);
    }

    #[tokio::test]
    async fn damage_before_the_last_segment_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        append_texts(dir.path(), 1, 32, &["one", "two", "three"]).await;
        let first = list_segments(dir.path()).unwrap().remove(0);
        let mut bytes = std::fs::read(&first.path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&first.path, &bytes).unwrap();
        let error = recover(dir.path(), |_| Ok(())).unwrap_err();
        assert!(error.to_string().contains("damaged"), "{error}");
    }

    #[tokio::test]
    async fn checkpointed_segments_are_removed_but_not_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, thread) = start_writer(dir.path(), 1, 32, |_, _: ()| {}).unwrap();
        for text in ["a", "b", "c"] {
            wal.append(body(text), ()).await.unwrap();
        }
        assert_eq!(list_segments(dir.path()).unwrap().len(), 3);
        assert_eq!(wal.segments().remove_segments_through(1).unwrap(), 1);
        assert_eq!(wal.segments().remove_segments_through(100).unwrap(), 1);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        drop(wal);
        thread.join().unwrap();
        let (records, next) = read_all(dir.path());
        assert_eq!(records, vec![(3, "c".into())]);
        assert_eq!(next, 4);
    }
}
