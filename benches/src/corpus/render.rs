//! How a line is written out: plain text with a per-service prefix, JSON, or logfmt.
//!
//! Real fleets mix all three: a Java service prints logback lines, a Go service logfmt,
//! a Node service JSON. Plain lines carry a timestamp prefix in two of three services
//! (as files do; journald-style sources send the bare message), which adds the
//! low-entropy but ever-changing time tokens real bodies have.

use std::fmt::Write as _;

use super::Level;

/// The text format of one generated line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineFormat {
    Plain,
    Json,
    Logfmt,
}

/// The calendar fields of a Unix time, for the timestamps written into bodies.
pub(crate) struct CivilTime {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
}

impl CivilTime {
    pub(crate) fn from_unix_nanos(nanos: u64) -> CivilTime {
        // Any u64 of nanoseconds (until year 2554) is a valid OffsetDateTime.
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        CivilTime {
            year: time.year(),
            month: time.month() as u8,
            day: time.day(),
            hour: time.hour(),
            minute: time.minute(),
            second: time.second(),
            micros: time.microsecond(),
        }
    }

    /// `2026-11-26T10:00:00.123456Z`
    pub(crate) fn write_rfc3339(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        );
    }

    /// `2026-11-26 10:00:00.123` (logback's default)
    fn write_logback(&self, out: &mut String) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1000
        );
    }
}

/// The prefix a service's plain lines start with; `thread` is only used by style 1.
pub(crate) fn write_plain_prefix(
    style: usize,
    time: &CivilTime,
    level: Level,
    component: &str,
    thread: &str,
    out: &mut String,
) {
    match style % 3 {
        0 => {}
        1 => {
            time.write_logback(out);
            let _ = write!(
                out,
                " {:<5} [{thread}] {component} - ",
                level.severity_text()
            );
        }
        _ => {
            time.write_rfc3339(out);
            let _ = write!(out, " {} {component}: ", level.as_str());
        }
    }
}

/// Appends `value` as a JSON string literal.
pub(crate) fn write_json_string(value: &str, out: &mut String) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Appends `value` as a logfmt value, quoted when it has spaces, quotes or `=`.
pub(crate) fn write_logfmt_value(value: &str, out: &mut String) {
    let needs_quotes = value.is_empty()
        || value
            .bytes()
            .any(|b| b == b' ' || b == b'"' || b == b'=' || b == b'\\');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Appends one `key: value` member of a JSON object, after a comma.
pub(crate) fn write_json_member(key: &str, value: &str, is_number: bool, out: &mut String) {
    out.push(',');
    write_json_string(key, out);
    out.push(':');
    if is_number && value.parse::<f64>().is_ok() {
        out.push_str(value);
    } else {
        write_json_string(value, out);
    }
}

/// Appends one ` key=value` pair (logfmt and the tail of plain lines).
pub(crate) fn write_logfmt_pair(key: &str, value: &str, out: &mut String) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    write_logfmt_value(value, out);
}
