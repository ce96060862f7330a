//! Turning a line's text into a record's fields: body, severity, event time, attributes.
//!
//! With `parse = "auto"` (the default) a line is tried, in order, as
//!
//! 1. a JSON object ([`json`]): `{"level":"warn","msg":"slow","user":{"id":7}}`;
//! 2. logfmt ([`logfmt`]): `level=warn msg="slow query" duration=1.2s`;
//! 3. plain text: the body is the whole line, the level is found in a common prefix
//!    (`ERROR ...`, `[WARN] ...`, see [`crate::severity`]) and a leading RFC 3339
//!    timestamp becomes the event time.
//!
//! In a structured line the well-known keys become fields, the first one present of each
//! group wins, and the rest stay attributes:
//!
//! | field | keys |
//! |---|---|
//! | body | `msg`, `message` (else the whole line is the body) |
//! | severity | `level`, `severity`, `lvl`, `loglevel`, `log.level` (names, or pino/bunyan numbers 10–60) |
//! | event time | `time`, `timestamp`, `ts`, `@timestamp` (RFC 3339, or Unix epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude) |
//!
//! A key whose value cannot be understood (a level named `verbose`, a time `yesterday`)
//! is kept as an ordinary attribute rather than lost. Other keys become log record
//! attributes; nested JSON objects are flattened with dots (`{"http":{"status":500}}`
//! becomes `http.status = 500`), because dotted keys are how OpenTelemetry names
//! attributes and how the server's queries address them. JSON numbers, booleans and
//! arrays keep their types; `null`s are skipped; logfmt values are strings. At most
//! [`MAX_PARSED_ATTRIBUTES`] attributes are taken from one line, the rest are counted in
//! the record's `dropped_attributes_count`.
//!
//! With `parse = "none"` nothing is extracted: the body is the line, the event time is
//! the time it was read, and the level is still detected in the text as in plain lines.

pub mod json;
pub mod logfmt;
pub mod timestamp;

use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use serde::Deserialize;

use crate::severity::{Severity, detect_severity};

/// The most attributes one line may contribute; a line with thousands of keys would
/// otherwise make one record cost more than a whole batch of ordinary ones.
pub const MAX_PARSED_ATTRIBUTES: usize = 128;

pub const BODY_KEYS: [&str; 2] = ["msg", "message"];
pub const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "loglevel", "log.level"];
pub const TIME_KEYS: [&str; 4] = ["time", "timestamp", "ts", "@timestamp"];

/// The `parse` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseMode {
    /// JSON objects and logfmt lines become fields; other lines are plain text.
    #[default]
    Auto,
    /// Every line is plain text; only its level is detected.
    None,
}

/// What parsing found in one line (or multiline event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedLine {
    pub body: String,
    pub severity: Option<Severity>,
    /// The time the line says it was written, in Unix nanoseconds.
    pub event_time_unix_nano: Option<u64>,
    pub attributes: Vec<KeyValue>,
    /// Attributes left out past [`MAX_PARSED_ATTRIBUTES`].
    pub dropped_attributes: u32,
}

/// Parses `text` according to `mode`; never fails (a line that is not structured is
/// plain text).
pub fn parse_line(text: String, mode: ParseMode) -> ParsedLine {
    if mode == ParseMode::Auto {
        if let Some(parsed) = json::parse(&text) {
            return parsed;
        }
        if let Some(parsed) = logfmt::parse(&text) {
            return parsed;
        }
        let event_time_unix_nano = timestamp::leading_rfc3339(&text);
        let severity = detect_severity(&text);
        return ParsedLine {
            body: text,
            severity,
            event_time_unix_nano,
            ..ParsedLine::default()
        };
    }
    ParsedLine {
        severity: detect_severity(&text),
        body: text,
        ..ParsedLine::default()
    }
}

/// Collects attributes up to [`MAX_PARSED_ATTRIBUTES`], counting the rest.
#[derive(Debug, Default)]
pub(crate) struct AttributeSink {
    attributes: Vec<KeyValue>,
    dropped: u32,
}

impl AttributeSink {
    pub(crate) fn push(&mut self, key: String, value: any_value::Value) {
        if self.attributes.len() >= MAX_PARSED_ATTRIBUTES {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.attributes.push(KeyValue {
            key,
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }

    pub(crate) fn finish(self) -> (Vec<KeyValue>, u32) {
        (self.attributes, self.dropped)
    }
}

/// The level named by a structured field's text value.
pub(crate) fn severity_from_text(value: &str) -> Option<Severity> {
    crate::severity::level_word(value.trim())
}

/// pino and bunyan number their levels 10 (trace) to 60 (fatal).
pub(crate) fn severity_from_number(value: f64) -> Option<Severity> {
    let severity = match value {
        v if !(10.0..1000.0).contains(&v) => return None,
        v if v < 20.0 => Severity::Trace,
        v if v < 30.0 => Severity::Debug,
        v if v < 40.0 => Severity::Info,
        v if v < 50.0 => Severity::Warn,
        v if v < 60.0 => Severity::Error,
        _ => Severity::Fatal,
    };
    Some(severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_keeps_its_text_and_finds_prefix_level_and_leading_time() {
        let parsed = parse_line(
            "2026-01-02T03:04:05.5Z ERROR db: connection refused".to_string(),
            ParseMode::Auto,
        );
        assert_eq!(
            parsed.body,
            "2026-01-02T03:04:05.5Z ERROR db: connection refused"
        );
        assert_eq!(parsed.severity, Some(Severity::Error));
        assert_eq!(parsed.event_time_unix_nano, Some(1_767_323_045_500_000_000));
        assert!(parsed.attributes.is_empty());
    }

    #[test]
    fn mode_none_extracts_nothing_but_the_level() {
        let line = r#"{"level":"warn","msg":"slow","ts":1700000000}"#;
        let parsed = parse_line(line.to_string(), ParseMode::None);
        assert_eq!(parsed.body, line);
        assert_eq!(parsed.severity, Some(Severity::Warn));
        assert_eq!(parsed.event_time_unix_nano, None);
        assert!(parsed.attributes.is_empty());
    }

    #[test]
    fn numeric_levels_follow_pino() {
        assert_eq!(severity_from_number(30.0), Some(Severity::Info));
        assert_eq!(severity_from_number(50.0), Some(Severity::Error));
        assert_eq!(severity_from_number(60.0), Some(Severity::Fatal));
        assert_eq!(severity_from_number(3.0), None);
    }
}
