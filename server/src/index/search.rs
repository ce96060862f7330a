//! Newest-first search over the splits, with a cursor.
//!
//! Hits are ordered by (timestamp, row) descending. The row id is unique and follows
//! ingest order, so the order is total and a cursor — the (timestamp, row) of the last hit
//! returned — resumes exactly after it, even among lines with equal timestamps and while
//! new data arrives. Splits whose time range cannot match, or whose services, versions,
//! generations or instances cannot (by the filter's required identity, see
//! `epitaph_query::engine::required_identity`), are skipped without being searched.
//!
//! `q` is the query language's filter (`epitaph_query`), compiled by its engine;
//! `version:latest` / `version:previous` resolve against the same snapshot of splits the
//! search runs over.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use base64::Engine as _;
use epitaph_query::engine::{
    EngineContext, RequiredIdentity, RequiredTimeRange, VersionResolver, compile_filter,
    required_identity, required_time_range,
};
use epitaph_query::{Filter, QueryError, VersionAlias};
use serde::Serialize;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::Query;
use tantivy::schema::{OwnedValue, Schema, Value};
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::catalog::SplitCatalog;
use super::indexer::now_nanos;
use super::schema::{IDENTITY_FIELDS, LogSchema};
use super::split::SplitMetadata;

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
    /// The query cannot be parsed or cannot run; the error points into it.
    #[error("{0}")]
    Query(QueryError),
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

/// Turns `q` into a tantivy query with the query language's engine, and tells which
/// splits the filter rules out.
pub struct LogQueryParser {
    schema: Schema,
}

/// A search filter ready to run: the tantivy query and the identity values a matching
/// line must have (for split pruning).
pub struct CompiledFilter {
    pub query: Box<dyn Query>,
    pub required: RequiredIdentity,
    /// The time range a matching line must be in, from `timestamp` filters.
    pub time: RequiredTimeRange,
}

impl LogQueryParser {
    pub fn new(schema: &LogSchema) -> LogQueryParser {
        LogQueryParser {
            schema: schema.schema(),
        }
    }

    /// Parses and compiles a filter. Pipe stages are rejected: they belong to
    /// `/api/v1/aggregate`.
    pub fn parse(
        &self,
        text: &str,
        versions: &dyn VersionResolver,
        now_nanos: i64,
    ) -> Result<CompiledFilter, SearchError> {
        let parsed = epitaph_query::parse(text).map_err(SearchError::Query)?;
        if let Some(first_stage) = parsed.stages.first() {
            return Err(SearchError::Query(QueryError {
                span: first_stage.span().clone(),
                message: format!(
                    "/api/v1/search takes a filter only; `{}` and the other pipe stages are answered by /api/v1/aggregate",
                    first_stage.keyword()
                ),
                expected: Vec::new(),
            }));
        }
        self.compile(&parsed.filter, versions, now_nanos)
    }

    /// Compiles a parsed filter (for callers that handle the pipe stages themselves).
    pub fn compile(
        &self,
        filter: &Filter,
        versions: &dyn VersionResolver,
        now_nanos: i64,
    ) -> Result<CompiledFilter, SearchError> {
        let context = EngineContext {
            schema: &self.schema,
            versions,
            now_nanos,
        };
        let query = compile_filter(filter, &context).map_err(SearchError::Query)?;
        Ok(CompiledFilter {
            query,
            required: required_identity(filter),
            time: required_time_range(filter, now_nanos),
        })
    }

    /// The tantivy schema filters are compiled against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

impl CompiledFilter {
    /// Whether a split may hold a matching line in `[start, end]`: its time range overlaps
    /// both that range and the filter's own `timestamp` bounds (the query applies them to
    /// lines; here they only rule splits out), and its identity sets may match.
    pub fn may_match(
        &self,
        metadata: &SplitMetadata,
        start_nanos: Option<i64>,
        end_nanos: Option<i64>,
    ) -> bool {
        let prune_start = later(start_nanos, self.time.start_nanos);
        let prune_end = earlier(end_nanos, self.time.end_nanos);
        metadata.overlaps(prune_start, prune_end)
            && self.required.may_match(
                &metadata.services,
                &metadata.versions,
                &metadata.generations,
                &metadata.instances,
            )
    }
}

/// `version:latest` / `version:previous` over the splits of one search: a version's
/// first seen is the earliest timestamp of its lines in any split.
pub struct SplitVersions {
    /// service → version → first seen (nanoseconds).
    first_seen: BTreeMap<String, BTreeMap<String, i64>>,
}

impl SplitVersions {
    pub fn from_splits<'a>(splits: impl IntoIterator<Item = &'a SplitMetadata>) -> SplitVersions {
        let mut first_seen: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for metadata in splits {
            for (service, version, seen) in metadata.first_seen() {
                let versions = first_seen.entry(service.to_string()).or_default();
                let earliest = versions.entry(version.to_string()).or_insert(seen);
                *earliest = (*earliest).min(seen);
            }
        }
        SplitVersions { first_seen }
    }
}

impl VersionResolver for SplitVersions {
    fn resolve(
        &self,
        alias: VersionAlias,
        services: Option<&BTreeSet<String>>,
    ) -> Vec<(String, String)> {
        let position = match alias {
            VersionAlias::Latest => 0,
            VersionAlias::Previous => 1,
        };
        let mut pairs = Vec::new();
        for (service, versions) in &self.first_seen {
            if services.is_some_and(|wanted| !wanted.contains(service)) {
                continue;
            }
            // Newest first; equal first-seen times are ordered by name so the answer
            // does not depend on map order.
            let mut by_age: Vec<(&i64, &String)> = versions
                .iter()
                .map(|(version, seen)| (seen, version))
                .collect();
            by_age.sort_unstable_by(|a, b| b.cmp(a));
            if let Some((_, version)) = by_age.get(position) {
                pairs.push((service.clone(), (*version).clone()));
            }
        }
        pairs
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
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let filter = parser.parse(&request.query, &versions, now_nanos())?;
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
    for split in splits {
        if !filter.may_match(&split.metadata, request.start_nanos, end_bound) {
            splits_skipped += 1;
            continue;
        }
        splits_searched += 1;
        let searcher = split.reader.searcher();
        for (key, address) in searcher.search(filter.query.as_ref(), &collector)? {
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

fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn earlier(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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

    fn split(pairs: &[(&str, &str, i64)]) -> SplitMetadata {
        let mut metadata = SplitMetadata::default();
        for (service, version, seen) in pairs {
            metadata
                .version_first_seen
                .entry(service.to_string())
                .or_default()
                .insert(version.to_string(), *seen);
        }
        metadata
    }

    #[test]
    fn latest_and_previous_are_by_first_seen_over_all_splits() {
        let splits = [
            split(&[("web", "b", 20), ("api", "x", 5)]),
            // `a` was first seen in an older split than `b`, though it is seen again later.
            split(&[("web", "a", 10), ("web", "b", 30)]),
            split(&[("web", "a", 40), ("web", "c", 50)]),
        ];
        let versions = SplitVersions::from_splits(&splits);
        assert_eq!(
            versions.resolve(VersionAlias::Latest, None),
            [
                ("api".to_string(), "x".to_string()),
                ("web".into(), "c".into())
            ]
        );
        let only_web = BTreeSet::from(["web".to_string()]);
        assert_eq!(
            versions.resolve(VersionAlias::Previous, Some(&only_web)),
            [("web".to_string(), "b".to_string())]
        );
        // `api` has no second version.
        let only_api = BTreeSet::from(["api".to_string()]);
        assert!(
            versions
                .resolve(VersionAlias::Previous, Some(&only_api))
                .is_empty()
        );
    }

    #[test]
    fn splits_written_before_first_seen_existed_still_answer_when_unambiguous() {
        let legacy = r#"{"split_id":"s","created_at_nanos":0,"sealed_at_nanos":null,
            "last_lsn":0,"num_docs":2,"raw_bytes":0,"min_timestamp_nanos":7,
            "max_timestamp_nanos":9,"disk_bytes":0,"services":["web"],
            "versions":["1","2"],"generations":[""],"instances":[""]}"#;
        let metadata: SplitMetadata = serde_json::from_str(legacy).unwrap();
        assert!(metadata.version_first_seen.is_empty());
        assert_eq!(metadata.first_seen(), [("web", "1", 7), ("web", "2", 7)]);
        let ambiguous = SplitMetadata {
            services: BTreeSet::from(["a".to_string(), "b".to_string()]),
            versions: BTreeSet::from(["1".to_string(), "2".to_string()]),
            min_timestamp_nanos: Some(1),
            ..Default::default()
        };
        assert!(ambiguous.first_seen().is_empty());
    }
}
