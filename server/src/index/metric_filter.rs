//! Metric filters, answered once per series where they can be.
//!
//! A point's document holds only numbers: its series key, time and value columns. What
//! the series is (identity values, metric name, attributes) is in the split's series
//! table, once per series, so a filter on those is answered there: each series' labels
//! are matched with the query engine's own [`Matcher`], which reads a document the way
//! the engine's compiled queries read an index, and the points of the matching series are
//! found through their `series` column. Only what differs from point to point, `value`
//! and `timestamp`, is compiled to a query over the point's columns.
//!
//! A filter is split at its boolean structure: a subtree that names only series labels
//! is one [`Matcher`]; `AND`, `OR` and `NOT` around parts of both kinds become the
//! boolean queries the engine would build. So `metric:http.requests service:web
//! value:>100` matches the series once per split, then runs `value:>100` over the points
//! of those series alone.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use epitaph_query::engine::matcher::Matcher;
use epitaph_query::engine::{EngineContext, VersionResolver, compile_filter};
use epitaph_query::{FieldRef, Filter, QueryError};
use tantivy::query::{
    AllQuery, BitSetDocSet, BooleanQuery, ConstScorer, EmptyQuery, EnableScoring, Explanation,
    Occur, Query, Scorer, Weight,
};
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, OwnedValue, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TantivyDocument, TantivyError};

use super::metric_schema::SERIES_FIELD;
use super::schema::IDENTITY_FIELDS;
use super::series::{SeriesLabels, ordinal_of_key};

/// A metric filter ready to run over any metric split.
pub struct MetricFilter {
    node: Node,
    now_nanos: i64,
}

enum Node {
    /// Every point.
    All,
    /// A part that names only series labels: the series table answers it.
    Series(Matcher),
    /// A part about each point (`value`, `timestamp`): its columns answer it.
    Point(Box<dyn Query>),
    /// Operands with `Must` or `MustNot`, as the engine compiles a conjunction.
    And(Vec<(Occur, Node)>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl MetricFilter {
    /// Splits `filter` and prepares each part; fails with the engine's error, pointing
    /// at the part that cannot run. `point_schema` is the metric document schema.
    pub fn new(
        filter: &Filter,
        point_schema: &Schema,
        versions: &dyn VersionResolver,
        now_nanos: i64,
    ) -> Result<MetricFilter, QueryError> {
        let series = EngineContext {
            schema: &SERIES_SCHEMA.schema,
            versions,
            now_nanos,
        };
        let point = EngineContext {
            schema: point_schema,
            versions,
            now_nanos,
        };
        Ok(MetricFilter {
            node: build(filter, &series, &point)?,
            now_nanos,
        })
    }

    /// The filter as a query over one split whose series table is `series`.
    pub fn query(&self, series: &[Arc<SeriesLabels>]) -> Box<dyn Query> {
        let documents = OnceCell::new();
        let series = SplitSeries {
            labels: series,
            documents: &documents,
            now_nanos: self.now_nanos,
        };
        series.query(&self.node)
    }
}

fn build(
    filter: &Filter,
    series: &EngineContext<'_>,
    point: &EngineContext<'_>,
) -> Result<Node, QueryError> {
    if let Filter::All { .. } = filter {
        return Ok(Node::All);
    }
    if names_only_series(filter) {
        return Ok(Node::Series(Matcher::new(filter, series)?));
    }
    Ok(match filter {
        Filter::And { operands, .. } => {
            let mut clauses = Vec::with_capacity(operands.len());
            for operand in operands {
                clauses.push(match operand {
                    Filter::Not { operand: inner, .. } => {
                        (Occur::MustNot, build(inner, series, point)?)
                    }
                    other => (Occur::Must, build(other, series, point)?),
                });
            }
            Node::And(clauses)
        }
        Filter::Or { operands, .. } => Node::Or(
            operands
                .iter()
                .map(|operand| build(operand, series, point))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Not { operand, .. } => Node::Not(Box::new(build(operand, series, point)?)),
        leaf => Node::Point(compile_filter(leaf, point)?),
    })
}

/// Whether every field `filter` names is a series label, so that each series either
/// matches it with all its points or not at all.
fn names_only_series(filter: &Filter) -> bool {
    let field = match filter {
        Filter::All { .. } | Filter::VersionAlias { .. } => return true,
        Filter::And { operands, .. } | Filter::Or { operands, .. } => {
            return operands.iter().all(names_only_series);
        }
        Filter::Not { operand, .. } => return names_only_series(operand),
        Filter::Term { field, .. }
        | Filter::Phrase { field, .. }
        | Filter::Wildcard { field, .. }
        | Filter::Regex { field, .. } => field.as_ref(),
        Filter::Exists { field, .. }
        | Filter::Range { field, .. }
        | Filter::Compare { field, .. } => Some(field),
    };
    !matches!(field, Some(FieldRef::Value | FieldRef::Timestamp))
}

/// One split's series, matched lazily: their documents are built the first time a
/// series part of the filter needs them.
struct SplitSeries<'a> {
    labels: &'a [Arc<SeriesLabels>],
    documents: &'a OnceCell<Vec<TantivyDocument>>,
    now_nanos: i64,
}

impl SplitSeries<'_> {
    fn query(&self, node: &Node) -> Box<dyn Query> {
        match node {
            Node::All => Box::new(AllQuery),
            Node::Series(matcher) => {
                let documents = self
                    .documents
                    .get_or_init(|| self.labels.iter().map(|l| series_document(l)).collect());
                let matching: Arc<[bool]> = documents
                    .iter()
                    .map(|document| matcher.matches(document, self.now_nanos))
                    .collect();
                if matching.iter().all(|m| *m) {
                    Box::new(AllQuery)
                } else if !matching.iter().any(|m| *m) {
                    Box::new(EmptyQuery)
                } else {
                    Box::new(SeriesSetQuery { matching })
                }
            }
            Node::Point(query) => query.box_clone(),
            Node::And(operands) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = operands
                    .iter()
                    .map(|(occur, operand)| (*occur, self.query(operand)))
                    .collect();
                // tantivy's boolean query with nothing required matches nothing.
                if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Node::Or(operands) => Box::new(BooleanQuery::new(
                operands
                    .iter()
                    .map(|operand| (Occur::Should, self.query(operand)))
                    .collect(),
            )),
            Node::Not(operand) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, self.query(operand)),
            ])),
        }
    }
}

/// The fields a series is matched on, named as the query language names them.
struct SeriesSchema {
    schema: Schema,
    identity: [Field; IDENTITY_FIELDS.len()],
    metric: Field,
    attrs: Field,
}

static SERIES_SCHEMA: LazyLock<SeriesSchema> = LazyLock::new(|| {
    let mut builder = Schema::builder();
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic),
    );
    let identity = IDENTITY_FIELDS.map(|(name, _)| builder.add_text_field(name, keyword.clone()));
    let metric = builder.add_text_field("metric", keyword);
    let attrs = builder.add_json_field(
        "attrs",
        JsonObjectOptions::default()
            .set_indexing_options(TextFieldIndexing::default())
            .set_expand_dots_enabled(),
    );
    SeriesSchema {
        schema: builder.build(),
        identity,
        metric,
        attrs,
    }
});

/// A series' labels as a document of [`SERIES_SCHEMA`]. Attributes are read as the log
/// schema reads them: strings by their words, numbers by value, dotted keys as paths.
fn series_document(labels: &SeriesLabels) -> TantivyDocument {
    let schema = &*SERIES_SCHEMA;
    let mut document = TantivyDocument::new();
    for ((name, _), field) in IDENTITY_FIELDS.iter().zip(schema.identity) {
        if let Some(value) = labels.identity.get(*name) {
            document.add_text(field, value);
        }
    }
    document.add_text(schema.metric, &labels.metric);
    if !labels.attributes.is_empty() {
        let attributes: BTreeMap<String, OwnedValue> = labels
            .attributes
            .iter()
            .map(|(key, value)| (key.clone(), OwnedValue::from(value.clone())))
            .collect();
        document.add_object(schema.attrs, attributes);
    }
    document
}

/// The points whose series is marked in `matching`, by series ordinal.
#[derive(Debug, Clone)]
struct SeriesSetQuery {
    matching: Arc<[bool]>,
}

impl Query for SeriesSetQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for SeriesSetQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let keys = reader.fast_fields().u64(SERIES_FIELD)?;
        let mut documents = BitSet::with_max_value(reader.max_doc());
        for doc in 0..reader.max_doc() {
            let matches = keys.first(doc).is_some_and(|key| {
                self.matching
                    .get(ordinal_of_key(key))
                    .copied()
                    .unwrap_or(false)
            });
            if matches {
                documents.insert(doc);
            }
        }
        Ok(Box::new(ConstScorer::new(
            BitSetDocSet::from(documents),
            boost,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document {doc} is not in a matching series"
            )));
        }
        Ok(Explanation::new("a matching series", 1.0))
    }
}
