//! logfmt lines: `time=2026-01-02T03:04:05Z level=warn msg="slow query" duration=1.2s`.
//!
//! Written by hand: the format is a dozen lines of grammar, and the crates that parse it
//! are unmaintained or pull in more than they save. The rules: pairs separated by spaces
//! or tabs; a key is a run of characters other than space, tab, `=` and `"`; a value is
//! either a double-quoted string (with `\"`, `\\`, `\n`, `\t`, `\r` escapes) or a bare run
//! of non-space characters (which may contain `=`), or empty (`key=`).
//!
//! A line counts as logfmt only if *every* token is a `key=value` pair and there are at
//! least two pairs, or one pair whose key is a well-known one (`msg=...`, `level=...`).
//! Bare words, valid in some logfmt dialects, are refused: accepting them would make every
//! plain-text line containing one `=` look structured.

use epitaph_proto::common::v1::any_value;

use super::{
    AttributeSink, BODY_KEYS, LEVEL_KEYS, ParsedLine, TIME_KEYS, severity_from_text, timestamp,
};
use crate::severity::detect_severity;

/// Parses a logfmt line; `None` when the line is not one.
pub fn parse(text: &str) -> Option<ParsedLine> {
    let mut pairs = split_pairs(text)?;
    let well_known = |key: &str| {
        BODY_KEYS.contains(&key) || LEVEL_KEYS.contains(&key) || TIME_KEYS.contains(&key)
    };
    match pairs.as_slice() {
        [] => return None,
        [(key, _)] if !well_known(key) => return None,
        _ => {}
    }
    let body = take_first(&mut pairs, &BODY_KEYS, |value| Some(value.to_string()));
    let severity = take_first(&mut pairs, &LEVEL_KEYS, severity_from_text);
    let event_time_unix_nano = take_first(&mut pairs, &TIME_KEYS, timestamp::parse_text);
    let mut sink = AttributeSink::default();
    for (key, value) in pairs {
        sink.push(key, any_value::Value::StringValue(value));
    }
    let (attributes, dropped_attributes) = sink.finish();
    let severity = severity.or_else(|| body.as_deref().and_then(detect_severity));
    Some(ParsedLine {
        body: body.unwrap_or_else(|| text.to_string()),
        severity,
        event_time_unix_nano,
        attributes,
        dropped_attributes,
    })
}

fn take_first<T>(
    pairs: &mut Vec<(String, String)>,
    keys: &[&str],
    convert: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    for key in keys {
        let Some(index) = pairs.iter().position(|(name, _)| name == key) else {
            continue;
        };
        if let Some(converted) = convert(&pairs[index].1) {
            pairs.remove(index);
            return Some(converted);
        }
    }
    None
}

/// Splits a whole line into pairs, or `None` if any part of it is not a pair.
fn split_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut index = 0;
    loop {
        while index < bytes.len() && matches!(bytes[index], b' ' | b'\t') {
            index += 1;
        }
        if index == bytes.len() {
            return Some(pairs);
        }
        let key_start = index;
        while index < bytes.len() && !matches!(bytes[index], b' ' | b'\t' | b'=' | b'"') {
            index += 1;
        }
        if index == key_start || bytes.get(index) != Some(&b'=') {
            return None; // a bare word, or a quote where a key should be
        }
        let key = text[key_start..index].to_string();
        index += 1; // past '='
        let value = if bytes.get(index) == Some(&b'"') {
            let (value, next) = quoted_value(text, index + 1)?;
            index = next;
            if index < bytes.len() && !matches!(bytes[index], b' ' | b'\t') {
                return None; // text glued to a closing quote
            }
            value
        } else {
            let value_start = index;
            while index < bytes.len() && !matches!(bytes[index], b' ' | b'\t') {
                if bytes[index] == b'"' {
                    return None; // a stray quote inside a bare value
                }
                index += 1;
            }
            text[value_start..index].to_string()
        };
        pairs.push((key, value));
    }
}

/// Reads a quoted value starting just after its opening quote; returns it and the index
/// just past its closing quote.
fn quoted_value(text: &str, start: usize) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text[start..].char_indices();
    while let Some((offset, character)) = chars.next() {
        match character {
            '"' => return Some((value, start + offset + 1)),
            '\\' => {
                let (_, escaped) = chars.next()?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            other => value.push(other),
        }
    }
    None // unterminated quote
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::severity::Severity;

    fn attribute(parsed: &ParsedLine, key: &str) -> Option<String> {
        parsed
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.clone()?.value? {
                any_value::Value::StringValue(text) => Some(text),
                _ => None,
            })
    }

    #[test]
    fn pairs_become_fields_and_attributes() {
        let parsed = parse(
            r#"time=2026-01-02T03:04:05Z level=error msg="db \"main\" down" host=db-1 query=a=b empty="#,
        )
        .unwrap();
        assert_eq!(parsed.body, "db \"main\" down");
        assert_eq!(parsed.severity, Some(Severity::Error));
        assert_eq!(parsed.event_time_unix_nano, Some(1_767_323_045_000_000_000));
        assert_eq!(attribute(&parsed, "host").as_deref(), Some("db-1"));
        assert_eq!(attribute(&parsed, "query").as_deref(), Some("a=b"));
        assert_eq!(attribute(&parsed, "empty").as_deref(), Some(""));
        assert_eq!(parsed.attributes.len(), 3);
    }

    #[test]
    fn without_msg_the_line_is_the_body() {
        let line = "lvl=warn component=cache hit_ratio=0.2";
        let parsed = parse(line).unwrap();
        assert_eq!(parsed.body, line);
        assert_eq!(parsed.severity, Some(Severity::Warn));
        assert_eq!(parsed.attributes.len(), 2);
    }

    #[test]
    fn plain_text_is_not_logfmt() {
        for line in [
            "GET /health?x=1 200",
            "user=ada logged in",
            "only=one",
            "msg=\"unterminated",
            "a=\"x\"glued",
            "",
        ] {
            assert!(parse(line).is_none(), "{line:?}");
        }
        assert!(
            parse("msg=hello").is_some(),
            "one well-known pair is enough"
        );
    }
}
