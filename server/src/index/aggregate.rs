//! Aggregations (`stats`, `timechart`, `top`, `patterns`) over the splits, for
//! `/api/v1/aggregate`, and the facets of `/api/v1/fields`.
//!
//! The query language's engine plans the aggregating stage as one tantivy aggregation
//! request (`epitaph_query::engine::aggregate`); this module runs it over a snapshot of
//! the split catalog. Splits are pruned exactly as a search prunes them
//! ([`SplitPruning::may_match`](super::search::SplitPruning::may_match): time range,
//! then identity sets), each remaining split is aggregated with its own searcher, and the
//! intermediate results are merged before they become rows, so a group that spans
//! several splits is counted once, exactly.
//!
//! `start`/`end` bound the lines (not only the splits): they are added to the filter as a
//! range on `timestamp`. `rate` divides by the query's time range: `start`/`end` when
//! given, else the filter's own `timestamp` bounds, else from the oldest searched split to
//! now.

use epitaph_query::engine::aggregate::{AggregateError, Cell, plan_aggregation};
use epitaph_query::engine::facets::plan_facets;
use epitaph_query::engine::patterns::{PatternPlan, plan_patterns};
use epitaph_query::engine::time_range_query;
use serde::Serialize;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::schema::Value;
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::catalog::SplitCatalog;
use super::indexer::now_nanos;
use super::schema::LogSchema;
use super::search::{
    Cursor, LogQueryParser, SearchError, SearchLimits, SplitVersions, map_splits, rfc3339,
};

#[derive(Debug, Clone, Default)]
pub struct AggregateRequest {
    pub query: String,
    pub start_nanos: Option<i64>,
    pub end_nanos: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AggregateResponse {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// A timechart's bucket width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_seconds: Option<serde_json::Value>,
    pub splits_searched: usize,
    pub splits_skipped: usize,
}

pub fn aggregate(
    catalog: &SplitCatalog,
    parser: &LogQueryParser,
    limits: &SearchLimits,
    request: &AggregateRequest,
) -> Result<AggregateResponse, SearchError> {
    let deadline = limits.deadline();
    let parsed = epitaph_query::parse(&request.query).map_err(SearchError::Query)?;
    let plan = plan_aggregation(&parsed, parser.schema()).map_err(SearchError::Query)?;
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let now = now_nanos();
    let filter = parser.compile(&parsed.filter, &versions, now)?;
    let query = within(
        filter.query.box_clone(),
        parser,
        request.start_nanos,
        request.end_nanos,
    )?;
    let collector = plan.collector();
    let mut wanted = Vec::with_capacity(splits.len());
    let mut oldest_searched: Option<i64> = None;
    for split in &splits {
        if !filter
            .pruning
            .may_match(&split.metadata, request.start_nanos, request.end_nanos)
        {
            continue;
        }
        if let Some(min) = split.metadata.min_timestamp_nanos {
            oldest_searched = Some(oldest_searched.map_or(min, |oldest| oldest.min(min)));
        }
        wanted.push(split.as_ref());
    }
    let splits_searched = wanted.len();
    let splits_skipped = splits.len() - splits_searched;
    let fruits = map_splits(&wanted, limits.search_threads, &deadline, |split| {
        Ok(split.reader.searcher().search(query.as_ref(), &collector)?)
    })?;
    let mut merged = IntermediateAggregationResults::default();
    for fruit in fruits {
        merged.merge_fruits(fruit)?;
    }
    let range_start = request
        .start_nanos
        .or(filter.pruning.time.start_nanos)
        .or(oldest_searched)
        .unwrap_or(now);
    let range_end = request
        .end_nanos
        .or(filter.pruning.time.end_nanos)
        .unwrap_or(now);
    // A range of zero (one instant) counts as one second rather than dividing by zero.
    let range_seconds = (range_end.saturating_sub(range_start) as f64 / 1e9).max(1.0);
    let table = plan.table(merged, range_seconds).map_err(aggregate_error)?;
    let rows = table
        .rows
        .into_iter()
        .map(|row| row.into_iter().map(cell_to_json).collect())
        .collect();
    Ok(AggregateResponse {
        columns: table.columns,
        rows,
        span_seconds: plan.span_seconds().map(number_to_json),
        splits_searched,
        splits_skipped,
    })
}

/// `/api/v1/fields`: the top values of every keyword field among the lines `query`
/// matches in `[start, end]`.
#[derive(Debug, Clone, Default)]
pub struct FacetsRequest {
    pub query: String,
    pub start_nanos: Option<i64>,
    pub end_nanos: Option<i64>,
    /// Values per field.
    pub size: usize,
}

#[derive(Debug, Serialize)]
pub struct FacetsResponse {
    /// Lines the filter matched.
    pub lines: u64,
    pub fields: Vec<FacetJson>,
    pub splits_searched: usize,
    pub splits_skipped: usize,
}

#[derive(Debug, Serialize)]
pub struct FacetJson {
    pub field: String,
    /// Most lines first, ties by value.
    pub values: Vec<FacetValue>,
    /// Matching lines whose value is not among `values`.
    pub other_count: u64,
}

#[derive(Debug, Serialize)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

pub fn facets(
    catalog: &SplitCatalog,
    parser: &LogQueryParser,
    limits: &SearchLimits,
    request: &FacetsRequest,
) -> Result<FacetsResponse, SearchError> {
    let most = limits.max_facet_values;
    if request.size == 0 || request.size > most {
        return Err(SearchError::BadRequest(format!(
            "size must be between 1 and {most} (setting max_facet_values)"
        )));
    }
    let deadline = limits.deadline();
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let filter =
        parser.parse_filter_for("/api/v1/fields", &request.query, &versions, now_nanos())?;
    let query = within(
        filter.query.box_clone(),
        parser,
        request.start_nanos,
        request.end_nanos,
    )?;
    let plan = plan_facets(
        parser.schema(),
        u32::try_from(request.size).unwrap_or(u32::MAX),
    );
    let collector = plan.collector();
    let mut wanted = Vec::with_capacity(splits.len());
    for split in &splits {
        if filter
            .pruning
            .may_match(&split.metadata, request.start_nanos, request.end_nanos)
        {
            wanted.push(split.as_ref());
        }
    }
    let splits_searched = wanted.len();
    let fruits = map_splits(&wanted, limits.search_threads, &deadline, |split| {
        Ok(split.reader.searcher().search(query.as_ref(), &collector)?)
    })?;
    let mut merged = IntermediateAggregationResults::default();
    for fruit in fruits {
        merged.merge_fruits(fruit)?;
    }
    let facets = plan.facets(merged).map_err(aggregate_error)?;
    Ok(FacetsResponse {
        lines: facets.lines,
        fields: facets
            .fields
            .into_iter()
            .map(|facet| FacetJson {
                field: facet.field,
                values: facet
                    .values
                    .into_iter()
                    .map(|(value, count)| FacetValue { value, count })
                    .collect(),
                other_count: facet.other_count,
            })
            .collect(),
        splits_searched,
        splits_skipped: splits.len() - splits_searched,
    })
}

/// The most distinct values of a `patterns by` field. Each group keeps up to
/// `patterns_max_lines` lines while the splits are read, so this bounds that memory.
pub const MAX_PATTERN_GROUPS: usize = 1_000;

/// `patterns`: a table like an aggregation's, plus how much was read.
#[derive(Debug, Serialize)]
pub struct PatternsResponse {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Lines the filter matched.
    pub lines_matched: u64,
    /// Lines whose messages were read and grouped: the newest `patterns_max_lines` of
    /// each group (each value of the `by` field).
    pub lines_scanned: u64,
    /// Whether some group had more matching lines than were read.
    pub truncated: bool,
    /// Says what was left out when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub splits_searched: usize,
    pub splits_skipped: usize,
}

/// Runs a query whose aggregating stage is `patterns`: the newest matching lines of each
/// group (each value of the `by` field, or all lines) up to `patterns_max_lines`, read
/// from every unpruned split, grouped by message template.
///
/// Reading a line's message means opening its document, which costs far more than an
/// aggregation over columns; hence the cap, which is per group so that `patterns unique
/// by version` compares every version on its own newest lines rather than on whichever
/// version happens to be newest. When the cap is hit the answer says so (`truncated`,
/// `note`): a pattern that is "unique" to one group may then exist in the other's older
/// lines.
pub fn patterns(
    catalog: &SplitCatalog,
    schema: &LogSchema,
    parser: &LogQueryParser,
    limits: &SearchLimits,
    request: &AggregateRequest,
) -> Result<PatternsResponse, SearchError> {
    let deadline = limits.deadline();
    let parsed = epitaph_query::parse(&request.query).map_err(SearchError::Query)?;
    let plan = plan_patterns(&parsed, parser.schema()).map_err(SearchError::Query)?;
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let filter = parser.compile(&parsed.filter, &versions, now_nanos())?;
    let query = within(
        filter.query.box_clone(),
        parser,
        request.start_nanos,
        request.end_nanos,
    )?;
    let mut wanted = Vec::with_capacity(splits.len());
    for split in &splits {
        if filter
            .pruning
            .may_match(&split.metadata, request.start_nanos, request.end_nanos)
        {
            wanted.push(split.as_ref());
        }
    }
    let collector = NewestPerGroup {
        per_group: limits.patterns_max_lines,
        by_column: plan.by_column().map(str::to_string),
    };
    let per_split = map_splits(&wanted, limits.search_threads, &deadline, |split| {
        let searcher = split.reader.searcher();
        let groups = searcher.search(query.as_ref(), &collector)?;
        Ok((searcher, groups))
    })?;
    // group → (lines matched, newest lines as (key, split position, address)).
    let mut groups: BTreeMap<String, (u64, Vec<KeptLine>)> = BTreeMap::new();
    for (position, (_, split_groups)) in per_split.iter().enumerate() {
        if split_groups.too_many_groups {
            return Err(too_many_pattern_groups(&plan));
        }
        for (group, (matched, newest)) in &split_groups.groups {
            let entry = groups.entry(group.clone()).or_default();
            entry.0 += matched;
            entry.1.extend(
                newest
                    .iter()
                    .map(|(key, address)| (*key, position, *address)),
            );
        }
    }
    if groups.len() > MAX_PATTERN_GROUPS {
        return Err(too_many_pattern_groups(&plan));
    }
    let mut lines_matched = 0;
    let mut truncated_groups = Vec::new();
    // What to read, in (split, segment, doc) order so the doc store reads blocks in turn.
    let mut to_read: Vec<(usize, DocAddress, Cursor, &str)> = Vec::new();
    for (group, (matched, newest)) in &mut groups {
        lines_matched += *matched;
        newest.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
        if newest.len() > limits.patterns_max_lines {
            newest.truncate(limits.patterns_max_lines);
        }
        if *matched > newest.len() as u64 {
            truncated_groups.push(group.as_str());
        }
        for (key, position, address) in newest.iter() {
            to_read.push((*position, *address, *key, group.as_str()));
        }
    }
    to_read.sort_unstable_by_key(|(position, address, _, _)| (*position, *address));
    let mut counter = plan.counter();
    for (read, (position, address, key, group)) in to_read.iter().enumerate() {
        if read % 1024 == 0 {
            deadline.check()?;
        }
        let document: TantivyDocument = per_split[*position].0.doc(*address)?;
        let body = document
            .get_first(schema.body)
            .and_then(|value| value.as_str())
            .unwrap_or("");
        counter.add(group, body, (key.timestamp_nanos, key.row));
    }
    let table = plan.table(counter);
    let truncated = !truncated_groups.is_empty();
    let note = truncated.then(|| {
        let which = match plan.by_column() {
            Some(column) => format!(
                " for {column} {}",
                truncated_groups
                    .iter()
                    .take(5)
                    .map(|group| format!("`{group}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        format!(
            "read only the newest {} matching lines{which} (setting patterns_max_lines); older lines were not grouped, so narrow the time range or the filter to see them",
            limits.patterns_max_lines
        )
    });
    Ok(PatternsResponse {
        columns: table.columns,
        rows: table
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(cell_to_json).collect())
            .collect(),
        lines_matched,
        lines_scanned: to_read.len() as u64,
        truncated,
        note,
        splits_searched: wanted.len(),
        splits_skipped: splits.len() - wanted.len(),
    })
}

fn too_many_pattern_groups(plan: &PatternPlan) -> SearchError {
    SearchError::BadRequest(format!(
        "`patterns by {}` has more than {MAX_PATTERN_GROUPS} values; narrow the filter",
        plan.by_column().unwrap_or("")
    ))
}

/// A line kept for `patterns`: its key, the position of its split, its address there.
type KeptLine = (Cursor, usize, DocAddress);

/// A min-heap of the newest lines so far: its top is the oldest kept.
type NewestHeap = BinaryHeap<std::cmp::Reverse<(Cursor, DocId)>>;

/// Per group (value of `by_column`, or one group `""`): how many lines matched and the
/// `per_group` newest of them by (timestamp, row).
struct NewestPerGroup {
    per_group: usize,
    by_column: Option<String>,
}

#[derive(Default)]
struct GroupedNewest {
    groups: BTreeMap<String, (u64, Vec<(Cursor, DocAddress)>)>,
    /// More than [`MAX_PATTERN_GROUPS`] groups: lines of the extra ones were not kept.
    too_many_groups: bool,
}

struct NewestPerGroupSegment {
    segment_ord: SegmentOrdinal,
    per_group: usize,
    timestamps: Column<DateTime>,
    rows: Column<u64>,
    by: Option<StrColumn>,
    /// Term ordinal of the group's value (`u64::MAX`: no value) → matched, newest kept.
    groups: HashMap<u64, (u64, NewestHeap)>,
    too_many_groups: bool,
}

impl Collector for NewestPerGroup {
    type Fruit = GroupedNewest;
    type Child = NewestPerGroupSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<NewestPerGroupSegment> {
        let by = match &self.by_column {
            Some(column) => segment.fast_fields().str(column)?,
            None => None,
        };
        Ok(NewestPerGroupSegment {
            segment_ord,
            per_group: self.per_group,
            timestamps: segment.fast_fields().date("timestamp")?,
            rows: segment.fast_fields().u64("_row")?,
            by,
            groups: HashMap::new(),
            too_many_groups: false,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<GroupedNewest>) -> tantivy::Result<GroupedNewest> {
        let mut merged = GroupedNewest::default();
        for fruit in fruits {
            merged.too_many_groups |= fruit.too_many_groups;
            for (group, (matched, newest)) in fruit.groups {
                let entry = merged.groups.entry(group).or_default();
                entry.0 += matched;
                entry.1.extend(newest);
                entry
                    .1
                    .sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key));
                entry.1.truncate(self.per_group);
            }
        }
        merged.too_many_groups |= merged.groups.len() > MAX_PATTERN_GROUPS;
        Ok(merged)
    }
}

impl SegmentCollector for NewestPerGroupSegment {
    type Fruit = GroupedNewest;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(timestamp) = self.timestamps.first(doc) else {
            return;
        };
        let key = Cursor {
            timestamp_nanos: timestamp.into_timestamp_nanos(),
            row: self.rows.first(doc).unwrap_or(0),
        };
        let ordinal = self
            .by
            .as_ref()
            .and_then(|column| column.term_ords(doc).next())
            .unwrap_or(u64::MAX);
        if !self.groups.contains_key(&ordinal) && self.groups.len() >= MAX_PATTERN_GROUPS {
            self.too_many_groups = true;
            return;
        }
        let (matched, heap) = self.groups.entry(ordinal).or_default();
        *matched += 1;
        if heap.len() < self.per_group {
            heap.push(std::cmp::Reverse((key, doc)));
        } else if heap
            .peek()
            .is_some_and(|std::cmp::Reverse((worst, _))| key > *worst)
        {
            heap.pop();
            heap.push(std::cmp::Reverse((key, doc)));
        }
    }

    fn harvest(self) -> GroupedNewest {
        let mut harvested = GroupedNewest {
            groups: BTreeMap::new(),
            too_many_groups: self.too_many_groups,
        };
        let mut value = String::new();
        for (ordinal, (matched, heap)) in self.groups {
            value.clear();
            if ordinal != u64::MAX
                && let Some(column) = &self.by
            {
                // An ordinal read from the column is always in its dictionary.
                let _ = column.ord_to_str(ordinal, &mut value);
            }
            let entry = harvested.groups.entry(value.clone()).or_default();
            entry.0 += matched;
            entry
                .1
                .extend(heap.into_iter().map(|std::cmp::Reverse((key, doc))| {
                    (key, DocAddress::new(self.segment_ord, doc))
                }));
        }
        harvested
    }
}

fn aggregate_error(error: AggregateError) -> SearchError {
    match error {
        AggregateError::TooManyGroups { .. }
        | AggregateError::Tantivy(tantivy::TantivyError::AggregationError(_)) => {
            SearchError::BadRequest(error.to_string())
        }
        AggregateError::Tantivy(error) => SearchError::from(error),
    }
}

/// The filter restricted to lines in `[start, end]`.
pub(crate) fn within(
    query: Box<dyn Query>,
    parser: &LogQueryParser,
    start_nanos: Option<i64>,
    end_nanos: Option<i64>,
) -> Result<Box<dyn Query>, SearchError> {
    if start_nanos.is_none() && end_nanos.is_none() {
        return Ok(query);
    }
    let schema = parser.schema();
    let timestamp = schema.get_field("timestamp")?;
    let bound = |nanos: Option<i64>| match nanos {
        Some(nanos) => std::ops::Bound::Included(nanos),
        None => std::ops::Bound::Unbounded,
    };
    let range = time_range_query(schema, timestamp, &bound(start_nanos), &bound(end_nanos));
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(range)),
    ])))
}

pub(crate) fn cell_to_json(cell: Cell) -> serde_json::Value {
    match cell {
        Cell::Null => serde_json::Value::Null,
        Cell::Integer(value) => value.into(),
        Cell::Number(value) => number_to_json(value),
        Cell::Text(text) => text.into(),
        Cell::Time { unix_nanos } => rfc3339(unix_nanos).into(),
    }
}

/// Whole numbers print without a fraction (`60`, not `60.0`); NaN and infinities as null.
pub(crate) fn number_to_json(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        return (value as i64).into();
    }
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
