//! The parsed form of a query, shaped for the engine: everything needed to build tantivy
//! queries and aggregation requests, with byte spans for the errors the engine reports
//! later (an unknown service behind `version:latest`, a result cap hit by a stage).
//!
//! `Display` prints a canonical form that parses back to the same tree (spans aside), so
//! it can be stored in alert rules, shown back to users and used as a cache key.

mod display;
mod filter;
mod stage;

pub use filter::{
    Bound, CompareOp, Filter, TimePoint, TypedValue, Value, VersionAlias, WildcardPart,
    WildcardPattern,
};
pub use stage::{AggregateFunction, Aggregation, Column, SortKey, SortOrder, Stage};

pub(crate) use stage::default_output_name;

use crate::error::Span;

/// A parsed query: `FILTER [| STAGE]...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// [`Filter::All`] when the query has no filter.
    pub filter: Filter,
    pub stages: Vec<Stage>,
    /// The query text without leading and trailing whitespace.
    pub span: Span,
}

impl Query {
    /// The aggregating stage, if any (always the first stage when present).
    pub fn aggregation(&self) -> Option<&Stage> {
        self.stages.first().filter(|stage| stage.is_aggregation())
    }

    /// The same query with every span set to `0..0`, for comparing queries by meaning.
    pub fn with_spans_cleared(mut self) -> Query {
        self.span = 0..0;
        clear_filter_spans(&mut self.filter);
        for stage in &mut self.stages {
            clear_stage_spans(stage);
        }
        self
    }
}

/// A syntax node with the bytes it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Spanned<T> {
        Spanned { node, span }
    }
}

fn clear_filter_spans(filter: &mut Filter) {
    *filter.span_mut() = 0..0;
    match filter {
        Filter::Term { value, .. } | Filter::Compare { value, .. } => value.span = 0..0,
        Filter::Range { lower, upper, .. } => {
            for bound in [lower, upper] {
                if let Bound::Included(value) | Bound::Excluded(value) = bound {
                    value.span = 0..0;
                }
            }
        }
        Filter::And { operands, .. } | Filter::Or { operands, .. } => {
            for operand in operands {
                clear_filter_spans(operand);
            }
        }
        Filter::Not { operand, .. } => clear_filter_spans(operand),
        Filter::All { .. }
        | Filter::Phrase { .. }
        | Filter::Wildcard { .. }
        | Filter::Regex { .. }
        | Filter::Exists { .. }
        | Filter::VersionAlias { .. } => {}
    }
}

fn clear_stage_spans(stage: &mut Stage) {
    match stage {
        Stage::Stats {
            aggregations,
            by,
            span,
        } => {
            *span = 0..0;
            clear_aggregation_spans(aggregations);
            for field in by {
                field.span = 0..0;
            }
        }
        Stage::Timechart {
            aggregations,
            by,
            span,
            ..
        } => {
            *span = 0..0;
            clear_aggregation_spans(aggregations);
            if let Some(field) = by {
                field.span = 0..0;
            }
        }
        Stage::Top { field, span, .. } => {
            *span = 0..0;
            field.span = 0..0;
        }
        Stage::Fields { columns, span } => {
            *span = 0..0;
            for column in columns {
                column.span = 0..0;
            }
        }
        Stage::Sort { keys, span } => {
            *span = 0..0;
            for key in keys {
                key.span = 0..0;
            }
        }
        Stage::Limit { span, .. } => *span = 0..0,
        Stage::Patterns { by, span, .. } => {
            *span = 0..0;
            if let Some(field) = by {
                field.span = 0..0;
            }
        }
    }
}

fn clear_aggregation_spans(aggregations: &mut [Aggregation]) {
    for aggregation in aggregations {
        aggregation.span = 0..0;
        if let Some(field) = &mut aggregation.field {
            field.span = 0..0;
        }
        if let Some(alias) = &mut aggregation.alias {
            alias.span = 0..0;
        }
    }
}
