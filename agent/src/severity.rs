//! Guessing a log line's level from its text.
//!
//! Unstructured lines carry their level in a handful of conventional places; this looks
//! for them, cheapest and least ambiguous first:
//!
//! 1. a key/value pair anywhere near the start: `level=error`, `lvl=warn`,
//!    `"level":"warn"`, `"severity": "ERROR"` (logfmt and JSON);
//! 2. the first word: `INFO: ...`, `error: ...`, `[WARN] ...`, `ERROR ...`;
//! 3. a later word that is bracketed (`[warn]`) or in capitals (` ERROR `), as in
//!    `2026-01-01T10:00:00Z ERROR db: ...` or `... [main] WARN c.f.Foo - ...`.
//!
//! Only upper-case or bracketed words count in (3), so a message that merely mentions an
//! error ("no error found") is not classified. The mapping is the OpenTelemetry one
//! (TRACE=1, DEBUG=5, INFO=9, WARN=13, ERROR=17, FATAL=21), and the record's
//! `severity_text` is the canonical upper-case name so that queries see one spelling.

/// A log level in the OpenTelemetry severity ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// The OTLP `severity_number` for the start of this level's range.
    pub fn number(self) -> i32 {
        match self {
            Severity::Trace => 1,
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
            Severity::Fatal => 21,
        }
    }

    /// The OTLP `severity_text`.
    pub fn text(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// How far into a line key/value levels are looked for (JSON may put `level` late).
const KEY_VALUE_SCAN_BYTES: usize = 4096;
/// How far into a line free-standing level words are looked for.
const WORD_SCAN_BYTES: usize = 256;
/// Keys naming a level. They all start with `l` or `s`, which `level_from_key_value`
/// relies on to skip other positions quickly.
const LEVEL_KEYS: [&str; 4] = ["level", "lvl", "severity", "loglevel"];

/// The level a line states, if it states one in a recognised form.
pub fn detect_severity(line: &str) -> Option<Severity> {
    level_from_key_value(prefix(line, KEY_VALUE_SCAN_BYTES))
        .or_else(|| level_from_first_word(line))
        .or_else(|| level_from_marked_word(prefix(line, WORD_SCAN_BYTES)))
}

fn prefix(line: &str, max_bytes: usize) -> &str {
    if line.len() <= max_bytes {
        return line;
    }
    let mut end = max_bytes;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

pub(crate) fn level_word(word: &str) -> Option<Severity> {
    // Lower-cased on the stack: this runs for many words of every line, and the
    // longest level word ("information", "emergency") has 11 bytes.
    let mut lowered = [0u8; 11];
    let buffer = lowered.get_mut(..word.len())?;
    buffer.copy_from_slice(word.as_bytes());
    buffer.make_ascii_lowercase();
    let severity = match &*buffer {
        b"trace" | b"trc" => Severity::Trace,
        b"debug" | b"dbg" => Severity::Debug,
        b"info" | b"inf" | b"information" | b"notice" => Severity::Info,
        b"warn" | b"warning" | b"wrn" => Severity::Warn,
        b"error" | b"err" | b"erro" => Severity::Error,
        b"fatal" | b"ftl" | b"critical" | b"crit" | b"panic" | b"emerg" | b"emergency"
        | b"alert" => Severity::Fatal,
        _ => return None,
    };
    Some(severity)
}

/// `level=error`, `level="error"`, `"level":"warn"`, `"severity": "ERROR"`, ...
fn level_from_key_value(text: &str) -> Option<Severity> {
    let bytes = text.as_bytes();
    for start in 0..bytes.len() {
        // Every key starts with `l` or `s`: most positions are rejected by one compare.
        if !matches!(bytes[start], b'l' | b'L' | b's' | b'S') {
            continue;
        }
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue; // inside a longer key such as `sublevel`
        }
        for key in LEVEL_KEYS {
            let end = start + key.len();
            if end > bytes.len() || !bytes[start..end].eq_ignore_ascii_case(key.as_bytes()) {
                continue;
            }
            if let Some(severity) = value_after_key(&bytes[end..]) {
                return Some(severity);
            }
        }
    }
    None
}

/// Parses `"?\s*[=:]\s*["']?word` right after a level key.
fn value_after_key(rest: &[u8]) -> Option<Severity> {
    let mut index = 0;
    if rest.get(index) == Some(&b'"') {
        index += 1;
    }
    while rest.get(index) == Some(&b' ') {
        index += 1;
    }
    if !matches!(rest.get(index), Some(b'=') | Some(b':')) {
        return None;
    }
    index += 1;
    while rest.get(index) == Some(&b' ') {
        index += 1;
    }
    if matches!(rest.get(index), Some(b'"') | Some(b'\'')) {
        index += 1;
    }
    let word_start = index;
    while rest.get(index).is_some_and(u8::is_ascii_alphabetic) {
        index += 1;
    }
    // The slice is ASCII letters only, so it is valid UTF-8.
    level_word(std::str::from_utf8(&rest[word_start..index]).ok()?)
}

/// `INFO: ...`, `error: ...`, `[warn] ...`, `WARN ...` at the very start of the line.
fn level_from_first_word(line: &str) -> Option<Severity> {
    let first = line.split_whitespace().next()?;
    if let Some(inner) = first
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return level_word(inner);
    }
    if let Some(word) = first.strip_suffix(':') {
        return level_word(word);
    }
    level_word(first).filter(|_| is_upper_case_word(first))
}

/// A later `[warn]` or ` ERROR ` (capitals) among the first words of the line.
fn level_from_marked_word(text: &str) -> Option<Severity> {
    for token in text.split_whitespace() {
        if let Some(inner) = token
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            if let Some(severity) = level_word(inner) {
                return Some(severity);
            }
            continue;
        }
        let word = token.trim_end_matches([':', ',', ';']);
        if is_upper_case_word(word)
            && let Some(severity) = level_word(word)
        {
            return Some(severity);
        }
    }
    None
}

fn is_upper_case_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|byte| byte.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_level_key_starts_with_a_letter_the_scan_looks_for() {
        for key in LEVEL_KEYS {
            assert!(matches!(key.as_bytes()[0], b'l' | b's'), "{key}");
        }
    }

    #[test]
    fn level_words_are_matched_whatever_their_case_and_length() {
        assert_eq!(level_word("INFORMATION"), Some(Severity::Info));
        assert_eq!(level_word("Emergency"), Some(Severity::Fatal));
        assert_eq!(level_word("informational"), None);
        assert_eq!(level_word(""), None);
        assert_eq!(level_word("ÉRROR"), None);
    }

    use super::*;

    #[test]
    fn level_is_detected_in_logfmt_json_and_prefix() {
        let cases = [
            (
                "ts=2026-01-01T00:00:00Z level=error msg=\"db down\"",
                Some(Severity::Error),
            ),
            ("level=\"warn\" msg=x", Some(Severity::Warn)),
            ("lvl=dbg msg=x", Some(Severity::Debug)),
            (
                r#"{"ts":1,"level":"warn","msg":"slow"}"#,
                Some(Severity::Warn),
            ),
            (
                r#"{"msg":"boom", "severity": "CRITICAL"}"#,
                Some(Severity::Fatal),
            ),
            (r#"{"log.level":"info"}"#, Some(Severity::Info)),
            ("INFO: server started", Some(Severity::Info)),
            ("error: cannot open file", Some(Severity::Error)),
            ("[WARN] disk almost full", Some(Severity::Warn)),
            ("TRACE entering handler", Some(Severity::Trace)),
            (
                "2026-01-01T10:00:00Z ERROR db: connection refused",
                Some(Severity::Error),
            ),
            (
                "2026-01-01 10:00:00,123 [main] WARN c.f.Foo - slow",
                Some(Severity::Warn),
            ),
            ("10:00:00 [fatal] out of memory", Some(Severity::Fatal)),
            ("GET /health 200", None),
            ("no error found in the config", None),
            ("Error handling is fine", None),
            ("sublevel=error only matches a whole key", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(detect_severity(line), expected, "line: {line}");
        }
    }

    #[test]
    fn severity_numbers_follow_the_otel_mapping() {
        let numbers: Vec<i32> = [
            Severity::Trace,
            Severity::Debug,
            Severity::Info,
            Severity::Warn,
            Severity::Error,
            Severity::Fatal,
        ]
        .iter()
        .map(|severity| severity.number())
        .collect();
        assert_eq!(numbers, vec![1, 5, 9, 13, 17, 21]);
    }

    #[test]
    fn long_lines_are_scanned_only_near_their_start() {
        let line = format!("{} level=error", "x".repeat(KEY_VALUE_SCAN_BYTES));
        assert_eq!(detect_severity(&line), None);
        let line = format!("{}é level=error", "x".repeat(KEY_VALUE_SCAN_BYTES - 1));
        assert_eq!(detect_severity(&line), None); // cut inside `é` without panicking
    }
}
