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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use epitaph_query::engine::{
    EngineContext, RequiredIdentity, RequiredTimeRange, VersionResolver, compile_filter,
    required_identity, required_time_range,
};
use epitaph_query::{Filter, QueryError, VersionAlias};
use serde::Serialize;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, OwnedValue, Schema, Term, Value};
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::catalog::{SearchableSplit, SplitCatalog};
use super::indexer::now_nanos;
use super::schema::{IDENTITY_FIELDS, LogSchema};
use super::split::SplitMetadata;

/// The default of `max_search_hits`: the largest page a search may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// What one query may cost: how long it may run, how much it may return, how many threads
/// search its splits. Set in the server's configuration; every cap is an error that names
/// its setting when hit, never a silently shortened answer (except `patterns`, whose
/// response says when it stopped early).
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// Wall time one query may take; checked before each split and while `patterns`
    /// reads lines.
    pub time_limit: Duration,
    /// The largest `limit` of a search page.
    pub max_search_hits: usize,
    /// The most lines `/api/v1/context` returns on each side of a hit.
    pub max_context_lines: usize,
    /// The most values `/api/v1/fields` returns per field.
    pub max_facet_values: usize,
    /// The most lines `patterns` reads per group (per value of its `by` field).
    pub patterns_max_lines: usize,
    /// Threads that search the splits of one query at once.
    pub search_threads: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            time_limit: Duration::from_secs(30),
            max_search_hits: MAX_LIMIT,
            max_context_lines: 1_000,
            max_facet_values: 100,
            patterns_max_lines: 20_000,
            search_threads: 2,
        }
    }
}

impl SearchLimits {
    /// The deadline of a query that starts now.
    pub fn deadline(&self) -> Deadline {
        Deadline {
            at: Instant::now() + self.time_limit,
            limit: self.time_limit,
        }
    }
}

/// When a query must stop.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    pub fn check(&self) -> Result<(), SearchError> {
        if self.passed() {
            return Err(SearchError::TimeLimit(format!(
                "the query ran longer than its time limit of {} (setting query_time_limit); narrow the time range or the filter",
                humantime::format_duration(self.limit)
            )));
        }
        Ok(())
    }
}

/// Runs `work` over every split on up to `threads` threads (the calling thread is one of
/// them) and returns the results in split order. Each split is started only while the
/// deadline has not passed; the first error stops the others from starting new splits.
pub(crate) fn map_splits<T: Send>(
    splits: &[&SearchableSplit],
    threads: usize,
    deadline: &Deadline,
    work: impl Fn(&SearchableSplit) -> Result<T, SearchError> + Sync,
) -> Result<Vec<T>, SearchError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> Result<Vec<(usize, T)>, SearchError> {
        let mut done = Vec::new();
        loop {
            if failed.load(Ordering::Relaxed) {
                return Ok(done);
            }
            let position = next.fetch_add(1, Ordering::Relaxed);
            let Some(split) = splits.get(position) else {
                return Ok(done);
            };
            let result = deadline.check().and_then(|()| work(split));
            match result {
                Ok(value) => done.push((position, value)),
                Err(error) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
    };
    let helpers = threads.clamp(1, splits.len().max(1)) - 1;
    let mut outcomes = Vec::with_capacity(helpers + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers).map(|_| scope.spawn(worker)).collect();
        outcomes.push(worker());
        for handle in handles {
            outcomes.push(
                handle.join().unwrap_or_else(|_| {
                    Err(SearchError::Internal("a search thread panicked".into()))
                }),
            );
        }
    });
    let mut results = Vec::with_capacity(splits.len());
    for outcome in outcomes {
        results.extend(outcome?);
    }
    results.sort_unstable_by_key(|(position, _)| *position);
    debug_assert_eq!(results.len(), splits.len());
    Ok(results.into_iter().map(|(_, value)| value).collect())
}

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
    /// What was asked for does not exist (a context cursor whose line is gone).
    #[error("{0}")]
    NotFound(String),
    /// The query hit its time limit.
    #[error("{0}")]
    TimeLimit(String),
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

/// A search filter ready to run: the tantivy query and what rules splits out.
pub struct CompiledFilter {
    pub query: Box<dyn Query>,
    pub pruning: SplitPruning,
}

/// What a filter requires of every match, which a split's metadata can rule out before
/// the split is opened.
pub struct SplitPruning {
    /// The identity values a match must have.
    pub required: RequiredIdentity,
    /// The time range a match must be in, from `timestamp` filters.
    pub time: RequiredTimeRange,
}

impl LogQueryParser {
    pub fn new(schema: &LogSchema) -> LogQueryParser {
        LogQueryParser {
            schema: schema.schema(),
        }
    }

    /// A parser over another schema that uses the same field names (the metric schema).
    pub fn with_schema(schema: Schema) -> LogQueryParser {
        LogQueryParser { schema }
    }

    /// Parses and compiles a filter for `/api/v1/search`. Pipe stages are rejected: they
    /// belong to `/api/v1/aggregate`.
    pub fn parse(
        &self,
        text: &str,
        versions: &dyn VersionResolver,
        now_nanos: i64,
    ) -> Result<CompiledFilter, SearchError> {
        self.parse_filter_for("/api/v1/search", text, versions, now_nanos)
    }

    /// Parses and compiles a filter for `endpoint`, which takes no pipe stages.
    pub fn parse_filter_for(
        &self,
        endpoint: &str,
        text: &str,
        versions: &dyn VersionResolver,
        now_nanos: i64,
    ) -> Result<CompiledFilter, SearchError> {
        let parsed = epitaph_query::parse(text).map_err(SearchError::Query)?;
        if let Some(first_stage) = parsed.stages.first() {
            return Err(SearchError::Query(QueryError {
                span: first_stage.span().clone(),
                message: format!(
                    "{endpoint} takes a filter only; `{}` and the other pipe stages are answered by /api/v1/aggregate",
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
            pruning: SplitPruning::new(filter, now_nanos),
        })
    }

    /// The tantivy schema filters are compiled against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

impl SplitPruning {
    pub fn new(filter: &Filter, now_nanos: i64) -> SplitPruning {
        SplitPruning {
            required: required_identity(filter),
            time: required_time_range(filter, now_nanos),
        }
    }

    /// Whether a split may hold a match in `[start, end]`: its time range overlaps both
    /// that range and the filter's own `timestamp` bounds (the query applies them to
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
    limits: &SearchLimits,
    request: &SearchRequest,
) -> Result<SearchResponse, SearchError> {
    let most = limits.max_search_hits;
    if request.limit == 0 || request.limit > most {
        return Err(SearchError::BadRequest(format!(
            "limit must be between 1 and {most} (setting max_search_hits)"
        )));
    }
    let deadline = limits.deadline();
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let filter = parser.parse(&request.query, &versions, now_nanos())?;
    let collector = OrderedHits::newest_first(
        request.limit,
        request.start_nanos,
        request.end_nanos,
        request.cursor,
    );
    let end_bound = match (request.end_nanos, request.cursor) {
        (Some(end), Some(cursor)) => Some(end.min(cursor.timestamp_nanos)),
        (end, cursor) => end.or(cursor.map(|c| c.timestamp_nanos)),
    };
    let mut wanted = Vec::with_capacity(splits.len());
    for split in &splits {
        if filter
            .pruning
            .may_match(&split.metadata, request.start_nanos, end_bound)
        {
            wanted.push(split.as_ref());
        }
    }
    let splits_searched = wanted.len();
    let splits_skipped = splits.len() - splits_searched;
    let per_split = map_splits(&wanted, limits.search_threads, &deadline, |split| {
        let searcher = split.reader.searcher();
        let found = searcher.search(filter.query.as_ref(), &collector)?;
        Ok((searcher, found))
    })?;
    // (key, searcher position, address) of the best hits over every split.
    let mut best: Vec<(Cursor, (usize, DocAddress))> = Vec::new();
    let mut searchers = Vec::with_capacity(per_split.len());
    for (searcher, found) in per_split {
        for (key, address) in found {
            best.push((key, (searchers.len(), address)));
        }
        searchers.push(searcher);
    }
    sort_best_first(&mut best, false);
    best.truncate(request.limit);
    let mut hits = Vec::with_capacity(best.len());
    for (key, (position, address)) in &best {
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

/// `/api/v1/context`: the lines around one hit, from the same instance and source.
#[derive(Debug, Clone)]
pub struct ContextRequest {
    /// The hit, by the `cursor` a search gave it.
    pub hit: Cursor,
    pub before: usize,
    pub after: usize,
}

#[derive(Debug, Serialize)]
pub struct ContextResponse {
    /// Up to `before` lines logged just before the hit, oldest first.
    pub before: Vec<serde_json::Value>,
    pub hit: serde_json::Value,
    /// Up to `after` lines logged just after the hit, oldest first.
    pub after: Vec<serde_json::Value>,
    pub splits_searched: usize,
    pub splits_skipped: usize,
}

/// The hit at `request.hit`, then its neighbours in (timestamp, row) order among the
/// lines with the same `instance` and `source`: the lines that one process wrote to one
/// file or stream, which is what "the lines around it" means to whoever reads a log.
/// Splits that cannot hold such a line (other instances, or wholly on the wrong side of
/// the hit in time) are skipped.
pub fn context(
    catalog: &SplitCatalog,
    schema: &LogSchema,
    limits: &SearchLimits,
    request: &ContextRequest,
) -> Result<ContextResponse, SearchError> {
    let most = limits.max_context_lines;
    if request.before > most || request.after > most {
        return Err(SearchError::BadRequest(format!(
            "`before` and `after` may be at most {most} lines (limit max_context_lines)"
        )));
    }
    let deadline = limits.deadline();
    let splits = catalog.snapshot();
    let at = request.hit.timestamp_nanos;
    // The hit itself: the one line with its exact (timestamp, row).
    let instant = RangeQuery::new(
        std::ops::Bound::Included(Term::from_field_date(
            schema.timestamp,
            DateTime::from_timestamp_nanos(at),
        )),
        std::ops::Bound::Included(Term::from_field_date(
            schema.timestamp,
            DateTime::from_timestamp_nanos(at),
        )),
    );
    let exactly = OrderedHits::newest_first(
        1,
        Some(at),
        Some(at),
        Some(Cursor {
            timestamp_nanos: at,
            row: request.hit.row.saturating_add(1),
        }),
    );
    let mut found = None;
    for split in splits
        .iter()
        .filter(|s| s.metadata.overlaps(Some(at), Some(at)))
    {
        deadline.check()?;
        let searcher = split.reader.searcher();
        if let Some((key, address)) = searcher.search(&instant, &exactly)?.into_iter().next()
            && key == request.hit
        {
            found = Some(searcher.doc::<TantivyDocument>(address)?);
            break;
        }
    }
    let Some(hit_document) = found else {
        return Err(SearchError::NotFound(format!(
            "no line at cursor `{}`: it was never issued by this server or its split was dropped",
            request.hit.encode()
        )));
    };
    let text = |field| {
        hit_document
            .get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let instance_field = schema.identity[IDENTITY_FIELDS
        .iter()
        .position(|(name, _)| *name == "instance")
        .expect("instance is an identity field")];
    let instance = text(instance_field);
    let source = text(schema.source);
    let same_stream: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(instance_field, &instance),
                IndexRecordOption::Basic,
            )) as Box<dyn Query>,
        ),
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(schema.source, &source),
                IndexRecordOption::Basic,
            )),
        ),
    ]));
    let mut splits_searched = 0;
    let mut splits_skipped = 0;
    let mut sides = Vec::with_capacity(2);
    for (limit, oldest_first) in [(request.before, false), (request.after, true)] {
        let collector = OrderedHits {
            limit,
            start_nanos: None,
            end_nanos: None,
            beyond: Some(request.hit),
            oldest_first,
        };
        let mut best: Vec<(Cursor, (usize, DocAddress))> = Vec::new();
        let mut searchers = Vec::new();
        if limit > 0 {
            for split in &splits {
                let (start, end) = if oldest_first {
                    (Some(at), None)
                } else {
                    (None, Some(at))
                };
                if !split.metadata.overlaps(start, end)
                    || !split.metadata.instances.contains(&instance)
                {
                    splits_skipped += 1;
                    continue;
                }
                deadline.check()?;
                splits_searched += 1;
                let searcher = split.reader.searcher();
                for (key, address) in searcher.search(same_stream.as_ref(), &collector)? {
                    best.push((key, (searchers.len(), address)));
                }
                searchers.push(searcher);
                sort_best_first(&mut best, oldest_first);
                best.truncate(limit);
            }
        }
        let mut lines = Vec::with_capacity(best.len());
        for (key, (position, address)) in &best {
            let document: TantivyDocument = searchers[*position].doc(*address)?;
            lines.push(hit_to_json(schema, &document, *key));
        }
        if !oldest_first {
            lines.reverse();
        }
        sides.push(lines);
    }
    let after = sides.pop().expect("two sides");
    let before = sides.pop().expect("two sides");
    Ok(ContextResponse {
        before,
        hit: hit_to_json(schema, &hit_document, request.hit),
        after,
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
pub fn hit_to_json(
    schema: &LogSchema,
    document: &TantivyDocument,
    key: Cursor,
) -> serde_json::Value {
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
    // The hit's own position: what `/api/v1/context` opens it by.
    hit.insert("cursor".into(), key.encode().into());
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

/// Collects the `limit` newest documents by (timestamp, row) within a time range and
/// strictly before a cursor or, oldest first, the `limit` oldest strictly after one.
pub(crate) struct OrderedHits {
    pub limit: usize,
    pub start_nanos: Option<i64>,
    pub end_nanos: Option<i64>,
    /// Newest first: only keys below this one; oldest first: only keys above it.
    pub beyond: Option<Cursor>,
    pub oldest_first: bool,
}

impl OrderedHits {
    fn newest_first(
        limit: usize,
        start_nanos: Option<i64>,
        end_nanos: Option<i64>,
        before: Option<Cursor>,
    ) -> OrderedHits {
        OrderedHits {
            limit,
            start_nanos,
            end_nanos,
            beyond: before,
            oldest_first: false,
        }
    }
}

/// A key in the collector's order: the greater rank is the better hit.
type Rank = (i128, u64);

fn rank(key: Cursor, oldest_first: bool) -> Rank {
    if oldest_first {
        (-i128::from(key.timestamp_nanos), u64::MAX - key.row)
    } else {
        (i128::from(key.timestamp_nanos), key.row)
    }
}

pub(crate) struct OrderedHitsSegment {
    segment_ord: SegmentOrdinal,
    limit: usize,
    start_nanos: i64,
    end_nanos: i64,
    beyond: Option<Rank>,
    oldest_first: bool,
    timestamps: Column<DateTime>,
    rows: Column<u64>,
    // A min-heap of the best so far: its top is the worst kept hit.
    heap: BinaryHeap<Reverse<(Rank, Cursor, DocId)>>,
}

impl Collector for OrderedHits {
    type Fruit = Vec<(Cursor, DocAddress)>;
    type Child = OrderedHitsSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<OrderedHitsSegment> {
        Ok(OrderedHitsSegment {
            segment_ord,
            limit: self.limit,
            start_nanos: self.start_nanos.unwrap_or(i64::MIN),
            end_nanos: self.end_nanos.unwrap_or(i64::MAX),
            beyond: self.beyond.map(|key| rank(key, self.oldest_first)),
            oldest_first: self.oldest_first,
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
        sort_best_first(&mut all, self.oldest_first);
        all.truncate(self.limit);
        Ok(all)
    }
}

/// Sorts hits best first: newest first, or oldest first.
pub(crate) fn sort_best_first<T>(hits: &mut [(Cursor, T)], oldest_first: bool) {
    hits.sort_unstable_by_key(|entry| Reverse(rank(entry.0, oldest_first)));
}

impl SegmentCollector for OrderedHitsSegment {
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
        let key_rank = rank(key, self.oldest_first);
        if self.beyond.is_some_and(|beyond| key_rank >= beyond) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((key_rank, key, doc)));
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse((worst, _, _))| key_rank > *worst)
        {
            self.heap.pop();
            self.heap.push(Reverse((key_rank, key, doc)));
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment_ord = self.segment_ord;
        self.heap
            .into_iter()
            .map(|Reverse((_, key, doc))| (key, DocAddress::new(segment_ord, doc)))
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
