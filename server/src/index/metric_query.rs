//! Metric queries: `stats` and `timechart` over metric splits, with functions that are
//! right for each kind of metric.
//!
//! A query whose filter requires `metric:NAME` reads the metric splits. The filter is the
//! query language's own (identity fields, `metric`, `attrs.*`, `value`, time ranges),
//! with the engine's semantics; its parts on series labels are matched against each
//! split's series table ([`super::metric_filter`]). What differs from logs is how points
//! become numbers, because a cumulative counter's raw values mean nothing summed:
//!
//! | function | gauge, non-monotonic sum | monotonic sum (counter) | histogram, summary |
//! |---|---|---|---|
//! | `count()` | points | points | points |
//! | `sum/min/max(value)` | over the points' values | over the raw values | error |
//! | `avg(value)` | mean of the values | mean of the raw values | mean observation: Δsum / Δcount |
//! | `pNN(value)` | quantile of the values | quantile of the raw values | from the buckets, `histogram_quantile`-style (explicit buckets only) |
//! | `rate()` | error | increase per second | observations per second |
//! | `increase()` | error | increase | observations |
//!
//! The increase of a cumulative series is summed from the differences between its
//! consecutive points; a point whose value went down, or whose start time changed, starts
//! the series anew (an instance restart resets its counters), and then its whole value is
//! the increase since the restart. The first point of a series in the queried range
//! counts whole only when the series started inside the range (its start time says so);
//! otherwise what happened before it is outside the range. Delta series add up as they
//! are. A point's increase falls in the timechart bucket of its timestamp; `rate` divides
//! by the bucket width (the query's range for `stats`). Groups add their series' values.
//!
//! Histogram quantiles interpolate linearly inside the bucket where the rank falls, over
//! the buckets' increases in the range summed across the group's series, as Prometheus'
//! `histogram_quantile` does; a rank in the last (unbounded) bucket answers the highest
//! finite bound. Exponential histograms are stored whole, but only their count and sum
//! are queryable so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use epitaph_query::engine::aggregate::{AggregateTable, Cell, shape};
use epitaph_query::{
    AggregateFunction, Aggregation, FieldRef, Filter, Query, QueryError, Stage, Value,
};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::aggregate::{AggregateRequest, AggregateResponse, cell_to_json, number_to_json, within};
use super::catalog::{SearchableSplit, SplitCatalog};
use super::indexer::now_nanos;
use super::metric_filter::MetricFilter;
use super::metric_schema::{Buckets, NANOS_PER_MILLI, PointColumns};
use super::search::{
    LogQueryParser, SearchError, SearchLimits, SplitPruning, SplitVersions, map_splits,
};
use super::series::{SeriesLabels, ordinal_of_key};

/// Whether a filter reads metrics, and which: `Some` when its top level requires a
/// `metric` (`metric:a`, `metric:a OR metric:b`, `metric:http.*`, `metric:*`), with the
/// names it requires exactly (empty when a pattern allows any); `None` for a log query.
pub fn required_metrics(filter: &Filter) -> Option<BTreeSet<String>> {
    match filter {
        Filter::Term {
            field: Some(FieldRef::Metric),
            value,
            ..
        } => Some(BTreeSet::from([value_text(value)])),
        Filter::Exists {
            field: FieldRef::Metric,
            ..
        }
        | Filter::Wildcard {
            field: Some(FieldRef::Metric),
            ..
        }
        | Filter::Regex {
            field: Some(FieldRef::Metric),
            ..
        } => Some(BTreeSet::new()),
        Filter::And { operands, .. } => operands.iter().find_map(required_metrics),
        Filter::Or { operands, .. } => {
            let mut names = BTreeSet::new();
            for operand in operands {
                let required = required_metrics(operand)?;
                if required.is_empty() {
                    return Some(required);
                }
                names.extend(required);
            }
            Some(names)
        }
        _ => None,
    }
}

fn value_text(value: &Value) -> String {
    value.text.clone()
}

/// Runs a `stats` or `timechart` query over the metric splits.
pub fn metric_aggregate(
    catalog: &SplitCatalog,
    parser: &LogQueryParser,
    limits: &SearchLimits,
    query: &Query,
    request: &AggregateRequest,
) -> Result<AggregateResponse, SearchError> {
    let deadline = limits.deadline();
    let plan = MetricPlan::new(query).map_err(SearchError::Query)?;
    let metrics = required_metrics(&query.filter).unwrap_or_default();
    let splits = catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let now = now_nanos();
    let filter = MetricFilter::new(&query.filter, parser.schema(), &versions, now)
        .map_err(SearchError::Query)?;
    let pruning = SplitPruning::new(&query.filter, now);
    let by: Arc<[FieldRef]> = plan.by.clone().into();
    let wanted: Vec<&SearchableSplit> = splits
        .iter()
        .map(|split| split.as_ref())
        .filter(|split| {
            let holds_metric = metrics.is_empty() || !metrics.is_disjoint(&split.metadata.metrics);
            holds_metric
                && pruning.may_match(&split.metadata, request.start_nanos, request.end_nanos)
        })
        .collect();
    let splits_searched = wanted.len();
    let splits_skipped = splits.len() - wanted.len();
    let oldest_searched = wanted
        .iter()
        .filter_map(|split| split.metadata.min_timestamp_nanos)
        .min();
    let fruits = map_splits(&wanted, limits.search_threads, &deadline, |split| {
        let series: Arc<[Arc<SeriesLabels>]> = split.metadata.series.snapshot().into();
        let query = within(
            filter.query(&series),
            parser,
            request.start_nanos,
            request.end_nanos,
        )?;
        let collector = PointCollector {
            by: by.clone(),
            needs_buckets: plan.needs_buckets(),
            series,
        };
        Ok(split.reader.searcher().search(query.as_ref(), &collector)?)
    })?;
    let mut collected = Collected::default();
    for fruit in fruits {
        collected.merge(fruit);
    }
    deadline.check()?;
    let range_start = request
        .start_nanos
        .or(pruning.time.start_nanos)
        .or(oldest_searched)
        .unwrap_or(now);
    let range_end = request.end_nanos.or(pruning.time.end_nanos).unwrap_or(now);
    let table = plan.evaluate(collected, range_start, range_end)?;
    let table = shape(table, &query.stages[1..]);
    Ok(AggregateResponse {
        columns: table.columns,
        rows: table
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(cell_to_json).collect())
            .collect(),
        span_seconds: plan
            .bucket_nanos
            .map(|nanos| number_to_json(nanos as f64 / 1e9)),
        splits_searched,
        splits_skipped,
    })
}

/// What a metric query computes.
struct MetricPlan {
    functions: Vec<Aggregation>,
    by: Vec<FieldRef>,
    /// A timechart's bucket width; `None` for `stats`.
    bucket_nanos: Option<i64>,
}

impl MetricPlan {
    fn new(query: &Query) -> Result<MetricPlan, QueryError> {
        let (functions, by, bucket_nanos) = match query.aggregation() {
            Some(Stage::Stats {
                aggregations, by, ..
            }) => (aggregations, by.clone(), None),
            Some(Stage::Timechart {
                bucket,
                aggregations,
                by,
                ..
            }) => {
                let nanos = i64::try_from(bucket.as_nanos()).unwrap_or(i64::MAX).max(1);
                (aggregations, by.iter().cloned().collect(), Some(nanos))
            }
            Some(other) => {
                return Err(QueryError::new(
                    other.span().clone(),
                    format!(
                        "`{}` does not apply to metrics; use `stats` or `timechart`",
                        other.keyword()
                    ),
                ));
            }
            None => {
                return Err(QueryError::new(
                    query.span.clone(),
                    "a metric query needs `| stats ...` or `| timechart ...`",
                ));
            }
        };
        for field in &by {
            if !matches!(
                field.node,
                FieldRef::Identity(_) | FieldRef::Metric | FieldRef::Attribute(_)
            ) {
                return Err(QueryError::new(
                    field.span.clone(),
                    format!(
                        "metrics are grouped by identity fields, `metric` and `attrs.*`, not `{}`",
                        field.node
                    ),
                ));
            }
        }
        for function in functions {
            check_function(function)?;
        }
        Ok(MetricPlan {
            functions: functions.clone(),
            by: by.into_iter().map(|field| field.node).collect(),
            bucket_nanos,
        })
    }

    fn needs_buckets(&self) -> bool {
        self.functions
            .iter()
            .any(|f| percentile(f.function).is_some())
    }

    fn evaluate(
        &self,
        collected: Collected,
        range_start: i64,
        range_end: i64,
    ) -> Result<AggregateTable, SearchError> {
        // (bucket start, group) → per function accumulators.
        let mut cells: BTreeMap<(i64, Vec<String>), Vec<Accumulator>> = BTreeMap::new();
        let bucket_of = |timestamp: i64| match self.bucket_nanos {
            Some(width) => timestamp.div_euclid(width) * width,
            None => 0,
        };
        for series in collected.series.into_values() {
            let Series { info, mut points } = series;
            points.sort_unstable_by_key(|p| p.timestamp);
            let increases = increases(&info, &points, range_start);
            // Points are in time order, so each bucket is one run of them: one lookup
            // of the (bucket, group) cell per run, not per point.
            let mut run_start = 0;
            while run_start < points.len() {
                let bucket = bucket_of(points[run_start].timestamp);
                let run_end = points[run_start..]
                    .iter()
                    .position(|p| bucket_of(p.timestamp) != bucket)
                    .map_or(points.len(), |offset| run_start + offset);
                let accumulators = cells
                    .entry((bucket, info.group.clone()))
                    .or_insert_with(|| {
                        self.functions
                            .iter()
                            .map(|_| Accumulator::default())
                            .collect()
                    });
                for (index, point) in points.iter().enumerate().take(run_end).skip(run_start) {
                    for (function, accumulator) in
                        self.functions.iter().zip(accumulators.iter_mut())
                    {
                        accumulator.add(function, &info, point, increases.get(index))?;
                    }
                }
                run_start = run_end;
            }
        }
        let per_seconds = match self.bucket_nanos {
            Some(width) => width as f64 / 1e9,
            None => (range_end.saturating_sub(range_start) as f64 / 1e9).max(1.0),
        };
        let mut columns = Vec::new();
        if self.bucket_nanos.is_some() {
            columns.push("time".to_string());
        }
        columns.extend(self.by.iter().map(FieldRef::to_string));
        columns.extend(self.functions.iter().map(Aggregation::output_name));
        let mut rows = Vec::with_capacity(cells.len());
        for ((bucket, group), accumulators) in cells {
            let mut row = Vec::with_capacity(columns.len());
            if self.bucket_nanos.is_some() {
                row.push(Cell::Time { unix_nanos: bucket });
            }
            row.extend(group.into_iter().map(Cell::Text));
            for (function, accumulator) in self.functions.iter().zip(accumulators) {
                row.push(accumulator.finish(function.function, per_seconds));
            }
            rows.push(row);
        }
        Ok(AggregateTable { columns, rows })
    }
}

fn check_function(aggregation: &Aggregation) -> Result<(), QueryError> {
    if let Some(field) = &aggregation.field
        && field.node != FieldRef::Value
    {
        return Err(QueryError::new(
            field.span.clone(),
            format!(
                "metric functions read `value` (or nothing), not `{}`",
                field.node
            ),
        ));
    }
    if aggregation.function == AggregateFunction::CountDistinct {
        return Err(QueryError::new(
            aggregation.span.clone(),
            "count_distinct does not apply to metrics",
        ));
    }
    Ok(())
}

fn percentile(function: AggregateFunction) -> Option<f64> {
    match function {
        AggregateFunction::P50 => Some(0.5),
        AggregateFunction::P90 => Some(0.9),
        AggregateFunction::P95 => Some(0.95),
        AggregateFunction::P99 => Some(0.99),
        _ => None,
    }
}

/// What a series is and which group it falls in, read once from the split's series table.
#[derive(Debug, Clone)]
struct SeriesInfo {
    metric: String,
    kind: String,
    temporality: String,
    monotonic: bool,
    group: Vec<String>,
}

impl SeriesInfo {
    fn new(labels: &SeriesLabels, by: &[FieldRef]) -> SeriesInfo {
        SeriesInfo {
            metric: labels.metric.clone(),
            kind: labels.kind.clone(),
            temporality: labels.temporality.clone(),
            monotonic: labels.monotonic,
            group: by.iter().map(|field| group_value(labels, field)).collect(),
        }
    }

    fn is_counter(&self) -> bool {
        self.kind == "sum" && self.monotonic
    }

    fn is_distribution(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "histogram" | "exponential_histogram" | "summary"
        )
    }

    fn is_cumulative(&self) -> bool {
        self.temporality == "cumulative" || self.kind == "summary"
    }
}

#[derive(Debug, Clone)]
struct MetricPoint {
    timestamp: i64,
    start: i64,
    value: Option<f64>,
    /// Only distributions have more: kept out of line so a counter's point stays small.
    distribution: Option<Box<DistributionPoint>>,
}

#[derive(Debug, Clone)]
struct DistributionPoint {
    count: u64,
    sum: Option<f64>,
    buckets: Option<(Vec<f64>, Vec<u64>)>,
}

impl MetricPoint {
    fn count(&self) -> Option<u64> {
        self.distribution.as_ref().map(|d| d.count)
    }

    fn sum(&self) -> Option<f64> {
        self.distribution.as_ref().and_then(|d| d.sum)
    }

    fn buckets(&self) -> Option<&(Vec<f64>, Vec<u64>)> {
        self.distribution.as_ref().and_then(|d| d.buckets.as_ref())
    }
}

struct Series {
    info: SeriesInfo,
    points: Vec<MetricPoint>,
}

/// Series ids are hashes already: hashing them again is wasted work per point.
#[derive(Default)]
struct SeriesIdHasher(u64);

impl std::hash::Hasher for SeriesIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type SeriesMap = HashMap<u64, Series, std::hash::BuildHasherDefault<SeriesIdHasher>>;

#[derive(Default)]
struct Collected {
    series: SeriesMap,
}

impl Collected {
    fn merge(&mut self, other: Collected) {
        for (id, series) in other.series {
            match self.series.get_mut(&id) {
                Some(existing) => existing.points.extend(series.points),
                None => {
                    self.series.insert(id, series);
                }
            }
        }
    }
}

/// A point's increase: for counters the value gained, for distributions the
/// observations (count), their sum, and the buckets' counts gained.
#[derive(Debug, Clone, Default)]
struct Increase {
    value: f64,
    sum: f64,
    buckets: Option<(Vec<f64>, Vec<f64>)>,
}

/// The increase each point adds (indexed like `points`), for counters and distributions;
/// empty for gauges.
fn increases(info: &SeriesInfo, points: &[MetricPoint], range_start: i64) -> Vec<Option<Increase>> {
    if !(info.is_counter() || info.is_distribution()) {
        return Vec::new();
    }
    let amount = |p: &MetricPoint| {
        if info.is_distribution() {
            p.count().unwrap_or(0) as f64
        } else {
            p.value.unwrap_or(0.0)
        }
    };
    let whole = |p: &MetricPoint| Increase {
        value: amount(p),
        sum: p.sum().unwrap_or(0.0),
        buckets: p
            .buckets()
            .map(|(bounds, counts)| (bounds.clone(), counts.iter().map(|c| *c as f64).collect())),
    };
    if !info.is_cumulative() {
        return points.iter().map(|p| Some(whole(p))).collect();
    }
    let mut out = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        if index == 0 {
            // Counted whole only if the series began inside the range.
            let began_inside = point.start > 0 && point.start >= range_start;
            out.push(began_inside.then(|| whole(point)));
            continue;
        }
        let previous = &points[index - 1];
        let restarted =
            (point.start != previous.start && point.start > 0) || amount(point) < amount(previous);
        if restarted {
            out.push(Some(whole(point)));
            continue;
        }
        let buckets = match (point.buckets(), previous.buckets()) {
            (Some((bounds, counts)), Some((previous_bounds, previous_counts)))
                if bounds == previous_bounds && counts.len() == previous_counts.len() =>
            {
                Some((
                    bounds.clone(),
                    counts
                        .iter()
                        .zip(previous_counts)
                        .map(|(c, p)| c.saturating_sub(*p) as f64)
                        .collect(),
                ))
            }
            (Some((bounds, counts)), _) => {
                Some((bounds.clone(), counts.iter().map(|c| *c as f64).collect()))
            }
            _ => None,
        };
        out.push(Some(Increase {
            value: amount(point) - amount(previous),
            sum: point.sum().unwrap_or(0.0) - previous.sum().unwrap_or(0.0),
            buckets,
        }));
    }
    out
}

/// One function's running state for one (bucket, group).
#[derive(Debug, Default)]
struct Accumulator {
    points: u64,
    values: Vec<f64>,
    increase: f64,
    increase_sum: f64,
    buckets: Option<(Vec<f64>, Vec<f64>)>,
}

impl Accumulator {
    fn add(
        &mut self,
        aggregation: &Aggregation,
        info: &SeriesInfo,
        point: &MetricPoint,
        increase: Option<&Option<Increase>>,
    ) -> Result<(), SearchError> {
        let function = aggregation.function;
        self.points += 1;
        let wrong_kind = |what: &str| {
            SearchError::Query(QueryError::new(
                aggregation.span.clone(),
                format!(
                    "{}() {what}: metric `{}` is a {}{}",
                    function.name(),
                    info.metric,
                    if info.monotonic { "monotonic " } else { "" },
                    info.kind.replace('_', " ")
                ),
            ))
        };
        match function {
            AggregateFunction::Count => {}
            AggregateFunction::Rate | AggregateFunction::Increase => {
                if !(info.is_counter() || info.is_distribution()) {
                    return Err(wrong_kind(
                        "needs a counter (a monotonic sum) or a histogram",
                    ));
                }
                if let Some(Some(increase)) = increase {
                    self.increase += increase.value;
                }
            }
            AggregateFunction::Avg if info.is_distribution() => {
                if let Some(Some(increase)) = increase {
                    self.increase += increase.value;
                    self.increase_sum += increase.sum;
                }
            }
            p if percentile(p).is_some() && info.is_distribution() => {
                if info.kind != "histogram" {
                    return Err(wrong_kind("reads explicit-bucket histograms"));
                }
                if let Some(Some(Increase {
                    buckets: Some((bounds, counts)),
                    ..
                })) = increase
                {
                    match &mut self.buckets {
                        None => self.buckets = Some((bounds.clone(), counts.clone())),
                        Some((existing_bounds, existing)) if existing_bounds == bounds => {
                            existing.iter_mut().zip(counts).for_each(|(e, c)| *e += c);
                        }
                        Some(_) => {
                            return Err(wrong_kind(
                                "cannot combine series with different bucket bounds",
                            ));
                        }
                    }
                }
            }
            _ => {
                if info.is_distribution() {
                    return Err(wrong_kind("reads values, which distributions do not have"));
                }
                if let Some(value) = point.value {
                    self.values.push(value);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, function: AggregateFunction, per_seconds: f64) -> Cell {
        let number = |value: Option<f64>| value.map_or(Cell::Null, Cell::Number);
        match function {
            AggregateFunction::Count => Cell::Integer(self.points as i64),
            AggregateFunction::Rate => Cell::Number(self.increase / per_seconds),
            AggregateFunction::Increase => Cell::Number(self.increase),
            AggregateFunction::Sum => Cell::Number(self.values.iter().sum()),
            AggregateFunction::Min => number(self.values.iter().copied().reduce(f64::min)),
            AggregateFunction::Max => number(self.values.iter().copied().reduce(f64::max)),
            AggregateFunction::Avg if self.values.is_empty() && self.increase > 0.0 => {
                Cell::Number(self.increase_sum / self.increase)
            }
            AggregateFunction::Avg => number(
                (!self.values.is_empty())
                    .then(|| self.values.iter().sum::<f64>() / self.values.len() as f64),
            ),
            p => {
                let q = percentile(p).unwrap_or(0.5);
                if let Some((bounds, counts)) = &self.buckets {
                    return number(histogram_quantile(q, bounds, counts));
                }
                self.values.sort_by(f64::total_cmp);
                number(exact_quantile(q, &self.values))
            }
        }
    }
}

/// The quantile of sorted values, interpolating between the two nearest ranks.
fn exact_quantile(q: f64, sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

/// `histogram_quantile`: `counts` has one more entry than `bounds`, the last being the
/// bucket above the highest bound.
fn histogram_quantile(q: f64, bounds: &[f64], counts: &[f64]) -> Option<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 || bounds.is_empty() {
        return None;
    }
    let rank = q * total;
    let mut below = 0.0;
    for (index, count) in counts.iter().enumerate() {
        if below + count >= rank && *count > 0.0 {
            let Some(upper) = bounds.get(index) else {
                return bounds.last().copied();
            };
            let lower = match index {
                0 if *upper > 0.0 => 0.0,
                0 => return Some(*upper),
                _ => bounds[index - 1],
            };
            return Some(lower + (upper - lower) * (rank - below) / count);
        }
        below += count;
    }
    bounds.last().copied()
}

/// Reads the points of matching documents straight from the fast fields, and what their
/// series are from the split's series table.
struct PointCollector {
    by: Arc<[FieldRef]>,
    needs_buckets: bool,
    /// The split's series, by ordinal.
    series: Arc<[Arc<SeriesLabels>]>,
}

struct PointSegmentCollector {
    columns: PointColumns,
    /// Whether to read histograms' buckets.
    needs_buckets: bool,
    labels: Arc<[Arc<SeriesLabels>]>,
    by: Arc<[FieldRef]>,
    collected: Collected,
    scratch: Vec<u8>,
}

impl Collector for PointCollector {
    type Fruit = Collected;
    type Child = PointSegmentCollector;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PointSegmentCollector> {
        Ok(PointSegmentCollector {
            columns: PointColumns::open(reader)?,
            needs_buckets: self.needs_buckets,
            labels: self.series.clone(),
            by: self.by.clone(),
            collected: Collected::default(),
            scratch: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Collected>) -> tantivy::Result<Collected> {
        let mut merged = Collected::default();
        for fruit in fruits {
            merged.merge(fruit);
        }
        Ok(merged)
    }
}

impl PointSegmentCollector {
    fn buckets(&mut self, doc: DocId) -> Option<(Vec<f64>, Vec<u64>)> {
        if !self.needs_buckets {
            return None;
        }
        let column = self.columns.buckets.as_ref()?;
        let ord = column.term_ords(doc).next()?;
        self.scratch.clear();
        column.ord_to_bytes(ord, &mut self.scratch).ok()?;
        match Buckets::decode(&self.scratch)? {
            Buckets::Explicit { bounds, counts } => Some((bounds, counts)),
            _ => None,
        }
    }
}

impl SegmentCollector for PointSegmentCollector {
    type Fruit = Collected;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(labels) = self
            .columns
            .series
            .first(doc)
            .and_then(|key| self.labels.get(ordinal_of_key(key)))
        else {
            return;
        };
        let id = labels.hash;
        let distribution = match self.collected.series.get(&id) {
            Some(series) => series.info.is_distribution(),
            None => {
                let info = SeriesInfo::new(labels, &self.by);
                let distribution = info.is_distribution();
                self.collected.series.insert(
                    id,
                    Series {
                        info,
                        points: Vec::new(),
                    },
                );
                distribution
            }
        };
        // Only the columns the series' kind has are read.
        let point = MetricPoint {
            timestamp: self
                .columns
                .timestamp
                .first(doc)
                .map_or(0, |millis| millis.saturating_mul(NANOS_PER_MILLI)),
            start: self.columns.start_timestamp.first(doc).unwrap_or(0),
            value: if distribution {
                None
            } else {
                match self.columns.value_int.first(doc) {
                    Some(value) => Some(value as f64),
                    None => self.columns.value.first(doc),
                }
            },
            distribution: distribution.then(|| {
                Box::new(DistributionPoint {
                    count: self.columns.count.first(doc).unwrap_or(0),
                    sum: self.columns.sum.first(doc),
                    buckets: self.buckets(doc),
                })
            }),
        };
        if let Some(series) = self.collected.series.get_mut(&id) {
            series.points.push(point);
        }
    }

    fn harvest(self) -> Collected {
        self.collected
    }
}

/// A series' value of a group-by field, as text; empty when the series has none.
fn group_value(labels: &SeriesLabels, field: &FieldRef) -> String {
    match field {
        FieldRef::Identity(identity) => labels
            .identity
            .get(identity.name())
            .cloned()
            .unwrap_or_default(),
        FieldRef::Metric => labels.metric.clone(),
        FieldRef::Attribute(path) => labels.attribute_text(path),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantile_interpolates_inside_the_bucket() {
        // 10 observations in (0, 1], 10 in (1, 2], none above.
        let bounds = [1.0, 2.0];
        let counts = [10.0, 10.0, 0.0];
        assert_eq!(histogram_quantile(0.5, &bounds, &counts), Some(1.0));
        assert_eq!(histogram_quantile(0.75, &bounds, &counts), Some(1.5));
        assert_eq!(histogram_quantile(0.25, &bounds, &counts), Some(0.5));
        // A rank in the unbounded bucket answers the highest finite bound.
        assert_eq!(histogram_quantile(0.99, &[1.0], &[1.0, 9.0]), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &bounds, &[0.0, 0.0, 0.0]), None);
    }

    fn info(kind: &str, temporality: &str, monotonic: bool) -> SeriesInfo {
        SeriesInfo {
            metric: "m".into(),
            kind: kind.into(),
            temporality: temporality.into(),
            monotonic,
            group: Vec::new(),
        }
    }

    fn counter_point(timestamp: i64, start: i64, value: f64) -> MetricPoint {
        MetricPoint {
            timestamp,
            start,
            value: Some(value),
            distribution: None,
        }
    }

    #[test]
    fn counter_increase_survives_a_reset() {
        let counter = info("sum", "cumulative", true);
        // Started before the range: the first point only sets the baseline. Then a
        // restart (new start time) at 40 takes the counter back to 3.
        let points = [
            counter_point(10, 1, 100.0),
            counter_point(20, 1, 110.0),
            counter_point(30, 1, 125.0),
            counter_point(40, 35, 3.0),
            counter_point(50, 35, 10.0),
        ];
        let increases = increases(&counter, &points, 5);
        let total: f64 = increases.iter().flatten().map(|i| i.value).sum();
        assert_eq!(total, 10.0 + 15.0 + 3.0 + 7.0);
        // The same without start times: the drop in value is the reset.
        let points: Vec<_> = points
            .iter()
            .map(|p| counter_point(p.timestamp, 0, p.value.unwrap()))
            .collect();
        let total: f64 = increases_total(&counter, &points);
        assert_eq!(total, 10.0 + 15.0 + 3.0 + 7.0);
    }

    fn increases_total(info: &SeriesInfo, points: &[MetricPoint]) -> f64 {
        increases(info, points, 5)
            .iter()
            .flatten()
            .map(|i| i.value)
            .sum()
    }

    #[test]
    fn a_series_that_began_in_the_range_counts_its_first_point_whole() {
        let counter = info("sum", "cumulative", true);
        let points = [counter_point(10, 8, 4.0), counter_point(20, 8, 6.0)];
        assert_eq!(increases_total(&counter, &points), 6.0);
        let delta = info("sum", "delta", true);
        assert_eq!(increases_total(&delta, &points), 10.0);
        let gauge = info("gauge", "", false);
        assert!(increases(&gauge, &points, 5).is_empty());
    }

    #[test]
    fn exact_quantiles_interpolate_between_ranks() {
        assert_eq!(exact_quantile(0.5, &[1.0, 2.0, 3.0, 4.0]), Some(2.5));
        assert_eq!(exact_quantile(0.99, &[7.0]), Some(7.0));
        assert_eq!(exact_quantile(0.5, &[]), None);
    }
}
