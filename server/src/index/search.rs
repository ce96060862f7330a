//! Newest-first search over the splits, with a cursor.
//!
//! Hits are ordered by (timestamp, row) descending. The row id is unique and follows
//! ingest order, so the order is total and a cursor — the (timestamp, row) of the last hit
//! returned — resumes exactly after it, even among lines with equal timestamps and while
//! new data arrives. Splits whose time range cannot match are skipped without being
//! searched.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use base64::Engine as _;
use serde::Serialize;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, Query, QueryParser};
use tantivy::schema::{OwnedValue, Value};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::catalog::SplitCatalog;
use super::schema::{IDENTITY_FIELDS, LogSchema};

pub const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub timestamp_nanos: i64,
    pub row: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}:{}", self.timestamp_nanos, self.row))
    }

    pub fn decode(text: &str) -> Result<Cursor, SearchError> {
        let invalid =
            || SearchError::BadRequest(format!("cursor `{text}` is not one this server issued"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (timestamp, row) = text.split_once(':').ok_or_else(invalid)?;
        Ok(Cursor {
            timestamp_nanos: timestamp.parse().map_err(|_| invalid())?,
            row: row.parse().map_err(|_| invalid())?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: String,
    pub start_nanos: Option<i64>,
    pub end_nanos: Option<i64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    pub splits_searched: usize,
    pub splits_skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    BadRequest(String),
    #[error("search failed: {0}")]
    Internal(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(error: tantivy::TantivyError) -> Self {
        SearchError::Internal(error.to_string())
    }
}

/// Parses queries in tantivy's syntax over the log schema: bare words search the body,
/// several words must all match, and an empty query or `*` matches everything.
pub struct LogQueryParser {
    parser: QueryParser,
}

impl LogQueryParser {
    pub fn new(schema: &LogSchema) -> LogQueryParser {
        let mut parser = QueryParser::new(
            schema.schema(),
            schema.default_search_fields(),
            TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        LogQueryParser { parser }
    }

    pub fn parse(&self, query: &str) -> Result<Box<dyn Query>, SearchError> {
        let trimmed = query.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(Box::new(AllQuery));
        }
        self.parser
            .parse_query(trimmed)
            .map_err(|e| SearchError::BadRequest(format!("query `{trimmed}` is not valid: {e}")))
    }
}

pub fn search(
    catalog: &SplitCatalog,
    schema: &LogSchema,
    parser: &LogQueryParser,
    request: &SearchRequest,
) -> Result<SearchResponse, SearchError> {
    if request.limit == 0 || request.limit > MAX_LIMIT {
        return Err(SearchError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let query = parser.parse(&request.query)?;
    let collector = NewestFirst {
        limit: request.limit,
        start_nanos: request.start_nanos,
        end_nanos: request.end_nanos,
        before: request.cursor,
    };
    let end_bound = match (request.end_nanos, request.cursor) {
        (Some(end), Some(cursor)) => Some(end.min(cursor.timestamp_nanos)),
        (end, cursor) => end.or(cursor.map(|c| c.timestamp_nanos)),
    };
    let mut splits_searched = 0;
    let mut splits_skipped = 0;
    // (key, searcher position, address) of the best hits over every split so far.
    let mut best: Vec<(Cursor, usize, DocAddress)> = Vec::new();
    let mut searchers = Vec::new();
    for split in catalog.snapshot() {
        if !split.metadata.overlaps(request.start_nanos, end_bound) {
            splits_skipped += 1;
            continue;
        }
        splits_searched += 1;
        let searcher = split.reader.searcher();
        for (key, address) in searcher.search(query.as_ref(), &collector)? {
            best.push((key, searchers.len(), address));
        }
        searchers.push(searcher);
        best.sort_unstable_by_key(|entry| Reverse(entry.0));
        best.truncate(request.limit);
    }
    let mut hits = Vec::with_capacity(best.len());
    for (key, position, address) in &best {
        let document: TantivyDocument = searchers[*position].doc(*address)?;
        hits.push(hit_to_json(schema, &document, *key));
    }
    let next_cursor =
        (best.len() == request.limit).then(|| best.last().expect("non-empty").0.encode());
    Ok(SearchResponse {
        hits,
        next_cursor,
        splits_searched,
        splits_skipped,
    })
}

/// A stored document as the API shows it: every identity field present, even if empty.
fn hit_to_json(schema: &LogSchema, document: &TantivyDocument, key: Cursor) -> serde_json::Value {
    let text = |field| {
        document
            .get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut hit = serde_json::Map::new();
    hit.insert("timestamp".into(), rfc3339(key.timestamp_nanos).into());
    hit.insert("timestamp_nanos".into(), key.timestamp_nanos.into());
    let observed = document
        .get_first(schema.observed_timestamp)
        .and_then(|v| v.as_datetime())
        .map(|d| d.into_timestamp_nanos())
        .unwrap_or(key.timestamp_nanos);
    hit.insert("observed_timestamp".into(), rfc3339(observed).into());
    for ((name, _), field) in IDENTITY_FIELDS.iter().zip(schema.identity.iter()) {
        hit.insert((*name).into(), text(*field).into());
    }
    hit.insert("level".into(), text(schema.level).into());
    hit.insert("severity_text".into(), text(schema.severity_text).into());
    let severity = document
        .get_first(schema.severity_number)
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    hit.insert("severity".into(), severity.into());
    hit.insert("body".into(), text(schema.body).into());
    hit.insert("source".into(), text(schema.source).into());
    hit.insert("scope".into(), text(schema.scope).into());
    hit.insert("trace_id".into(), text(schema.trace_id).into());
    hit.insert("span_id".into(), text(schema.span_id).into());
    let attributes = document
        .get_first(schema.attrs)
        .map(|v| serde_json::to_value(OwnedValue::from(v)).unwrap_or(serde_json::Value::Null))
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    hit.insert("attributes".into(), attributes);
    serde_json::Value::Object(hit)
}

pub fn rfc3339(nanos: i64) -> String {
    let datetime = time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    datetime
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| nanos.to_string())
}

/// Collects the `limit` newest documents by (timestamp, row), within a time range and
/// strictly before a cursor.
struct NewestFirst {
    limit: usize,
    start_nanos: Option<i64>,
    end_nanos: Option<i64>,
    before: Option<Cursor>,
}

struct NewestFirstSegment {
    segment_ord: SegmentOrdinal,
    limit: usize,
    start_nanos: i64,
    end_nanos: i64,
    before: Option<Cursor>,
    timestamps: Column<DateTime>,
    rows: Column<u64>,
    // A min-heap of the best so far: its top is the worst kept hit.
    heap: BinaryHeap<Reverse<(Cursor, DocId)>>,
}

impl Collector for NewestFirst {
    type Fruit = Vec<(Cursor, DocAddress)>;
    type Child = NewestFirstSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<NewestFirstSegment> {
        Ok(NewestFirstSegment {
            segment_ord,
            limit: self.limit,
            start_nanos: self.start_nanos.unwrap_or(i64::MIN),
            end_nanos: self.end_nanos.unwrap_or(i64::MAX),
            before: self.before,
            timestamps: segment.fast_fields().date("timestamp")?,
            rows: segment.fast_fields().u64("_row")?,
            heap: BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(Cursor, DocAddress)>>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(Cursor, DocAddress)> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by_key(|entry| Reverse(entry.0));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestFirstSegment {
    type Fruit = Vec<(Cursor, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(timestamp) = self.timestamps.first(doc) else {
            return;
        };
        let timestamp_nanos = timestamp.into_timestamp_nanos();
        if timestamp_nanos < self.start_nanos || timestamp_nanos > self.end_nanos {
            return;
        }
        let key = Cursor {
            timestamp_nanos,
            row: self.rows.first(doc).unwrap_or(0),
        };
        if self.before.is_some_and(|before| key >= before) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((key, doc)));
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse((worst, _))| key > *worst)
        {
            self.heap.pop();
            self.heap.push(Reverse((key, doc)));
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment_ord = self.segment_ord;
        self.heap
            .into_iter()
            .map(|Reverse((key, doc))| (key, DocAddress::new(segment_ord, doc)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            timestamp_nanos: -5,
            row: 77,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("not-a-cursor!").is_err());
        assert!(Cursor::decode("").is_err());
    }
}
