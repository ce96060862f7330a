//! Building OTLP metrics: the three kinds host metrics need, and nothing more.
//!
//! - a **counter** (`Sum`, monotonic, cumulative): CPU seconds, bytes, packets. Its start
//!   time is when the count began: boot for kernel counters, agent start for the agent's;
//! - an **up-down counter** (`Sum`, non-monotonic, cumulative): a quantity that is part
//!   of a whole and adds up across attributes (memory by state, filesystem bytes);
//! - a **gauge**: a value that does not add up (load average).
//!
//! A [`MetricSet`] collects the metrics of one interval; a metric without points is left
//! out rather than sent empty.

use std::time::{SystemTime, UNIX_EPOCH};

use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use epitaph_proto::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use epitaph_proto::resource::v1::Resource;

/// The instrumentation scope of every metric the agent sends (the same as its logs').
pub const SCOPE_NAME: &str = "epitaph-agent";

/// A data point's value. Counts and bytes are integers; seconds and ratios are doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Double(f64),
}

impl Value {
    fn into_proto(self) -> number_data_point::Value {
        match self {
            // Kernel counters are u64; none of them reaches 2^63 in a machine's lifetime,
            // and saturating keeps a corrupt reading from wrapping negative.
            Value::Int(value) => number_data_point::Value::AsInt(value.min(i64::MAX as u64) as i64),
            Value::Double(value) => number_data_point::Value::AsDouble(value),
        }
    }
}

/// One data point before it is wrapped: its attributes (key, value) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attributes: Vec<(&'static str, String)>,
    pub value: Value,
}

impl Point {
    pub fn new(attributes: Vec<(&'static str, String)>, value: Value) -> Point {
        Point { attributes, value }
    }

    pub fn int(attributes: Vec<(&'static str, String)>, value: u64) -> Point {
        Point::new(attributes, Value::Int(value))
    }

    pub fn double(attributes: Vec<(&'static str, String)>, value: f64) -> Point {
        Point::new(attributes, Value::Double(value))
    }
}

/// What a metric is, apart from its points.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    pub name: &'static str,
    pub description: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    UpDownCounter,
    Gauge,
}

/// The metrics of one interval, all observed at `time` and counted since `start`.
#[derive(Debug)]
pub struct MetricSet {
    time_unix_nano: u64,
    metrics: Vec<Metric>,
}

impl MetricSet {
    pub fn new(time: SystemTime) -> MetricSet {
        MetricSet {
            time_unix_nano: unix_nanos(time),
            metrics: Vec::new(),
        }
    }

    /// Adds a metric; `start` is when its counts began (ignored for gauges).
    pub fn push(&mut self, descriptor: Descriptor, start: SystemTime, points: Vec<Point>) {
        if points.is_empty() {
            return;
        }
        let start_time_unix_nano = match descriptor.kind {
            Kind::Gauge => 0,
            Kind::Counter | Kind::UpDownCounter => unix_nanos(start),
        };
        let data_points = points
            .into_iter()
            .map(|point| NumberDataPoint {
                attributes: point
                    .attributes
                    .into_iter()
                    .map(|(key, value)| string_attribute(key, value))
                    .collect(),
                start_time_unix_nano,
                time_unix_nano: self.time_unix_nano,
                value: Some(point.value.into_proto()),
                ..Default::default()
            })
            .collect();
        let data = match descriptor.kind {
            Kind::Gauge => metric::Data::Gauge(Gauge { data_points }),
            Kind::Counter | Kind::UpDownCounter => metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: descriptor.kind == Kind::Counter,
            }),
        };
        self.metrics.push(Metric {
            name: descriptor.name.to_string(),
            description: descriptor.description.to_string(),
            unit: descriptor.unit.to_string(),
            data: Some(data),
            ..Default::default()
        });
    }

    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// One request: one resource (the instance's identity), one scope.
    pub fn into_request(self, resource: &Resource) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..Default::default()
                    }),
                    metrics: self.metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const COUNTER: Descriptor = Descriptor {
        name: "test.counter",
        description: "a counter",
        unit: "s",
        kind: Kind::Counter,
    };
    const GAUGE: Descriptor = Descriptor {
        name: "test.gauge",
        description: "a gauge",
        unit: "1",
        kind: Kind::Gauge,
    };
    const UP_DOWN: Descriptor = Descriptor {
        name: "test.usage",
        description: "a usage",
        unit: "By",
        kind: Kind::UpDownCounter,
    };

    #[test]
    fn kinds_map_to_otlp_sums_and_gauges_with_start_times() {
        let start = UNIX_EPOCH + Duration::from_secs(100);
        let now = UNIX_EPOCH + Duration::from_secs(160);
        let mut set = MetricSet::new(now);
        set.push(
            COUNTER,
            start,
            vec![Point::double(vec![("cpu", "cpu0".into())], 1.5)],
        );
        set.push(GAUGE, start, vec![Point::double(vec![], 0.25)]);
        set.push(
            UP_DOWN,
            start,
            vec![Point::int(vec![("state", "used".into())], 7)],
        );
        set.push(COUNTER, start, vec![]);
        assert_eq!(set.len(), 3, "a metric without points is left out");
        let request = set.into_request(&Resource::default());
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;

        let Some(metric::Data::Sum(counter)) = &metrics[0].data else {
            panic!("counter is a sum")
        };
        assert!(counter.is_monotonic);
        assert_eq!(
            counter.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(counter.data_points[0].start_time_unix_nano, 100_000_000_000);
        assert_eq!(counter.data_points[0].time_unix_nano, 160_000_000_000);
        assert_eq!(counter.data_points[0].attributes[0].key, "cpu");

        let Some(metric::Data::Gauge(gauge)) = &metrics[1].data else {
            panic!("gauge is a gauge")
        };
        assert_eq!(gauge.data_points[0].start_time_unix_nano, 0);

        let Some(metric::Data::Sum(usage)) = &metrics[2].data else {
            panic!("up-down counter is a sum")
        };
        assert!(!usage.is_monotonic);
        assert_eq!(
            usage.data_points[0].value,
            Some(number_data_point::Value::AsInt(7))
        );
    }

    #[test]
    fn huge_counters_saturate_instead_of_going_negative() {
        assert_eq!(
            Value::Int(u64::MAX).into_proto(),
            number_data_point::Value::AsInt(i64::MAX)
        );
    }
}
