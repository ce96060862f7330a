//! Records dropped because the spool was full: counted, stood in for, and reported.
//!
//! With `[spool] when_full = "drop_oldest"`, the writer makes room by dropping the oldest
//! batch that is not being sent. Three things must survive a crash at any point:
//!
//! 1. **The count.** Before the batch's file is touched, the loss file
//!    (`state_dir/loss`, JSON) is rewritten durably with the dropped records added to
//!    the *unreported* loss and the batch's sequence added to the *dropping* intents.
//! 2. **The sequence.** The server treats a missing sequence as a hole in the instance's
//!    record, and it does not store an export without records. So the batch's spool file
//!    is replaced (atomically, same sequence, same read positions) by a *loss marker*: a
//!    batch of one record, severity WARN, body `epitaph-agent dropped N records (spool
//!    full)`, attributes `epitaph.loss.records`, `epitaph.loss.first_observed_unix_nano`,
//!    `epitaph.loss.last_observed_unix_nano` and `epitaph.loss.reason`. It is sent like
//!    any batch: it closes the gap and leaves a visible mark in the instance's log stream
//!    where the lines are missing. A start that finds an intent whose file is still the
//!    original batch finishes the replacement ([`super::Spool::complete_interrupted_drops`]).
//! 3. **The report.** A background task sends `ReportLoss { records, first/last observed,
//!    reason: "spool_full" }` until the server acknowledges it. The loss being reported
//!    is moved from *unreported* to *reporting* in the file first, so drops that happen
//!    meanwhile accumulate separately, and a crash mid-report resends the same report.
//!    (The server does not de-duplicate loss reports, so a crash between its ack and the
//!    file update reports that loss twice: over-counting a loss is the safe side.)

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use anyhow::Context;
use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::logs::v1::LogRecord;
use epitaph_proto::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::format::{BatchKind, SpoolEntry, encode_batch};
use super::{StatePaths, write_durably};
use crate::batch::{export_request, unix_nanos};
use crate::severity::Severity;
use crate::sources::Positions;

/// The `reason` of loss reports and markers for batches dropped from a full spool.
pub const SPOOL_FULL_REASON: &str = "spool_full";
pub const ATTRIBUTE_LOSS_RECORDS: &str = "epitaph.loss.records";
pub const ATTRIBUTE_LOSS_FIRST_OBSERVED: &str = "epitaph.loss.first_observed_unix_nano";
pub const ATTRIBUTE_LOSS_LAST_OBSERVED: &str = "epitaph.loss.last_observed_unix_nano";
pub const ATTRIBUTE_LOSS_REASON: &str = "epitaph.loss.reason";

/// A number of records lost and the observed-time range they covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossRange {
    pub records: u64,
    pub first_observed_unix_nano: u64,
    pub last_observed_unix_nano: u64,
}

impl LossRange {
    pub fn of(entry: &SpoolEntry) -> LossRange {
        LossRange {
            records: entry.record_count,
            first_observed_unix_nano: entry.first_observed_unix_nano,
            last_observed_unix_nano: entry.last_observed_unix_nano,
        }
    }

    fn merged(self, other: LossRange) -> LossRange {
        let earliest = |a: u64, b: u64| match (a, b) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        LossRange {
            records: self.records + other.records,
            first_observed_unix_nano: earliest(
                self.first_observed_unix_nano,
                other.first_observed_unix_nano,
            ),
            last_observed_unix_nano: self
                .last_observed_unix_nano
                .max(other.last_observed_unix_nano),
        }
    }
}

/// The loss file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LossFile {
    /// Dropped, not yet being reported.
    #[serde(default)]
    unreported: Option<LossRange>,
    /// Being reported: resent until acknowledged.
    #[serde(default)]
    reporting: Option<LossRange>,
    /// Sequences whose replacement by a marker may not have happened yet.
    #[serde(default)]
    dropping: BTreeSet<u64>,
}

/// The durable record of losses not yet acknowledged by the server.
#[derive(Debug)]
pub struct LossLedger {
    path: PathBuf,
    state: Mutex<LossFile>,
    /// Woken when a loss is recorded, for the reporting task.
    pub wakeup: Notify,
}

impl LossLedger {
    /// Reads `state_dir/loss` (none: nothing lost).
    pub fn load(paths: &StatePaths) -> anyhow::Result<LossLedger> {
        let path = paths.loss_file.clone();
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing loss file {}", path.display()))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => LossFile::default(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        };
        Ok(LossLedger {
            path,
            state: Mutex::new(state),
            wakeup: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LossFile> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `next` durably and makes it the state; on failure nothing changes.
    fn persist(&self, state: &mut LossFile, next: LossFile) -> io::Result<()> {
        // Plain integers and sets: serializing cannot fail.
        let bytes = serde_json::to_vec_pretty(&next).expect("loss file serializes");
        write_durably(&self.path, &bytes)?;
        *state = next;
        Ok(())
    }

    /// Step 1 of a drop: counts the batch's records as lost and records the intent to
    /// replace it, durably, before its file is touched.
    pub fn record_drop(&self, entry: &SpoolEntry) -> io::Result<()> {
        let mut state = self.lock();
        let mut next = state.clone();
        let dropped = LossRange::of(entry);
        next.unreported = Some(match next.unreported {
            Some(unreported) => unreported.merged(dropped),
            None => dropped,
        });
        next.dropping.insert(entry.sequence);
        self.persist(&mut state, next)?;
        drop(state);
        self.wakeup.notify_one();
        Ok(())
    }

    /// The batch's file is a marker now. The intent is forgotten in memory; the file
    /// sheds it at its next write (a stale intent is harmless: it finds a marker).
    pub fn drop_completed(&self, sequence: u64) {
        self.lock().dropping.remove(&sequence);
    }

    /// Drops whose replacement may not have happened (for recovery).
    pub fn interrupted_drops(&self) -> Vec<u64> {
        self.lock().dropping.iter().copied().collect()
    }

    /// The loss to report now: the one already being reported, or else everything
    /// unreported, moved (durably) to being reported. `None` if nothing is lost.
    pub fn begin_report(&self) -> io::Result<Option<LossRange>> {
        let mut state = self.lock();
        if let Some(reporting) = state.reporting {
            return Ok(Some(reporting));
        }
        let Some(unreported) = state.unreported else {
            return Ok(None);
        };
        let next = LossFile {
            unreported: None,
            reporting: Some(unreported),
            dropping: state.dropping.clone(),
        };
        self.persist(&mut state, next)?;
        Ok(Some(unreported))
    }

    /// The server acknowledged the report returned by [`LossLedger::begin_report`].
    pub fn report_acknowledged(&self) -> io::Result<()> {
        let mut state = self.lock();
        let next = LossFile {
            reporting: None,
            ..state.clone()
        };
        self.persist(&mut state, next)
    }

    /// Whether some loss waits to be reported.
    pub fn has_pending(&self) -> bool {
        let state = self.lock();
        state.unreported.is_some() || state.reporting.is_some()
    }

    /// Records lost and not yet acknowledged by the server.
    pub fn unacknowledged_records(&self) -> u64 {
        let state = self.lock();
        [state.unreported, state.reporting]
            .iter()
            .flatten()
            .map(|range| range.records)
            .sum()
    }
}

/// The one-record request that stands in for a dropped batch.
pub fn loss_marker_request(
    resource: &Resource,
    dropped: &SpoolEntry,
    now: SystemTime,
) -> epitaph_proto::collector::logs::v1::ExportLogsServiceRequest {
    let now_nanos = unix_nanos(now);
    let int = |key: &str, value: u64| KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
        }),
        ..Default::default()
    };
    let record = LogRecord {
        time_unix_nano: now_nanos,
        observed_time_unix_nano: now_nanos,
        severity_number: Severity::Warn.number(),
        severity_text: Severity::Warn.text().to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!(
                "epitaph-agent dropped {} records (spool full)",
                dropped.record_count
            ))),
        }),
        attributes: vec![
            int(ATTRIBUTE_LOSS_RECORDS, dropped.record_count),
            int(
                ATTRIBUTE_LOSS_FIRST_OBSERVED,
                dropped.first_observed_unix_nano,
            ),
            int(
                ATTRIBUTE_LOSS_LAST_OBSERVED,
                dropped.last_observed_unix_nano,
            ),
            KeyValue {
                key: ATTRIBUTE_LOSS_REASON.to_string(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(SPOOL_FULL_REASON.to_string())),
                }),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    export_request(resource, vec![record])
}

/// Step 2 of a drop: replaces batch `dropped`'s spool file by its loss marker, keeping
/// the sequence and the read positions after it. Returns the marker's entry.
pub fn write_loss_marker(
    paths: &StatePaths,
    resource: &Resource,
    dropped: &SpoolEntry,
    positions: &Positions,
) -> io::Result<SpoolEntry> {
    debug_assert_eq!(dropped.kind, BatchKind::Data);
    let request = loss_marker_request(resource, dropped, SystemTime::now());
    let encoded = encode_batch(&request, positions, BatchKind::LossMarker)?;
    write_durably(
        &paths.batch_file(dropped.sequence),
        &encoded.file_bytes(dropped.sequence),
    )?;
    Ok(encoded.entry(dropped.sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64, records: u64, first: u64, last: u64) -> SpoolEntry {
        SpoolEntry {
            sequence,
            record_count: records,
            bytes: 1000,
            kind: BatchKind::Data,
            first_observed_unix_nano: first,
            last_observed_unix_nano: last,
        }
    }

    #[test]
    fn losses_accumulate_and_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path());
        paths.create().unwrap();
        let loss = LossLedger::load(&paths).unwrap();
        assert_eq!(loss.begin_report().unwrap(), None);
        loss.record_drop(&entry(3, 40, 300, 390)).unwrap();
        loss.record_drop(&entry(4, 10, 400, 450)).unwrap();
        loss.drop_completed(3);
        let reporting = loss.begin_report().unwrap().unwrap();
        assert_eq!(
            reporting,
            LossRange {
                records: 50,
                first_observed_unix_nano: 300,
                last_observed_unix_nano: 450,
            }
        );
        // Dropped while the report is in flight: accumulates apart.
        loss.record_drop(&entry(7, 5, 700, 710)).unwrap();
        drop(loss);

        let loss = LossLedger::load(&paths).unwrap();
        assert_eq!(loss.unacknowledged_records(), 55);
        assert_eq!(
            loss.interrupted_drops(),
            vec![4, 7],
            "3 was shed at the last write"
        );
        assert_eq!(
            loss.begin_report().unwrap(),
            Some(reporting),
            "the same report again"
        );
        loss.report_acknowledged().unwrap();
        assert_eq!(loss.begin_report().unwrap().unwrap().records, 5);
        loss.report_acknowledged().unwrap();
        assert_eq!(loss.begin_report().unwrap(), None);
        assert_eq!(loss.unacknowledged_records(), 0);
    }

    #[test]
    fn marker_names_the_loss_in_body_and_attributes() {
        let request = loss_marker_request(
            &Resource::default(),
            &entry(9, 2000, 11, 22),
            SystemTime::now(),
        );
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(
                "epitaph-agent dropped 2000 records (spool full)".into()
            ))
        );
        assert_eq!(record.severity_text, "WARN");
        let attribute = |key: &str| {
            record
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone()?.value)
        };
        assert_eq!(
            attribute(ATTRIBUTE_LOSS_RECORDS),
            Some(any_value::Value::IntValue(2000))
        );
        assert_eq!(
            attribute(ATTRIBUTE_LOSS_FIRST_OBSERVED),
            Some(any_value::Value::IntValue(11))
        );
        assert_eq!(
            attribute(ATTRIBUTE_LOSS_REASON),
            Some(any_value::Value::StringValue("spool_full".into()))
        );
    }
}
