//! Values with a meaning beyond their text: numbers, durations and times.
//!
//! Times are read by hand rather than with a date crate because the accepted forms are
//! the language's own (a bare date, a missing offset read as UTC, `now-15m`) and need
//! nothing but proleptic Gregorian arithmetic; nanoseconds since the epoch is what
//! tantivy's `DateTime` is built from.

use std::time::Duration;

use crate::ast::{TimePoint, TypedValue, Value};
use crate::error::{QueryError, Span};
use crate::fields::{FieldKind, FieldRef};

/// Duration units, largest first (the canonical form picks the largest exact one).
pub(crate) const DURATION_UNITS: [(&str, u64); 6] = [
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

pub(crate) const DURATION_FORMS: &str =
    "a whole number and a unit: ms, s, m, h, d or w (10s, 5m, 1h)";

pub(crate) const TIME_FORMS: &str =
    "an RFC 3339 time (2026-11-26T10:00:00Z), a date (2026-11-26) or now-<duration> (now-1h)";

/// `10s`, `5m`, `1h`, `1d`: a whole, positive number of one unit.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let (_, unit_millis) = DURATION_UNITS.iter().find(|(name, _)| *name == unit)?;
    let millis = amount.checked_mul(*unit_millis)?;
    // Bounded so that any duration converts to i64 nanoseconds for the engine.
    if millis == 0 || millis > (i64::MAX as u64) / 1_000_000 {
        return None;
    }
    Some(Duration::from_millis(millis))
}

/// A time: `now`, `now-<duration>`, RFC 3339, or a date.
pub(crate) fn parse_time_point(text: &str) -> Option<TimePoint> {
    if let Some(after_now) = text.strip_prefix("now") {
        if after_now.is_empty() {
            return Some(TimePoint::BeforeNow(Duration::ZERO));
        }
        let duration = parse_duration(after_now.strip_prefix('-')?)?;
        return Some(TimePoint::BeforeNow(duration));
    }
    parse_absolute_time(text).map(|unix_nanos| TimePoint::Absolute { unix_nanos })
}

/// `YYYY-MM-DD[(T|t)HH:MM[:SS[.fraction]][Z|z|±HH:MM]]` as nanoseconds since the epoch;
/// no offset means UTC. `None` for anything else, including times outside the i64
/// nanosecond range (years 1678 to 2261).
fn parse_absolute_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |start: usize, length: usize| -> Option<i64> {
        let digits = bytes.get(start..start + length)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0')),
        )
    };
    let byte_is =
        |index: usize, expected: &[u8]| bytes.get(index).is_some_and(|b| expected.contains(b));

    let year = number(0, 4)?;
    let month = number(5, 2)?;
    let day = number(8, 2)?;
    if !byte_is(4, b"-") || !byte_is(7, b"-") || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }

    let mut index = 10;
    let mut seconds_of_day = 0;
    let mut fraction_nanos = 0;
    let mut offset_seconds = 0;
    if index < bytes.len() {
        if !byte_is(index, b"Tt") {
            return None;
        }
        let hour = number(index + 1, 2)?;
        let minute = number(index + 4, 2)?;
        if !byte_is(index + 3, b":") || hour > 23 || minute > 59 {
            return None;
        }
        index += 6;
        let mut second = 0;
        if byte_is(index, b":") {
            second = number(index + 1, 2)?;
            if second > 59 {
                return None;
            }
            index += 3;
            if byte_is(index, b".,") {
                index += 1;
                let fraction_start = index;
                while byte_is(index, b"0123456789") {
                    index += 1;
                }
                let fraction_digits = index - fraction_start;
                if fraction_digits == 0 || fraction_digits > 9 {
                    return None;
                }
                let fraction = number(fraction_start, fraction_digits)?;
                fraction_nanos = fraction * 10i64.pow(9 - fraction_digits as u32);
            }
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
        if byte_is(index, b"Zz") {
            index += 1;
        } else if byte_is(index, b"+-") {
            let sign = if bytes[index] == b'-' { -1 } else { 1 };
            let offset_hours = number(index + 1, 2)?;
            let offset_minutes = number(index + 4, 2)?;
            if !byte_is(index + 3, b":") || offset_hours > 23 || offset_minutes > 59 {
                return None;
            }
            offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
            index += 6;
        }
        if index != bytes.len() {
            return None;
        }
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + seconds_of_day - offset_seconds;
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(fraction_nanos)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A decimal number as a query writes it: `500`, `-3`, `2.5`, `1e3`. Not `inf`, `NaN`
/// or hex, which Rust's float parser would take but users never mean.
pub(crate) fn parse_number(text: &str) -> Option<TypedValue> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mantissa_end = unsigned.find(['e', 'E']).unwrap_or(unsigned.len());
    let (mantissa, exponent) = unsigned.split_at(mantissa_end);
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|fraction| !all_digits(fraction)) {
        return None;
    }
    if !exponent.is_empty() {
        let exponent_digits = exponent[1..]
            .strip_prefix(['-', '+'])
            .unwrap_or(&exponent[1..]);
        if !all_digits(exponent_digits) {
            return None;
        }
    }
    if fraction.is_none()
        && exponent.is_empty()
        && let Ok(integer) = text.parse::<i64>()
    {
        return Some(TypedValue::Integer(integer));
    }
    let float: f64 = text.parse().ok()?;
    float.is_finite().then_some(TypedValue::Float(float))
}

/// Reads `text` as a value of `field` (the default field when `None`), or says why it
/// cannot be one.
pub(crate) fn typed_value(
    field: Option<&FieldRef>,
    text: &str,
    span: Span,
) -> Result<Value, QueryError> {
    let typed = match field {
        None => TypedValue::Text,
        Some(FieldRef::Severity) => match parse_number(text) {
            Some(TypedValue::Integer(severity)) if severity >= 0 => TypedValue::Integer(severity),
            _ => {
                let hint = if !text.is_empty() && text.chars().all(char::is_alphabetic) {
                    format!("; level:{text} matches by level name")
                } else {
                    String::new()
                };
                return Err(QueryError::new(
                    span,
                    format!(
                        "severity is a whole number from 1 to 24, found {}{hint}",
                        quote(text)
                    ),
                )
                .expecting(&["a whole number"]));
            }
        },
        Some(field) => match field.kind() {
            FieldKind::Keyword | FieldKind::Text => TypedValue::Text,
            FieldKind::Json => parse_number(text).unwrap_or(TypedValue::Text),
            FieldKind::Number => parse_number(text).ok_or_else(|| {
                QueryError::new(
                    span.clone(),
                    format!("{field} is a number field, found {}", quote(text)),
                )
                .expecting(&["a number"])
            })?,
            FieldKind::Time => match parse_time_point(text) {
                Some(time) => TypedValue::Time(time),
                None => {
                    return Err(QueryError::new(
                        span,
                        format!("{field} needs {TIME_FORMS}, found {}", quote(text)),
                    )
                    .expecting(&["a time"]));
                }
            },
        },
    };
    Ok(Value {
        text: text.to_string(),
        typed,
        span,
    })
}

/// `"text"` for messages, cut short when long.
pub(crate) fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut quoted = String::from("\"");
    for (index, c) in text.chars().enumerate() {
        if index == MAX_CHARS {
            quoted.push('…');
            break;
        }
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn durations_are_positive_whole_units() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for invalid in [
            "0m",
            "m",
            "1",
            "1.5m",
            "-1m",
            "1M",
            "1 m",
            "99999999999999999999d",
            "1y",
        ] {
            assert_eq!(parse_duration(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn rfc3339_times_read_as_utc_nanoseconds() {
        let absolute = |text| match parse_time_point(text) {
            Some(TimePoint::Absolute { unix_nanos }) => unix_nanos,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(absolute("1970-01-01T00:00:00Z"), 0);
        assert_eq!(absolute("1970-01-01"), 0);
        assert_eq!(absolute("2026-11-26T10:00:00Z"), 1_795_687_200 * SECOND);
        assert_eq!(
            absolute("2026-11-26T11:00:00+01:00"),
            1_795_687_200 * SECOND
        );
        assert_eq!(
            absolute("2026-11-26t10:00:00.5z"),
            1_795_687_200 * SECOND + SECOND / 2
        );
        assert_eq!(absolute("2026-11-26T10:00"), 1_795_687_200 * SECOND);
        assert_eq!(absolute("2024-02-29"), 1_709_164_800 * SECOND);
        assert_eq!(absolute("1969-12-31T23:59:59Z"), -SECOND);
    }

    #[test]
    fn invalid_or_out_of_range_times_are_rejected() {
        for invalid in [
            "2026-13-01",
            "2025-02-29",
            "2026-11-26T24:00:00Z",
            "2026-11-26T10:00:00+1:00",
            "2026-11-26 10:00",
            "2026-11-26T10:00:00.Z",
            "9999-01-01",
            "26-11-26",
            "now+1h",
            "now-",
            "yesterday",
            "2026-11-2é",
        ] {
            assert_eq!(parse_time_point(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(
            parse_time_point("now-15m"),
            Some(TimePoint::BeforeNow(Duration::from_secs(900)))
        );
        assert_eq!(
            parse_time_point("now"),
            Some(TimePoint::BeforeNow(Duration::ZERO))
        );
    }

    #[test]
    fn numbers_are_decimal_only() {
        assert_eq!(parse_number("500"), Some(TypedValue::Integer(500)));
        assert_eq!(parse_number("-3"), Some(TypedValue::Integer(-3)));
        assert_eq!(parse_number("2.5"), Some(TypedValue::Float(2.5)));
        assert_eq!(parse_number("1e3"), Some(TypedValue::Float(1000.0)));
        assert_eq!(
            parse_number("99999999999999999999"),
            Some(TypedValue::Float(1e20))
        );
        for not_a_number in ["inf", "NaN", "0x10", "1.", ".5", "1e", "", "-", "1e999"] {
            assert_eq!(parse_number(not_a_number), None, "{not_a_number}");
        }
    }
}
