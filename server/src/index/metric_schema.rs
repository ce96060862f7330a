//! The metric document schema, the mapping from OTLP data points to it, and the checks a
//! data point must pass to be stored.
//!
//! One document per data point. Metrics are only ever filtered and aggregated, never
//! shown as stored documents, so no field is stored, and a sealed split's doc store is
//! emptied (see `split`).
//!
//! A data point's document holds numbers only. What names its series is the same for
//! every point of the series, so it is kept once per series in the split's series table
//! ([`super::series`]): the resource's identity fields (the same names as logs:
//! `service`, `version`, `generation`, `instance`, ...), the metric's name, unit and kind
//! (`gauge`, `sum`, `histogram`, `exponential_histogram`, `summary`), its temporality,
//! monotonicity and scope, and its attributes with the resource's non-identity ones. The
//! document's `series` column names its series there, which is how a point has those
//! fields: filters on them are matched against the table once per series, not per point
//! ([`super::metric_filter`]), and queries group by them from the table. The table also
//! keeps each series' stable hash of everything that names it, which is what `rate()`
//! follows across splits. Numbers go to fast fields: `timestamp` in Unix milliseconds (as
//! Prometheus keeps samples; see below) and `start_timestamp` in nanoseconds; `value` for
//! gauges and sums, or `value_int` when the point's value is an integer (`as_int`: most
//! counters); `count`, `sum`, `min` and `max` for histograms and summaries; the buckets
//! or quantiles, which only make sense together, are one `buckets` bytes field (see
//! [`Buckets`]).
//!
//! A sealed split stores its points in series order, one segment sorted by `series` then
//! time, so a series' points sit together in time order and its timestamps and values
//! make near-straight runs; an open split keeps them in the order they arrived, which
//! commits cheaply (see `split`'s seal). `timestamp` ranges run on its column.
//!
//! Why milliseconds: tantivy packs a column either bit by bit over its whole range or as
//! straight lines through blocks of 512 values with the deviations bit-packed, and a
//! line's slope must stay under 2³² per value. A point every 30 s is a step of 3·10¹⁰ in
//! nanoseconds, past that, so a nanosecond column fell back to 27 bits per point over a
//! day; in milliseconds the step is 30,000 and a series' times pack to their jitter.
//! Integer values have their own column for the same reason: as an f64, one unit of a
//! counter near 2²² is a step of 2³⁰ in the bits the column packs.
//!
//! # What is rejected
//! A data point that could poison an aggregate is refused, counted in the export's
//! partial-success answer with the reason, and never stored: a value that is NaN or
//! infinite; a monotonic sum below zero; a histogram whose `bucket_counts` do not have one
//! more entry than `explicit_bounds`, whose bounds are not finite and strictly increasing,
//! or whose bucket counts do not add up to `count`; an exponential histogram whose buckets
//! and zero count exceed `count`; a summary with a quantile outside `[0, 1]`; a metric
//! without a name or without data. A point flagged `NO_RECORDED_VALUE` is skipped without
//! being counted as rejected (it says there is nothing to record). A point without a time
//! takes the time the server received it, as log records do.

use bytes::Bytes;
use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
use epitaph_proto::common::v1::any_value;
use epitaph_proto::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, number_data_point,
};
use epitaph_query::engine::INTEGER_VALUE_FIELD;
use prost::Message;
use tantivy::columnar::{BytesColumn, Column};
use tantivy::schema::{BytesOptions, Field, NumericOptions, Schema};
use tantivy::{DocId, IndexSettings, SegmentReader};

use super::metric_wire::{
    self, Attribute, AttributeValue, MetricHeader, NumberPoint, PointValues, Visitor, WireError,
    decode_other,
};
use super::point_document::PointDocument;
use super::schema::{
    DocumentIdentity, IDENTITY_FIELDS, any_value_to_json, positive_nanos, split_index_settings,
};
use super::series::{SeriesLabels, SeriesWriter};

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;
/// `timestamp` holds milliseconds (see the module's notes).
pub(super) use epitaph_query::engine::NANOS_PER_MILLI;
/// How many rejection reasons an export answer lists.
const MAX_REASONS: usize = 3;
/// The series key field, which metric splits are sorted by.
pub const SERIES_FIELD: &str = "series";

/// The metric schema with its fields resolved once.
#[derive(Clone)]
pub struct MetricSchema {
    schema: Schema,
    pub timestamp: Field,
    pub start_timestamp: Field,
    pub series: Field,
    pub value: Field,
    pub value_int: Field,
    pub count: Field,
    pub sum: Field,
    pub min: Field,
    pub max: Field,
    pub buckets: Field,
}

impl Default for MetricSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricSchema {
    pub fn new() -> MetricSchema {
        let mut builder = Schema::builder();
        let fast_i64 = NumericOptions::default().set_fast();
        let timestamp = builder.add_i64_field("timestamp", fast_i64.clone());
        let start_timestamp = builder.add_i64_field("start_timestamp", fast_i64.clone());
        let series = builder.add_u64_field(SERIES_FIELD, NumericOptions::default().set_fast());
        let fast_f64 = NumericOptions::default().set_fast();
        let value = builder.add_f64_field("value", fast_f64.clone());
        let value_int = builder.add_i64_field(INTEGER_VALUE_FIELD, fast_i64.clone());
        let count = builder.add_u64_field("count", NumericOptions::default().set_fast());
        let sum = builder.add_f64_field("sum", fast_f64.clone());
        let min = builder.add_f64_field("min", fast_f64.clone());
        let max = builder.add_f64_field("max", fast_f64);
        let buckets = builder.add_bytes_field("buckets", BytesOptions::default().set_fast());
        MetricSchema {
            schema: builder.build(),
            timestamp,
            start_timestamp,
            series,
            value,
            value_int,
            count,
            sum,
            min,
            max,
            buckets,
        }
    }

    pub fn schema(&self) -> Schema {
        self.schema.clone()
    }

    /// Index settings of metric splits: those of every split. Points are not sorted as
    /// they are committed; a split is written in series order when it is sealed.
    pub fn index_settings() -> IndexSettings {
        split_index_settings()
    }

    /// Maps one OTLP request to documents, skipping the points its check rejects,
    /// and appends them to `documents`; `observe` is told about each metric's stored
    /// points, once per metric of a resource.
    ///
    /// Each point's `series` column holds its key in `series`, the split's table, where a
    /// series met for the first time is added with its labels.
    pub fn documents_from_request<'r>(
        &self,
        request: &'r MetricsRequest,
        received_at_nanos: i64,
        series: &mut SeriesWriter<'_>,
        documents: &mut Vec<PointDocument>,
        mut observe: impl FnMut(&MetricFacts<'r>),
    ) -> Result<(), WireError> {
        let mut facts: Option<MetricFacts<'r>> = None;
        for_each_point(&request.bytes, |point| {
            if point.verdict != Verdict::Store {
                return;
            }
            let timestamp =
                positive_nanos(point.data.time_unix_nano()).unwrap_or(received_at_nanos);
            let mut doc = PointDocument::default();
            doc.add_i64(self.timestamp, timestamp.div_euclid(NANOS_PER_MILLI));
            doc.add_i64(
                self.start_timestamp,
                positive_nanos(point.data.start_time_unix_nano()).unwrap_or(0),
            );
            let key = series.key(series_id(&point), timestamp, || series_labels(&point));
            doc.add_u64(self.series, key);
            match point.data {
                PointValues::Number(number) => match number.value {
                    Some(number_data_point::Value::AsInt(value)) => {
                        doc.add_i64(self.value_int, value)
                    }
                    Some(number_data_point::Value::AsDouble(value)) => {
                        doc.add_f64(self.value, value)
                    }
                    None => {}
                },
                PointValues::Histogram(histogram) => {
                    doc.add_u64(self.count, histogram.count);
                    doc.add_optional_f64(self.sum, histogram.sum);
                    doc.add_optional_f64(self.min, histogram.min);
                    doc.add_optional_f64(self.max, histogram.max);
                    doc.set_bytes(
                        self.buckets,
                        Buckets::Explicit {
                            bounds: histogram.explicit_bounds.clone(),
                            counts: histogram.bucket_counts.clone(),
                        }
                        .encode(),
                    );
                }
                PointValues::ExponentialHistogram(histogram) => {
                    doc.add_u64(self.count, histogram.count);
                    doc.add_optional_f64(self.sum, histogram.sum);
                    doc.add_optional_f64(self.min, histogram.min);
                    doc.add_optional_f64(self.max, histogram.max);
                    doc.set_bytes(self.buckets, Buckets::exponential(histogram).encode());
                }
                PointValues::Summary(summary) => {
                    doc.add_u64(self.count, summary.count);
                    doc.add_f64(self.sum, summary.sum);
                    doc.set_bytes(
                        self.buckets,
                        Buckets::Quantiles(
                            summary
                                .quantile_values
                                .iter()
                                .map(|q| (q.quantile, q.value))
                                .collect(),
                        )
                        .encode(),
                    );
                }
            }
            documents.push(doc);
            // Points come metric by metric, so one metric's points are told at once.
            match &mut facts {
                Some(current) if std::ptr::eq(current.metric, point.metric.name) => {
                    current.points += 1;
                    current.min_timestamp_nanos = current.min_timestamp_nanos.min(timestamp);
                    current.max_timestamp_nanos = current.max_timestamp_nanos.max(timestamp);
                }
                _ => {
                    if let Some(done) = facts.replace(MetricFacts {
                        identity: point.identity.clone(),
                        metric: point.metric.name,
                        points: 1,
                        min_timestamp_nanos: timestamp,
                        max_timestamp_nanos: timestamp,
                    }) {
                        observe(&done);
                    }
                }
            }
        })?;
        if let Some(done) = facts {
            observe(&done);
        }
        Ok(())
    }
}

/// A split's points read back to be written again in series order: where each point
/// is, sorted, and the columns to rebuild its document from.
pub struct StoredPoints {
    /// `(series key, timestamp, segment, doc)` of every point, sorted: series, then
    /// time, then the order the points were found in.
    pub order: Vec<(u64, i64, u32, DocId)>,
    segments: Vec<PointColumns>,
}

/// Every column of a metric segment.
pub struct PointColumns {
    pub series: Column<u64>,
    /// Unix milliseconds.
    pub timestamp: Column<i64>,
    pub start_timestamp: Column<i64>,
    pub value: Column<f64>,
    pub value_int: Column<i64>,
    pub count: Column<u64>,
    pub sum: Column<f64>,
    pub min: Column<f64>,
    pub max: Column<f64>,
    pub buckets: Option<BytesColumn>,
}

impl PointColumns {
    pub fn open(segment: &SegmentReader) -> tantivy::Result<PointColumns> {
        let fast = segment.fast_fields();
        Ok(PointColumns {
            series: fast.u64(SERIES_FIELD)?,
            timestamp: fast.i64("timestamp")?,
            start_timestamp: fast.i64("start_timestamp")?,
            value: fast.f64("value")?,
            value_int: fast.i64(INTEGER_VALUE_FIELD)?,
            count: fast.u64("count")?,
            sum: fast.f64("sum")?,
            min: fast.f64("min")?,
            max: fast.f64("max")?,
            buckets: fast.bytes("buckets")?,
        })
    }
}

impl MetricSchema {
    /// Where every live point of the searcher's segments is, in series order. Only the
    /// order is held (24 bytes a point); documents are rebuilt one at a time.
    pub fn stored_points(&self, searcher: &tantivy::Searcher) -> tantivy::Result<StoredPoints> {
        let mut order = Vec::with_capacity(searcher.num_docs() as usize);
        let mut segments = Vec::with_capacity(searcher.segment_readers().len());
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let columns = PointColumns::open(segment)?;
            for doc in segment.doc_ids_alive() {
                order.push((
                    columns.series.first(doc).unwrap_or(0),
                    columns.timestamp.first(doc).unwrap_or(0),
                    ordinal as u32,
                    doc,
                ));
            }
            segments.push(columns);
        }
        order.sort_unstable();
        Ok(StoredPoints { order, segments })
    }

    /// The document of the point at `(segment, doc)` of [`StoredPoints`], as it was but
    /// for its `series` key, which is `series_key`.
    pub fn stored_document(
        &self,
        points: &StoredPoints,
        segment: u32,
        doc: DocId,
        series_key: u64,
    ) -> tantivy::Result<PointDocument> {
        let columns = &points.segments[segment as usize];
        let mut document = PointDocument::default();
        document.add_i64(self.timestamp, columns.timestamp.first(doc).unwrap_or(0));
        document.add_i64(
            self.start_timestamp,
            columns.start_timestamp.first(doc).unwrap_or(0),
        );
        document.add_u64(self.series, series_key);
        document.add_optional_f64(self.value, columns.value.first(doc));
        if let Some(value) = columns.value_int.first(doc) {
            document.add_i64(self.value_int, value);
        }
        if let Some(count) = columns.count.first(doc) {
            document.add_u64(self.count, count);
        }
        document.add_optional_f64(self.sum, columns.sum.first(doc));
        document.add_optional_f64(self.min, columns.min.first(doc));
        document.add_optional_f64(self.max, columns.max.first(doc));
        if let Some(column) = &columns.buckets
            && let Some(ord) = column.term_ords(doc).next()
        {
            let mut bytes = Vec::new();
            column.ord_to_bytes(ord, &mut bytes)?;
            document.set_bytes(self.buckets, bytes);
        }
        Ok(document)
    }
}

/// What the indexer needs to know of the stored points of one metric of one resource,
/// without reading them back.
pub struct MetricFacts<'a> {
    pub identity: DocumentIdentity<'a>,
    pub metric: &'a str,
    pub points: u64,
    pub min_timestamp_nanos: i64,
    pub max_timestamp_nanos: i64,
}

/// What the check of a request's points found (see [`MetricsRequest::check`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestCheck {
    /// Data points that will be stored.
    pub accepted: usize,
    /// Data points refused, with the first few reasons.
    pub rejected: usize,
    pub reasons: Vec<String>,
}

impl RequestCheck {
    /// The partial-success message: the reasons, and how many more there were.
    pub fn message(&self) -> String {
        let mut message = self.reasons.join("; ");
        if self.rejected > self.reasons.len() {
            message.push_str(&format!(
                "; and {} more rejected data points",
                self.rejected - self.reasons.len()
            ));
        }
        message
    }
}

/// An `ExportMetricsServiceRequest` as bytes checked to read as prost would read them
/// (see [`super::metric_wire`]), with what the check of its points found.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    bytes: Bytes,
    check: RequestCheck,
}

impl MetricsRequest {
    /// Checks `bytes` and the points they hold. A request that sets a singular field more
    /// than once is decoded and encoded again with prost, which writes each field once.
    pub fn decode(bytes: Bytes) -> Result<MetricsRequest, WireError> {
        match check_request(&bytes) {
            Ok(check) => Ok(MetricsRequest { bytes, check }),
            Err(WireError::NotCanonical) => {
                let request = ExportMetricsServiceRequest::decode(bytes.as_ref()).map_err(|e| {
                    WireError::Invalid {
                        message: "ExportMetricsServiceRequest",
                        problem: e.to_string(),
                    }
                })?;
                let bytes = Bytes::from(request.encode_to_vec());
                let check = check_request(&bytes)?;
                Ok(MetricsRequest { bytes, check })
            }
            Err(error) => Err(error),
        }
    }

    /// What the request's points are: stored, skipped or rejected, and why.
    pub fn check(&self) -> &RequestCheck {
        &self.check
    }
}

/// Counts the points of a request that will be stored and the ones refused, and why.
fn check_request(request: &[u8]) -> Result<RequestCheck, WireError> {
    let mut check = RequestCheck::default();
    for_each_point(request, |point| match &point.verdict {
        Verdict::Store => check.accepted += 1,
        Verdict::Skip => {}
        Verdict::Reject(reason) => {
            check.rejected += 1;
            if check.reasons.len() < MAX_REASONS {
                check
                    .reasons
                    .push(format!("metric `{}`: {reason}", point.metric.name));
            }
        }
    })?;
    Ok(check)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum => "sum",
            MetricKind::Histogram => "histogram",
            MetricKind::ExponentialHistogram => "exponential_histogram",
            MetricKind::Summary => "summary",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Store,
    Skip,
    Reject(String),
}

/// One data point with everything around it that a document needs: what lives in the
/// request (`'r`) and what the walk holds while the point is visited (`'l`).
struct Point<'r, 'l> {
    identity: &'l DocumentIdentity<'r>,
    /// [`series_id`]'s hash of the metric's name and kind and the identity, the same for
    /// every point of the metric.
    series_prefix: Fnv1a,
    /// The resource's attributes that are not identity fields, in key order.
    extra_resource_attributes: &'l [Attribute<'r>],
    attributes: &'l [Attribute<'r>],
    scope: &'r str,
    metric: MetricHeader<'r>,
    kind: MetricKind,
    temporality: &'static str,
    monotonic: bool,
    data: PointValues<'l>,
    verdict: Verdict,
}

/// Calls `visit` for every data point of every metric, with its verdict. A metric that
/// has no name or no data counts as one rejected point, so it shows in the answer.
/// Fails if the bytes are not a valid request.
fn for_each_point<'r>(
    request: &'r [u8],
    visit: impl FnMut(Point<'r, '_>),
) -> Result<(), WireError> {
    let mut points = Points {
        visit,
        identity: DocumentIdentity::default(),
        extra: Vec::new(),
        scope: "",
        metric: None,
        kind: MetricKind::Gauge,
        prefix: Fnv1a::default(),
    };
    metric_wire::walk(request, &mut points)
}

/// [`for_each_point`]'s visitor: what the walk has seen of the point's resource and
/// metric.
struct Points<'r, F> {
    visit: F,
    identity: DocumentIdentity<'r>,
    extra: Vec<Attribute<'r>>,
    scope: &'r str,
    /// The metric whose points come next; `None` when it was rejected whole.
    metric: Option<MetricHeader<'r>>,
    kind: MetricKind,
    prefix: Fnv1a,
}

impl<'r, F: FnMut(Point<'r, '_>)> Visitor<'r> for Points<'r, F> {
    fn resource(&mut self, attributes: &[Attribute<'r>]) {
        self.identity = DocumentIdentity::from_strings(
            attributes
                .iter()
                .map(|attribute| (attribute.key, attribute.text())),
        );
        self.extra.clear();
        self.extra.extend(
            attributes
                .iter()
                .filter(|a| !IDENTITY_FIELDS.iter().any(|(_, key)| *key == a.key)),
        );
        // In key order, as `series_id` hashes them (stable: equal keys keep their order).
        self.extra.sort_by(|a, b| a.key.cmp(b.key));
    }

    fn metric(&mut self, scope: &'r str, header: MetricHeader<'r>) {
        self.scope = scope;
        let problem = if header.name.is_empty() {
            Some("metric has no name")
        } else if header.kind.is_none() {
            Some("metric has no data")
        } else {
            None
        };
        if let Some(problem) = problem {
            // Reported once for the whole metric; nothing of it is stored.
            self.metric = None;
            (self.visit)(Point {
                identity: &self.identity,
                series_prefix: Fnv1a::default(),
                extra_resource_attributes: &self.extra,
                attributes: &[],
                scope,
                metric: header,
                kind: MetricKind::Gauge,
                temporality: "",
                monotonic: false,
                data: PointValues::Number(NumberPoint::default()),
                verdict: Verdict::Reject(problem.to_string()),
            });
            return;
        }
        self.kind = header.kind.expect("checked above");
        self.prefix = series_prefix(header.name, self.kind, &self.identity);
        self.metric = Some(header);
    }

    fn point(&mut self, attributes: &[Attribute<'r>], data: PointValues<'_>) {
        let Some(metric) = self.metric else {
            return;
        };
        let verdict = verdict_of(&data, metric.monotonic);
        (self.visit)(Point {
            identity: &self.identity,
            series_prefix: self.prefix,
            extra_resource_attributes: &self.extra,
            attributes,
            scope: self.scope,
            metric,
            kind: self.kind,
            temporality: temporality_name(metric.temporality),
            monotonic: metric.monotonic,
            data,
            verdict,
        });
    }
}

fn temporality_name(temporality: i32) -> &'static str {
    match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Cumulative) => "cumulative",
        Ok(AggregationTemporality::Delta) => "delta",
        _ => "",
    }
}

fn number_value(point: &NumberPoint) -> Option<f64> {
    match point.value? {
        number_data_point::Value::AsDouble(value) => Some(value),
        number_data_point::Value::AsInt(value) => Some(value as f64),
    }
}

fn verdict_of(data: &PointValues<'_>, monotonic: bool) -> Verdict {
    if data.flags() & NO_RECORDED_VALUE != 0 {
        return Verdict::Skip;
    }
    match problem_of(data, monotonic) {
        None => Verdict::Store,
        Some(problem) => Verdict::Reject(problem),
    }
}

fn problem_of(data: &PointValues<'_>, monotonic: bool) -> Option<String> {
    match data {
        PointValues::Number(point) => {
            let Some(value) = number_value(point) else {
                return Some("data point has no value".into());
            };
            if !value.is_finite() {
                return Some(format!("value {value} is not a finite number"));
            }
            if monotonic && value < 0.0 {
                return Some(format!("monotonic sum has negative value {value}"));
            }
            None
        }
        PointValues::Histogram(point) => {
            if let Some(problem) = finite_extras(point.sum, point.min, point.max) {
                return Some(problem);
            }
            if point.bucket_counts.is_empty() {
                return None;
            }
            if point.bucket_counts.len() != point.explicit_bounds.len() + 1 {
                return Some(format!(
                    "histogram has {} bucket counts for {} bounds (expected {})",
                    point.bucket_counts.len(),
                    point.explicit_bounds.len(),
                    point.explicit_bounds.len() + 1
                ));
            }
            if point.explicit_bounds.iter().any(|b| !b.is_finite())
                || point.explicit_bounds.windows(2).any(|w| w[0] >= w[1])
            {
                return Some("histogram bounds are not finite and strictly increasing".into());
            }
            let total = point
                .bucket_counts
                .iter()
                .try_fold(0u64, |total, c| total.checked_add(*c));
            if total != Some(point.count) {
                return Some(format!(
                    "histogram bucket counts add up to {} but count is {}",
                    total.map_or("more than 2^64".to_string(), |t| t.to_string()),
                    point.count
                ));
            }
            None
        }
        PointValues::ExponentialHistogram(point) => {
            if let Some(problem) = finite_extras(point.sum, point.min, point.max) {
                return Some(problem);
            }
            if !point.zero_threshold.is_finite() || point.zero_threshold < 0.0 {
                return Some(
                    "exponential histogram zero threshold is not a finite number >= 0".into(),
                );
            }
            let in_buckets = [&point.positive, &point.negative]
                .into_iter()
                .flatten()
                .flat_map(|b| &b.bucket_counts)
                .try_fold(point.zero_count, |total, c| total.checked_add(*c));
            match in_buckets {
                Some(total) if total <= point.count => None,
                _ => Some(format!(
                    "exponential histogram buckets hold more than its count {}",
                    point.count
                )),
            }
        }
        PointValues::Summary(point) => {
            if !point.sum.is_finite() {
                return Some(format!("sum {} is not a finite number", point.sum));
            }
            for quantile in &point.quantile_values {
                if !(0.0..=1.0).contains(&quantile.quantile) {
                    return Some(format!(
                        "summary quantile {} is outside [0, 1]",
                        quantile.quantile
                    ));
                }
                if !quantile.value.is_finite() {
                    return Some(format!(
                        "summary quantile value {} is not a finite number",
                        quantile.value
                    ));
                }
            }
            None
        }
    }
}

fn finite_extras(sum: Option<f64>, min: Option<f64>, max: Option<f64>) -> Option<String> {
    for (name, value) in [("sum", sum), ("min", min), ("max", max)] {
        if let Some(value) = value
            && !value.is_finite()
        {
            return Some(format!("{name} {value} is not a finite number"));
        }
    }
    None
}

/// What a point's series is, for the split's series table; its hash is set by the table.
fn series_labels(point: &Point<'_, '_>) -> SeriesLabels {
    SeriesLabels {
        hash: 0,
        metric: point.metric.name.to_string(),
        unit: point.metric.unit.to_string(),
        kind: point.kind.name().to_string(),
        temporality: point.temporality.to_string(),
        monotonic: point.monotonic,
        scope: point.scope.to_string(),
        identity: IDENTITY_FIELDS
            .iter()
            .zip(point.identity.values.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|((name, _), value)| (name.to_string(), value.to_string()))
            .collect(),
        attributes: point
            .extra_resource_attributes
            .iter()
            .chain(point.attributes)
            .filter_map(|attribute| Some((attribute.key.to_string(), attribute_json(attribute)?)))
            .collect(),
    }
}

/// An attribute's value as JSON, as [`any_value_to_json`] has it; `None` when the
/// attribute has no value.
fn attribute_json(attribute: &Attribute<'_>) -> Option<serde_json::Value> {
    Some(match attribute.value {
        AttributeValue::Missing => return None,
        AttributeValue::Empty => serde_json::Value::Null,
        AttributeValue::Str(text) => serde_json::Value::String(text.to_string()),
        AttributeValue::Int(value) => serde_json::Value::from(value),
        AttributeValue::Bool(value) => serde_json::Value::Bool(value),
        AttributeValue::Other(bytes) => any_value_to_json(decode_other(bytes).value.as_ref()?),
    })
}

/// A stable id of a point's time series: FNV-1a over the metric name, kind, identity and
/// attributes (sorted by key). Stable across restarts and versions of the server, as it
/// is compared across splits.
fn series_id(point: &Point<'_, '_>) -> u64 {
    let mut hash = point.series_prefix;
    let attributes = point.attributes;
    if attributes.is_sorted_by(|a, b| a.key <= b.key) {
        // The usual case: both lists are in key order, so they merge without sorting.
        let mut extra = point.extra_resource_attributes.iter().peekable();
        let mut own = attributes.iter().peekable();
        loop {
            let next = match (extra.peek(), own.peek()) {
                (Some(e), Some(o)) if e.key <= o.key => extra.next(),
                (Some(_), Some(_)) => own.next(),
                (Some(_), None) => extra.next(),
                (None, _) => own.next(),
            };
            let Some(kv) = next else { break };
            hash_attribute(&mut hash, kv);
        }
    } else {
        let mut sorted: Vec<&Attribute<'_>> = point
            .extra_resource_attributes
            .iter()
            .chain(attributes)
            .collect();
        sorted.sort_by(|a, b| a.key.cmp(b.key));
        for attribute in sorted {
            hash_attribute(&mut hash, attribute);
        }
    }
    hash.0
}

/// The start of [`series_id`]: what every point of one metric of one resource shares.
fn series_prefix(metric: &str, kind: MetricKind, identity: &DocumentIdentity<'_>) -> Fnv1a {
    let mut hash = Fnv1a::default();
    hash.write_str(metric);
    hash.write_str(kind.name());
    for value in identity.values {
        hash.write_str(value);
    }
    hash
}

/// Hashes an attribute's key, then its value: a string as it is, anything else as its
/// JSON text, a missing or empty value as an empty string.
fn hash_attribute(hash: &mut Fnv1a, attribute: &Attribute<'_>) {
    hash.write_str(attribute.key);
    match attribute.value {
        // Strings are nearly every attribute: hashed as they are, without JSON.
        AttributeValue::Str(text) => hash.write_str(text),
        AttributeValue::Missing | AttributeValue::Empty => hash.write_str(""),
        AttributeValue::Int(value) => hash.write_str(&value.to_string()),
        AttributeValue::Bool(value) => hash.write_str(if value { "true" } else { "false" }),
        AttributeValue::Other(bytes) => {
            let decoded = decode_other(bytes);
            match decoded.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => hash.write_str(text),
                Some(_) => {
                    let json = decoded
                        .value
                        .as_ref()
                        .map(any_value_to_json)
                        .unwrap_or(serde_json::Value::Null);
                    hash.write_str(&json.to_string());
                }
                None => hash.write_str(""),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write_str(&mut self, text: &str) {
        for byte in text.as_bytes().iter().chain(&[0xff]) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A histogram's buckets or a summary's quantiles, as one fast bytes value.
///
/// Little-endian: a tag byte, then for `Explicit` (1) `n: u32`, `n` bounds (f64) and
/// `n + 1` counts (u64); for `Exponential` (2) `scale: i32`, `zero_count: u64`,
/// `zero_threshold: f64`, then the positive and the negative buckets each as
/// `offset: i32, n: u32, n counts (u64)`; for `Quantiles` (3) `n: u32` and `n` pairs of
/// (quantile, value) as f64.
#[derive(Debug, Clone, PartialEq)]
pub enum Buckets {
    Explicit {
        bounds: Vec<f64>,
        counts: Vec<u64>,
    },
    Exponential {
        scale: i32,
        zero_count: u64,
        zero_threshold: f64,
        positive: (i32, Vec<u64>),
        negative: (i32, Vec<u64>),
    },
    Quantiles(Vec<(f64, f64)>),
}

impl Buckets {
    fn exponential(point: &ExponentialHistogramDataPoint) -> Buckets {
        let side = |buckets: &Option<
            epitaph_proto::metrics::v1::exponential_histogram_data_point::Buckets,
        >| {
            buckets
                .as_ref()
                .map(|b| (b.offset, b.bucket_counts.clone()))
                .unwrap_or_default()
        };
        Buckets::Exponential {
            scale: point.scale,
            zero_count: point.zero_count,
            zero_threshold: point.zero_threshold,
            positive: side(&point.positive),
            negative: side(&point.negative),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Buckets::Explicit { bounds, counts } => {
                out.push(1);
                out.extend_from_slice(&(bounds.len() as u32).to_le_bytes());
                bounds
                    .iter()
                    .for_each(|b| out.extend_from_slice(&b.to_le_bytes()));
                counts
                    .iter()
                    .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
            }
            Buckets::Exponential {
                scale,
                zero_count,
                zero_threshold,
                positive,
                negative,
            } => {
                out.push(2);
                out.extend_from_slice(&scale.to_le_bytes());
                out.extend_from_slice(&zero_count.to_le_bytes());
                out.extend_from_slice(&zero_threshold.to_le_bytes());
                for (offset, counts) in [positive, negative] {
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.extend_from_slice(&(counts.len() as u32).to_le_bytes());
                    counts
                        .iter()
                        .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
                }
            }
            Buckets::Quantiles(pairs) => {
                out.push(3);
                out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
                for (quantile, value) in pairs {
                    out.extend_from_slice(&quantile.to_le_bytes());
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        out
    }

    /// Decodes [`Buckets::encode`]'s output; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Buckets> {
        let mut reader = Reader(bytes);
        let buckets = match reader.u8()? {
            1 => {
                let n = reader.u32()? as usize;
                let bounds = (0..n).map(|_| reader.f64()).collect::<Option<Vec<_>>>()?;
                let counts = (0..=n).map(|_| reader.u64()).collect::<Option<Vec<_>>>()?;
                Buckets::Explicit { bounds, counts }
            }
            2 => {
                let scale = reader.i32()?;
                let zero_count = reader.u64()?;
                let zero_threshold = reader.f64()?;
                let mut side = || -> Option<(i32, Vec<u64>)> {
                    let offset = reader.i32()?;
                    let n = reader.u32()? as usize;
                    Some((offset, (0..n).map(|_| reader.u64()).collect::<Option<_>>()?))
                };
                let positive = side()?;
                let negative = side()?;
                Buckets::Exponential {
                    scale,
                    zero_count,
                    zero_threshold,
                    positive,
                    negative,
                }
            }
            3 => {
                let n = reader.u32()? as usize;
                let pairs = (0..n)
                    .map(|_| Some((reader.f64()?, reader.f64()?)))
                    .collect::<Option<Vec<_>>>()?;
                Buckets::Quantiles(pairs)
            }
            _ => return None,
        };
        reader.0.is_empty().then_some(buckets)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use epitaph_proto::common::v1::{AnyValue, KeyValue};
    use epitaph_proto::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, Summary, SummaryDataPoint, metric, summary_data_point::ValueAtQuantile,
    };
    use epitaph_proto::resource::v1::Resource;

    use super::*;
    use crate::index::series::SeriesTable;
    use crate::index::split::OpenSplit;

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn number(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            time_unix_nano: 1_000,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        }
    }

    fn metric(name: &str, data: metric::Data) -> Metric {
        Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> MetricsRequest {
        MetricsRequest::decode(message(metrics).encode_to_vec().into()).unwrap()
    }

    fn message(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        attribute("service.name", "api"),
                        attribute("host.image.version", "v43"),
                        attribute("os.type", "linux"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn histogram(bounds: Vec<f64>, counts: Vec<u64>, count: u64) -> metric::Data {
        metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: 1_000,
                count,
                sum: Some(12.5),
                bucket_counts: counts,
                explicit_bounds: bounds,
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })
    }

    fn counter(value: f64) -> metric::Data {
        metric::Data::Sum(Sum {
            data_points: vec![number(value, vec![])],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })
    }

    #[test]
    fn points_that_would_poison_an_aggregate_are_rejected_with_reasons() {
        let bad = request(vec![
            metric(
                "ok.gauge",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(1.5, vec![])],
                }),
            ),
            metric(
                "nan.gauge",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(f64::NAN, vec![])],
                }),
            ),
            metric(
                "inf.gauge",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(f64::INFINITY, vec![])],
                }),
            ),
            metric("negative.counter", counter(-3.0)),
            metric("ok.counter", counter(3.0)),
            metric("short.buckets", histogram(vec![1.0, 2.0], vec![1, 1], 2)),
            metric("bad.count", histogram(vec![1.0], vec![1, 1], 5)),
            metric(
                "unordered.bounds",
                histogram(vec![2.0, 1.0], vec![1, 1, 0], 2),
            ),
            metric("ok.histogram", histogram(vec![1.0, 2.0], vec![1, 2, 3], 6)),
            metric(
                "bad.summary",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        count: 1,
                        sum: 1.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 1.5,
                            value: 1.0,
                        }],
                        ..Default::default()
                    }],
                }),
            ),
            Metric {
                name: "no.data".into(),
                ..Default::default()
            },
        ]);
        let check = bad.check();
        assert_eq!(check.accepted, 3, "{check:?}");
        assert_eq!(check.rejected, 8, "{check:?}");
        assert_eq!(check.reasons.len(), MAX_REASONS);
        assert!(
            check.reasons[0].contains("nan.gauge") && check.reasons[0].contains("NaN"),
            "{check:?}"
        );
        assert!(
            check.message().contains("and 5 more"),
            "{}",
            check.message()
        );

        let schema = MetricSchema::new();
        let mut names = Vec::new();
        let mut documents = Vec::new();
        let table = SeriesTable::default();
        schema
            .documents_from_request(&bad, 7, &mut table.writer(), &mut documents, |facts| {
                names.push((facts.metric.to_string(), facts.points))
            })
            .unwrap();
        assert_eq!(
            names,
            [
                ("ok.gauge".to_string(), 1),
                ("ok.counter".to_string(), 1),
                ("ok.histogram".to_string(), 1)
            ]
        );
        assert_eq!(documents.len(), 3);
    }

    #[test]
    fn no_recorded_value_points_are_skipped_not_rejected() {
        let mut point = number(f64::NAN, vec![]);
        point.flags = NO_RECORDED_VALUE;
        let stale = request(vec![metric(
            "stale",
            metric::Data::Gauge(Gauge {
                data_points: vec![point],
            }),
        )]);
        let check = stale.check();
        assert_eq!((check.accepted, check.rejected), (0, 0));
    }

    #[test]
    fn series_ids_follow_attributes_not_values_or_their_order() {
        let table = SeriesTable::default();
        let point_with = |attributes: Vec<KeyValue>, value: f64| {
            let request = request(vec![metric(
                "m",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(value, attributes)],
                }),
            )]);
            let schema = MetricSchema::new();
            let mut documents = Vec::new();
            schema
                .documents_from_request(&request, 0, &mut table.writer(), &mut documents, |_| {})
                .unwrap();
            documents[0].u64_value(schema.series).unwrap()
        };
        let a = point_with(vec![attribute("x", "1"), attribute("y", "2")], 1.0);
        let b = point_with(vec![attribute("y", "2"), attribute("x", "1")], 99.0);
        let c = point_with(vec![attribute("x", "1"), attribute("y", "3")], 1.0);
        // Ordinals in the split's table, handed out in order of first appearance.
        let ordinals = [a, b, c].map(crate::index::series::ordinal_of_key);
        assert_eq!(ordinals, [0, 0, 1]);
        let series = table.snapshot();
        assert_eq!(series.len(), 2);
        assert_ne!(series[0].hash, series[1].hash);
        assert_eq!(series[0].metric, "m");
        assert_eq!(series[0].attribute_text("x"), "1");
        assert_eq!(series[1].attribute_text("y"), "3");
    }

    #[test]
    fn series_ids_hash_the_same_as_hashing_everything_in_key_order() {
        // What `series_id` hashes, the slow way, from what prost decodes: every label,
        // attributes sorted anew, values that are not strings as their JSON text.
        fn reference(
            metric: &str,
            kind: MetricKind,
            resource: &[KeyValue],
            attributes: &[KeyValue],
        ) -> u64 {
            let mut hash = Fnv1a::default();
            hash.write_str(metric);
            hash.write_str(kind.name());
            for value in DocumentIdentity::from_resource(resource).values {
                hash.write_str(value);
            }
            let mut all: Vec<&KeyValue> = resource
                .iter()
                .filter(|kv| !IDENTITY_FIELDS.iter().any(|(_, key)| *key == kv.key))
                .chain(attributes)
                .collect();
            all.sort_by(|a, b| a.key.cmp(&b.key));
            for kv in all {
                hash.write_str(&kv.key);
                match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(text)) => hash.write_str(text),
                    Some(_) => {
                        hash.write_str(&any_value_to_json(kv.value.as_ref().unwrap()).to_string())
                    }
                    None => hash.write_str(""),
                }
            }
            hash.0
        }
        let with_value = |key: &str, value: Option<any_value::Value>| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value }),
            ..Default::default()
        };
        let attribute_lists = [
            vec![],
            vec![attribute("a", "1"), attribute("p", "2")],
            vec![attribute("p", "2"), attribute("a", "1")],
            vec![
                attribute("os.type", "bsd"),
                with_value("n", Some(any_value::Value::IntValue(-7))),
                with_value("b", Some(any_value::Value::BoolValue(true))),
                with_value("d", Some(any_value::Value::DoubleValue(0.25))),
                with_value("e", None),
                KeyValue {
                    key: "missing".into(),
                    ..Default::default()
                },
                attribute("z", ""),
            ],
        ];
        for attributes in attribute_lists {
            let message = message(vec![
                metric(
                    "m",
                    metric::Data::Gauge(Gauge {
                        data_points: vec![number(1.0, attributes.clone())],
                    }),
                ),
                metric("h", histogram(vec![1.0], vec![1, 1], 2)),
            ]);
            let resource = &message.resource_metrics[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes;
            let expected = [
                reference("m", MetricKind::Gauge, resource, &attributes),
                reference("h", MetricKind::Histogram, resource, &[]),
            ];
            let mut ids = Vec::new();
            for_each_point(&message.encode_to_vec(), |point| {
                ids.push(series_id(&point))
            })
            .unwrap();
            assert_eq!(ids, expected);
        }
    }

    /// A metric split with one indexing thread and tantivy's smallest memory budget.
    fn open_split(dir: &std::path::Path) -> OpenSplit<PointDocument> {
        OpenSplit::create(
            dir,
            MetricSchema::new().schema(),
            MetricSchema::index_settings(),
            0,
            1,
            1,
            15_000_000,
        )
        .unwrap()
    }

    /// Adds `request`'s points to `split` and commits; the documents added, as JSON.
    fn add_and_commit(
        split: &mut OpenSplit<PointDocument>,
        request: &MetricsRequest,
    ) -> Vec<String> {
        let schema = MetricSchema::new();
        let table = split.pending.series.clone();
        let mut series = table.writer();
        let mut documents = Vec::new();
        schema
            .documents_from_request(request, 0, &mut series, &mut documents, |facts| {
                split.pending.observe_metric(facts)
            })
            .unwrap();
        drop(series);
        let added = documents
            .iter()
            .map(|document| tantivy::Document::to_json(document, &schema.schema()))
            .collect();
        split.add_documents(documents).unwrap();
        split.commit().unwrap();
        added
    }

    #[test]
    fn a_sealed_split_holds_every_point_as_added_in_series_then_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let schema = MetricSchema::new();
        let mut split = open_split(dir.path());
        let at = |mut point: NumberDataPoint, seconds: u64| {
            point.time_unix_nano = seconds * 1_000_000_000;
            point
        };
        let mut integer = number(0.0, vec![attribute("route", "/a")]);
        integer.value = Some(number_data_point::Value::AsInt(41));
        let summary = metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: 5_000_000_000,
                count: 3,
                sum: 7.5,
                quantile_values: vec![ValueAtQuantile {
                    quantile: 0.5,
                    value: 2.0,
                }],
                ..Default::default()
            }],
        });
        let mut with_extremes = histogram(vec![1.0, 2.0], vec![1, 0, 2], 3);
        if let metric::Data::Histogram(h) = &mut with_extremes {
            h.data_points[0].min = Some(0.5);
            h.data_points[0].max = Some(9.0);
        }
        // Three commits, so three segments, each with points of several series and the
        // later points of a series first.
        let exports = [
            vec![
                metric(
                    "g",
                    metric::Data::Gauge(Gauge {
                        data_points: vec![at(number(3.5, vec![]), 30), at(integer.clone(), 20)],
                    }),
                ),
                metric("h", with_extremes),
            ],
            vec![
                metric(
                    "g",
                    metric::Data::Gauge(Gauge {
                        data_points: vec![at(number(1.5, vec![]), 10), at(integer, 10)],
                    }),
                ),
                metric("s", summary),
            ],
            vec![metric("h", histogram(vec![1.0], vec![2, 2], 4))],
        ];
        let json =
            |document: &PointDocument| tantivy::Document::to_json(document, &schema.schema());
        let mut added = Vec::new();
        for export in exports {
            added.extend(add_and_commit(&mut split, &request(export)));
        }
        let dump = |searcher: &tantivy::Searcher| {
            let points = schema.stored_points(searcher).unwrap();
            let documents: Vec<String> = points
                .order
                .iter()
                .map(|&(key, _, segment, doc)| {
                    json(&schema.stored_document(&points, segment, doc, key).unwrap())
                })
                .collect();
            (points.order, documents)
        };
        assert_eq!(added.len(), 7);
        let sealed = split.seal(1).unwrap();
        let searcher = sealed.reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let (order, mut after) = dump(&searcher);
        // One segment, whose documents are already in order.
        let docs: Vec<DocId> = order.iter().map(|&(_, _, _, doc)| doc).collect();
        assert_eq!(docs, (0..7).collect::<Vec<_>>());
        added.sort();
        after.sort();
        assert_eq!(added, after);
        assert!(
            after.iter().any(|d| d.contains("\"min\":[0.5]")),
            "{after:?}"
        );
    }

    #[test]
    fn a_seal_whose_points_outgrow_the_writers_memory_still_ends_in_order_in_one_segment() {
        // Enough points that the seal's rewrite, under tantivy's smallest budget, writes
        // several segments, which it then merges in order.
        const SERIES: u64 = 100;
        const ROUNDS: u64 = 600;
        let dir = tempfile::tempdir().unwrap();
        let schema = MetricSchema::new();
        let mut split = open_split(dir.path());
        for batch in 0..ROUNDS / 100 {
            // Later rounds first, so the seal has to reorder every series.
            let rounds = (batch * 100..(batch + 1) * 100).rev();
            let points = rounds
                .flat_map(|round| {
                    (0..SERIES).map(move |s| {
                        let mut point = number(
                            (round * SERIES + s) as f64,
                            vec![attribute("s", &s.to_string())],
                        );
                        point.time_unix_nano = (ROUNDS - round) * 1_000_000_000;
                        point
                    })
                })
                .collect();
            let request = request(vec![metric(
                "m",
                metric::Data::Gauge(Gauge {
                    data_points: points,
                }),
            )]);
            add_and_commit(&mut split, &request);
        }
        let sealed = split.seal(1).unwrap();
        let searcher = sealed.reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let points = schema.stored_points(&searcher).unwrap();
        assert_eq!(points.order.len() as u64, SERIES * ROUNDS);
        let docs: Vec<DocId> = points.order.iter().map(|&(_, _, _, doc)| doc).collect();
        assert!(
            docs.iter().copied().eq(0..docs.len() as DocId),
            "the segment's documents are in series, then time order"
        );
        let columns = PointColumns::open(searcher.segment_reader(0)).unwrap();
        let mut values: Vec<u64> = (0..docs.len() as DocId)
            .map(|doc| columns.value.first(doc).unwrap() as u64)
            .collect();
        values.sort_unstable();
        assert!(values.iter().copied().eq(0..SERIES * ROUNDS));
    }

    #[test]
    fn buckets_round_trip() {
        for buckets in [
            Buckets::Explicit {
                bounds: vec![1.0, 5.0],
                counts: vec![1, 2, 3],
            },
            Buckets::Exponential {
                scale: 3,
                zero_count: 2,
                zero_threshold: 0.0,
                positive: (-2, vec![1, 4]),
                negative: (0, vec![]),
            },
            Buckets::Quantiles(vec![(0.5, 10.0), (0.99, 80.0)]),
        ] {
            assert_eq!(Buckets::decode(&buckets.encode()), Some(buckets));
        }
        assert_eq!(Buckets::decode(&[1, 9]), None);
        assert_eq!(Buckets::decode(&[]), None);
    }
}
