//! A reader of OTLP `ExportMetricsServiceRequest` bytes that decodes nothing it need not.
//!
//! prost decodes a request into owned values: a `String` for every attribute's key and
//! value, a `Vec` for every list, each freed again on the indexer thread. Metric points
//! are many and small, so that was a third of the CPU of metrics ingest. This reader walks
//! the bytes instead and hands a [`Visitor`] borrowed views: each resource's attributes,
//! each metric's header, each point's attributes and numbers.
//!
//! It checks what prost checks (wire types, lengths, varints, tags, UTF-8 of every
//! string, fields it does not know skipped as prost skips them), so a request it accepts
//! is one prost accepts, and it reads the same values. What the indexer does not look
//! into is decoded with prost from its own bytes: exemplars, entity references, array and
//! map attribute values, and the points of histograms, exponential histograms and
//! summaries (numerous buckets, rarely numerous points).
//!
//! # Canonical form
//! Protobuf lets a singular message field appear more than once, the parts merged, and a
//! oneof be set several times, the last one winning. No encoder writes that, and reading
//! it without decoding is not worth the code: [`walk`] answers [`WireError::NotCanonical`],
//! and the caller decodes the request with prost and encodes it again, which writes each
//! field once, then walks that.

use epitaph_proto::common::v1::{ArrayValue, EntityRef, KeyValue, KeyValueList};
use epitaph_proto::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, SummaryDataPoint, number_data_point,
};
use prost::Message;

use super::metric_schema::MetricKind;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{message}: {problem}")]
    Invalid {
        message: &'static str,
        problem: String,
    },
    /// A singular field appears more than once: see the module's notes.
    #[error("a singular field appears more than once")]
    NotCanonical,
}

fn invalid(message: &'static str, problem: impl Into<String>) -> WireError {
    WireError::Invalid {
        message,
        problem: problem.into(),
    }
}

/// One field's value as the wire has it.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
    /// A group, skipped (groups are not part of proto3).
    Group,
}

/// How deep messages and groups may nest, as prost counts: a request's fields have the
/// whole budget, each message or group inside one less, and a field skipped with none
/// left is an error. It bounds the recursion of skipping nested groups.
const RECURSION_LIMIT: u32 = 100;

/// The fields of one message, in wire order.
struct Fields<'a> {
    bytes: &'a [u8],
    message: &'static str,
    /// What is left of [`RECURSION_LIMIT`] for this message's fields.
    depth: u32,
}

impl<'a> Fields<'a> {
    fn of(bytes: &'a [u8], message: &'static str, depth: u32) -> Fields<'a> {
        Fields {
            bytes,
            message,
            depth,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        // Tags and most lengths take one byte.
        if let Some((&byte, rest)) = self.bytes.split_first()
            && byte < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            if index == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(value);
            }
        }
        Err(invalid(self.message, "invalid varint"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        if len > self.bytes.len() as u64 {
            return Err(invalid(self.message, "buffer underflow"));
        }
        let (taken, rest) = self.bytes.split_at(len as usize);
        self.bytes = rest;
        Ok(taken)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let key = u32::try_from(key)
            .map_err(|_| invalid(self.message, format!("invalid key value: {key}")))?;
        let wire_type = (key & 7) as u8;
        if wire_type > 5 {
            return Err(invalid(
                self.message,
                format!("invalid wire type value: {wire_type}"),
            ));
        }
        let tag = key >> 3;
        if tag == 0 {
            return Err(invalid(self.message, "invalid tag value: 0"));
        }
        Ok((tag, wire_type))
    }

    /// Reads a field of `wire_type` whose key was read, skipping a group as prost's
    /// `skip_field` does, with `depth` left of the recursion budget.
    fn value(&mut self, tag: u32, wire_type: u8, depth: u32) -> Result<Wire<'a>, WireError> {
        if depth == 0 {
            return Err(invalid(self.message, "recursion limit reached"));
        }
        Ok(match wire_type {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = self.varint()?;
                Wire::Bytes(self.take(len)?)
            }
            3 => {
                loop {
                    let (inner_tag, inner_type) = self.key()?;
                    if inner_type == 4 {
                        if inner_tag != tag {
                            return Err(invalid(self.message, "unexpected end group tag"));
                        }
                        break;
                    }
                    self.value(inner_tag, inner_type, depth - 1)?;
                }
                Wire::Group
            }
            4 => return Err(invalid(self.message, "unexpected end group tag")),
            _ => {
                self.take(4)?;
                Wire::Fixed32
            }
        })
    }

    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, WireError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let (tag, wire_type) = self.key()?;
        Ok(Some((tag, self.value(tag, wire_type, self.depth)?)))
    }
}

fn wrong_type(message: &'static str, tag: u32, found: Wire<'_>, expected: &str) -> WireError {
    let found = match found {
        Wire::Varint(_) => "Varint",
        Wire::Fixed64(_) => "SixtyFourBit",
        Wire::Fixed32 => "ThirtyTwoBit",
        Wire::Bytes(_) => "LengthDelimited",
        Wire::Group => "StartGroup",
    };
    invalid(
        message,
        format!("field {tag}: invalid wire type: {found} (expected {expected})"),
    )
}

fn bytes<'a>(message: &'static str, tag: u32, value: Wire<'a>) -> Result<&'a [u8], WireError> {
    match value {
        Wire::Bytes(bytes) => Ok(bytes),
        other => Err(wrong_type(message, tag, other, "LengthDelimited")),
    }
}

fn string<'a>(message: &'static str, tag: u32, value: Wire<'a>) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes(message, tag, value)?).map_err(|_| {
        invalid(
            message,
            format!("field {tag}: invalid string value: data is not UTF-8 encoded"),
        )
    })
}

fn varint(message: &'static str, tag: u32, value: Wire<'_>) -> Result<u64, WireError> {
    match value {
        Wire::Varint(value) => Ok(value),
        other => Err(wrong_type(message, tag, other, "Varint")),
    }
}

fn fixed64(message: &'static str, tag: u32, value: Wire<'_>) -> Result<u64, WireError> {
    match value {
        Wire::Fixed64(value) => Ok(value),
        other => Err(wrong_type(message, tag, other, "SixtyFourBit")),
    }
}

/// Checks a part the walk does not read by decoding it with prost.
fn check_with_prost<M: Message + Default>(
    message: &'static str,
    bytes: &[u8],
) -> Result<(), WireError> {
    M::decode(bytes)
        .map(drop)
        .map_err(|e| invalid(message, e.to_string()))
}

/// An attribute (`KeyValue`) as the wire has it.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    pub key: &'a str,
    pub value: AttributeValue<'a>,
}

/// An attribute's value: the usual kinds read, the others left as bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeValue<'a> {
    /// The `KeyValue` has no value.
    Missing,
    /// An `AnyValue` with none of its kinds set.
    Empty,
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// Any other kind: the whole `KeyValue`'s bytes, for [`decode_other`].
    Other(&'a [u8]),
}

impl<'a> Attribute<'a> {
    /// The value, if it is a string.
    pub fn text(&self) -> Option<&'a str> {
        match self.value {
            AttributeValue::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// The `KeyValue` bytes of an [`AttributeValue::Other`], decoded by prost: how values
/// other than the usual ones are read. The walk that found them checked them.
pub fn decode_other(bytes: &[u8]) -> KeyValue {
    KeyValue::decode(bytes).unwrap_or_default()
}

/// Reads one `KeyValue` whose fields have `depth` of the recursion budget.
fn attribute(bytes: &[u8], depth: u32) -> Result<Attribute<'_>, WireError> {
    const MESSAGE: &str = "KeyValue";
    let mut key = "";
    let mut value = None;
    let mut fields = Fields::of(bytes, MESSAGE, depth);
    while let Some((tag, wire)) = fields.next_field()? {
        match tag {
            1 => key = string(MESSAGE, tag, wire)?,
            2 => {
                if value.is_some() {
                    return Err(WireError::NotCanonical);
                }
                value = Some(any_value(
                    bytes,
                    self::bytes(MESSAGE, tag, wire)?,
                    depth - 1,
                )?);
            }
            3 => {
                varint(MESSAGE, tag, wire)?;
            }
            _ => {}
        }
    }
    Ok(Attribute {
        key,
        value: value.unwrap_or(AttributeValue::Missing),
    })
}

/// Reads the `AnyValue` `bytes` of the `KeyValue` `key_value`.
fn any_value<'a>(
    key_value: &'a [u8],
    bytes: &'a [u8],
    depth: u32,
) -> Result<AttributeValue<'a>, WireError> {
    const MESSAGE: &str = "AnyValue";
    let mut value = AttributeValue::Empty;
    let mut fields = Fields::of(bytes, MESSAGE, depth);
    while let Some((tag, wire)) = fields.next_field()? {
        if !(1..=8).contains(&tag) {
            continue;
        }
        if value != AttributeValue::Empty {
            return Err(WireError::NotCanonical);
        }
        value = match tag {
            1 => AttributeValue::Str(string(MESSAGE, tag, wire)?),
            2 => AttributeValue::Bool(varint(MESSAGE, tag, wire)? != 0),
            3 => AttributeValue::Int(varint(MESSAGE, tag, wire)? as i64),
            4 => {
                fixed64(MESSAGE, tag, wire)?;
                AttributeValue::Other(key_value)
            }
            5 => {
                check_with_prost::<ArrayValue>(MESSAGE, self::bytes(MESSAGE, tag, wire)?)?;
                AttributeValue::Other(key_value)
            }
            6 => {
                check_with_prost::<KeyValueList>(MESSAGE, self::bytes(MESSAGE, tag, wire)?)?;
                AttributeValue::Other(key_value)
            }
            7 => {
                self::bytes(MESSAGE, tag, wire)?;
                AttributeValue::Other(key_value)
            }
            _ => {
                varint(MESSAGE, tag, wire)?;
                AttributeValue::Other(key_value)
            }
        };
    }
    Ok(value)
}

/// Appends the attributes (field `tag`) of a data point to `into`.
fn attributes<'a>(
    message: &'static str,
    bytes: &'a [u8],
    tag: u32,
    into: &mut Vec<Attribute<'a>>,
) -> Result<(), WireError> {
    let mut fields = Fields::of(bytes, message, POINT_DEPTH);
    while let Some((field, wire)) = fields.next_field()? {
        if field == tag {
            into.push(attribute(
                self::bytes(message, field, wire)?,
                POINT_DEPTH - 1,
            )?);
        }
    }
    Ok(())
}

/// What a metric says of all its points.
#[derive(Debug, Clone, Copy)]
pub struct MetricHeader<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    /// `None` when the metric has no data.
    pub kind: Option<MetricKind>,
    /// `AggregationTemporality` of sums and histograms; 0 otherwise.
    pub temporality: i32,
    pub monotonic: bool,
}

/// A number point's values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NumberPoint {
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: Option<number_data_point::Value>,
    pub flags: u32,
}

/// One point's values.
pub enum PointValues<'p> {
    Number(NumberPoint),
    Histogram(&'p HistogramDataPoint),
    ExponentialHistogram(&'p ExponentialHistogramDataPoint),
    Summary(&'p SummaryDataPoint),
}

impl PointValues<'_> {
    pub fn start_time_unix_nano(&self) -> u64 {
        match self {
            PointValues::Number(p) => p.start_time_unix_nano,
            PointValues::Histogram(p) => p.start_time_unix_nano,
            PointValues::ExponentialHistogram(p) => p.start_time_unix_nano,
            PointValues::Summary(p) => p.start_time_unix_nano,
        }
    }

    pub fn time_unix_nano(&self) -> u64 {
        match self {
            PointValues::Number(p) => p.time_unix_nano,
            PointValues::Histogram(p) => p.time_unix_nano,
            PointValues::ExponentialHistogram(p) => p.time_unix_nano,
            PointValues::Summary(p) => p.time_unix_nano,
        }
    }

    pub fn flags(&self) -> u32 {
        match self {
            PointValues::Number(p) => p.flags,
            PointValues::Histogram(p) => p.flags,
            PointValues::ExponentialHistogram(p) => p.flags,
            PointValues::Summary(p) => p.flags,
        }
    }
}

/// What [`walk`] finds, in request order.
pub trait Visitor<'r> {
    /// A resource begins; its metrics follow.
    fn resource(&mut self, attributes: &[Attribute<'r>]);
    /// A metric of the last resource, in the scope named `scope`, begins; its points
    /// follow.
    fn metric(&mut self, scope: &'r str, header: MetricHeader<'r>);
    /// A point of the last metric.
    fn point(&mut self, attributes: &[Attribute<'r>], values: PointValues<'_>);
}

/// Walks every resource, metric and point of an `ExportMetricsServiceRequest`, checking
/// the bytes as prost would.
pub fn walk<'r>(request: &'r [u8], visitor: &mut impl Visitor<'r>) -> Result<(), WireError> {
    const MESSAGE: &str = "ExportMetricsServiceRequest";
    let mut scratch = Scratch::default();
    let mut fields = Fields::of(request, MESSAGE, RECURSION_LIMIT);
    while let Some((tag, wire)) = fields.next_field()? {
        if tag == 1 {
            resource_metrics(bytes(MESSAGE, tag, wire)?, visitor, &mut scratch)?;
        }
    }
    Ok(())
}

/// Buffers the walk reuses from resource to resource and point to point.
#[derive(Default)]
struct Scratch<'r> {
    resource: Vec<Attribute<'r>>,
    point: Vec<Attribute<'r>>,
}

/// Checks a `ResourceMetrics` or a `ScopeMetrics`, which are alike: field 1 a message set
/// at most once (the resource or the scope), returned; 2 the list of what it holds, each
/// item checked when it is walked; 3 a schema URL.
fn first_field_of_list<'a>(
    message: &'static str,
    bytes: &'a [u8],
    depth: u32,
) -> Result<Option<&'a [u8]>, WireError> {
    let mut first = None;
    let mut fields = Fields::of(bytes, message, depth);
    while let Some((tag, wire)) = fields.next_field()? {
        match tag {
            1 => {
                if first.is_some() {
                    return Err(WireError::NotCanonical);
                }
                first = Some(self::bytes(message, tag, wire)?);
            }
            2 => {
                self::bytes(message, tag, wire)?;
            }
            3 => {
                string(message, tag, wire)?;
            }
            _ => {}
        }
    }
    Ok(first)
}

fn resource_metrics<'r>(
    bytes: &'r [u8],
    visitor: &mut impl Visitor<'r>,
    scratch: &mut Scratch<'r>,
) -> Result<(), WireError> {
    const MESSAGE: &str = "ResourceMetrics";
    const DEPTH: u32 = RECURSION_LIMIT - 1;
    let resource = first_field_of_list(MESSAGE, bytes, DEPTH)?;
    scratch.resource.clear();
    if let Some(resource) = resource {
        const RESOURCE: &str = "Resource";
        let mut fields = Fields::of(resource, RESOURCE, DEPTH - 1);
        while let Some((tag, wire)) = fields.next_field()? {
            match tag {
                1 => scratch
                    .resource
                    .push(attribute(self::bytes(RESOURCE, tag, wire)?, DEPTH - 2)?),
                2 => {
                    varint(RESOURCE, tag, wire)?;
                }
                3 => check_with_prost::<EntityRef>(RESOURCE, self::bytes(RESOURCE, tag, wire)?)?,
                _ => {}
            }
        }
    }
    visitor.resource(&scratch.resource);
    let mut fields = Fields::of(bytes, MESSAGE, DEPTH);
    while let Some((tag, wire)) = fields.next_field()? {
        if tag == 2 {
            scope_metrics(self::bytes(MESSAGE, tag, wire)?, visitor, scratch)?;
        }
    }
    Ok(())
}

fn scope_metrics<'r>(
    bytes: &'r [u8],
    visitor: &mut impl Visitor<'r>,
    scratch: &mut Scratch<'r>,
) -> Result<(), WireError> {
    const MESSAGE: &str = "ScopeMetrics";
    const DEPTH: u32 = RECURSION_LIMIT - 2;
    let scope = first_field_of_list(MESSAGE, bytes, DEPTH)?;
    let mut scope_name = "";
    if let Some(scope) = scope {
        const SCOPE: &str = "InstrumentationScope";
        let mut fields = Fields::of(scope, SCOPE, DEPTH - 1);
        while let Some((tag, wire)) = fields.next_field()? {
            match tag {
                1 => scope_name = string(SCOPE, tag, wire)?,
                2 => {
                    string(SCOPE, tag, wire)?;
                }
                3 => {
                    attribute(self::bytes(SCOPE, tag, wire)?, DEPTH - 2)?;
                }
                4 => {
                    varint(SCOPE, tag, wire)?;
                }
                _ => {}
            }
        }
    }
    let mut fields = Fields::of(bytes, MESSAGE, DEPTH);
    while let Some((tag, wire)) = fields.next_field()? {
        if tag == 2 {
            metric(
                scope_name,
                self::bytes(MESSAGE, tag, wire)?,
                visitor,
                scratch,
            )?;
        }
    }
    Ok(())
}

/// The recursion budget of a `Metric`'s fields (request, `ResourceMetrics`,
/// `ScopeMetrics`, `Metric`), and of a data point's (`Gauge` or another kind between).
const METRIC_DEPTH: u32 = RECURSION_LIMIT - 3;
const POINT_DEPTH: u32 = METRIC_DEPTH - 2;

fn metric<'r>(
    scope: &'r str,
    bytes: &'r [u8],
    visitor: &mut impl Visitor<'r>,
    scratch: &mut Scratch<'r>,
) -> Result<(), WireError> {
    const MESSAGE: &str = "Metric";
    let mut header = MetricHeader {
        name: "",
        unit: "",
        kind: None,
        temporality: 0,
        monotonic: false,
    };
    let mut data: &[u8] = &[];
    let mut fields = Fields::of(bytes, MESSAGE, METRIC_DEPTH);
    while let Some((tag, wire)) = fields.next_field()? {
        let kind = match tag {
            1 => {
                header.name = string(MESSAGE, tag, wire)?;
                continue;
            }
            2 => {
                string(MESSAGE, tag, wire)?;
                continue;
            }
            3 => {
                header.unit = string(MESSAGE, tag, wire)?;
                continue;
            }
            12 => {
                attribute(self::bytes(MESSAGE, tag, wire)?, METRIC_DEPTH - 1)?;
                continue;
            }
            5 => MetricKind::Gauge,
            7 => MetricKind::Sum,
            9 => MetricKind::Histogram,
            10 => MetricKind::ExponentialHistogram,
            11 => MetricKind::Summary,
            _ => continue,
        };
        if header.kind.is_some() {
            return Err(WireError::NotCanonical);
        }
        header.kind = Some(kind);
        data = self::bytes(MESSAGE, tag, wire)?;
    }
    let Some(kind) = header.kind else {
        visitor.metric(scope, header);
        return Ok(());
    };
    let message = match kind {
        MetricKind::Gauge => "Gauge",
        MetricKind::Sum => "Sum",
        MetricKind::Histogram => "Histogram",
        MetricKind::ExponentialHistogram => "ExponentialHistogram",
        MetricKind::Summary => "Summary",
    };
    let mut fields = Fields::of(data, message, METRIC_DEPTH - 1);
    while let Some((tag, wire)) = fields.next_field()? {
        match (kind, tag) {
            (_, 1) => {
                self::bytes(message, tag, wire)?;
            }
            (MetricKind::Sum | MetricKind::Histogram | MetricKind::ExponentialHistogram, 2) => {
                header.temporality = varint(message, tag, wire)? as i32;
            }
            (MetricKind::Sum, 3) => header.monotonic = varint(message, tag, wire)? != 0,
            _ => {}
        }
    }
    visitor.metric(scope, header);
    let mut fields = Fields::of(data, message, METRIC_DEPTH - 1);
    while let Some((tag, wire)) = fields.next_field()? {
        if tag != 1 {
            continue;
        }
        let point = self::bytes(message, tag, wire)?;
        scratch.point.clear();
        match kind {
            MetricKind::Gauge | MetricKind::Sum => {
                let values = number_point(point, &mut scratch.point)?;
                visitor.point(&scratch.point, PointValues::Number(values));
            }
            MetricKind::Histogram => {
                let values = decode_point::<HistogramDataPoint>("HistogramDataPoint", point)?;
                attributes("HistogramDataPoint", point, 9, &mut scratch.point)?;
                visitor.point(&scratch.point, PointValues::Histogram(&values));
            }
            MetricKind::ExponentialHistogram => {
                let values = decode_point::<ExponentialHistogramDataPoint>(
                    "ExponentialHistogramDataPoint",
                    point,
                )?;
                attributes(
                    "ExponentialHistogramDataPoint",
                    point,
                    1,
                    &mut scratch.point,
                )?;
                visitor.point(&scratch.point, PointValues::ExponentialHistogram(&values));
            }
            MetricKind::Summary => {
                let values = decode_point::<SummaryDataPoint>("SummaryDataPoint", point)?;
                attributes("SummaryDataPoint", point, 7, &mut scratch.point)?;
                visitor.point(&scratch.point, PointValues::Summary(&values));
            }
        }
    }
    Ok(())
}

fn decode_point<M: Message + Default>(message: &'static str, bytes: &[u8]) -> Result<M, WireError> {
    M::decode(bytes).map_err(|e| invalid(message, e.to_string()))
}

/// Reads a `NumberDataPoint`, its attributes into `attributes`.
fn number_point<'a>(
    bytes: &'a [u8],
    attributes: &mut Vec<Attribute<'a>>,
) -> Result<NumberPoint, WireError> {
    const MESSAGE: &str = "NumberDataPoint";
    let mut point = NumberPoint::default();
    let mut fields = Fields::of(bytes, MESSAGE, POINT_DEPTH);
    while let Some((tag, wire)) = fields.next_field()? {
        match tag {
            7 => attributes.push(attribute(
                self::bytes(MESSAGE, tag, wire)?,
                POINT_DEPTH - 1,
            )?),
            2 => point.start_time_unix_nano = fixed64(MESSAGE, tag, wire)?,
            3 => point.time_unix_nano = fixed64(MESSAGE, tag, wire)?,
            4 => {
                point.value = Some(number_data_point::Value::AsDouble(f64::from_bits(fixed64(
                    MESSAGE, tag, wire,
                )?)))
            }
            6 => {
                point.value = Some(number_data_point::Value::AsInt(
                    fixed64(MESSAGE, tag, wire)? as i64,
                ))
            }
            5 => check_with_prost::<epitaph_proto::metrics::v1::Exemplar>(
                MESSAGE,
                self::bytes(MESSAGE, tag, wire)?,
            )?,
            8 => point.flags = varint(MESSAGE, tag, wire)? as u32,
            _ => {}
        }
    }
    Ok(point)
}

#[cfg(test)]
mod tests {
    use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
    use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, any_value};
    use epitaph_proto::metrics::v1::{
        Exemplar, ExponentialHistogram, Gauge, Histogram, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, Summary, exponential_histogram_data_point, metric,
        summary_data_point::ValueAtQuantile,
    };
    use epitaph_proto::resource::v1::Resource;

    use super::*;

    /// A small, seeded generator (xorshift64*), so every run tries the same inputs.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn any_value(random: &mut Random, depth: u32) -> Option<any_value::Value> {
        Some(match random.below(if depth > 1 { 6 } else { 9 }) {
            0 => return None,
            1 => any_value::Value::BoolValue(random.chance(50)),
            2 => any_value::Value::IntValue(random.next() as i64 >> random.below(64)),
            3 => any_value::Value::DoubleValue(f64::from_bits(random.next())),
            4 => any_value::Value::BytesValue(vec![random.below(256) as u8; 3]),
            5 => any_value::Value::StringValueStrindex(random.below(9) as i32),
            6 => any_value::Value::ArrayValue(ArrayValue {
                values: (0..random.below(3))
                    .map(|_| AnyValue {
                        value: any_value(random, depth + 1),
                    })
                    .collect(),
            }),
            7 => any_value::Value::KvlistValue(KeyValueList {
                values: attributes(random, depth + 1),
            }),
            _ => any_value::Value::StringValue(format!("v{}", random.below(5))),
        })
    }

    fn attributes(random: &mut Random, depth: u32) -> Vec<KeyValue> {
        const KEYS: [&str; 6] = [
            "route",
            "service.name",
            "host.image.version",
            "status",
            "a",
            "",
        ];
        (0..random.below(4))
            .map(|_| KeyValue {
                key: KEYS[random.below(KEYS.len() as u64) as usize].to_string(),
                value: random.chance(90).then(|| AnyValue {
                    value: if random.chance(70) {
                        Some(any_value::Value::StringValue(format!(
                            "s{}",
                            random.below(4)
                        )))
                    } else {
                        any_value(random, depth)
                    },
                }),
                key_strindex: 0,
            })
            .collect()
    }

    fn number_point(random: &mut Random) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attributes(random, 0),
            start_time_unix_nano: random.below(3),
            time_unix_nano: random.next(),
            exemplars: if random.chance(10) {
                vec![Exemplar {
                    time_unix_nano: 5,
                    span_id: vec![1; 8],
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            flags: random.below(3) as u32,
            value: match random.below(3) {
                0 => None,
                1 => Some(number_data_point::Value::AsInt(random.next() as i64)),
                _ => Some(number_data_point::Value::AsDouble(random.below(1000) as f64)),
            },
        }
    }

    fn metric_data(random: &mut Random) -> Option<metric::Data> {
        let points = random.below(4);
        Some(match random.below(6) {
            0 => return None,
            1 => metric::Data::Gauge(Gauge {
                data_points: (0..points).map(|_| number_point(random)).collect(),
            }),
            2 => metric::Data::Sum(Sum {
                data_points: (0..points).map(|_| number_point(random)).collect(),
                aggregation_temporality: random.below(3) as i32,
                is_monotonic: random.chance(50),
            }),
            3 => metric::Data::Histogram(Histogram {
                data_points: (0..points)
                    .map(|_| HistogramDataPoint {
                        attributes: attributes(random, 0),
                        time_unix_nano: random.next(),
                        count: 3,
                        sum: random.chance(50).then_some(2.5),
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![1.0],
                        min: random.chance(50).then_some(0.5),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: random.below(3) as i32,
            }),
            4 => metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..points)
                    .map(|_| ExponentialHistogramDataPoint {
                        attributes: attributes(random, 0),
                        count: 4,
                        scale: random.below(5) as i32 - 2,
                        positive: Some(exponential_histogram_data_point::Buckets {
                            offset: -1,
                            bucket_counts: vec![1, 3],
                        }),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: random.below(3) as i32,
            }),
            _ => metric::Data::Summary(Summary {
                data_points: (0..points)
                    .map(|_| SummaryDataPoint {
                        attributes: attributes(random, 0),
                        count: 2,
                        sum: 3.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 0.5,
                            value: 1.5,
                        }],
                        ..Default::default()
                    })
                    .collect(),
            }),
        })
    }

    fn request(random: &mut Random) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: (0..random.below(3))
                .map(|_| ResourceMetrics {
                    resource: random.chance(80).then(|| Resource {
                        attributes: attributes(random, 0),
                        ..Default::default()
                    }),
                    scope_metrics: (0..random.below(3))
                        .map(|_| ScopeMetrics {
                            scope: random.chance(50).then(|| InstrumentationScope {
                                name: format!("scope{}", random.below(2)),
                                attributes: attributes(random, 0),
                                ..Default::default()
                            }),
                            metrics: (0..random.below(3))
                                .map(|_| Metric {
                                    name: ["", "m", "n"][random.below(3) as usize].to_string(),
                                    unit: "s".into(),
                                    description: "d".into(),
                                    data: metric_data(random),
                                    metadata: attributes(random, 0),
                                })
                                .collect(),
                            schema_url: "u".into(),
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    /// What an attribute is, as prost would have it.
    fn attribute_text(key: &str, value: Option<&AnyValue>) -> String {
        format!("{key}={value:?}")
    }

    fn wire_attribute_text(attribute: &Attribute<'_>) -> String {
        let value = match attribute.value {
            AttributeValue::Missing => None,
            AttributeValue::Empty => Some(AnyValue { value: None }),
            AttributeValue::Str(text) => Some(AnyValue {
                value: Some(any_value::Value::StringValue(text.into())),
            }),
            AttributeValue::Int(value) => Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
            AttributeValue::Bool(value) => Some(AnyValue {
                value: Some(any_value::Value::BoolValue(value)),
            }),
            AttributeValue::Other(bytes) => decode_other(bytes).value,
        };
        attribute_text(attribute.key, value.as_ref())
    }

    /// Everything [`walk`] reports, as text.
    #[derive(Default)]
    struct Trace(Vec<String>);

    impl<'r> Visitor<'r> for Trace {
        fn resource(&mut self, attributes: &[Attribute<'r>]) {
            let attributes: Vec<String> = attributes.iter().map(wire_attribute_text).collect();
            self.0.push(format!("resource {attributes:?}"));
        }

        fn metric(&mut self, scope: &'r str, header: MetricHeader<'r>) {
            self.0.push(format!(
                "metric {scope} {} {} {:?} {} {}",
                header.name, header.unit, header.kind, header.temporality, header.monotonic
            ));
        }

        fn point(&mut self, attributes: &[Attribute<'r>], values: PointValues<'_>) {
            let attributes: Vec<String> = attributes.iter().map(wire_attribute_text).collect();
            let values = match values {
                PointValues::Number(point) => format!("{point:?}"),
                PointValues::Histogram(point) => format!("{point:?}"),
                PointValues::ExponentialHistogram(point) => format!("{point:?}"),
                PointValues::Summary(point) => format!("{point:?}"),
            };
            self.0.push(format!("point {attributes:?} {values}"));
        }
    }

    /// The same trace, from what prost decoded.
    fn prost_trace(request: &ExportMetricsServiceRequest) -> Vec<String> {
        let texts = |attributes: &[KeyValue]| -> Vec<String> {
            attributes
                .iter()
                .map(|kv| attribute_text(&kv.key, kv.value.as_ref()))
                .collect()
        };
        let mut trace = Vec::new();
        for resource_metrics in &request.resource_metrics {
            let attributes = resource_metrics
                .resource
                .as_ref()
                .map(|r| texts(&r.attributes))
                .unwrap_or_default();
            trace.push(format!("resource {attributes:?}"));
            for scope_metrics in &resource_metrics.scope_metrics {
                let scope = scope_metrics.scope.as_ref().map_or("", |s| s.name.as_str());
                for metric in &scope_metrics.metrics {
                    let (kind, temporality, monotonic) = match &metric.data {
                        None => (None, 0, false),
                        Some(metric::Data::Gauge(_)) => (Some(MetricKind::Gauge), 0, false),
                        Some(metric::Data::Sum(sum)) => (
                            Some(MetricKind::Sum),
                            sum.aggregation_temporality,
                            sum.is_monotonic,
                        ),
                        Some(metric::Data::Histogram(h)) => (
                            Some(MetricKind::Histogram),
                            h.aggregation_temporality,
                            false,
                        ),
                        Some(metric::Data::ExponentialHistogram(h)) => (
                            Some(MetricKind::ExponentialHistogram),
                            h.aggregation_temporality,
                            false,
                        ),
                        Some(metric::Data::Summary(_)) => (Some(MetricKind::Summary), 0, false),
                    };
                    trace.push(format!(
                        "metric {scope} {} {} {kind:?} {temporality} {monotonic}",
                        metric.name, metric.unit
                    ));
                    let number = |p: &NumberDataPoint| {
                        let values = NumberPoint {
                            start_time_unix_nano: p.start_time_unix_nano,
                            time_unix_nano: p.time_unix_nano,
                            value: p.value,
                            flags: p.flags,
                        };
                        format!("point {:?} {values:?}", texts(&p.attributes))
                    };
                    match &metric.data {
                        None => {}
                        Some(metric::Data::Gauge(g)) => {
                            trace.extend(g.data_points.iter().map(number))
                        }
                        Some(metric::Data::Sum(s)) => {
                            trace.extend(s.data_points.iter().map(number))
                        }
                        Some(metric::Data::Histogram(h)) => trace.extend(
                            h.data_points
                                .iter()
                                .map(|p| format!("point {:?} {p:?}", texts(&p.attributes))),
                        ),
                        Some(metric::Data::ExponentialHistogram(h)) => trace.extend(
                            h.data_points
                                .iter()
                                .map(|p| format!("point {:?} {p:?}", texts(&p.attributes))),
                        ),
                        Some(metric::Data::Summary(s)) => trace.extend(
                            s.data_points
                                .iter()
                                .map(|p| format!("point {:?} {p:?}", texts(&p.attributes))),
                        ),
                    }
                }
            }
        }
        trace
    }

    /// What the walk of `bytes` reports, canonicalized as [`MetricsRequest`] does, or
    /// `None` if the bytes are refused.
    fn walk_trace(bytes: &[u8]) -> Option<Vec<String>> {
        let mut trace = Trace::default();
        match walk(bytes, &mut trace) {
            Ok(()) => Some(trace.0),
            Err(WireError::NotCanonical) => {
                let canonical = ExportMetricsServiceRequest::decode(bytes)
                    .ok()?
                    .encode_to_vec();
                let mut trace = Trace::default();
                walk(&canonical, &mut trace).expect("prost writes each field once");
                Some(trace.0)
            }
            Err(WireError::Invalid { .. }) => None,
        }
    }

    #[test]
    fn the_walk_reads_what_prost_decodes() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let mut points = 0;
        for _ in 0..400 {
            let request = request(&mut random);
            let bytes = request.encode_to_vec();
            let trace = walk_trace(&bytes).expect("a request prost encoded is read");
            points += trace.iter().filter(|t| t.starts_with("point")).count();
            assert_eq!(trace, prost_trace(&request));
        }
        assert!(points > 300, "the generator makes points: {points}");
    }

    #[test]
    fn damaged_bytes_are_refused_exactly_when_prost_refuses_them() {
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        let (mut refused, mut accepted) = (0, 0);
        for _ in 0..300 {
            let bytes = request(&mut random).encode_to_vec();
            if bytes.is_empty() {
                continue;
            }
            for _ in 0..20 {
                let mut damaged = bytes.clone();
                let at = random.below(damaged.len() as u64) as usize;
                match random.below(4) {
                    0 => damaged[at] = random.below(256) as u8,
                    1 => damaged[at] ^= 0x80,
                    2 => damaged.truncate(at),
                    _ => damaged.insert(at, random.below(256) as u8),
                }
                let by_prost = ExportMetricsServiceRequest::decode(damaged.as_slice());
                let by_walk = walk_trace(&damaged);
                match (&by_prost, &by_walk) {
                    (Ok(request), Some(trace)) => {
                        accepted += 1;
                        assert_eq!(trace, &prost_trace(request), "bytes {damaged:?}");
                    }
                    (Err(_), None) => refused += 1,
                    _ => panic!(
                        "prost {:?} but the walk {:?} for bytes {damaged:?}",
                        by_prost.map(drop),
                        by_walk.map(drop)
                    ),
                }
            }
        }
        assert!(
            refused > 300 && accepted > 300,
            "{refused} refused, {accepted} accepted"
        );
    }

    #[test]
    fn nested_groups_are_refused_past_prosts_recursion_limit_and_never_overflow_the_stack() {
        // An unknown field 15 as `levels` groups inside one another.
        let groups = |levels: usize| {
            let mut bytes = vec![(15 << 3) | 3; levels];
            bytes.extend(std::iter::repeat_n((15 << 3) | 4, levels));
            bytes
        };
        let within = |field: u32, inner: &[u8]| {
            let mut bytes = Vec::new();
            prost::encoding::bytes::encode(field, &inner.to_vec(), &mut bytes);
            bytes
        };
        let mut random = Random(7);
        let request = request(&mut random).encode_to_vec();
        for levels in [1, 50, 93, 94, 95, 96, 97, 98, 99, 100, 101, 200] {
            let nested = groups(levels);
            let point = [nested.clone(), within(3, &[0; 8])].concat();
            let placements = [
                // In the request, in a resource's metrics, in a number point.
                [request.clone(), nested.clone()].concat(),
                within(1, &nested),
                within(
                    1,
                    &within(
                        2,
                        &within(
                            2,
                            &[within(1, b"m"), within(5, &within(1, &point))].concat(),
                        ),
                    ),
                ),
            ];
            for bytes in placements {
                let by_prost = ExportMetricsServiceRequest::decode(bytes.as_slice());
                let by_walk = walk_trace(&bytes);
                assert_eq!(
                    by_prost.is_ok(),
                    by_walk.is_some(),
                    "{levels} levels: prost {:?}",
                    by_prost.map(drop)
                );
            }
        }
        let deep = groups(1_000_000);
        assert!(walk_trace(&deep).is_none());
    }

    #[test]
    fn a_singular_field_set_twice_reads_as_prost_merges_it() {
        let resource = |key: &str| Resource {
            attributes: vec![KeyValue {
                key: key.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".into())),
                }),
                key_strindex: 0,
            }],
            ..Default::default()
        };
        // ResourceMetrics { resource: {a=x}, resource: {b=x} }: prost merges the two.
        let mut bytes = Vec::new();
        for key in ["a", "b"] {
            prost::encoding::message::encode(1, &resource(key), &mut bytes);
        }
        let mut request = Vec::new();
        prost::encoding::bytes::encode(1, &bytes, &mut request);
        let mut trace = Trace::default();
        assert!(matches!(
            walk(&request, &mut trace),
            Err(WireError::NotCanonical)
        ));
        let decoded = ExportMetricsServiceRequest::decode(request.as_slice()).unwrap();
        assert_eq!(
            decoded.resource_metrics[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .len(),
            2
        );
        assert_eq!(walk_trace(&request).unwrap(), prost_trace(&decoded));
    }
}
