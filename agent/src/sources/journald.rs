//! The systemd journal, read through `journalctl`.
//!
//! ## Why a child process
//!
//! Reading the journal files directly needs libsystemd (a C library the image may not
//! have in the agent's build environment) or a reimplementation of its file format.
//! `journalctl --follow --output=json` is on every machine that has a journal, speaks a
//! stable, documented format, and handles rotation, vacuuming and new boots itself. The
//! agent runs it as a child (`[journald] journalctl`, default `journalctl` on `PATH`):
//!
//! ```text
//! journalctl --follow --output=json --all --no-pager --quiet
//!            --output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID
//!            (--after-cursor=CURSOR | --boot --no-tail)  [--unit=UNIT ...]
//! ```
//!
//! `--all` keeps long and binary fields (which are otherwise `null`); `--output-fields`
//! spares the parsing of fields the agent does not use (the cursor and the timestamps
//! are always printed); several `--unit`s select any of them; no unit, the whole journal.
//!
//! ## Entries to records
//!
//! - body: `MESSAGE`, which is a string, or an array of bytes when it is not valid UTF-8
//!   (decoded lossily, like file lines), or an array of values when the field occurs
//!   more than once (joined by newlines); it is parsed like a file line (`parse`), so a
//!   service that logs JSON to stdout gets fields;
//! - severity: `PRIORITY` (syslog 0–7) in the OpenTelemetry mapping — except that a
//!   level the message states itself wins over priority 6 (`info`), because 6 is what
//!   systemd gives every line a service writes to stdout or stderr, not a level anyone
//!   chose;
//! - event time: `__REALTIME_TIMESTAMP` (when the journal received the entry); the
//!   observed time is when the agent read it;
//! - attributes: `systemd.unit` (`_SYSTEMD_UNIT`), `syslog.identifier`
//!   (`SYSLOG_IDENTIFIER`) and `process.pid` (`_PID`), then the message's own fields.
//!
//! An entry without a `MESSAGE` carries nothing to search and is skipped.
//!
//! ## Position
//!
//! The journal's read position is its cursor (`__CURSOR`), kept exactly like a file's
//! offset: the cursor of the last entry in a batch is in that batch's positions (see
//! [`crate::sources::Positions`]), becomes durable with it, and is committed to the
//! state file only once the server acknowledged the batch. A restarted agent runs
//! `journalctl --after-cursor=<that cursor>`, so no entry is lost or sent twice across
//! restarts and crashes. With no cursor yet (the agent's first start, normally the
//! instance's first boot) reading starts at the beginning of the current boot, so the
//! boot's early messages are in the instance's record.
//!
//! ## Failure
//!
//! A reader thread owns the child, parses its lines and hands records to the collector
//! through a bounded channel: when the collector stops reading (the spool is full), the
//! channel fills, the pipe fills and journalctl waits — the journal keeps the entries.
//! If journalctl exits, it is started again after a back-off (1 s, doubling up to 60 s
//! while it keeps failing), after the last entry read; a cursor it rejects is dropped
//! (with a warning) in favour of the current boot. If `journalctl` does not exist, the
//! source logs that once and stays idle; on a machine without a journal, journalctl
//! itself waits quietly for one to appear. A malformed line is logged and skipped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::logs::v1::LogRecord;
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::batch::{ATTRIBUTE_TRUNCATED, encode_record, unix_nanos};
use crate::parse::{ParseMode, parse_line};
use crate::severity::Severity;
use crate::sources::file::MAX_RECORD_BYTES;

pub const ATTRIBUTE_UNIT: &str = "systemd.unit";
pub const ATTRIBUTE_SYSLOG_IDENTIFIER: &str = "syslog.identifier";
pub const ATTRIBUTE_PID: &str = "process.pid";
/// The fields asked of journalctl besides the cursor and timestamps it always prints.
const OUTPUT_FIELDS: &str = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID";
/// Records per hand-over to the collector, and hand-overs in flight: together they
/// bound the records in memory between journalctl and the open batch.
const CHUNK_RECORDS: usize = 512;
const CHUNKS_IN_FLIGHT: usize = 4;
/// The most journal records the collector takes in one reading round (rounds come every
/// `poll_interval`): a flooding journal cannot starve the files, and the default 200 ms
/// still lets through some 80,000 entries a second.
pub const JOURNAL_RECORDS_PER_ROUND: usize = 16 * 1024;
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A journalctl that ran this long before exiting was working: restart it promptly.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// The syslog priority systemd gives what a service writes to stdout and stderr.
const DEFAULT_STREAM_PRIORITY: u8 = 6;

/// The `[journald]` table of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournaldConfig {
    pub enabled: bool,
    /// Units to read (`nginx.service`, `app@*.service`); empty: the whole journal.
    pub units: Vec<String>,
    /// The `journalctl` to run: a name looked up on `PATH`, or a path.
    pub journalctl: PathBuf,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        JournaldConfig {
            enabled: false,
            units: Vec::new(),
            journalctl: PathBuf::from("journalctl"),
        }
    }
}

impl JournaldConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.journalctl.as_os_str().is_empty() {
            anyhow::bail!("journald.journalctl must name a program");
        }
        for unit in &self.units {
            if unit.trim().is_empty() || unit.starts_with('-') {
                anyhow::bail!("journald.units: `{unit}` is not a unit name");
            }
        }
        Ok(())
    }
}

/// One journal entry as a record, encoded for the batch builder, with its cursor.
#[derive(Debug, Clone)]
pub struct JournalRecord {
    pub bytes: Vec<u8>,
    pub observed_unix_nano: u64,
    pub cursor: String,
}

/// The collector's side of the journal: records read but not yet in a batch, and the
/// cursor of the last one that is.
pub struct JournalSource {
    chunks: Receiver<Vec<JournalRecord>>,
    pending: VecDeque<JournalRecord>,
    committed_cursor: Option<String>,
    reader: Option<ReaderHandle>,
}

struct ReaderHandle {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: JoinHandle<()>,
}

impl JournalSource {
    /// Starts journalctl after `cursor` (the durable position), or at the start of the
    /// current boot when there is none.
    pub fn start(
        config: &JournaldConfig,
        parse: ParseMode,
        cursor: Option<String>,
    ) -> JournalSource {
        let (sender, chunks) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let stop = Arc::new(AtomicBool::new(false));
        let child = Arc::new(Mutex::new(None));
        let reader = JournalReader {
            journalctl: config.journalctl.clone(),
            units: config.units.clone(),
            parse,
            resume_after: cursor.clone(),
            sender,
            stop: stop.clone(),
            child: child.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("epitaph-journal".to_string())
            .spawn(move || reader.run());
        let reader = match thread {
            Ok(thread) => Some(ReaderHandle {
                stop,
                child,
                thread,
            }),
            Err(spawn_error) => {
                warn!(%spawn_error, "cannot start the journal reader thread; the journal source stays idle");
                None
            }
        };
        JournalSource {
            chunks,
            pending: VecDeque::new(),
            committed_cursor: cursor,
            reader,
        }
    }

    /// The next record read from the journal, if one is waiting.
    pub fn next_record(&mut self) -> Option<JournalRecord> {
        if self.pending.is_empty() {
            match self.chunks.try_recv() {
                Ok(chunk) => self.pending.extend(chunk),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
            }
        }
        self.pending.pop_front()
    }

    /// Gives back a record that did not get into a batch; it comes next again.
    pub fn put_back(&mut self, record: JournalRecord) {
        self.pending.push_front(record);
    }

    /// Notes that the record at `cursor` is in the open batch.
    pub fn advance(&mut self, cursor: String) {
        self.committed_cursor = Some(cursor);
    }

    /// The cursor of the last record in a batch: the journal's read position.
    pub fn cursor(&self) -> Option<String> {
        self.committed_cursor.clone()
    }
}

impl Drop for JournalSource {
    /// Stops journalctl and its reader, so no child outlives the agent's run.
    fn drop(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        reader.stop.store(true, Ordering::Relaxed);
        if let Some(child) = reader
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let _ = child.kill();
        }
        // Its channel is gone, and its child killed: the thread ends at its next step.
        drop(std::mem::replace(
            &mut self.chunks,
            std::sync::mpsc::sync_channel(0).1,
        ));
        let _ = reader.thread.join();
    }
}

/// The reader thread: runs journalctl, restarts it, parses its output.
struct JournalReader {
    journalctl: PathBuf,
    units: Vec<String>,
    parse: ParseMode,
    /// The cursor of the last entry read (not necessarily in a batch yet): a restarted
    /// journalctl goes on after it.
    resume_after: Option<String>,
    sender: SyncSender<Vec<JournalRecord>>,
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
}

/// How one run of journalctl ended.
enum RunEnd {
    /// The collector is gone or the agent stops.
    Stopped,
    /// journalctl is not there: nothing will change that.
    Missing,
    /// journalctl exited (or could not be read).
    Exited { ran_for: Duration, stderr: String },
}

impl JournalReader {
    fn run(mut self) {
        let mut restart_delay = FIRST_RESTART_DELAY;
        let mut failures = 0u32;
        loop {
            match self.run_journalctl() {
                RunEnd::Stopped => return,
                RunEnd::Missing => {
                    warn!(
                        journalctl = %self.journalctl.display(),
                        "journalctl not found; the journal source stays idle"
                    );
                    return;
                }
                RunEnd::Exited { ran_for, stderr } => {
                    if ran_for >= HEALTHY_RUN {
                        restart_delay = FIRST_RESTART_DELAY;
                        failures = 0;
                    }
                    if stderr.contains("cursor") && self.resume_after.is_some() {
                        warn!(%stderr, "journalctl rejects the saved cursor; reading from the start of the current boot");
                        self.resume_after = None;
                    } else if failures == 0 {
                        warn!(%stderr, delay = ?restart_delay, "journalctl exited; restarting it");
                    } else {
                        debug!(%stderr, delay = ?restart_delay, "journalctl exited again");
                    }
                    failures += 1;
                }
            }
            if !self.sleep(restart_delay) {
                return;
            }
            restart_delay = (restart_delay * 2).min(MAX_RESTART_DELAY);
        }
    }

    /// Sleeps `delay` unless told to stop first; false if told to stop.
    fn sleep(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.journalctl);
        command.args([
            "--follow",
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
        ]);
        command.arg(format!("--output-fields={OUTPUT_FIELDS}"));
        match &self.resume_after {
            Some(cursor) => {
                command.arg(format!("--after-cursor={cursor}"));
            }
            None => {
                command.args(["--boot", "--no-tail"]);
            }
        }
        for unit in &self.units {
            command.arg(format!("--unit={unit}"));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent;
            // it makes the kernel stop journalctl if the agent dies without killing it
            // (kill -9), instead of leaving it to wait for the next journal entry.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        command
    }

    fn run_journalctl(&mut self) -> RunEnd {
        if self.stop.load(Ordering::Relaxed) {
            return RunEnd::Stopped;
        }
        let started = Instant::now();
        let mut child = match self.command().spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return RunEnd::Missing,
            Err(error) => {
                return RunEnd::Exited {
                    ran_for: Duration::ZERO,
                    stderr: format!("cannot run {}: {error}", self.journalctl.display()),
                };
            }
        };
        info!(
            journalctl = %self.journalctl.display(),
            after_cursor = self.resume_after.is_some(),
            units = ?self.units,
            "journal source started"
        );
        let stdout = child.stdout.take();
        let stderr_collector = child.stderr.take().map(collect_stderr);
        {
            let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock that `JournalSource::drop` takes to kill the child:
            // either it sees this child, or this sees its stop.
            if self.stop.load(Ordering::Relaxed) {
                let _ = child.kill();
                let _ = child.wait();
                return RunEnd::Stopped;
            }
            *slot = Some(child);
        }

        let stopped = match stdout {
            Some(stdout) => self.read_entries(BufReader::with_capacity(64 * 1024, stdout)),
            None => false,
        };
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(child) = child.as_mut() {
            if stopped {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let stderr = stderr_collector
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        if stopped || self.stop.load(Ordering::Relaxed) {
            return RunEnd::Stopped;
        }
        RunEnd::Exited {
            ran_for: started.elapsed(),
            stderr,
        }
    }

    /// Reads journalctl's output until it ends; true if the collector went away.
    fn read_entries(&mut self, mut stdout: BufReader<ChildStdout>) -> bool {
        let mut line = Vec::new();
        let mut chunk = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(read_error) => {
                    warn!(%read_error, "reading journalctl's output failed");
                    break;
                }
            }
            match record_of_entry(&line, self.parse, SystemTime::now()) {
                Ok(Some(record)) => {
                    self.resume_after = Some(record.cursor.clone());
                    chunk.push(record);
                }
                Ok(None) => {}
                Err(reason) => {
                    warn!(%reason, "skipping a journal entry journalctl printed malformed")
                }
            }
            // Hand over when the chunk is full or everything journalctl has written so far
            // is read (an empty buffer: the next read would wait for more).
            let caught_up = stdout.buffer().is_empty();
            if (chunk.len() >= CHUNK_RECORDS || (caught_up && !chunk.is_empty()))
                && self.sender.send(std::mem::take(&mut chunk)).is_err()
            {
                return true;
            }
        }
        if !chunk.is_empty() && self.sender.send(chunk).is_err() {
            return true;
        }
        false
    }
}

/// Reads journalctl's stderr on a thread of its own (so a chatty journalctl can never
/// block on a full pipe), logging each line, and returns the last few.
fn collect_stderr(stderr: ChildStderr) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut last_lines: VecDeque<String> = VecDeque::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            debug!(line = %line, "journalctl stderr");
            if last_lines.len() == 5 {
                last_lines.pop_front();
            }
            last_lines.push_back(line);
        }
        Vec::from(last_lines).join("\n")
    })
}

/// One line of `journalctl --output=json`. Field values are strings, byte arrays, arrays
/// of either (a field that occurs more than once) or null.
#[derive(Deserialize)]
struct JournalEntry {
    #[serde(rename = "__CURSOR")]
    cursor: String,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime_micros: Option<Value>,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "PRIORITY")]
    priority: Option<Value>,
    #[serde(rename = "_SYSTEMD_UNIT")]
    unit: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    syslog_identifier: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
}

/// The record for one line of journalctl's JSON output, read at `observed`; None for an
/// entry without a message; an error names what is wrong with the line.
pub fn record_of_entry(
    line: &[u8],
    parse: ParseMode,
    observed: SystemTime,
) -> Result<Option<JournalRecord>, String> {
    let entry: JournalEntry =
        serde_json::from_slice(line).map_err(|error| format!("not a journal entry: {error}"))?;
    if entry.cursor.is_empty() {
        return Err("the entry has an empty __CURSOR".to_string());
    }
    let Some(mut message) = entry.message.as_ref().and_then(field_text) else {
        return Ok(None);
    };
    // Cut like a file line that long, and flagged the same way.
    let truncated = message.len() > MAX_RECORD_BYTES;
    if truncated {
        let mut cut = MAX_RECORD_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let observed_unix_nano = unix_nanos(observed);
    let priority = entry
        .priority
        .as_ref()
        .and_then(field_text)
        .and_then(|text| text.trim().parse::<u8>().ok())
        .filter(|priority| *priority <= 7);
    let parsed = parse_line(message, parse);
    let (severity_number, severity_text) = match (priority, parsed.severity) {
        (Some(DEFAULT_STREAM_PRIORITY) | None, Some(stated)) => (stated.number(), stated.text()),
        (Some(priority), _) => severity_of_priority(priority),
        (None, None) => (0, ""),
    };
    let event_time = entry
        .realtime_micros
        .as_ref()
        .and_then(field_text)
        .and_then(|micros| micros.trim().parse::<u64>().ok())
        .map(|micros| micros.saturating_mul(1000))
        .or(parsed.event_time_unix_nano)
        .unwrap_or(observed_unix_nano);

    let mut attributes = Vec::with_capacity(3 + parsed.attributes.len());
    if let Some(unit) = entry.unit.as_ref().and_then(field_text) {
        attributes.push(string_attribute(ATTRIBUTE_UNIT, unit));
    }
    if let Some(identifier) = entry.syslog_identifier.as_ref().and_then(field_text) {
        attributes.push(string_attribute(ATTRIBUTE_SYSLOG_IDENTIFIER, identifier));
    }
    if let Some(pid) = entry
        .pid
        .as_ref()
        .and_then(field_text)
        .and_then(|pid| pid.trim().parse::<i64>().ok())
    {
        attributes.push(KeyValue {
            key: ATTRIBUTE_PID.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(pid)),
            }),
            ..Default::default()
        });
    }
    if truncated {
        attributes.push(KeyValue {
            key: ATTRIBUTE_TRUNCATED.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            }),
            ..Default::default()
        });
    }
    attributes.extend(parsed.attributes);
    let record = LogRecord {
        time_unix_nano: event_time,
        observed_time_unix_nano: observed_unix_nano,
        severity_number,
        severity_text: severity_text.to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(parsed.body)),
        }),
        attributes,
        dropped_attributes_count: parsed.dropped_attributes,
        ..Default::default()
    };
    let mut bytes = Vec::new();
    encode_record(&record, &mut bytes);
    Ok(Some(JournalRecord {
        bytes,
        observed_unix_nano,
        cursor: entry.cursor,
    }))
}

/// A journal field's value as text: a string as it is, a byte array decoded (lossily,
/// like a file line), several values joined by newlines.
fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(Value::as_u64)
                .map(|byte| u8::try_from(byte).unwrap_or(b'?'))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(field_text).collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Syslog priority to OpenTelemetry severity: the mapping OpenTelemetry SDKs use for
/// RFC 5424 levels (emergency and alert are fatal, critical is a stronger error, notice
/// a stronger info).
fn severity_of_priority(priority: u8) -> (i32, &'static str) {
    match priority {
        0 => (Severity::Fatal.number() + 1, Severity::Fatal.text()),
        1 => (Severity::Fatal.number(), Severity::Fatal.text()),
        2 => (Severity::Error.number() + 1, Severity::Error.text()),
        3 => (Severity::Error.number(), Severity::Error.text()),
        4 => (Severity::Warn.number(), Severity::Warn.text()),
        5 => (Severity::Info.number() + 1, Severity::Info.text()),
        6 => (Severity::Info.number(), Severity::Info.text()),
        _ => (Severity::Debug.number(), Severity::Debug.text()),
    }
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epitaph_proto::logs::v1::ScopeLogs;
    use prost::Message;

    fn decode(record: &JournalRecord) -> LogRecord {
        // The bytes are one `ScopeLogs.log_records` field.
        ScopeLogs::decode(record.bytes.as_slice())
            .unwrap()
            .log_records
            .remove(0)
    }

    fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)?
            .value
            .as_ref()?
            .value
            .as_ref()
    }

    fn body(record: &LogRecord) -> &str {
        match record.body.as_ref().and_then(|body| body.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => text,
            other => panic!("{other:?}"),
        }
    }

    fn entry(json: &str) -> LogRecord {
        let observed = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let record = record_of_entry(json.as_bytes(), ParseMode::Auto, observed)
            .unwrap()
            .unwrap();
        assert_eq!(record.observed_unix_nano, 2_000_000_000_000_000_000);
        decode(&record)
    }

    #[test]
    fn an_entry_becomes_a_record_with_time_severity_and_attributes() {
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1764115200123456","__MONOTONIC_TIMESTAMP":"1","_BOOT_ID":"b","MESSAGE":"disk almost full","PRIORITY":"4","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","_PID":"812"}"#;
        let observed = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let record = record_of_entry(line.as_bytes(), ParseMode::Auto, observed)
            .unwrap()
            .unwrap();
        assert_eq!(record.cursor, "s=1;i=2");
        let record = decode(&record);
        assert_eq!(body(&record), "disk almost full");
        assert_eq!(record.time_unix_nano, 1_764_115_200_123_456_000);
        assert_eq!(record.observed_time_unix_nano, 2_000_000_000_000_000_000);
        assert_eq!(record.severity_number, 13);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(
            attribute(&record, ATTRIBUTE_UNIT),
            Some(&any_value::Value::StringValue("nginx.service".into()))
        );
        assert_eq!(
            attribute(&record, ATTRIBUTE_SYSLOG_IDENTIFIER),
            Some(&any_value::Value::StringValue("nginx".into()))
        );
        assert_eq!(
            attribute(&record, ATTRIBUTE_PID),
            Some(&any_value::Value::IntValue(812))
        );
    }

    #[test]
    fn a_message_of_bytes_or_of_several_values_is_text() {
        // "caf\xe9 ok": not UTF-8, so journalctl prints bytes.
        let record = entry(r#"{"__CURSOR":"c","MESSAGE":[99,97,102,233,32,111,107]}"#);
        assert_eq!(body(&record), "caf\u{fffd} ok");
        let record = entry(r#"{"__CURSOR":"c","MESSAGE":["first","second"]}"#);
        assert_eq!(body(&record), "first\nsecond");
        // No time from the journal: the observed time stands in.
        assert_eq!(record.time_unix_nano, 2_000_000_000_000_000_000);
        assert_eq!(record.severity_number, 0);
    }

    #[test]
    fn priority_maps_to_severity_unless_the_default_meets_a_stated_level() {
        let cases = [
            ("0", "plain", 22, "FATAL"),
            ("2", "plain", 18, "ERROR"),
            ("3", "plain", 17, "ERROR"),
            ("5", "plain", 10, "INFO"),
            ("7", "plain", 5, "DEBUG"),
            // A service's stdout is priority 6 whatever it says; its own level wins.
            (
                "6",
                r#"{\"level\":\"error\",\"msg\":\"boom\"}"#,
                17,
                "ERROR",
            ),
            ("6", "plain", 9, "INFO"),
            // A priority someone chose wins over the text.
            ("3", "INFO looks fine", 17, "ERROR"),
        ];
        for (priority, message, number, text) in cases {
            let record = entry(&format!(
                r#"{{"__CURSOR":"c","PRIORITY":"{priority}","MESSAGE":"{message}"}}"#
            ));
            assert_eq!(record.severity_number, number, "{priority} {message}");
            assert_eq!(record.severity_text, text, "{priority} {message}");
        }
        let json = entry(
            r#"{"__CURSOR":"c","PRIORITY":"6","MESSAGE":"{\"level\":\"warn\",\"msg\":\"slow\",\"ms\":900}"}"#,
        );
        assert_eq!(body(&json), "slow");
        assert_eq!(
            attribute(&json, "ms"),
            Some(&any_value::Value::IntValue(900))
        );
    }

    #[test]
    fn malformed_lines_are_errors_and_entries_without_message_are_skipped() {
        let observed = SystemTime::now();
        for bad in [
            "not json",
            "{}",
            r#"{"__CURSOR":""}"#,
            r#"{"__CURSOR":5,"MESSAGE":"x"}"#,
        ] {
            assert!(
                record_of_entry(bad.as_bytes(), ParseMode::Auto, observed).is_err(),
                "{bad}"
            );
        }
        let no_message = br#"{"__CURSOR":"c","PRIORITY":"6"}"#;
        assert!(
            record_of_entry(no_message, ParseMode::Auto, observed)
                .unwrap()
                .is_none()
        );
        let null_message = br#"{"__CURSOR":"c","MESSAGE":null}"#;
        assert!(
            record_of_entry(null_message, ParseMode::Auto, observed)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_journald_table_parses_and_is_off_by_default() {
        let config = crate::config::Config::from_toml_str(
            r#"
            [journald]
            enabled = true
            units = ["nginx.service", "app@*.service"]
            journalctl = "/usr/bin/journalctl"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert!(config.journald.enabled);
        assert_eq!(config.journald.units, ["nginx.service", "app@*.service"]);
        assert!(!crate::config::Config::default().journald.enabled);
        assert!(crate::config::Config::from_toml_str("[journald]\nunit = []").is_err());
    }

    #[test]
    fn config_rejects_units_that_would_be_options() {
        JournaldConfig::default().validate().unwrap();
        let bad = JournaldConfig {
            units: vec!["--since=yesterday".to_string()],
            ..JournaldConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
