//! Event times written in log lines: RFC 3339 text or a Unix epoch number.
//!
//! An epoch number's unit is told by its magnitude, as log shippers commonly do: below
//! 10^11 it is seconds (10^11 s is the year 5138), below 10^14 milliseconds, below 10^17
//! microseconds, else nanoseconds. Times before 1970 are not taken.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 timestamp, or a string of digits read as an epoch number.
pub fn parse_text(text: &str) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return from_epoch_number(text.parse().ok()?);
    }
    rfc3339(text)
}

/// `2026-01-02T03:04:05.123Z`, `2026-01-02T03:04:05+01:00` (lower-case `t`/`z` too).
pub fn rfc3339(text: &str) -> Option<u64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos()).ok()
}

/// A Unix epoch number in seconds, milliseconds, microseconds or nanoseconds.
pub fn from_epoch_number(value: f64) -> Option<u64> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let unit_nanos: u64 = if value < 1e11 {
        1_000_000_000
    } else if value < 1e14 {
        1_000_000
    } else if value < 1e17 {
        1_000
    } else {
        1
    };
    // Whole and fractional parts apart: `1700000000.25 * 1e9` in one f64 product would
    // round to a multiple of 256 ns.
    let whole = value.trunc();
    let fraction_nanos = ((value - whole) * unit_nanos as f64).round() as u64;
    if whole >= u64::MAX as f64 {
        return None;
    }
    (whole as u64)
        .checked_mul(unit_nanos)?
        .checked_add(fraction_nanos)
}

/// The event time of a plain-text line that starts with an RFC 3339 timestamp, bare or in
/// brackets: `2026-01-02T03:04:05Z INFO ...`, `[2026-01-02T03:04:05.1+02:00] ...`.
pub fn leading_rfc3339(line: &str) -> Option<u64> {
    let first = line.split_ascii_whitespace().next()?;
    let first = first
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(first);
    // Cheap shape check before the real parser: `dddd-dd-ddT...`, at least 20 bytes.
    let bytes = first.as_bytes();
    if bytes.len() < 20 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return None;
    }
    rfc3339(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_units_are_told_by_magnitude() {
        let expected = 1_700_000_000_000_000_000;
        assert_eq!(from_epoch_number(1_700_000_000.0), Some(expected));
        assert_eq!(from_epoch_number(1_700_000_000_000.0), Some(expected));
        assert_eq!(from_epoch_number(1_700_000_000_000_000.0), Some(expected));
        assert_eq!(from_epoch_number(1.7e18), Some(expected));
        assert_eq!(from_epoch_number(-1.0), None);
        assert_eq!(parse_text("1700000000"), Some(expected));
        assert_eq!(parse_text("1700000000.5"), Some(expected + 500_000_000));
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(rfc3339("1970-01-01T01:00:01+01:00"), Some(1_000_000_000));
        assert_eq!(rfc3339("1970-01-01T00:00:00.000000007Z"), Some(7));
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339("2026-01-02 03:04:05"), None, "no zone: ambiguous");
    }

    #[test]
    fn leading_timestamp_of_a_plain_line() {
        assert_eq!(
            leading_rfc3339("[1970-01-01T00:00:02Z] started"),
            Some(2_000_000_000)
        );
        assert_eq!(leading_rfc3339("started at 1970-01-01T00:00:02Z"), None);
        assert_eq!(leading_rfc3339("2026-13-45T99:00:00Z nonsense"), None);
        assert_eq!(leading_rfc3339(""), None);
    }
}
