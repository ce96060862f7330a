//! The spool file format: one file per batch, self-describing and checksummed.
//!
//! ```text
//! magic "EPSPOOL2" | sequence u64 | record count u64 | kind u8 (0 data, 1 loss marker)
//! | first observed u64 | last observed u64 (Unix ns, 0 if unknown)
//! | positions length u32 | positions (JSON) | payload length u32 | payload (zstd of the
//! ExportLogsServiceRequest) | CRC32 of everything before it
//! ```
//!
//! The payload is compressed once, when the batch is taken, and that same zstd frame is
//! what the shipper sends (`grpc-encoding: zstd`): a batch is never decompressed or
//! re-encoded on its way from the collector to the server.
//!
//! All integers are little-endian. Everything the agent needs to *manage* a batch
//! (sequence, size, record count, observed-time range, kind, the read positions after
//! it) is in the header, so that starting with a full spool, committing, and choosing a
//! batch to drop read a few hundred bytes per file rather than decompressing it. The
//! payload is only read back, verified and decompressed when the batch is sent.
//!
//! Files written by the first agent version (`EPSPOOL1`: no kind, no time range) are
//! still read; their time range is computed from the records.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use prost::bytes::Bytes;

use crate::batch::record_count;
use crate::sources::Positions;

const MAGIC_V1: &[u8; 8] = b"EPSPOOL1";
const MAGIC_V2: &[u8; 8] = b"EPSPOOL2";
/// Magic, sequence, count, kind, two times, positions length.
const HEADER_V2_FIXED: usize = 8 + 8 + 8 + 1 + 8 + 8 + 4;
/// Fast rather than small: every batch is compressed on the collector's thread, and the
/// same bytes go on the wire.
const SPOOL_ZSTD_LEVEL: i32 = 1;

/// What a spooled batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Log records read from sources.
    Data,
    /// The one record that stands in for a batch dropped because the spool was full.
    LossMarker,
}

/// What the spool knows about a batch without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolEntry {
    pub sequence: u64,
    pub record_count: u64,
    /// The size of its spool file.
    pub bytes: u64,
    pub kind: BatchKind,
    /// Observed times of its oldest and newest record (Unix ns, 0 if unknown).
    pub first_observed_unix_nano: u64,
    pub last_observed_unix_nano: u64,
}

/// Bytes in front of a message in a gRPC frame: a compressed flag and a big-endian
/// `u32` length.
pub const GRPC_FRAME_HEADER_LEN: usize = 5;

/// A batch encoded for the spool, sequence not yet assigned.
///
/// Its request is compressed once, here: the same zstd bytes are the spool file's payload
/// and the message the shipper sends (with `grpc-encoding: zstd`). They are kept inside
/// their gRPC frame, so that sending a batch just taken copies nothing.
pub struct EncodedBatch {
    record_count: u64,
    kind: BatchKind,
    first_observed_unix_nano: u64,
    last_observed_unix_nano: u64,
    positions_json: Vec<u8>,
    /// Compressed flag (1), length, then the zstd-compressed `ExportLogsServiceRequest`.
    frame: Bytes,
}

impl EncodedBatch {
    /// The size its spool file will have.
    pub fn file_len(&self) -> u64 {
        (HEADER_V2_FIXED + self.positions_json.len() + 4 + self.payload().len() + 4) as u64
    }

    /// The zstd-compressed request.
    pub fn payload(&self) -> &[u8] {
        &self.frame[GRPC_FRAME_HEADER_LEN..]
    }

    /// The compressed request in its gRPC frame, ready to send.
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }

    /// Its spool entry once it has `sequence`.
    pub fn entry(&self, sequence: u64) -> SpoolEntry {
        SpoolEntry {
            sequence,
            record_count: self.record_count,
            bytes: self.file_len(),
            kind: self.kind,
            first_observed_unix_nano: self.first_observed_unix_nano,
            last_observed_unix_nano: self.last_observed_unix_nano,
        }
    }

    /// The whole spool file for `sequence`.
    pub fn file_bytes(&self, sequence: u64) -> Vec<u8> {
        let payload = self.payload();
        let mut bytes = Vec::with_capacity(self.file_len() as usize);
        bytes.extend_from_slice(MAGIC_V2);
        bytes.extend_from_slice(&sequence.to_le_bytes());
        bytes.extend_from_slice(&self.record_count.to_le_bytes());
        bytes.push(match self.kind {
            BatchKind::Data => 0,
            BatchKind::LossMarker => 1,
        });
        bytes.extend_from_slice(&self.first_observed_unix_nano.to_le_bytes());
        bytes.extend_from_slice(&self.last_observed_unix_nano.to_le_bytes());
        bytes.extend_from_slice(&(self.positions_json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.positions_json);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        debug_assert_eq!(bytes.len() as u64, self.file_len());
        bytes
    }
}

/// What a batch is, apart from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFacts {
    pub record_count: u64,
    pub kind: BatchKind,
    /// Observed times of its oldest and newest record (Unix ns, 0 if unknown).
    pub first_observed_unix_nano: u64,
    pub last_observed_unix_nano: u64,
}

/// Compresses batches for the spool (and the wire), reusing one zstd context: a new one
/// per batch costs an allocation of its tables and shows in profiles.
pub struct BatchCompressor {
    compressor: zstd::bulk::Compressor<'static>,
}

impl BatchCompressor {
    pub fn new() -> io::Result<BatchCompressor> {
        Ok(BatchCompressor {
            compressor: zstd::bulk::Compressor::new(SPOOL_ZSTD_LEVEL)?,
        })
    }

    /// Compresses an encoded `ExportLogsServiceRequest` and its positions for the spool.
    pub fn encode(
        &mut self,
        request: &[u8],
        facts: BatchFacts,
        positions: &Positions,
    ) -> io::Result<EncodedBatch> {
        // zstd writes straight behind the frame header.
        let capacity = GRPC_FRAME_HEADER_LEN + zstd::zstd_safe::compress_bound(request.len());
        let mut frame = Vec::with_capacity(capacity);
        frame.extend_from_slice(&[1, 0, 0, 0, 0]);
        let mut cursor = io::Cursor::new(frame);
        cursor.set_position(GRPC_FRAME_HEADER_LEN as u64);
        let payload_len = self.compressor.compress_to_buffer(request, &mut cursor)?;
        let mut frame = cursor.into_inner();
        debug_assert_eq!(frame.len(), GRPC_FRAME_HEADER_LEN + payload_len);
        let payload_len = u32::try_from(payload_len)
            .map_err(|_| io::Error::other("a compressed batch is larger than 4 GiB"))?;
        frame[1..GRPC_FRAME_HEADER_LEN].copy_from_slice(&payload_len.to_be_bytes());
        let positions_json = serde_json::to_vec(positions).map_err(io::Error::other)?;
        Ok(EncodedBatch {
            record_count: facts.record_count,
            kind: facts.kind,
            first_observed_unix_nano: facts.first_observed_unix_nano,
            last_observed_unix_nano: facts.last_observed_unix_nano,
            positions_json,
            frame: Bytes::from(frame),
        })
    }
}

/// Compresses a request and its positions for the spool (loss markers, tests).
pub fn encode_batch(
    request: &ExportLogsServiceRequest,
    positions: &Positions,
    kind: BatchKind,
) -> io::Result<EncodedBatch> {
    let (first_observed_unix_nano, last_observed_unix_nano) = observed_range(request);
    let facts = BatchFacts {
        record_count: record_count(request),
        kind,
        first_observed_unix_nano,
        last_observed_unix_nano,
    };
    BatchCompressor::new()?.encode(&request.encode_to_vec(), facts, positions)
}

/// The oldest and newest non-zero observed time in a request (0, 0 if none).
fn observed_range(request: &ExportLogsServiceRequest) -> (u64, u64) {
    let mut range: Option<(u64, u64)> = None;
    let records = request
        .resource_logs
        .iter()
        .flat_map(|resource_logs| &resource_logs.scope_logs)
        .flat_map(|scope_logs| &scope_logs.log_records);
    for record in records {
        let observed = record.observed_time_unix_nano;
        if observed == 0 {
            continue;
        }
        range = Some(match range {
            None => (observed, observed),
            Some((first, last)) => (first.min(observed), last.max(observed)),
        });
    }
    range.unwrap_or((0, 0))
}

/// A fully read and verified spool file.
#[derive(Debug)]
pub struct DecodedBatch {
    pub entry: SpoolEntry,
    pub positions: Positions,
    pub request: ExportLogsServiceRequest,
}

/// Parses and verifies a whole spool file; the error says what is wrong with it.
pub fn decode_spool_file(bytes: &[u8]) -> Result<DecodedBatch, String> {
    let Some((body, checksum)) = bytes.split_last_chunk::<4>() else {
        return Err("shorter than a checksum".to_string());
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*checksum) {
        return Err("checksum mismatch".to_string());
    }
    let mut reader = ByteReader { bytes: body };
    let (mut entry, positions) = read_header_fields(&mut reader)?;
    let payload_len = reader.u32()? as usize;
    let payload = reader.take(payload_len)?;
    if !reader.bytes.is_empty() {
        return Err("trailing bytes".to_string());
    }
    let encoded =
        zstd::stream::decode_all(payload).map_err(|error| format!("decompressing: {error}"))?;
    let request = ExportLogsServiceRequest::decode(encoded.as_slice())
        .map_err(|error| format!("decoding: {error}"))?;
    entry.bytes = bytes.len() as u64;
    if entry.first_observed_unix_nano == 0 {
        (
            entry.first_observed_unix_nano,
            entry.last_observed_unix_nano,
        ) = observed_range(&request);
    }
    Ok(DecodedBatch {
        entry,
        positions,
        request,
    })
}

/// Reads a spool file's header only (no checksum: that is checked when the batch is
/// sent). First-version files have no time range in their header and are read whole.
pub fn read_entry(path: &Path) -> Result<(SpoolEntry, Positions), String> {
    let mut file = File::open(path).map_err(|error| error.to_string())?;
    let file_len = file.metadata().map_err(|error| error.to_string())?.len();
    let mut fixed = [0u8; HEADER_V2_FIXED];
    file.read_exact(&mut fixed[..8])
        .map_err(|error| format!("reading the magic: {error}"))?;
    if &fixed[..8] == MAGIC_V1 {
        let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
        let decoded = decode_spool_file(&bytes)?;
        return Ok((decoded.entry, decoded.positions));
    }
    if &fixed[..8] != MAGIC_V2 {
        return Err("not a spool file".to_string());
    }
    file.read_exact(&mut fixed[8..])
        .map_err(|error| format!("reading the header: {error}"))?;
    let positions_len =
        u32::from_le_bytes(fixed[HEADER_V2_FIXED - 4..].try_into().expect("4 bytes"));
    if u64::from(positions_len) > file_len {
        return Err("positions longer than the file".to_string());
    }
    let mut header = fixed.to_vec();
    header.resize(HEADER_V2_FIXED + positions_len as usize, 0);
    file.read_exact(&mut header[HEADER_V2_FIXED..])
        .map_err(|error| format!("reading the positions: {error}"))?;
    let mut reader = ByteReader { bytes: &header };
    let (mut entry, positions) = read_header_fields(&mut reader)?;
    entry.bytes = file_len;
    Ok((entry, positions))
}

/// Reads and verifies spooled batch `sequence` and returns its compressed request in a
/// gRPC frame, ready to send (it is not decompressed: the checksum covers it).
pub fn read_batch_frame(path: &Path, sequence: u64) -> Result<Bytes, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    let Some((body, checksum)) = bytes.split_last_chunk::<4>() else {
        return Err("shorter than a checksum".to_string());
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*checksum) {
        return Err("checksum mismatch".to_string());
    }
    let mut reader = ByteReader { bytes: body };
    let (entry, _) = read_header_fields(&mut reader)?;
    if entry.sequence != sequence {
        return Err(format!(
            "holds sequence {} instead of {sequence}",
            entry.sequence
        ));
    }
    let payload_len = reader.u32()?;
    let payload = reader.take(payload_len as usize)?;
    if !reader.bytes.is_empty() {
        return Err("trailing bytes".to_string());
    }
    let mut frame = Vec::with_capacity(GRPC_FRAME_HEADER_LEN + payload.len());
    frame.push(1);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(Bytes::from(frame))
}

/// Reads, verifies and decodes the request of spooled batch `sequence`.
pub fn read_batch_request(path: &Path, sequence: u64) -> Result<ExportLogsServiceRequest, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    let decoded = decode_spool_file(&bytes)?;
    if decoded.entry.sequence != sequence {
        return Err(format!(
            "holds sequence {} instead of {sequence}",
            decoded.entry.sequence
        ));
    }
    Ok(decoded.request)
}

/// Parses the header (either version) up to and including the positions.
fn read_header_fields(reader: &mut ByteReader<'_>) -> Result<(SpoolEntry, Positions), String> {
    let magic = reader.take(8)?;
    let version_2 = match magic {
        magic if magic == MAGIC_V2 => true,
        magic if magic == MAGIC_V1 => false,
        _ => return Err("not a spool file".to_string()),
    };
    let sequence = reader.u64()?;
    let record_count = reader.u64()?;
    let (kind, first_observed_unix_nano, last_observed_unix_nano) = if version_2 {
        let kind = match reader.take(1)?[0] {
            0 => BatchKind::Data,
            1 => BatchKind::LossMarker,
            other => return Err(format!("unknown batch kind {other}")),
        };
        (kind, reader.u64()?, reader.u64()?)
    } else {
        (BatchKind::Data, 0, 0)
    };
    let positions_len = reader.u32()? as usize;
    let positions: Positions = serde_json::from_slice(reader.take(positions_len)?)
        .map_err(|error| format!("positions: {error}"))?;
    let entry = SpoolEntry {
        sequence,
        record_count,
        bytes: 0,
        kind,
        first_observed_unix_nano,
        last_observed_unix_nano,
    };
    Ok((entry, positions))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::tests::{positions_at, request_of};

    #[test]
    fn spool_file_round_trips_and_its_header_reads_alone() {
        let request = request_of(&["a", "b"]);
        let encoded = encode_batch(&request, &positions_at(7), BatchKind::Data).unwrap();
        let bytes = encoded.file_bytes(9);
        assert_eq!(bytes.len() as u64, encoded.file_len());
        let decoded = decode_spool_file(&bytes).unwrap();
        assert_eq!(decoded.entry, encoded.entry(9));
        assert_eq!(decoded.entry.record_count, 2);
        assert_eq!(decoded.entry.first_observed_unix_nano, 1_000);
        assert_eq!(decoded.entry.last_observed_unix_nano, 2_000);
        assert_eq!(decoded.positions, positions_at(7));
        assert_eq!(decoded.request, request);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("9.batch");
        std::fs::write(&path, &bytes).unwrap();
        let (entry, positions) = read_entry(&path).unwrap();
        assert_eq!(entry, encoded.entry(9));
        assert_eq!(positions, positions_at(7));
        assert_eq!(read_batch_request(&path, 9).unwrap(), request);
        assert!(read_batch_request(&path, 10).is_err());

        // What the shipper sends: the payload as it is, in a compressed gRPC frame.
        let frame = read_batch_frame(&path, 9).unwrap();
        assert_eq!(frame, encoded.frame());
        assert_eq!(frame[0], 1, "compressed flag");
        let length = u32::from_be_bytes(frame[1..GRPC_FRAME_HEADER_LEN].try_into().unwrap());
        assert_eq!(length as usize, frame.len() - GRPC_FRAME_HEADER_LEN);
        let decompressed = zstd::stream::decode_all(&frame[GRPC_FRAME_HEADER_LEN..]).unwrap();
        assert_eq!(decompressed, request.encode_to_vec());
        assert!(read_batch_frame(&path, 10).is_err());
        let mut damaged = bytes.clone();
        let last_payload_byte = bytes.len() - 5;
        damaged[last_payload_byte] ^= 0x40;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(read_batch_frame(&path, 9).unwrap_err(), "checksum mismatch");
    }

    #[test]
    fn every_truncation_of_a_spool_file_is_detected() {
        let encoded = encode_batch(
            &request_of(&["a", "b", "c"]),
            &positions_at(7),
            BatchKind::Data,
        )
        .unwrap();
        let bytes = encoded.file_bytes(3);
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
    fn first_version_files_are_still_read() {
        let request = request_of(&["old"]);
        let positions = positions_at(5);
        let positions_json = serde_json::to_vec(&positions).unwrap();
        let payload = zstd::bulk::compress(&request.encode_to_vec(), 1).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC_V1);
        bytes.extend_from_slice(&4u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&(positions_json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&positions_json);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("4.batch");
        std::fs::write(&path, &bytes).unwrap();
        let (entry, read_positions) = read_entry(&path).unwrap();
        assert_eq!(entry.sequence, 4);
        assert_eq!(entry.kind, BatchKind::Data);
        assert_eq!(entry.first_observed_unix_nano, 1_000);
        assert_eq!(entry.bytes, bytes.len() as u64);
        assert_eq!(read_positions, positions);
    }
}
