//! The series of a metric split: what each time series is, written once per split
//! instead of once per data point.
//!
//! A metric point's document carries, in its `series` column, the ordinal of its series
//! in the split's [`SeriesTable`] (0 for the first series the split received, 1 for the
//! next, and so on) and the point's time (see [`SeriesWriter::key`]). The table keeps,
//! per ordinal, the series' stable hash (which joins a series across splits), its metric
//! name, unit, kind, temporality and monotonicity, its identity values and its
//! attributes: everything a query filters or groups by, or needs to know to aggregate the
//! series correctly. Documents hold none of it: a filter on labels is matched against the
//! table, once per series ([`super::metric_filter`]).
//!
//! Dense ordinals are what make metric splits small: a sealed split is sorted by `series`, so
//! the key column climbs by one second per point inside a series and steps by about 2¹⁸
//! between series, where a 64-bit hash needed 64 bits at every series boundary.
//!
//! The table travels with the split's metadata: inside every commit payload while the
//! split is open (so the table and the documents that use it are committed together) and
//! in `series.json.zst` beside `split.json` once sealed. It only grows, and an ordinal is
//! handed out before the first document that uses it is added, so every committed
//! document finds its series.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What one series is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesLabels {
    /// The series' stable id across splits (see `metric_schema::series_id`).
    pub hash: u64,
    pub metric: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub temporality: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monotonic: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Identity field name → value; empty values are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identity: BTreeMap<String, String>,
    /// The point's attributes with the resource's non-identity attributes, by OTLP key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl SeriesLabels {
    /// An attribute's value as text, by the path a query names it with (`http.status`):
    /// the key as it is, or a path through nested key-value lists. Empty when absent.
    pub fn attribute_text(&self, path: &str) -> String {
        find(&|key| self.attributes.get(key), path)
            .map(json_text)
            .unwrap_or_default()
    }
}

/// The value at `path`: `a.b.c` may be key `a.b.c`, key `a` holding `b.c`, or key `a.b`
/// holding `c`.
fn find<'a>(
    get: &dyn Fn(&str) -> Option<&'a serde_json::Value>,
    path: &str,
) -> Option<&'a serde_json::Value> {
    if let Some(value) = get(path) {
        return Some(value);
    }
    path.match_indices('.').find_map(|(at, _)| {
        let nested = get(&path[..at])?.as_object()?;
        find(&|key| nested.get(key), &path[at + 1..])
    })
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Bits of a `series` key that hold the point's time in its series (see
/// [`SeriesWriter::key`]); the bits above hold the series' ordinal.
pub const TIME_BITS: u32 = 18;
const MAX_TIME: u64 = (1 << TIME_BITS) - 1;
/// How long before the split's first point its keys count from, so that points a little
/// older than the first one (another agent's, sent later) still sort in time order.
const TIME_BASE_MARGIN_SECONDS: i64 = 3600;

/// The ordinal of the series a `series` key belongs to.
pub fn ordinal_of_key(key: u64) -> usize {
    usize::try_from(key >> TIME_BITS).unwrap_or(usize::MAX)
}

#[derive(Debug, Default)]
struct Table {
    labels: Vec<Arc<SeriesLabels>>,
    by_hash: HashMap<u64, u64>,
    /// The second keys count time from: an hour before the split's first point.
    time_base: Option<i64>,
}

impl Table {
    fn push(&mut self, labels: Arc<SeriesLabels>) -> u64 {
        let ordinal = self.labels.len() as u64;
        self.by_hash.insert(labels.hash, ordinal);
        self.labels.push(labels);
        ordinal
    }
}

/// The table as it is stored.
#[derive(Serialize, Deserialize)]
struct StoredTable<L> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_base: Option<i64>,
    series: Vec<L>,
}

/// The append-only series table of one split, shared by its open writer, its metadata
/// and the searches that read it.
#[derive(Debug, Clone, Default)]
pub struct SeriesTable {
    table: Arc<RwLock<Table>>,
}

impl SeriesTable {
    pub fn len(&self) -> usize {
        self.read().labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds the table for a run of [`SeriesWriter::key`] calls (one export).
    pub fn writer(&self) -> SeriesWriter<'_> {
        SeriesWriter {
            table: self.table.write().expect("series table lock poisoned"),
        }
    }

    /// An empty table whose keys count time from an hour before `first_nanos`, for a
    /// split whose earliest point is known before its points are added (a compaction).
    pub fn starting_at(first_nanos: i64) -> SeriesTable {
        let table = Table {
            time_base: Some(
                first_nanos
                    .div_euclid(1_000_000_000)
                    .saturating_sub(TIME_BASE_MARGIN_SECONDS),
            ),
            ..Table::default()
        };
        SeriesTable {
            table: Arc::new(RwLock::new(table)),
        }
    }

    /// The labels of every series so far, indexed by ordinal.
    pub fn snapshot(&self) -> Vec<Arc<SeriesLabels>> {
        self.read().labels.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().expect("series table lock poisoned")
    }
}

/// Tables only grow, so two views of one split's table with the same length hold the
/// same series; this is what lets split metadata compare as before.
impl PartialEq for SeriesTable {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.table, &other.table) || self.snapshot() == other.snapshot()
    }
}

impl Eq for SeriesTable {}

impl Serialize for SeriesTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let table = self.read();
        StoredTable {
            time_base: table.time_base,
            series: table.labels.iter().map(|labels| labels.as_ref()).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeriesTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredTable::<SeriesLabels>::deserialize(deserializer)?;
        let mut table = Table {
            time_base: stored.time_base,
            ..Table::default()
        };
        for labels in stored.series {
            table.push(Arc::new(labels));
        }
        Ok(SeriesTable {
            table: Arc::new(RwLock::new(table)),
        })
    }
}

/// Hands out keys while holding the table.
pub struct SeriesWriter<'t> {
    table: RwLockWriteGuard<'t, Table>,
}

impl SeriesWriter<'_> {
    /// The `series` key of a point at `timestamp_nanos` of the series with `hash` (added
    /// with `labels()` if it is new): the series' ordinal, then in the low [`TIME_BITS`]
    /// bits the point's second counted from an hour before the split's first point.
    ///
    /// Sorting a split by this key puts each series' points together and in time order
    /// (to the second; the seal sorts equal keys by time), whatever order they arrived
    /// in; that is what lets timestamps and values pack as near-straight runs. Points
    /// from before that hour or more than [`TIME_BITS`] worth of seconds (three days)
    /// after it take the first or last second: still with their series, no longer in
    /// order.
    pub fn key(
        &mut self,
        hash: u64,
        timestamp_nanos: i64,
        labels: impl FnOnce() -> SeriesLabels,
    ) -> u64 {
        let ordinal = match self.table.by_hash.get(&hash) {
            Some(ordinal) => *ordinal,
            None => {
                let labels = SeriesLabels { hash, ..labels() };
                self.table.push(Arc::new(labels))
            }
        };
        let second = timestamp_nanos.div_euclid(1_000_000_000);
        let base = *self
            .table
            .time_base
            .get_or_insert(second.saturating_sub(TIME_BASE_MARGIN_SECONDS));
        let offset = u64::try_from(second.saturating_sub(base)).unwrap_or(0);
        (ordinal << TIME_BITS) | offset.min(MAX_TIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn labels(metric: &str) -> SeriesLabels {
        SeriesLabels {
            metric: metric.into(),
            kind: "sum".into(),
            ..SeriesLabels::default()
        }
    }

    #[test]
    fn keys_sort_by_series_then_time_whatever_the_arrival_order() {
        let table = SeriesTable::default();
        let mut writer = table.writer();
        let base = 1_800_000_000 * SECOND;
        let a_late = writer.key(11, base + 60 * SECOND, || labels("a"));
        let b = writer.key(22, base + 30 * SECOND, || labels("b"));
        let a_early = writer.key(11, base + 30 * SECOND, || labels("a"));
        drop(writer);
        assert!(a_early < a_late && a_late < b);
        assert_eq!(ordinal_of_key(a_early), 0);
        assert_eq!(ordinal_of_key(b), 1);
        let series = table.snapshot();
        assert_eq!((series[0].hash, series[1].hash), (11, 22));
        assert_eq!(series[1].metric, "b");
    }

    #[test]
    fn times_outside_the_key_range_stay_with_their_series() {
        let table = SeriesTable::default();
        let mut writer = table.writer();
        let base = 1_800_000_000 * SECOND;
        let first = writer.key(1, base, || labels("a"));
        let before = writer.key(1, base - 2 * 3600 * SECOND, || labels("a"));
        let within_the_margin = writer.key(1, base - 1800 * SECOND, || labels("a"));
        assert!(before < within_the_margin && within_the_margin < first);
        let far = writer.key(1, base + 10 * 365 * 86_400 * SECOND, || labels("a"));
        let next = writer.key(2, base, || labels("b"));
        // Series 0, clamped to its first second.
        assert_eq!(before, 0);
        assert_eq!(ordinal_of_key(far), 0);
        assert!(far < next);
    }

    #[test]
    fn the_table_round_trips_through_json_and_keeps_its_time_base() {
        let table = SeriesTable::default();
        let mut with_attributes = labels("a");
        with_attributes
            .attributes
            .insert("http.route".into(), serde_json::json!("/cart"));
        with_attributes.attributes.insert(
            "peer".into(),
            serde_json::json!({"port": 443, "tls.on": true}),
        );
        let key = table
            .writer()
            .key(7, 100 * SECOND, || with_attributes.clone());
        let json = serde_json::to_string(&table).unwrap();
        let back: SeriesTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back, table);
        // The same series at the same time gets the same key from the reread table.
        assert_eq!(back.writer().key(7, 100 * SECOND, || labels("x")), key);
        let series = back.snapshot();
        assert_eq!(series[0].attribute_text("http.route"), "/cart");
        assert_eq!(series[0].attribute_text("peer.port"), "443");
        assert_eq!(series[0].attribute_text("peer.tls.on"), "true");
        assert_eq!(series[0].attribute_text("missing"), "");
    }
}
