//! Facets: the most frequent values of every keyword field among the lines a filter
//! matches (`service`, `version`, `generation`, `instance`, `level`, `source`, ...), with
//! their counts — what a UI shows beside the hits and the CLI offers for completion.
//!
//! One tantivy aggregation request holds a `terms` aggregation per field plus a count of
//! the lines, so every split is read once for all fields. As in [`super::aggregate`],
//! every segment is asked for all its values (up to [`MAX_GROUPS`]), so the counts of the
//! values returned are exact across splits, not a top-k estimate; `other_count` is the
//! number of matching lines whose value is not among those returned.

use serde_json::json;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{AggregationResult, BucketResult, MetricResult};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{
    AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector, Key,
};
use tantivy::schema::Schema;

use super::aggregate::{AggregateError, MAX_GROUPS};
use crate::fields::{FIELDS, FieldKind};

/// The aggregation that counts the matching lines (every line has a timestamp).
const LINES: &str = "lines";

/// The facets of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facet {
    pub field: String,
    /// `(value, lines)`, most lines first, ties by value. A line without the field (a
    /// client that sent no `service.name`) counts under the empty value.
    pub values: Vec<(String, u64)>,
    /// Matching lines whose value is not in `values`.
    pub other_count: u64,
}

/// The facets of a query: how many lines matched, and per field its top values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facets {
    pub lines: u64,
    pub fields: Vec<Facet>,
}

/// A facet request compiled to one tantivy aggregation request.
#[derive(Debug, Clone)]
pub struct FacetPlan {
    fields: Vec<String>,
    request: Aggregations,
}

/// The fields facets are computed for: every keyword field of the language that is a
/// fast column in `schema`, in the language's order (identity fields first).
pub fn facet_fields(schema: &Schema) -> Vec<&'static str> {
    FIELDS
        .iter()
        .filter(|spec| spec.kind == FieldKind::Keyword)
        .filter(|spec| {
            schema
                .get_field(spec.name)
                .is_ok_and(|field| schema.get_field_entry(field).is_fast())
        })
        .map(|spec| spec.name)
        .collect()
}

/// Plans the top `size` values of each of [`facet_fields`].
pub fn plan_facets(schema: &Schema, size: u32) -> FacetPlan {
    let fields: Vec<String> = facet_fields(schema)
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut request = serde_json::Map::new();
    for field in &fields {
        request.insert(
            field.clone(),
            json!({
                "terms": {
                    "field": field,
                    "size": size,
                    "segment_size": MAX_GROUPS,
                    "min_doc_count": 1,
                    "order": { "_count": "desc" },
                }
            }),
        );
    }
    request.insert(
        LINES.to_string(),
        json!({ "value_count": { "field": "timestamp" } }),
    );
    let request: Aggregations = serde_json::from_value(serde_json::Value::Object(request))
        .expect("the facet request is built from known-good parts");
    FacetPlan { fields, request }
}

impl FacetPlan {
    /// The collector to run over each split's searcher; merge what they return with
    /// [`IntermediateAggregationResults::merge_fruits`].
    pub fn collector(&self) -> DistributedAggregationCollector {
        DistributedAggregationCollector::from_aggs(
            self.request.clone(),
            AggContextParams::default(),
        )
    }

    /// The merged results of every split as facets.
    pub fn facets(&self, merged: IntermediateAggregationResults) -> Result<Facets, AggregateError> {
        let results =
            merged.into_final_result(self.request.clone(), AggregationLimitsGuard::default())?;
        let lines = match results.0.get(LINES) {
            Some(AggregationResult::MetricResult(MetricResult::Count(count))) => {
                count.value.unwrap_or(0.0) as u64
            }
            _ => 0,
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let (buckets, other_count) = match results.0.get(field) {
                Some(AggregationResult::BucketResult(BucketResult::Terms {
                    buckets,
                    sum_other_doc_count,
                    ..
                })) => (buckets.as_slice(), *sum_other_doc_count),
                // No split searched: tantivy answers nothing for the field.
                _ => (&[][..], 0),
            };
            let mut values: Vec<(String, u64)> = buckets
                .iter()
                .map(|bucket| (key_text(&bucket.key), bucket.doc_count))
                .collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            fields.push(Facet {
                field: field.clone(),
                values,
                other_count,
            });
        }
        Ok(Facets { lines, fields })
    }
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Str(text) => text.clone(),
        Key::I64(value) => value.to_string(),
        Key::U64(value) => value.to_string(),
        Key::F64(value) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::test_index;
    use crate::engine::{EngineContext, NoVersions, compile_filter};
    use crate::parse;

    fn facets(text: &str, size: u32, splits: usize) -> Facets {
        let index = test_index();
        let plan = plan_facets(&index.schema, size);
        let query = parse(text).unwrap();
        let context = EngineContext {
            schema: &index.schema,
            versions: &NoVersions,
            now_nanos: 0,
        };
        let filter = compile_filter(&query.filter, &context).unwrap();
        let mut merged = IntermediateAggregationResults::default();
        // The same index searched `splits` times stands for that many splits with equal
        // contents: every count is multiplied by it.
        for _ in 0..splits {
            let searcher = index.reader.searcher();
            merged
                .merge_fruits(searcher.search(filter.as_ref(), &plan.collector()).unwrap())
                .unwrap();
        }
        plan.facets(merged).unwrap()
    }

    fn field<'f>(facets: &'f Facets, name: &str) -> &'f Facet {
        facets.fields.iter().find(|f| f.field == name).unwrap()
    }

    fn values(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(v, c)| (v.to_string(), *c)).collect()
    }

    #[test]
    fn every_fast_keyword_field_is_a_facet_identity_first() {
        let index = test_index();
        assert_eq!(
            facet_fields(&index.schema),
            [
                "service",
                "image",
                "version",
                "image_id",
                "generation",
                "instance",
                "host",
                "env",
                "region",
                "zone",
                "level",
                "source"
            ]
        );
    }

    #[test]
    fn top_values_by_count_with_the_rest_counted() {
        let all = facets("*", 2, 1);
        assert_eq!(all.lines, 5);
        // web 2, api 2, batch 1: the two largest, ties by value; batch is the rest.
        let services = field(&all, "service");
        assert_eq!(services.values, values(&[("api", 2), ("web", 2)]));
        assert_eq!(services.other_count, 1);
        assert_eq!(field(&all, "instance").values, values(&[("i-1", 5)]));
        // Fields nobody set count under the empty value.
        assert_eq!(field(&all, "zone").values, values(&[("", 5)]));

        let web = facets("service:web", 10, 3);
        assert_eq!(web.lines, 6);
        assert_eq!(
            field(&web, "version").values,
            values(&[("v1", 3), ("v2", 3)])
        );
        assert_eq!(
            field(&web, "level").values,
            values(&[("error", 3), ("info", 3)])
        );
        assert_eq!(field(&web, "level").other_count, 0);
    }

    #[test]
    fn no_match_gives_empty_facets() {
        let none = facets("nosuchword", 5, 1);
        assert_eq!(none.lines, 0);
        assert!(none.fields.iter().all(|f| f.values.is_empty()));
        let no_split = facets("*", 5, 0);
        assert_eq!(no_split.lines, 0);
        assert_eq!(no_split.fields.len(), 12);
    }
}
