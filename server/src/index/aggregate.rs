//! Aggregations (`stats`, `timechart`, `top`) over the splits, for `/api/v1/aggregate`,
//! and the facets of `/api/v1/fields`.
//!
//! The query language's engine plans the aggregating stage as one tantivy aggregation
//! request (`epitaph_query::engine::aggregate`); this module runs it over a snapshot of
//! the split catalog. Splits are pruned exactly as a search prunes them
//! ([`CompiledFilter::may_match`]: time range, then identity sets), each remaining split
//! is aggregated with its own searcher, and the intermediate results are merged before
//! they become rows, so a group that spans several splits is counted once, exactly.
//!
//! `start`/`end` bound the lines (not only the splits): they are added to the filter as a
//! range on `timestamp`. `rate` divides by the query's time range: `start`/`end` when
//! given, else the filter's own `timestamp` bounds, else from the oldest searched split to
//! now.

use epitaph_query::engine::aggregate::{AggregateError, Cell, plan_aggregation};
use epitaph_query::engine::facets::plan_facets;
use serde::Serialize;
use tantivy::DateTime;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::schema::Term;

use super::catalog::SplitCatalog;
use super::indexer::now_nanos;
use super::search::{
    LogQueryParser, SearchError, SearchLimits, SplitVersions, map_splits, rfc3339,
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
        if !filter.may_match(&split.metadata, request.start_nanos, request.end_nanos) {
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
        .or(filter.time.start_nanos)
        .or(oldest_searched)
        .unwrap_or(now);
    let range_end = request.end_nanos.or(filter.time.end_nanos).unwrap_or(now);
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
        if filter.may_match(&split.metadata, request.start_nanos, request.end_nanos) {
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
    let timestamp = parser.schema().get_field("timestamp")?;
    let bound = |nanos: Option<i64>| match nanos {
        Some(nanos) => std::ops::Bound::Included(Term::from_field_date(
            timestamp,
            DateTime::from_timestamp_nanos(nanos),
        )),
        None => std::ops::Bound::Unbounded,
    };
    let range = RangeQuery::new(bound(start_nanos), bound(end_nanos));
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
