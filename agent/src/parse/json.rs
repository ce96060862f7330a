//! JSON-object lines: `{"level":"warn","msg":"slow","ts":"2026-01-02T03:04:05Z",...}`.
//!
//! Only a line that is one JSON object (after trimming whitespace) is taken; anything
//! else — an array, a bare string, a line with trailing text — is left to the next
//! parser. The well-known keys and the flattening rules are described in
//! [`crate::parse`].

use epitaph_proto::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};
use serde_json::{Map, Value};

use super::{
    AttributeSink, BODY_KEYS, LEVEL_KEYS, ParsedLine, TIME_KEYS, severity_from_number,
    severity_from_text, timestamp,
};
use crate::severity::detect_severity;

/// Nested objects deeper than this are kept whole (as a key/value list) rather than
/// flattened further; it bounds the key length a hostile line can produce.
const MAX_FLATTEN_DEPTH: usize = 8;

/// Parses a JSON-object line; `None` when the line is not one.
pub fn parse(text: &str) -> Option<ParsedLine> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return None; // cheap pre-check: most plain lines never reach the JSON parser
    }
    let mut object: Map<String, Value> = serde_json::from_str(trimmed).ok()?;

    let body = take_first(&mut object, &BODY_KEYS, |value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    });
    let severity = take_first(&mut object, &LEVEL_KEYS, |value| match value {
        Value::String(text) => severity_from_text(text),
        Value::Number(number) => number.as_f64().and_then(severity_from_number),
        _ => None,
    });
    let event_time_unix_nano = take_first(&mut object, &TIME_KEYS, |value| match value {
        Value::String(text) => timestamp::parse_text(text),
        Value::Number(number) => number.as_f64().and_then(timestamp::from_epoch_number),
        _ => None,
    });

    let mut sink = AttributeSink::default();
    for (key, value) in object {
        flatten_into(key, value, 0, &mut sink);
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

/// Removes and converts the first key of `keys` whose value `convert` understands.
fn take_first<T>(
    object: &mut Map<String, Value>,
    keys: &[&str],
    convert: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    for key in keys {
        let Some(value) = object.get(*key) else {
            continue;
        };
        if let Some(converted) = convert(value) {
            object.remove(*key);
            return Some(converted);
        }
    }
    None
}

fn flatten_into(key: String, value: Value, depth: usize, sink: &mut AttributeSink) {
    match value {
        Value::Null => {}
        Value::Object(object) if depth < MAX_FLATTEN_DEPTH => {
            for (inner_key, inner_value) in object {
                flatten_into(format!("{key}.{inner_key}"), inner_value, depth + 1, sink);
            }
        }
        other => {
            if let Some(value) = any_value(other) {
                sink.push(key, value);
            }
        }
    }
}

/// A JSON value as an OTLP value; objects inside arrays become key/value lists.
fn any_value(value: Value) -> Option<any_value::Value> {
    let converted = match value {
        Value::Null => return None,
        Value::Bool(flag) => any_value::Value::BoolValue(flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => any_value::Value::IntValue(integer),
            None => any_value::Value::DoubleValue(number.as_f64()?),
        },
        Value::String(text) => any_value::Value::StringValue(text),
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items
                .into_iter()
                .map(|item| AnyValue {
                    value: any_value(item),
                })
                .collect(),
        }),
        Value::Object(object) => any_value::Value::KvlistValue(KeyValueList {
            values: object
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value: Some(AnyValue {
                        value: any_value(value),
                    }),
                    ..Default::default()
                })
                .collect(),
        }),
    };
    Some(converted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::MAX_PARSED_ATTRIBUTES;
    use crate::severity::Severity;

    fn attribute(parsed: &ParsedLine, key: &str) -> Option<any_value::Value> {
        parsed
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    #[test]
    fn well_known_keys_become_fields_and_the_rest_attributes() {
        let parsed = parse(
            r#"{"ts":"2026-01-02T03:04:05.123+01:00","level":"warn","msg":"slow query","duration_ms":1234,"ok":false,"ratio":0.5,"tags":["a",1],"http":{"method":"GET","response":{"status":503}},"gone":null}"#,
        )
        .unwrap();
        assert_eq!(parsed.body, "slow query");
        assert_eq!(parsed.severity, Some(Severity::Warn));
        // 03:04:05.123 at +01:00 is 02:04:05.123 UTC.
        assert_eq!(parsed.event_time_unix_nano, Some(1_767_319_445_123_000_000));
        assert_eq!(
            attribute(&parsed, "duration_ms"),
            Some(any_value::Value::IntValue(1234))
        );
        assert_eq!(
            attribute(&parsed, "ok"),
            Some(any_value::Value::BoolValue(false))
        );
        assert_eq!(
            attribute(&parsed, "ratio"),
            Some(any_value::Value::DoubleValue(0.5))
        );
        assert_eq!(
            attribute(&parsed, "http.method"),
            Some(any_value::Value::StringValue("GET".into()))
        );
        assert_eq!(
            attribute(&parsed, "http.response.status"),
            Some(any_value::Value::IntValue(503))
        );
        let Some(any_value::Value::ArrayValue(tags)) = attribute(&parsed, "tags") else {
            panic!("tags is not an array");
        };
        assert_eq!(tags.values.len(), 2);
        assert_eq!(attribute(&parsed, "gone"), None);
        for consumed in ["ts", "level", "msg"] {
            assert_eq!(attribute(&parsed, consumed), None, "{consumed}");
        }
    }

    #[test]
    fn message_time_and_numeric_level_alternatives() {
        let parsed =
            parse(r#"{"message":"hi","severity":"ERROR","timestamp":1700000000123}"#).unwrap();
        assert_eq!(parsed.body, "hi");
        assert_eq!(parsed.severity, Some(Severity::Error));
        assert_eq!(parsed.event_time_unix_nano, Some(1_700_000_000_123_000_000));

        let parsed = parse(r#"{"level":50,"time":1700000000,"msg":"pino"}"#).unwrap();
        assert_eq!(parsed.severity, Some(Severity::Error));
        assert_eq!(parsed.event_time_unix_nano, Some(1_700_000_000_000_000_000));

        let parsed = parse(r#"{"lvl":"dbg","ts":1700000000.25}"#).unwrap();
        assert_eq!(parsed.severity, Some(Severity::Debug));
        assert_eq!(parsed.event_time_unix_nano, Some(1_700_000_000_250_000_000));
    }

    #[test]
    fn without_a_message_key_the_whole_line_is_the_body() {
        let line = r#"{"event":"login","user":"ada"}"#;
        let parsed = parse(line).unwrap();
        assert_eq!(parsed.body, line);
        assert_eq!(parsed.severity, None);
        assert_eq!(parsed.attributes.len(), 2);
    }

    #[test]
    fn values_that_are_not_understood_stay_attributes() {
        let parsed = parse(r#"{"msg":"x","level":"verbose","time":"yesterday"}"#).unwrap();
        assert_eq!(parsed.severity, None);
        assert_eq!(parsed.event_time_unix_nano, None);
        assert_eq!(
            attribute(&parsed, "level"),
            Some(any_value::Value::StringValue("verbose".into()))
        );
        assert_eq!(
            attribute(&parsed, "time"),
            Some(any_value::Value::StringValue("yesterday".into()))
        );
    }

    #[test]
    fn level_in_the_message_text_is_a_fallback() {
        let parsed = parse(r#"{"msg":"ERROR disk full"}"#).unwrap();
        assert_eq!(parsed.severity, Some(Severity::Error));
    }

    #[test]
    fn non_objects_and_broken_json_are_not_taken() {
        for line in [
            "[1,2,3]",
            "\"just a string\"",
            "{not json}",
            "{\"a\":1} trailing",
            "plain text",
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
    }

    #[test]
    fn attribute_count_is_capped_and_the_rest_counted() {
        let fields: Vec<String> = (0..MAX_PARSED_ATTRIBUTES + 5)
            .map(|n| format!("\"k{n}\":{n}"))
            .collect();
        let parsed = parse(&format!("{{{}}}", fields.join(","))).unwrap();
        assert_eq!(parsed.attributes.len(), MAX_PARSED_ATTRIBUTES);
        assert_eq!(parsed.dropped_attributes, 5);
    }
}
