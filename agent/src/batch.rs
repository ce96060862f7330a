//! Turning lines into OTLP: one record per line (or multiline event), one export request
//! per batch.
//!
//! A record's fields come from [`crate::parse`]: the body, severity, attributes and
//! event time a structured line states. `time_unix_nano` is that event time, or the read
//! time when the line states none; `observed_time_unix_nano` is always the read time, so
//! every record carries both. The file attributes `log.file.path` and `log.file.name`
//! come first, then the parsed ones.
//!
//! A batch is one `ExportLogsServiceRequest` with one `ResourceLogs` (the instance's
//! identity) and one `ScopeLogs` (scope `epitaph-agent` at the crate's version). The
//! [`BatchBuilder`] bounds a batch by record count and by encoded size, and reports its
//! age so the collector can seal a partial batch after `batch_timeout`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use epitaph_proto::resource::v1::Resource;
use prost::Message;

use crate::parse::{ParseMode, parse_line};
use crate::sources::file::FileLine;

pub const SCOPE_NAME: &str = "epitaph-agent";
pub const ATTRIBUTE_FILE_PATH: &str = "log.file.path";
pub const ATTRIBUTE_FILE_NAME: &str = "log.file.name";
pub const ATTRIBUTE_TRUNCATED: &str = "epitaph.truncated";

/// Nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos() as u64)
        .unwrap_or(0)
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The OTLP record for one file line (or multiline event) read at `observed`.
pub fn log_record_from_file_line(
    line: FileLine,
    observed: SystemTime,
    mode: ParseMode,
) -> LogRecord {
    let observed_nanos = unix_nanos(observed);
    let parsed = parse_line(line.text, mode);
    let mut attributes = Vec::with_capacity(3 + parsed.attributes.len());
    attributes.push(string_attribute(ATTRIBUTE_FILE_PATH, &line.path));
    attributes.push(string_attribute(ATTRIBUTE_FILE_NAME, &line.file_name));
    if line.truncated {
        attributes.push(KeyValue {
            key: ATTRIBUTE_TRUNCATED.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            }),
            ..Default::default()
        });
    }
    attributes.extend(parsed.attributes);
    let severity = parsed.severity;
    LogRecord {
        time_unix_nano: parsed.event_time_unix_nano.unwrap_or(observed_nanos),
        observed_time_unix_nano: observed_nanos,
        severity_number: severity.map(|severity| severity.number()).unwrap_or(0),
        severity_text: severity
            .map(|severity| severity.text().to_string())
            .unwrap_or_default(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(parsed.body)),
        }),
        attributes,
        dropped_attributes_count: parsed.dropped_attributes,
        ..Default::default()
    }
}

/// Wraps records in the request shape every batch has.
pub fn export_request(resource: &Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// How many records an export request holds.
pub fn record_count(request: &ExportLogsServiceRequest) -> u64 {
    request
        .resource_logs
        .iter()
        .flat_map(|resource_logs| &resource_logs.scope_logs)
        .map(|scope_logs| scope_logs.log_records.len() as u64)
        .sum()
}

/// Takes the records back out of a request built by [`export_request`].
pub fn into_records(request: ExportLogsServiceRequest) -> Vec<LogRecord> {
    request
        .resource_logs
        .into_iter()
        .flat_map(|resource_logs| resource_logs.scope_logs)
        .flat_map(|scope_logs| scope_logs.log_records)
        .collect()
}

/// Accumulates records until a batch is full or old enough to send.
pub struct BatchBuilder {
    max_records: usize,
    max_bytes: usize,
    records: Vec<LogRecord>,
    bytes: usize,
    opened_at: Option<Instant>,
}

impl BatchBuilder {
    pub fn new(max_records: usize, max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_records,
            max_bytes,
            records: Vec::new(),
            bytes: 0,
            opened_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether `record` fits without breaking a limit. An empty batch takes any record,
    /// so a record larger than `max_bytes` travels alone rather than never.
    pub fn fits(&self, record: &LogRecord) -> bool {
        if self.records.is_empty() {
            return true;
        }
        self.records.len() < self.max_records && self.bytes + encoded_size(record) <= self.max_bytes
    }

    pub fn push(&mut self, record: LogRecord) {
        debug_assert!(self.fits(&record), "push only what fits");
        if self.records.is_empty() {
            self.opened_at = Some(Instant::now());
        }
        self.bytes += encoded_size(&record);
        self.records.push(record);
    }

    /// Whether another record could still be added (ignoring its size).
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_records || self.bytes >= self.max_bytes
    }

    /// How long the oldest record has waited.
    pub fn age(&self) -> Duration {
        self.opened_at
            .map(|opened| opened.elapsed())
            .unwrap_or_default()
    }

    pub fn take_records(&mut self) -> Vec<LogRecord> {
        self.bytes = 0;
        self.opened_at = None;
        std::mem::take(&mut self.records)
    }

    /// Puts back records whose batch could not be spooled, keeping the original age.
    pub fn restore(&mut self, records: Vec<LogRecord>, opened_at: Instant) {
        debug_assert!(self.records.is_empty(), "restore into an empty builder");
        self.bytes = records.iter().map(encoded_size).sum();
        self.records = records;
        self.opened_at = Some(opened_at);
    }

    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }
}

/// A record's share of the request: its encoding plus the repeated-field framing.
fn encoded_size(record: &LogRecord) -> usize {
    let length = record.encoded_len();
    length + prost::length_delimiter_len(length) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::file::FileKey;
    use std::sync::Arc;

    fn line(text: &str, truncated: bool) -> FileLine {
        FileLine {
            key: FileKey {
                device: 1,
                inode: 2,
            },
            generation: 0,
            path: Arc::from("/var/log/app/web.log"),
            file_name: Arc::from("web.log"),
            text: text.to_string(),
            truncated,
            end_offset: 10,
            line_count: 1,
        }
    }

    fn record_of(text: &str, truncated: bool, observed: SystemTime) -> LogRecord {
        log_record_from_file_line(line(text, truncated), observed, ParseMode::Auto)
    }

    fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|value| value.value.as_ref())
    }

    #[test]
    fn record_carries_body_times_file_attributes_and_severity() {
        let observed = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let record = record_of("level=warn slow", false, observed);
        assert_eq!(record.time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(record.observed_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(record.severity_number, 13);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(
            record.body.unwrap().value,
            Some(any_value::Value::StringValue("level=warn slow".into()))
        );
        let record = record_of("plain", true, observed);
        assert_eq!(record.severity_number, 0);
        assert!(record.severity_text.is_empty());
        assert_eq!(
            attribute(&record, ATTRIBUTE_FILE_PATH),
            Some(&any_value::Value::StringValue(
                "/var/log/app/web.log".into()
            ))
        );
        assert_eq!(
            attribute(&record, ATTRIBUTE_FILE_NAME),
            Some(&any_value::Value::StringValue("web.log".into()))
        );
        assert_eq!(
            attribute(&record, ATTRIBUTE_TRUNCATED),
            Some(&any_value::Value::BoolValue(true))
        );
    }

    #[test]
    fn json_line_gives_fields_event_time_and_keeps_observed_time() {
        let observed = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let record = record_of(
            r#"{"ts":"2026-01-02T03:04:05Z","level":"error","msg":"payment failed","order":{"id":42}}"#,
            false,
            observed,
        );
        assert_eq!(record.time_unix_nano, 1_767_323_045_000_000_000);
        assert_eq!(record.observed_time_unix_nano, 1_800_000_000_000_000_000);
        assert_eq!(record.severity_text, "ERROR");
        assert_eq!(
            record.body.clone().unwrap().value,
            Some(any_value::Value::StringValue("payment failed".into()))
        );
        assert_eq!(
            attribute(&record, "order.id"),
            Some(&any_value::Value::IntValue(42))
        );
        assert!(attribute(&record, ATTRIBUTE_FILE_NAME).is_some());
        let raw = log_record_from_file_line(
            line(r#"{"msg":"kept whole"}"#, false),
            observed,
            ParseMode::None,
        );
        assert_eq!(
            raw.body.unwrap().value,
            Some(any_value::Value::StringValue(
                r#"{"msg":"kept whole"}"#.into()
            ))
        );
        assert_eq!(raw.time_unix_nano, raw.observed_time_unix_nano);
    }

    #[test]
    fn request_has_one_resource_and_one_scope() {
        let observed = SystemTime::now();
        let records = vec![
            record_of("a", false, observed),
            record_of("b", false, observed),
        ];
        let request = export_request(&Resource::default(), records);
        assert_eq!(request.resource_logs.len(), 1);
        assert_eq!(request.resource_logs[0].scope_logs.len(), 1);
        let scope = request.resource_logs[0].scope_logs[0]
            .scope
            .as_ref()
            .unwrap();
        assert_eq!(scope.name, "epitaph-agent");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(record_count(&request), 2);
        assert_eq!(into_records(request).len(), 2);
    }

    #[test]
    fn builder_respects_record_and_byte_limits() {
        let observed = SystemTime::now();
        let record = record_of("x", false, observed);
        let mut by_count = BatchBuilder::new(2, 1 << 20);
        by_count.push(record.clone());
        assert!(by_count.fits(&record));
        by_count.push(record.clone());
        assert!(by_count.is_full());
        assert!(!by_count.fits(&record));

        let big = record_of(&"y".repeat(2000), false, observed);
        let mut by_bytes = BatchBuilder::new(100, 3000);
        assert!(by_bytes.fits(&big));
        by_bytes.push(big.clone());
        assert!(!by_bytes.fits(&big));
        // An oversized record still goes, alone.
        let tiny = BatchBuilder::new(100, 10);
        assert!(tiny.fits(&big));
        assert_eq!(by_bytes.take_records().len(), 1);
        assert!(by_bytes.is_empty());
    }

    #[test]
    fn encoded_request_stays_within_max_bytes() {
        let observed = SystemTime::now();
        let mut builder = BatchBuilder::new(10_000, 20_000);
        let record = record_of(&"z".repeat(100), false, observed);
        while builder.fits(&record) {
            builder.push(record.clone());
        }
        let request = export_request(&Resource::default(), builder.take_records());
        // The envelope (resource, scope) comes on top of the records' share.
        assert!(
            request.encoded_len() <= 20_000 + 200,
            "{}",
            request.encoded_len()
        );
    }
}
