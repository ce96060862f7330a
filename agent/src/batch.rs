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
//!
//! Records are protobuf-encoded as they are read ([`encode_file_line`] writes a line's
//! `LogRecord` straight from the parsed line, [`encode_record`] encodes one that already
//! is a `LogRecord`), and a batch is those bytes behind an [`Envelope`] encoded once per
//! run: a record is encoded once and never held as a tree of small allocations, which
//! were most of the agent's malloc traffic.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use epitaph_proto::resource::v1::Resource;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

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
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
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

// Field numbers of the OTLP messages a batch is made of (opentelemetry/proto, logs v1).
const REQUEST_RESOURCE_LOGS: u32 = 1;
const RESOURCE_LOGS_RESOURCE: u32 = 1;
const RESOURCE_LOGS_SCOPE_LOGS: u32 = 2;
const SCOPE_LOGS_SCOPE: u32 = 1;
const SCOPE_LOGS_LOG_RECORDS: u32 = 2;
const RECORD_TIME: u32 = 1;
const RECORD_SEVERITY_NUMBER: u32 = 2;
const RECORD_SEVERITY_TEXT: u32 = 3;
const RECORD_BODY: u32 = 5;
const RECORD_ATTRIBUTES: u32 = 6;
const RECORD_DROPPED_ATTRIBUTES: u32 = 7;
const RECORD_OBSERVED_TIME: u32 = 11;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_VALUE_STRING: u32 = 1;
const ANY_VALUE_BOOL: u32 = 2;

/// Bytes of a length-delimited field (every field number here is below 16, so its key is
/// one byte) whose content is `len` bytes long.
fn delimited_field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_delimited_header(out: &mut Vec<u8>, field: u32, len: usize) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_str_field(out: &mut Vec<u8>, field: u32, value: &str) {
    put_delimited_header(out, field, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn put_fixed64_field(out: &mut Vec<u8>, field: u32, value: u64) {
    encode_key(field, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    encode_key(field, WireType::Varint, out);
    encode_varint(value, out);
}

/// An `AnyValue` holding a string: its encoded length, and its encoding.
fn string_any_value_len(value: &str) -> usize {
    delimited_field_len(value.len())
}

/// A `KeyValue` with a string value: its encoded length.
fn string_attribute_len(key: &str, value: &str) -> usize {
    delimited_field_len(key.len()) + delimited_field_len(string_any_value_len(value))
}

fn put_string_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    put_delimited_header(out, RECORD_ATTRIBUTES, string_attribute_len(key, value));
    put_str_field(out, KEY_VALUE_KEY, key);
    put_delimited_header(out, KEY_VALUE_VALUE, string_any_value_len(value));
    put_str_field(out, ANY_VALUE_STRING, value);
}

/// `KeyValue { key: epitaph.truncated, value: true }`.
fn truncated_attribute_len() -> usize {
    delimited_field_len(ATTRIBUTE_TRUNCATED.len()) + delimited_field_len(2)
}

fn put_truncated_attribute(out: &mut Vec<u8>) {
    put_delimited_header(out, RECORD_ATTRIBUTES, truncated_attribute_len());
    put_str_field(out, KEY_VALUE_KEY, ATTRIBUTE_TRUNCATED);
    put_delimited_header(out, KEY_VALUE_VALUE, 2);
    put_varint_field(out, ANY_VALUE_BOOL, 1);
}

/// Appends the `ScopeLogs.log_records` field for one file line (or multiline event) read
/// at `observed_unix_nano`: the same bytes as prost gives for
/// [`log_record_from_file_line`], written straight from the parsed line instead of
/// through a `LogRecord` (whose strings, attribute list and boxes would be allocated for
/// each line only to be encoded and freed).
pub fn encode_file_line(
    line: FileLine,
    observed_unix_nano: u64,
    mode: ParseMode,
    out: &mut Vec<u8>,
) {
    let parsed = parse_line(line.text, mode);
    let time = parsed.event_time_unix_nano.unwrap_or(observed_unix_nano);
    let severity_number = parsed
        .severity
        .map(|severity| severity.number())
        .unwrap_or(0);
    let severity_text = parsed
        .severity
        .map(|severity| severity.text())
        .unwrap_or("");

    // Fields in field-number order, each only when it differs from its default, as prost
    // writes them.
    let mut record_len = 0;
    if time != 0 {
        record_len += 9;
    }
    if severity_number != 0 {
        record_len += 1 + encoded_len_varint(severity_number as u64);
    }
    if !severity_text.is_empty() {
        record_len += delimited_field_len(severity_text.len());
    }
    record_len += delimited_field_len(string_any_value_len(&parsed.body));
    record_len += delimited_field_len(string_attribute_len(ATTRIBUTE_FILE_PATH, &line.path));
    record_len += delimited_field_len(string_attribute_len(ATTRIBUTE_FILE_NAME, &line.file_name));
    if line.truncated {
        record_len += delimited_field_len(truncated_attribute_len());
    }
    for attribute in &parsed.attributes {
        record_len += delimited_field_len(attribute.encoded_len());
    }
    if parsed.dropped_attributes != 0 {
        record_len += 1 + encoded_len_varint(u64::from(parsed.dropped_attributes));
    }
    if observed_unix_nano != 0 {
        record_len += 9;
    }

    out.reserve(delimited_field_len(record_len));
    put_delimited_header(out, SCOPE_LOGS_LOG_RECORDS, record_len);
    let record_start = out.len();
    if time != 0 {
        put_fixed64_field(out, RECORD_TIME, time);
    }
    if severity_number != 0 {
        put_varint_field(out, RECORD_SEVERITY_NUMBER, severity_number as u64);
    }
    if !severity_text.is_empty() {
        put_str_field(out, RECORD_SEVERITY_TEXT, severity_text);
    }
    put_delimited_header(out, RECORD_BODY, string_any_value_len(&parsed.body));
    put_str_field(out, ANY_VALUE_STRING, &parsed.body);
    put_string_attribute(out, ATTRIBUTE_FILE_PATH, &line.path);
    put_string_attribute(out, ATTRIBUTE_FILE_NAME, &line.file_name);
    if line.truncated {
        put_truncated_attribute(out);
    }
    for attribute in &parsed.attributes {
        prost::encoding::message::encode(RECORD_ATTRIBUTES, attribute, out);
    }
    if parsed.dropped_attributes != 0 {
        put_varint_field(
            out,
            RECORD_DROPPED_ATTRIBUTES,
            u64::from(parsed.dropped_attributes),
        );
    }
    if observed_unix_nano != 0 {
        put_fixed64_field(out, RECORD_OBSERVED_TIME, observed_unix_nano);
    }
    debug_assert_eq!(out.len() - record_start, record_len);
}

/// Appends the `ScopeLogs.log_records` field for `record` (for records that come as
/// `LogRecord`s rather than as file lines).
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) {
    prost::encoding::message::encode(SCOPE_LOGS_LOG_RECORDS, record, out);
}

/// The part of every batch's request that surrounds its records: the instance's
/// resource and the agent's scope, encoded once.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `ResourceLogs.resource`, with its key and length.
    resource_field: Vec<u8>,
    /// `ScopeLogs.scope`, with its key and length.
    scope_field: Vec<u8>,
}

impl Envelope {
    pub fn new(resource: &Resource) -> Envelope {
        let mut resource_field = Vec::new();
        prost::encoding::message::encode(RESOURCE_LOGS_RESOURCE, resource, &mut resource_field);
        let mut scope_field = Vec::new();
        prost::encoding::message::encode(SCOPE_LOGS_SCOPE, &scope(), &mut scope_field);
        Envelope {
            resource_field,
            scope_field,
        }
    }

    /// Writes the whole `ExportLogsServiceRequest` for `records` (a run of
    /// `ScopeLogs.log_records` fields) into `out`, which is cleared first. `ScopeLogs`
    /// holds its records last, so the request is the envelope's headers followed by the
    /// records as they are — byte for byte what prost writes for [`export_request`].
    pub fn write_request(&self, records: &[u8], out: &mut Vec<u8>) {
        let scope_logs_len = self.scope_field.len() + records.len();
        let resource_logs_len = self.resource_field.len() + delimited_field_len(scope_logs_len);
        out.clear();
        out.reserve(delimited_field_len(resource_logs_len));
        put_delimited_header(out, REQUEST_RESOURCE_LOGS, resource_logs_len);
        out.extend_from_slice(&self.resource_field);
        put_delimited_header(out, RESOURCE_LOGS_SCOPE_LOGS, scope_logs_len);
        out.extend_from_slice(&self.scope_field);
        out.extend_from_slice(records);
    }
}

/// Accumulates encoded records until a batch is full or old enough to send.
///
/// Records are kept encoded (see [`encode_file_line`]), so a batch costs its encoded
/// size in memory and nothing is encoded twice. The buffer is reused from one batch to
/// the next: no batch-sized allocation per batch.
pub struct BatchBuilder {
    max_records: usize,
    max_bytes: usize,
    /// `ScopeLogs.log_records` fields, one per record.
    records: Vec<u8>,
    record_count: usize,
    first_observed_unix_nano: u64,
    last_observed_unix_nano: u64,
    opened_at: Option<Instant>,
}

impl BatchBuilder {
    pub fn new(max_records: usize, max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_records,
            max_bytes,
            records: Vec::new(),
            record_count: 0,
            first_observed_unix_nano: 0,
            last_observed_unix_nano: 0,
            opened_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn len(&self) -> usize {
        self.record_count
    }

    /// Whether a record of `encoded_len` bytes (as [`encode_file_line`] or
    /// [`encode_record`] wrote it) fits without breaking a limit. An empty batch takes
    /// any record, so a record larger than `max_bytes` travels alone rather than never.
    pub fn fits(&self, encoded_len: usize) -> bool {
        if self.is_empty() {
            return true;
        }
        self.record_count < self.max_records && self.records.len() + encoded_len <= self.max_bytes
    }

    /// Adds one encoded record observed at `observed_unix_nano` (0 if unknown).
    pub fn push_encoded(&mut self, encoded_record: &[u8], observed_unix_nano: u64) {
        debug_assert!(self.fits(encoded_record.len()), "push only what fits");
        if self.is_empty() {
            self.opened_at = Some(Instant::now());
        }
        self.records.extend_from_slice(encoded_record);
        self.record_count += 1;
        if observed_unix_nano != 0 {
            if self.first_observed_unix_nano == 0
                || observed_unix_nano < self.first_observed_unix_nano
            {
                self.first_observed_unix_nano = observed_unix_nano;
            }
            self.last_observed_unix_nano = self.last_observed_unix_nano.max(observed_unix_nano);
        }
    }

    /// Whether another record could still be added (ignoring its size).
    pub fn is_full(&self) -> bool {
        self.record_count >= self.max_records || self.records.len() >= self.max_bytes
    }

    /// How long the oldest record has waited.
    pub fn age(&self) -> Duration {
        self.opened_at
            .map(|opened| opened.elapsed())
            .unwrap_or_default()
    }

    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// The records so far, encoded.
    pub fn encoded_records(&self) -> &[u8] {
        &self.records
    }

    /// Observed times of the oldest and newest record (Unix ns; 0, 0 if none known).
    pub fn observed_range(&self) -> (u64, u64) {
        (self.first_observed_unix_nano, self.last_observed_unix_nano)
    }

    /// Empties the batch (once it is safely in the spool), keeping the buffer.
    pub fn clear(&mut self) {
        self.records.clear();
        self.record_count = 0;
        self.first_observed_unix_nano = 0;
        self.last_observed_unix_nano = 0;
        self.opened_at = None;
    }
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
    }

    fn identity_resource() -> Resource {
        Resource {
            attributes: vec![
                string_attribute("service.name", "checkout"),
                string_attribute("host.id", "i-0123456789abcdef0"),
            ],
            ..Default::default()
        }
    }

    /// Plain, prefixed, JSON (with nested fields, numbers and an event time), logfmt,
    /// truncated, empty-bodied and long lines, and a clock before 1970.
    fn sample_lines() -> Vec<(FileLine, u64)> {
        let observed = 1_700_000_000_123_456_789;
        vec![
            (line("plain text", false), observed),
            (line("ERROR 2026-01-02 disk full", false), observed),
            (
                line(
                    r#"{"ts":"2026-01-02T03:04:05Z","level":"warn","msg":"slow","order":{"id":42,"paid":true},"ratio":0.5,"tags":["a","b"]}"#,
                    false,
                ),
                observed,
            ),
            (
                line("level=info msg=\"user login\" user=ann took=12ms", false),
                observed,
            ),
            (line(&"x".repeat(300), true), observed),
            (line(r#"{"msg":""}"#, false), observed),
            (line("at the epoch", false), 0),
        ]
    }

    #[test]
    fn encoded_file_line_is_what_prost_writes_for_its_record() {
        for mode in [ParseMode::Auto, ParseMode::None] {
            for (file_line, observed_nanos) in sample_lines() {
                let observed = UNIX_EPOCH + Duration::from_nanos(observed_nanos);
                let record = log_record_from_file_line(file_line.clone(), observed, mode);
                let mut expected = Vec::new();
                encode_record(&record, &mut expected);
                let mut encoded = Vec::new();
                encode_file_line(file_line.clone(), observed_nanos, mode, &mut encoded);
                assert_eq!(encoded, expected, "{:?} in {mode:?}", file_line.text);
            }
        }
    }

    #[test]
    fn envelope_and_records_make_the_request_prost_writes() {
        let resource = identity_resource();
        let envelope = Envelope::new(&resource);
        let mut records = Vec::new();
        let mut encoded = Vec::new();
        for (file_line, observed_nanos) in sample_lines() {
            let observed = UNIX_EPOCH + Duration::from_nanos(observed_nanos);
            records.push(log_record_from_file_line(
                file_line.clone(),
                observed,
                ParseMode::Auto,
            ));
            encode_file_line(file_line, observed_nanos, ParseMode::Auto, &mut encoded);
        }
        let expected = export_request(&resource, records).encode_to_vec();
        let mut request = vec![7; 3]; // cleared first
        envelope.write_request(&encoded, &mut request);
        assert_eq!(request, expected);
        let decoded = ExportLogsServiceRequest::decode(request.as_slice()).unwrap();
        assert_eq!(record_count(&decoded), sample_lines().len() as u64);
        envelope.write_request(&[], &mut request);
        assert_eq!(
            request,
            export_request(&resource, Vec::new()).encode_to_vec()
        );
    }

    fn encoded(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_file_line(line(text, false), 1, ParseMode::Auto, &mut out);
        out
    }

    #[test]
    fn builder_respects_record_and_byte_limits() {
        let record = encoded("x");
        let mut by_count = BatchBuilder::new(2, 1 << 20);
        by_count.push_encoded(&record, 5);
        assert!(by_count.fits(record.len()));
        by_count.push_encoded(&record, 3);
        assert!(by_count.is_full());
        assert!(!by_count.fits(record.len()));
        assert_eq!(by_count.observed_range(), (3, 5));
        assert_eq!(by_count.encoded_records().len(), 2 * record.len());

        let big = encoded(&"y".repeat(2000));
        let mut by_bytes = BatchBuilder::new(100, 3000);
        assert!(by_bytes.fits(big.len()));
        by_bytes.push_encoded(&big, 1);
        assert!(!by_bytes.fits(big.len()));
        // An oversized record still goes, alone.
        let tiny = BatchBuilder::new(100, 10);
        assert!(tiny.fits(big.len()));
        assert_eq!(by_bytes.len(), 1);
        assert!(by_bytes.opened_at().is_some());
        by_bytes.clear();
        assert!(by_bytes.is_empty());
        assert_eq!(by_bytes.observed_range(), (0, 0));
        assert!(by_bytes.opened_at().is_none());
    }

    #[test]
    fn encoded_request_stays_within_max_bytes() {
        let mut builder = BatchBuilder::new(10_000, 20_000);
        let record = encoded(&"z".repeat(100));
        while builder.fits(record.len()) {
            builder.push_encoded(&record, 1);
        }
        let mut request = Vec::new();
        Envelope::new(&Resource::default()).write_request(builder.encoded_records(), &mut request);
        // The envelope (resource, scope) comes on top of the records' share.
        assert!(request.len() <= 20_000 + 200, "{}", request.len());
    }
}
