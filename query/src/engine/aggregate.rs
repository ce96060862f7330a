//! The engine's aggregation half: a query's aggregating stage (`stats`, `timechart`,
//! `top`) becomes one tantivy aggregation request, and the merged results of running it
//! over every split become a table of rows, which `fields`, `sort` and `limit` then shape.
//!
//! How a stage maps onto tantivy's aggregation framework:
//!
//! - each `by` field is a `terms` aggregation nested inside the one before it
//!   (`by version, level` is terms(version) → terms(level)), and the functions are metric
//!   aggregations at the innermost level;
//! - `timechart` is a `date_histogram` on `timestamp` (fixed interval, empty buckets kept
//!   between the first and the last) with its `by` field as a `terms` inside;
//! - `top N f` is terms(f) ordered by count, then by value;
//! - `count()` is a bucket's document count (at the top level of a `stats` without `by`,
//!   a `value_count` of `timestamp`, which every line has); `count(f)` a `value_count`;
//!   `sum`, `avg`, `min`, `max` the metrics of those names; `p50`…`p99` `percentiles`
//!   (tantivy's sketch: approximate); `count_distinct` `cardinality` (HyperLogLog: exact
//!   for small sets, approximate beyond); `rate` the count (or the sum) divided by the
//!   query's time range in seconds, or by the bucket width in a timechart.
//!
//! The request is run per split with a [`DistributedAggregationCollector`]; the caller
//! merges the intermediate results of every split (`merge_fruits`) and hands them to
//! [`AggregationPlan::table`], so the answer is the same as if all splits were one index.
//! Terms aggregations ask every segment for all its groups (up to [`MAX_GROUPS`]) rather
//! than its top few, so counts are exact, not the usual top-k estimate; a query with more
//! groups than that is an error rather than a silently truncated answer.
//!
//! Only fast (columnar) fields can be aggregated; attributes are not fast yet, so
//! `stats count() by attrs.x` is a [`QueryError`] that lists the fields that can.

use std::cmp::Ordering;

use serde_json::json;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{
    AggregationResult, AggregationResults, BucketEntry, BucketResult, MetricResult,
};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::metric::PercentileValues;
use tantivy::aggregation::{
    AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector, Key,
};
use tantivy::schema::Schema;

use crate::ast::{AggregateFunction, Aggregation, Query, SortOrder, Stage};
use crate::error::{QueryError, Span};
use crate::fields::{FIELDS, FieldKind, FieldRef};

/// The most groups one terms level may have. Every segment is asked for all of its groups
/// up to this many, which is what makes counts exact across splits.
pub const MAX_GROUPS: u32 = 10_000;

/// The name of the `timestamp` field, which `timechart` buckets and `count()` counts.
const TIMESTAMP_FIELD: &str = "timestamp";

/// An aggregating stage compiled to a tantivy request, plus the stages that shape its
/// table.
#[derive(Debug, Clone)]
pub struct AggregationPlan {
    kind: PlanKind,
    /// `fields`, `sort` and `limit` after the aggregation, in query order.
    shaping: Vec<Stage>,
    request: Aggregations,
}

#[derive(Debug, Clone)]
enum PlanKind {
    Stats {
        by: Vec<FieldRef>,
        functions: Vec<PlannedFunction>,
    },
    Timechart {
        bucket_millis: u64,
        by: Option<FieldRef>,
        functions: Vec<PlannedFunction>,
    },
    Top {
        n: u64,
        field: FieldRef,
    },
}

/// One `fn(field) [as name]` with the name of the metric aggregation that computes it
/// (`None` when a bucket's document count answers it).
#[derive(Debug, Clone)]
struct PlannedFunction {
    function: AggregateFunction,
    field: Option<FieldRef>,
    /// The fast column the metric reads (`field` as the schema names it).
    column: Option<String>,
    output_name: String,
    metric_name: Option<String>,
}

/// A value in an aggregation's table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value: a metric over no lines (`avg` of nothing).
    Null,
    Integer(i64),
    Number(f64),
    Text(String),
    /// A point in time (a timechart bucket's start, `min(timestamp)`).
    Time {
        unix_nanos: i64,
    },
}

/// An aggregation's answer: named columns and rows of cells in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Running an aggregation failed after it was planned.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(
        "the aggregation has more than {MAX_GROUPS} groups of `{field}`; narrow the filter or group by fewer fields"
    )]
    TooManyGroups { field: String },
    #[error("aggregation failed: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

/// Compiles the query's aggregating stage into a tantivy aggregation request over
/// `schema`. A query without one, `patterns` (see [`super::patterns`]) and fields that
/// are not fast columns are errors at their position.
pub fn plan_aggregation(query: &Query, schema: &Schema) -> Result<AggregationPlan, QueryError> {
    let Some(stage) = query.aggregation() else {
        let span = query
            .stages
            .first()
            .map_or(query.span.clone(), |stage| stage.span().clone());
        return Err(QueryError::new(
            span,
            "the query has no aggregating stage (stats, timechart, top); lines are answered by /api/v1/search",
        ));
    };
    let planner = Planner { schema };
    let (kind, request) = match stage {
        Stage::Stats {
            aggregations, by, ..
        } => {
            let mut columns = Vec::with_capacity(by.len());
            for field in by {
                columns.push(planner.check_aggregatable(&field.node, &field.span)?);
            }
            let by: Vec<FieldRef> = by.iter().map(|field| field.node.clone()).collect();
            let functions = planner.functions(aggregations, by.is_empty())?;
            let request = nest_terms(&columns, metric_requests(&functions));
            (PlanKind::Stats { by, functions }, request)
        }
        Stage::Timechart {
            bucket,
            aggregations,
            by,
            span,
        } => {
            let bucket_millis = u64::try_from(bucket.as_millis()).unwrap_or(u64::MAX);
            if bucket_millis == 0 {
                return Err(QueryError::new(
                    span.clone(),
                    "a timechart span must be at least 1ms",
                ));
            }
            let by_field = by.as_ref().map(|field| field.node.clone());
            let mut columns = Vec::new();
            if let Some(field) = by {
                columns.push(planner.check_aggregatable(&field.node, &field.span)?);
            }
            let functions = planner.functions(aggregations, false)?;
            let inner = nest_terms(&columns, metric_requests(&functions));
            let mut request = serde_json::Map::new();
            request.insert(
                "time".to_string(),
                json!({
                    "date_histogram": {
                        "field": TIMESTAMP_FIELD,
                        "fixed_interval": format!("{bucket_millis}ms"),
                        "min_doc_count": 0,
                    },
                    "aggs": inner,
                }),
            );
            let kind = PlanKind::Timechart {
                bucket_millis,
                by: by_field,
                functions,
            };
            (kind, request)
        }
        Stage::Top { n, field, .. } => {
            let column = planner.check_aggregatable(&field.node, &field.span)?;
            let request = nest_terms(&[column], serde_json::Map::new());
            let kind = PlanKind::Top {
                n: *n,
                field: field.node.clone(),
            };
            (kind, request)
        }
        Stage::Patterns { span, .. } => {
            return Err(QueryError::new(
                span.clone(),
                "`patterns` reads messages, not columns: plan it with engine::patterns::plan_patterns",
            ));
        }
        Stage::Fields { .. } | Stage::Sort { .. } | Stage::Limit { .. } => {
            unreachable!("Query::aggregation returns only aggregating stages")
        }
    };
    let request: Aggregations = serde_json::from_value(serde_json::Value::Object(request))
        .map_err(|error| {
            QueryError::new(
                stage.span().clone(),
                format!("cannot build the aggregation request: {error}"),
            )
        })?;
    Ok(AggregationPlan {
        kind,
        shaping: query.stages[1..].to_vec(),
        request,
    })
}

struct Planner<'a> {
    schema: &'a Schema,
}

impl Planner<'_> {
    /// The fields of the schema that are fast columns, as users name them.
    fn aggregatable_fields(&self) -> Vec<&'static str> {
        FIELDS
            .iter()
            .map(|spec| spec.name)
            .filter(|name| {
                self.schema
                    .get_field(name)
                    .is_ok_and(|field| self.schema.get_field_entry(field).is_fast())
            })
            .collect()
    }

    /// The schema's name for the field, when it is a fast column.
    fn check_aggregatable(&self, field: &FieldRef, span: &Span) -> Result<String, QueryError> {
        let fast_name = field.fixed_name().filter(|name| {
            self.schema
                .get_field(name)
                .is_ok_and(|schema_field| self.schema.get_field_entry(schema_field).is_fast())
        });
        match fast_name {
            Some(name) => Ok(name.to_string()),
            None => Err(QueryError::new(
                span.clone(),
                format!(
                    "field `{field}` cannot be aggregated yet; aggregatable fields are {}",
                    self.aggregatable_fields().join(", ")
                ),
            )),
        }
    }

    /// Checks every function's field and names its metric aggregation. `top_level`: the
    /// functions are not inside any bucket, so `count()` has no bucket count to use.
    fn functions(
        &self,
        aggregations: &[Aggregation],
        top_level: bool,
    ) -> Result<Vec<PlannedFunction>, QueryError> {
        let mut functions = Vec::with_capacity(aggregations.len());
        for (position, aggregation) in aggregations.iter().enumerate() {
            if aggregation.function == AggregateFunction::Increase {
                return Err(QueryError::new(
                    aggregation.span.clone(),
                    "increase() applies to metric counters; name one with `metric:NAME` in the filter",
                ));
            }
            let field = aggregation.field.as_ref().map(|field| field.node.clone());
            let mut column = None;
            if let Some(spanned) = &aggregation.field {
                column = Some(self.check_aggregatable(&spanned.node, &spanned.span)?);
                let is_keyword = spanned.node.kind() == FieldKind::Keyword;
                if aggregation.function == AggregateFunction::Count && is_keyword {
                    return Err(QueryError::new(
                        aggregation.span.clone(),
                        format!(
                            "count({}) is not supported yet on a keyword field; count() counts lines",
                            spanned.node
                        ),
                    ));
                }
            }
            let needs_metric = field.is_some() || top_level;
            functions.push(PlannedFunction {
                function: aggregation.function,
                field,
                column,
                output_name: aggregation.output_name(),
                metric_name: needs_metric.then(|| format!("metric_{position}")),
            });
        }
        Ok(functions)
    }
}

/// The metric aggregations that compute `functions`, by their names.
fn metric_requests(functions: &[PlannedFunction]) -> serde_json::Map<String, serde_json::Value> {
    let mut metrics = serde_json::Map::new();
    for function in functions {
        let Some(metric_name) = &function.metric_name else {
            continue;
        };
        // `count()` / `rate()` outside any bucket count timestamps: every line has one.
        let field = function.column.as_deref().unwrap_or(TIMESTAMP_FIELD);
        let request = match function.function {
            AggregateFunction::Count => json!({ "value_count": { "field": field } }),
            AggregateFunction::Rate if function.field.is_none() => {
                json!({ "value_count": { "field": field } })
            }
            AggregateFunction::Sum | AggregateFunction::Rate | AggregateFunction::Increase => {
                json!({ "sum": { "field": field } })
            }
            AggregateFunction::Avg => json!({ "avg": { "field": field } }),
            AggregateFunction::Min => json!({ "min": { "field": field } }),
            AggregateFunction::Max => json!({ "max": { "field": field } }),
            AggregateFunction::CountDistinct => json!({ "cardinality": { "field": field } }),
            AggregateFunction::P50
            | AggregateFunction::P90
            | AggregateFunction::P95
            | AggregateFunction::P99 => json!({
                "percentiles": {
                    "field": field,
                    "percents": [function.function.percentile()],
                    "keyed": false,
                }
            }),
        };
        metrics.insert(metric_name.clone(), request);
    }
    metrics
}

/// `terms(columns[0]) → terms(columns[1]) → … → metrics`, named `group_0`, `group_1`, ….
fn nest_terms(
    columns: &[String],
    metrics: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut inner = metrics;
    for (depth, field_name) in columns.iter().enumerate().rev() {
        let mut level = serde_json::Map::new();
        level.insert(
            format!("group_{depth}"),
            json!({
                "terms": {
                    "field": field_name,
                    "size": MAX_GROUPS,
                    "segment_size": MAX_GROUPS,
                    "min_doc_count": 1,
                },
                "aggs": inner,
            }),
        );
        inner = level;
    }
    inner
}

impl AggregationPlan {
    /// The tantivy aggregation request.
    pub fn request(&self) -> &Aggregations {
        &self.request
    }

    /// The collector to run over each split's searcher; merge what they return with
    /// [`IntermediateAggregationResults::merge_fruits`].
    pub fn collector(&self) -> DistributedAggregationCollector {
        DistributedAggregationCollector::from_aggs(
            self.request.clone(),
            AggContextParams::default(),
        )
    }

    /// A timechart's bucket width in seconds; `None` for other stages.
    pub fn span_seconds(&self) -> Option<f64> {
        match &self.kind {
            PlanKind::Timechart { bucket_millis, .. } => Some(*bucket_millis as f64 / 1000.0),
            _ => None,
        }
    }

    /// The table's columns before `fields` reshapes them.
    fn aggregation_columns(&self) -> Vec<String> {
        match &self.kind {
            PlanKind::Stats { by, functions } => by
                .iter()
                .map(FieldRef::to_string)
                .chain(functions.iter().map(|f| f.output_name.clone()))
                .collect(),
            PlanKind::Timechart { by, functions, .. } => std::iter::once("time".to_string())
                .chain(by.iter().map(FieldRef::to_string))
                .chain(functions.iter().map(|f| f.output_name.clone()))
                .collect(),
            PlanKind::Top { field, .. } => vec![field.to_string(), "count".to_string()],
        }
    }

    /// Turns the merged results of every split into the table, then applies `fields`,
    /// `sort` and `limit`. `range_seconds` is the query's time range, what `rate` divides
    /// by outside a timechart.
    pub fn table(
        &self,
        merged: IntermediateAggregationResults,
        range_seconds: f64,
    ) -> Result<AggregateTable, AggregateError> {
        let results =
            merged.into_final_result(self.request.clone(), AggregationLimitsGuard::default())?;
        let mut rows = Vec::new();
        match &self.kind {
            PlanKind::Stats { by, functions } => {
                let leaf = Leaf {
                    functions,
                    per_seconds: range_seconds,
                };
                collect_groups(&results, by, 0, &mut Vec::new(), None, &leaf, &mut rows)?;
                // Groups in value order, so the answer does not depend on hash order.
                rows.sort_by(|a, b| compare_rows(&a[..by.len()], &b[..by.len()]));
            }
            PlanKind::Timechart {
                bucket_millis,
                by,
                functions,
            } => {
                let leaf = Leaf {
                    functions,
                    per_seconds: *bucket_millis as f64 / 1000.0,
                };
                for bucket in histogram_buckets(&results, "time")? {
                    let unix_nanos = (bucket_key_number(&bucket.key) * 1_000_000.0) as i64;
                    let mut prefix = vec![Cell::Time { unix_nanos }];
                    let doc_count = Some(bucket.doc_count);
                    match by {
                        None => rows.push(leaf.row(&prefix, &bucket.sub_aggregation, doc_count)),
                        // An empty bucket has no groups, so series get no zero rows.
                        Some(_) => collect_groups(
                            &bucket.sub_aggregation,
                            by.as_slice(),
                            0,
                            &mut prefix,
                            doc_count,
                            &leaf,
                            &mut rows,
                        )?,
                    }
                }
                let key_columns = 1 + usize::from(by.is_some());
                rows.sort_by(|a, b| compare_rows(&a[..key_columns], &b[..key_columns]));
            }
            PlanKind::Top { n, field } => {
                for bucket in terms_buckets(&results, "group_0", field)? {
                    rows.push(vec![
                        key_cell(&bucket.key),
                        Cell::Integer(bucket.doc_count as i64),
                    ]);
                }
                rows.sort_by(|a, b| {
                    compare_cells(&b[1], &a[1]).then_with(|| compare_cells(&a[0], &b[0]))
                });
                rows.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            }
        }
        let table = AggregateTable {
            columns: self.aggregation_columns(),
            rows,
        };
        Ok(shape(table, &self.shaping))
    }
}

/// How the innermost level of a stats or timechart turns into the function columns.
struct Leaf<'a> {
    functions: &'a [PlannedFunction],
    /// What `rate` divides by.
    per_seconds: f64,
}

impl Leaf<'_> {
    fn row(
        &self,
        prefix: &[Cell],
        metrics: &AggregationResults,
        doc_count: Option<u64>,
    ) -> Vec<Cell> {
        let mut row = prefix.to_vec();
        for function in self.functions {
            row.push(self.cell(function, metrics, doc_count));
        }
        row
    }

    fn cell(
        &self,
        function: &PlannedFunction,
        metrics: &AggregationResults,
        doc_count: Option<u64>,
    ) -> Cell {
        let metric = function
            .metric_name
            .as_ref()
            .and_then(|name| metrics.0.get(name))
            .and_then(metric_value);
        let count = || match (&function.metric_name, doc_count) {
            (None, Some(count)) => count as f64,
            _ => metric.unwrap_or(0.0),
        };
        match function.function {
            AggregateFunction::Count
            | AggregateFunction::CountDistinct
            | AggregateFunction::Increase => Cell::Integer(count() as i64),
            AggregateFunction::Rate => {
                let per_seconds = if self.per_seconds > 0.0 {
                    self.per_seconds
                } else {
                    1.0
                };
                Cell::Number(count() / per_seconds)
            }
            AggregateFunction::Min | AggregateFunction::Max
                if function.field == Some(FieldRef::Timestamp) =>
            {
                match metric {
                    Some(nanos) => Cell::Time {
                        unix_nanos: nanos as i64,
                    },
                    None => Cell::Null,
                }
            }
            _ => metric.map_or(Cell::Null, Cell::Number),
        }
    }
}

/// Walks nested terms levels `group_<depth>` down to the metrics, one row per leaf group.
fn collect_groups(
    results: &AggregationResults,
    by: &[FieldRef],
    depth: usize,
    prefix: &mut Vec<Cell>,
    doc_count: Option<u64>,
    leaf: &Leaf<'_>,
    rows: &mut Vec<Vec<Cell>>,
) -> Result<(), AggregateError> {
    let Some(field) = by.get(depth) else {
        rows.push(leaf.row(prefix, results, doc_count));
        return Ok(());
    };
    for bucket in terms_buckets(results, &format!("group_{depth}"), field)? {
        prefix.push(key_cell(&bucket.key));
        collect_groups(
            &bucket.sub_aggregation,
            by,
            depth + 1,
            prefix,
            Some(bucket.doc_count),
            leaf,
            rows,
        )?;
        prefix.pop();
    }
    Ok(())
}

fn terms_buckets<'r>(
    results: &'r AggregationResults,
    name: &str,
    field: &FieldRef,
) -> Result<&'r [BucketEntry], AggregateError> {
    match results.0.get(name) {
        Some(AggregationResult::BucketResult(BucketResult::Terms {
            buckets,
            sum_other_doc_count,
            ..
        })) => {
            if *sum_other_doc_count > 0 {
                return Err(AggregateError::TooManyGroups {
                    field: field.to_string(),
                });
            }
            Ok(buckets)
        }
        _ => Err(missing_result(name)),
    }
}

fn histogram_buckets<'r>(
    results: &'r AggregationResults,
    name: &str,
) -> Result<Vec<&'r BucketEntry>, AggregateError> {
    match results.0.get(name) {
        Some(AggregationResult::BucketResult(BucketResult::Histogram { buckets })) => {
            Ok(buckets.iter().collect())
        }
        _ => Err(missing_result(name)),
    }
}

fn missing_result(name: &str) -> AggregateError {
    AggregateError::Tantivy(tantivy::TantivyError::InternalError(format!(
        "aggregation `{name}` is missing from the results"
    )))
}

fn metric_value(result: &AggregationResult) -> Option<f64> {
    let AggregationResult::MetricResult(metric) = result else {
        return None;
    };
    let value = match metric {
        MetricResult::Average(single)
        | MetricResult::Count(single)
        | MetricResult::Max(single)
        | MetricResult::Min(single)
        | MetricResult::Sum(single)
        | MetricResult::Cardinality(single) => single.value,
        MetricResult::Percentiles(percentiles) => match &percentiles.values {
            PercentileValues::Vec(entries) => entries.first().map(|entry| entry.value),
            PercentileValues::HashMap(entries) => entries.values().next().copied(),
        },
        MetricResult::Stats(_) | MetricResult::ExtendedStats(_) | MetricResult::TopHits(_) => None,
    };
    value.filter(|value| value.is_finite())
}

fn key_cell(key: &Key) -> Cell {
    match key {
        Key::Str(text) => Cell::Text(text.clone()),
        Key::I64(value) => Cell::Integer(*value),
        Key::U64(value) => i64::try_from(*value).map_or(Cell::Number(*value as f64), Cell::Integer),
        Key::F64(value) => Cell::Number(*value),
    }
}

fn bucket_key_number(key: &Key) -> f64 {
    match key {
        Key::I64(value) => *value as f64,
        Key::U64(value) => *value as f64,
        Key::F64(value) => *value,
        Key::Str(text) => text.parse().unwrap_or(0.0),
    }
}

/// Nulls first, then numbers and times by value, then text.
fn compare_cells(a: &Cell, b: &Cell) -> Ordering {
    fn rank(cell: &Cell) -> u8 {
        match cell {
            Cell::Null => 0,
            Cell::Integer(_) | Cell::Number(_) | Cell::Time { .. } => 1,
            Cell::Text(_) => 2,
        }
    }
    fn number(cell: &Cell) -> f64 {
        match cell {
            Cell::Integer(value) => *value as f64,
            Cell::Number(value) => *value,
            Cell::Time { unix_nanos } => *unix_nanos as f64,
            Cell::Null | Cell::Text(_) => 0.0,
        }
    }
    match (a, b) {
        (Cell::Integer(a), Cell::Integer(b)) => a.cmp(b),
        (Cell::Time { unix_nanos: a }, Cell::Time { unix_nanos: b }) => a.cmp(b),
        (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
        _ if rank(a) == rank(b) => number(a).total_cmp(&number(b)),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_rows(a: &[Cell], b: &[Cell]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(a, b)| compare_cells(a, b))
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Applies `fields`, `sort` and `limit` in query order. The parser has checked that every
/// column they name exists at that point. Public because the server's metric engine
/// builds its tables itself and shapes them with this.
pub fn shape(mut table: AggregateTable, stages: &[Stage]) -> AggregateTable {
    for stage in stages {
        match stage {
            Stage::Fields { columns, .. } => {
                let positions: Vec<usize> = columns
                    .iter()
                    .filter_map(|column| {
                        let name = column.node.name();
                        table.columns.iter().position(|existing| *existing == name)
                    })
                    .collect();
                table.columns = positions
                    .iter()
                    .map(|&i| table.columns[i].clone())
                    .collect();
                for row in &mut table.rows {
                    *row = positions.iter().map(|&i| row[i].clone()).collect();
                }
            }
            Stage::Sort { keys, .. } => {
                let keys: Vec<(usize, SortOrder)> = keys
                    .iter()
                    .filter_map(|key| {
                        let name = key.column.name();
                        let position = table
                            .columns
                            .iter()
                            .position(|existing| *existing == name)?;
                        Some((position, key.order))
                    })
                    .collect();
                // Stable: rows equal on every key keep their order.
                table.rows.sort_by(|a, b| {
                    for (position, order) in &keys {
                        let ordering = compare_cells(&a[*position], &b[*position]);
                        let ordering = match order {
                            SortOrder::Ascending => ordering,
                            SortOrder::Descending => ordering.reverse(),
                        };
                        if ordering.is_ne() {
                            return ordering;
                        }
                    }
                    Ordering::Equal
                });
            }
            Stage::Limit { n, .. } => {
                table
                    .rows
                    .truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            }
            Stage::Stats { .. }
            | Stage::Timechart { .. }
            | Stage::Top { .. }
            | Stage::Patterns { .. } => {
                debug_assert!(false, "the parser allows one aggregating stage, first");
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use tantivy::Searcher;

    use super::*;
    use crate::engine::tests::{TestIndex, test_index};
    use crate::engine::{EngineContext, NoVersions, compile_filter};
    use crate::parse;

    const SECOND: i64 = 1_000_000_000;

    /// Runs `text` over each searcher as if each were a split, merging their results.
    fn run_over(searchers: &[Searcher], index: &TestIndex, text: &str) -> AggregateTable {
        let query = parse(text).unwrap_or_else(|error| panic!("{}", error.render(text)));
        let plan = plan_aggregation(&query, &index.schema)
            .unwrap_or_else(|error| panic!("{}", error.render(text)));
        let context = EngineContext {
            schema: &index.schema,
            versions: &NoVersions,
            now_nanos: 0,
        };
        let filter = compile_filter(&query.filter, &context).unwrap();
        let collector = plan.collector();
        let mut merged = IntermediateAggregationResults::default();
        for searcher in searchers {
            merged
                .merge_fruits(searcher.search(filter.as_ref(), &collector).unwrap())
                .unwrap();
        }
        // The test lines span 1000 s to 5000 s.
        plan.table(merged, 4_000.0).unwrap()
    }

    fn run(text: &str) -> AggregateTable {
        let index = test_index();
        run_over(&[index.reader.searcher()], &index, text)
    }

    fn error(text: &str) -> QueryError {
        let index = test_index();
        let query = parse(text).unwrap();
        plan_aggregation(&query, &index.schema).unwrap_err()
    }

    fn text(value: &str) -> Cell {
        Cell::Text(value.to_string())
    }

    #[test]
    fn stats_counts_lines_per_group_in_value_order() {
        let table = run("* | stats count() by service, version");
        assert_eq!(table.columns, ["service", "version", "count"]);
        assert_eq!(
            table.rows,
            [
                vec![text("api"), text("a1"), Cell::Integer(1)],
                vec![text("api"), text("a2"), Cell::Integer(1)],
                vec![text("batch"), text("b1"), Cell::Integer(1)],
                vec![text("web"), text("v1"), Cell::Integer(1)],
                vec![text("web"), text("v2"), Cell::Integer(1)],
            ]
        );
        let filtered = run("service:(web OR api) | stats count() by service");
        assert_eq!(
            filtered.rows,
            [
                vec![text("api"), Cell::Integer(2)],
                vec![text("web"), Cell::Integer(2)]
            ]
        );
    }

    #[test]
    fn stats_metrics_over_severity_and_timestamp() {
        let table = run(
            "* | stats count(), avg(severity), sum(severity) as total, min(timestamp), max(severity), count_distinct(version) by service",
        );
        assert_eq!(
            table.columns,
            [
                "service",
                "count",
                "avg(severity)",
                "total",
                "min(timestamp)",
                "max(severity)",
                "count_distinct(version)"
            ]
        );
        // web: severities 17 and 9, lines at 1000 s and 2000 s, versions v1 and v2.
        assert_eq!(
            table.rows[2],
            [
                text("web"),
                Cell::Integer(2),
                Cell::Number(13.0),
                Cell::Number(26.0),
                Cell::Time {
                    unix_nanos: 1_000 * SECOND
                },
                Cell::Number(17.0),
                Cell::Integer(2),
            ]
        );
    }

    #[test]
    fn stats_without_by_is_one_row_and_rate_divides_by_the_range() {
        let table = run("* | stats count(), rate(), p50(severity)");
        assert_eq!(table.columns, ["count", "rate", "p50(severity)"]);
        assert_eq!(table.rows.len(), 1);
        assert_eq!(table.rows[0][0], Cell::Integer(5));
        assert_eq!(table.rows[0][1], Cell::Number(5.0 / 4_000.0));
        // Severities 5, 9, 13, 17, 21: tantivy's sketch is within 1% of the median.
        let Cell::Number(median) = table.rows[0][2] else {
            panic!("p50 is a number: {:?}", table.rows[0][2]);
        };
        assert!((median - 13.0).abs() < 0.2, "{median}");
        let nothing = run("service:nope | stats count(), avg(severity)");
        assert_eq!(nothing.rows, [vec![Cell::Integer(0), Cell::Null]]);
    }

    #[test]
    fn timechart_buckets_by_span_and_series() {
        let table = run("* | timechart span=2000s count() by service");
        assert_eq!(table.columns, ["time", "service", "count"]);
        let at = |seconds: i64| Cell::Time {
            unix_nanos: seconds * SECOND,
        };
        assert_eq!(
            table.rows,
            [
                vec![at(0), text("web"), Cell::Integer(1)],
                vec![at(2_000), text("api"), Cell::Integer(1)],
                vec![at(2_000), text("web"), Cell::Integer(1)],
                vec![at(4_000), text("api"), Cell::Integer(1)],
                vec![at(4_000), text("batch"), Cell::Integer(1)],
            ]
        );
        // Without `by`, empty buckets between the first and last are rows of zero.
        let totals = run("-service:api | timechart span=1000s count(), rate()");
        assert_eq!(
            totals.rows,
            [
                vec![at(1_000), Cell::Integer(1), Cell::Number(0.001)],
                vec![at(2_000), Cell::Integer(1), Cell::Number(0.001)],
                vec![at(3_000), Cell::Integer(0), Cell::Number(0.0)],
                vec![at(4_000), Cell::Integer(0), Cell::Number(0.0)],
                vec![at(5_000), Cell::Integer(1), Cell::Number(0.001)],
            ]
        );
    }

    #[test]
    fn top_orders_by_count_then_value() {
        let table = run("* | top 2 service");
        assert_eq!(table.columns, ["service", "count"]);
        assert_eq!(
            table.rows,
            [
                vec![text("api"), Cell::Integer(2)],
                vec![text("web"), Cell::Integer(2)]
            ]
        );
    }

    #[test]
    fn results_merge_across_splits() {
        let first = test_index();
        let second = test_index();
        let searchers = [first.reader.searcher(), second.reader.searcher()];
        let table = run_over(
            &searchers,
            &first,
            "level:(error OR warn) | stats count() by level",
        );
        assert_eq!(
            table.rows,
            [
                vec![text("error"), Cell::Integer(2)],
                vec![text("warn"), Cell::Integer(2)]
            ]
        );
        let top = run_over(&searchers, &first, "* | top 1 service");
        assert_eq!(top.rows, [vec![text("api"), Cell::Integer(4)]]);
    }

    #[test]
    fn fields_sort_and_limit_shape_the_table() {
        let table = run(
            "* | stats count(), max(severity) as worst by service | sort by worst desc | limit 2 | fields worst, service",
        );
        assert_eq!(table.columns, ["worst", "service"]);
        assert_eq!(
            table.rows,
            [
                vec![Cell::Number(21.0), text("batch")],
                vec![Cell::Number(17.0), text("web")]
            ]
        );
        let by_count = run("* | stats count() by service | sort by count desc, service desc");
        assert_eq!(by_count.rows[0], [text("web"), Cell::Integer(2)]);
        assert_eq!(by_count.rows[2], [text("batch"), Cell::Integer(1)]);
    }

    #[test]
    fn what_cannot_be_aggregated_is_an_error_at_its_position() {
        let attribute = error("* | stats count() by attrs.http.status");
        assert_eq!(attribute.span, 21..38);
        assert!(
            attribute
                .message
                .starts_with("field `attrs.http.status` cannot be aggregated yet; aggregatable fields are service, image,"),
            "{}",
            attribute.message
        );
        assert!(attribute.message.contains("severity, timestamp"));
        let not_fast = error("* | top 3 trace_id");
        assert_eq!(not_fast.span, 10..18);
        let lines = error("service:web | limit 3");
        assert!(
            lines.message.contains("/api/v1/search"),
            "{}",
            lines.message
        );
        assert_eq!(lines.span, 14..21);
        let filter_only = error("service:web");
        assert!(filter_only.message.contains("/api/v1/search"));
        let patterns = error("service:web | patterns");
        assert!(
            patterns.message.contains("plan_patterns"),
            "{}",
            patterns.message
        );
        assert_eq!(patterns.span, 14..22);
    }
}
