//! The log document schema and the mapping from OTLP log records to it.
//!
//! Every identity key of DESIGN.md is its own field, indexed with the `raw` tokenizer and
//! stored as a fast (columnar) field, so that filters, facets and group-bys on service,
//! image version, generation and instance never touch the doc store. Nothing in a log
//! query is ranked by relevance, so no field keeps field norms.
//!
//! Field names are the query language's names (`service`, `version`, `generation`,
//! `instance`, ...), not the OTLP attribute keys, because users type them.

use std::collections::BTreeMap;

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, IndexSettings, TantivyDocument};

/// Rows of one WAL record are numbered `lsn << ROW_INDEX_BITS | index`, giving every
/// document a unique, ingest-ordered id that breaks timestamp ties in cursors.
pub const ROW_INDEX_BITS: u32 = 24;
/// The most log records one WAL record may hold (16 Mi); the ingest size limit keeps
/// real requests far below it.
pub const MAX_ROWS_PER_RECORD: usize = 1 << ROW_INDEX_BITS;

/// Identity fields: (field name, OTLP resource attribute key).
pub const IDENTITY_FIELDS: [(&str, &str); 10] = [
    ("service", keys::SERVICE_NAME),
    ("image", keys::IMAGE_NAME),
    ("version", keys::IMAGE_VERSION),
    ("image_id", keys::IMAGE_ID),
    ("generation", keys::GENERATION),
    ("instance", keys::HOST_ID),
    ("host", keys::HOST_NAME),
    ("env", keys::ENVIRONMENT),
    ("region", keys::REGION),
    ("zone", keys::ZONE),
];

/// Record attributes that name where a line came from, in order of preference.
const SOURCE_ATTRIBUTES: [&str; 2] = ["log.file.path", "log.file.name"];

/// The log schema with its fields resolved once.
#[derive(Clone)]
pub struct LogSchema {
    schema: Schema,
    pub timestamp: Field,
    pub observed_timestamp: Field,
    pub identity: [Field; IDENTITY_FIELDS.len()],
    pub level: Field,
    pub severity_text: Field,
    pub severity_number: Field,
    pub body: Field,
    pub source: Field,
    pub scope: Field,
    pub trace_id: Field,
    pub span_id: Field,
    pub attrs: Field,
    pub row: Field,
}

/// Index settings shared by every split: zstd doc store, because logs are read rarely
/// and stored forever-ish, so bytes on disk matter more than decompression speed.
pub fn split_index_settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: 256 * 1024,
        ..IndexSettings::default()
    }
}

impl Default for LogSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl LogSchema {
    pub fn new() -> LogSchema {
        let mut builder = Schema::builder();
        let timestamp_options = DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored()
            .set_precision(DateTimePrecision::Nanoseconds);
        let timestamp = builder.add_date_field("timestamp", timestamp_options);
        let observed_timestamp = builder.add_date_field(
            "observed_timestamp",
            DateOptions::default()
                .set_stored()
                .set_precision(DateTimePrecision::Nanoseconds),
        );
        let keyword = keyword_options();
        let identity =
            IDENTITY_FIELDS.map(|(name, _)| builder.add_text_field(name, keyword.clone()));
        let level = builder.add_text_field("level", keyword.clone());
        let severity_text =
            builder.add_text_field("severity_text", TextOptions::default().set_stored());
        let severity_number = builder.add_u64_field(
            "severity",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        );
        let body_indexing = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false);
        let body = builder.add_text_field(
            "body",
            TextOptions::default()
                .set_indexing_options(body_indexing)
                .set_stored(),
        );
        let source = builder.add_text_field("source", keyword.clone());
        let scope = builder.add_text_field("scope", keyword_options_unfast());
        let trace_id = builder.add_text_field("trace_id", keyword_options_unfast());
        let span_id = builder.add_text_field("span_id", keyword_options_unfast());
        let attrs_indexing = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqs)
            .set_fieldnorms(false);
        let attrs = builder.add_json_field(
            "attrs",
            JsonObjectOptions::default()
                .set_stored()
                .set_indexing_options(attrs_indexing)
                .set_expand_dots_enabled(),
        );
        let row = builder.add_u64_field("_row", NumericOptions::default().set_fast());
        LogSchema {
            schema: builder.build(),
            timestamp,
            observed_timestamp,
            identity,
            level,
            severity_text,
            severity_number,
            body,
            source,
            scope,
            trace_id,
            span_id,
            attrs,
            row,
        }
    }

    pub fn schema(&self) -> Schema {
        self.schema.clone()
    }

    /// Maps one OTLP request to documents, numbering rows from `row_base`.
    ///
    /// Records without a timestamp take their observed time, and records without either
    /// take `received_at_nanos` (the server's receive time), so nothing is filed at 1970.
    /// Resources without identity attributes are filed under empty keys, never rejected.
    pub fn documents_from_request(
        &self,
        request: &ExportLogsServiceRequest,
        received_at_nanos: i64,
        row_base: u64,
        mut emit: impl FnMut(TantivyDocument, &DocumentFacts<'_, '_>),
    ) {
        let mut row_index = 0u64;
        for resource_logs in &request.resource_logs {
            let resource_attributes: &[KeyValue] = resource_logs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let identity = DocumentIdentity::from_resource(resource_attributes);
            let extra_resource_attributes: Vec<&KeyValue> = resource_attributes
                .iter()
                .filter(|kv| !IDENTITY_FIELDS.iter().any(|(_, key)| *key == kv.key))
                .collect();
            for scope_logs in &resource_logs.scope_logs {
                let scope_name = scope_logs
                    .scope
                    .as_ref()
                    .map(|s| s.name.as_str())
                    .unwrap_or("");
                for record in &scope_logs.log_records {
                    let mut doc = TantivyDocument::new();
                    let observed =
                        positive_nanos(record.observed_time_unix_nano).unwrap_or(received_at_nanos);
                    let timestamp = positive_nanos(record.time_unix_nano).unwrap_or(observed);
                    doc.add_date(self.timestamp, DateTime::from_timestamp_nanos(timestamp));
                    doc.add_date(
                        self.observed_timestamp,
                        DateTime::from_timestamp_nanos(observed),
                    );
                    for (field, value) in self.identity.iter().zip(identity.values.iter()) {
                        doc.add_text(*field, value);
                    }
                    doc.add_text(
                        self.level,
                        level_name(record.severity_number, &record.severity_text),
                    );
                    if !record.severity_text.is_empty() {
                        doc.add_text(self.severity_text, &record.severity_text);
                    }
                    doc.add_u64(self.severity_number, record.severity_number.max(0) as u64);
                    let mut body_bytes = 0;
                    if let Some(body) = &record.body {
                        let text = any_value_to_text(body);
                        body_bytes = text.len();
                        doc.add_text(self.body, text);
                    }
                    doc.add_text(self.source, source_of(&record.attributes, scope_name));
                    if !scope_name.is_empty() {
                        doc.add_text(self.scope, scope_name);
                    }
                    if !record.trace_id.is_empty() {
                        doc.add_text(self.trace_id, hex(&record.trace_id));
                    }
                    if !record.span_id.is_empty() {
                        doc.add_text(self.span_id, hex(&record.span_id));
                    }
                    let mut attributes = BTreeMap::new();
                    for kv in extra_resource_attributes
                        .iter()
                        .copied()
                        .chain(&record.attributes)
                    {
                        if let Some(value) = &kv.value {
                            attributes.insert(kv.key.clone(), any_value_to_owned(value));
                        }
                    }
                    if !attributes.is_empty() {
                        doc.add_object(self.attrs, attributes);
                    }
                    debug_assert!((row_index as usize) < MAX_ROWS_PER_RECORD);
                    doc.add_u64(self.row, row_base + row_index);
                    row_index += 1;
                    let facts = DocumentFacts {
                        identity: &identity,
                        timestamp_nanos: timestamp,
                        body_bytes,
                    };
                    emit(doc, &facts);
                }
            }
        }
    }
}

/// What the indexer needs to know of a document it was handed, without reading the
/// document back.
pub struct DocumentFacts<'i, 'a> {
    pub identity: &'i DocumentIdentity<'a>,
    pub timestamp_nanos: i64,
    pub body_bytes: usize,
}

impl<'i, 'a> DocumentFacts<'i, 'a> {
    /// An identity value by field name (`service`, `version`, ...).
    pub fn get(&self, field_name: &str) -> &'a str {
        self.identity.get(field_name)
    }
}

/// The identity values of one resource, in `IDENTITY_FIELDS` order.
#[derive(Debug, Clone, Default)]
pub struct DocumentIdentity<'a> {
    pub values: [&'a str; IDENTITY_FIELDS.len()],
}

impl<'a> DocumentIdentity<'a> {
    pub fn from_resource(attributes: &'a [KeyValue]) -> DocumentIdentity<'a> {
        DocumentIdentity::from_strings(attributes.iter().map(|kv| {
            let text = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => Some(text.as_str()),
                _ => None,
            };
            (kv.key.as_str(), text)
        }))
    }

    /// The identity of a resource with these attributes: `(key, value if a string)`.
    pub fn from_strings(
        attributes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> DocumentIdentity<'a> {
        let mut values = [""; IDENTITY_FIELDS.len()];
        for (key, text) in attributes {
            let Some(position) = IDENTITY_FIELDS.iter().position(|(_, k)| *k == key) else {
                continue;
            };
            if let Some(text) = text {
                values[position] = text;
            }
        }
        DocumentIdentity { values }
    }

    pub fn get(&self, field_name: &str) -> &'a str {
        IDENTITY_FIELDS
            .iter()
            .position(|(name, _)| *name == field_name)
            .map(|position| self.values[position])
            .unwrap_or("")
    }
}

/// Counts the log records of a request without building documents.
pub fn count_log_records(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

fn keyword_options() -> TextOptions {
    keyword_options_unfast().set_fast("raw")
}

fn keyword_options_unfast() -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    TextOptions::default()
        .set_indexing_options(indexing)
        .set_stored()
}

pub(crate) fn positive_nanos(nanos: u64) -> Option<i64> {
    (nanos > 0).then(|| i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// The normalized level: OTLP's severity number ranges first, then common severity texts.
pub fn level_name(severity_number: i32, severity_text: &str) -> &'static str {
    match severity_number {
        1..=4 => return "trace",
        5..=8 => return "debug",
        9..=12 => return "info",
        13..=16 => return "warn",
        17..=20 => return "error",
        21..=24 => return "fatal",
        _ => {}
    }
    match severity_text.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "information" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => "fatal",
        _ => "",
    }
}

fn source_of<'a>(attributes: &'a [KeyValue], scope_name: &'a str) -> &'a str {
    for wanted in SOURCE_ATTRIBUTES {
        for kv in attributes {
            if kv.key == wanted
                && let Some(any_value::Value::StringValue(text)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
            {
                return text;
            }
        }
    }
    scope_name
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    out
}

/// A body as searchable text: strings as they are, anything else as compact JSON.
pub fn any_value_to_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        _ => any_value_to_json(value).to_string(),
    }
}

pub(crate) fn any_value_to_owned(value: &AnyValue) -> OwnedValue {
    match &value.value {
        None => OwnedValue::Null,
        Some(any_value::Value::StringValue(v)) => OwnedValue::Str(v.clone()),
        Some(any_value::Value::BoolValue(v)) => OwnedValue::Bool(*v),
        Some(any_value::Value::IntValue(v)) => OwnedValue::I64(*v),
        Some(any_value::Value::DoubleValue(v)) if v.is_finite() => OwnedValue::F64(*v),
        // NaN and infinities are not JSON numbers: keep them as their text.
        Some(any_value::Value::DoubleValue(v)) => OwnedValue::Str(v.to_string()),
        Some(any_value::Value::BytesValue(v)) => OwnedValue::Str(hex(v)),
        // An index into a profiles string table, meaningless outside that message.
        Some(any_value::Value::StringValueStrindex(index)) => OwnedValue::I64(i64::from(*index)),
        Some(any_value::Value::ArrayValue(array)) => {
            OwnedValue::Array(array.values.iter().map(any_value_to_owned).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => OwnedValue::Object(
            list.values
                .iter()
                .map(|kv| {
                    let value = kv
                        .value
                        .as_ref()
                        .map(any_value_to_owned)
                        .unwrap_or(OwnedValue::Null);
                    (kv.key.clone(), value)
                })
                .collect(),
        ),
    }
}

/// An OTLP value as JSON, for bodies that are not plain strings.
pub fn any_value_to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match &value.value {
        None => Json::Null,
        Some(any_value::Value::StringValue(v)) => Json::String(v.clone()),
        Some(any_value::Value::BoolValue(v)) => Json::Bool(*v),
        Some(any_value::Value::IntValue(v)) => Json::from(*v),
        Some(any_value::Value::DoubleValue(v)) => serde_json::Number::from_f64(*v)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(v.to_string())),
        Some(any_value::Value::BytesValue(v)) => Json::String(hex(v)),
        Some(any_value::Value::StringValueStrindex(index)) => Json::from(*index),
        Some(any_value::Value::ArrayValue(array)) => {
            Json::Array(array.values.iter().map(any_value_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .map(any_value_to_json)
                            .unwrap_or(Json::Null),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_map_to_levels_before_texts() {
        assert_eq!(level_name(17, "info"), "error");
        assert_eq!(level_name(0, "WARNING"), "warn");
        assert_eq!(level_name(0, "whatever"), "");
        assert_eq!(level_name(23, ""), "fatal");
    }

    #[test]
    fn trace_ids_are_lowercase_hex() {
        assert_eq!(hex(&[0x0a, 0xff, 0x10]), "0aff10");
    }
}
