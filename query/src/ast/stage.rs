//! The pipe half of a query: what to compute from the matching lines.
//!
//! A query has at most one aggregating stage (`stats`, `timechart`, `top`, `patterns`)
//! and it comes first, right after the filter, because it runs over the matching lines
//! (as one tantivy aggregation request, or the engine's pattern miner). `fields`, `sort`
//! and `limit` shape what comes out: lines when there is no aggregation, the aggregation's
//! table otherwise. `timechart` is a time series and ends the query. The parser enforces
//! this and checks every column a stage names against what the stage before it produces.

use std::time::Duration;

use crate::ast::Spanned;
use crate::error::Span;
use crate::fields::FieldRef;

/// One `| stage`.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `stats count(), p99(value) as p99 by version, generation`: one row per group.
    Stats {
        aggregations: Vec<Aggregation>,
        by: Vec<Spanned<FieldRef>>,
        span: Span,
    },
    /// `timechart span=1m count() by level`: one row per time bucket and series.
    Timechart {
        /// The bucket width (`span=` in the query; renamed so as not to be confused with
        /// byte spans). Always positive.
        bucket: Duration,
        aggregations: Vec<Aggregation>,
        by: Option<Spanned<FieldRef>>,
        span: Span,
    },
    /// `top 10 version`: the most frequent values with their counts (columns: the
    /// field and `count`). `n >= 1`.
    Top {
        n: u64,
        field: Spanned<FieldRef>,
        span: Span,
    },
    /// `fields service, body`: keep only these columns, in this order.
    Fields {
        columns: Vec<Spanned<Column>>,
        span: Span,
    },
    /// `sort by count desc, version`: order rows; ascending unless `desc`.
    Sort { keys: Vec<SortKey>, span: Span },
    /// `limit 20`: at most this many rows. `n >= 1`.
    Limit { n: u64, span: Span },
    /// `patterns [unique] [by field]`: group lines by message template (columns: the
    /// `by` field if any, `pattern`, `count`, `example`). `unique` (which needs `by`)
    /// keeps only the patterns seen under exactly one value of the `by` field: with
    /// `version:(a OR b) | patterns unique by version`, what one version logs and the
    /// other never did.
    Patterns {
        by: Option<Spanned<FieldRef>>,
        unique: bool,
        span: Span,
    },
}

impl Stage {
    /// The stage's keyword, as the canonical form writes it.
    pub fn keyword(&self) -> &'static str {
        match self {
            Stage::Stats { .. } => "stats",
            Stage::Timechart { .. } => "timechart",
            Stage::Top { .. } => "top",
            Stage::Fields { .. } => "fields",
            Stage::Sort { .. } => "sort",
            Stage::Limit { .. } => "limit",
            Stage::Patterns { .. } => "patterns",
        }
    }

    /// Whether the stage turns lines into an aggregate (a table or a time series).
    pub fn is_aggregation(&self) -> bool {
        matches!(
            self,
            Stage::Stats { .. }
                | Stage::Timechart { .. }
                | Stage::Top { .. }
                | Stage::Patterns { .. }
        )
    }

    /// The bytes from the stage keyword to the stage's last token.
    pub fn span(&self) -> &Span {
        match self {
            Stage::Stats { span, .. }
            | Stage::Timechart { span, .. }
            | Stage::Top { span, .. }
            | Stage::Fields { span, .. }
            | Stage::Sort { span, .. }
            | Stage::Limit { span, .. }
            | Stage::Patterns { span, .. } => span,
        }
    }
}

/// `fn(field) [as name]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub function: AggregateFunction,
    /// `None` only for `count()` and `rate()`, which count lines.
    pub field: Option<Spanned<FieldRef>>,
    pub alias: Option<Spanned<String>>,
    pub span: Span,
}

impl Aggregation {
    /// The column this aggregation fills: its alias, else `count` / `rate` for the
    /// field-less forms, else `fn(field)` as in `p99(value)`.
    pub fn output_name(&self) -> String {
        if let Some(alias) = &self.alias {
            return alias.node.clone();
        }
        default_output_name(self.function, self.field.as_ref().map(|field| &field.node))
    }
}

/// The column name of an aggregation without an alias.
pub(crate) fn default_output_name(function: AggregateFunction, field: Option<&FieldRef>) -> String {
    match field {
        None => function.name().to_string(),
        Some(field) => format!("{}({field})", function.name()),
    }
}

/// The functions `stats` and `timechart` compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunction {
    /// `count()` counts lines; `count(field)` counts lines that have the field.
    Count,
    Sum,
    Avg,
    Min,
    Max,
    P50,
    P90,
    P95,
    P99,
    /// Distinct values of the field (approximate in the engine, as tantivy's
    /// cardinality aggregation is).
    CountDistinct,
    /// `rate()` is lines per second; `rate(field)` the field's sum per second, over the
    /// query's time range (or each timechart bucket).
    Rate,
    /// `increase()`: how much a counter grew (metrics only; counter resets are
    /// followed), the total of `rate()` without dividing by time.
    Increase,
}

impl AggregateFunction {
    pub const ALL: [AggregateFunction; 12] = [
        AggregateFunction::Count,
        AggregateFunction::Sum,
        AggregateFunction::Avg,
        AggregateFunction::Min,
        AggregateFunction::Max,
        AggregateFunction::P50,
        AggregateFunction::P90,
        AggregateFunction::P95,
        AggregateFunction::P99,
        AggregateFunction::CountDistinct,
        AggregateFunction::Rate,
        AggregateFunction::Increase,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Avg => "avg",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::P50 => "p50",
            AggregateFunction::P90 => "p90",
            AggregateFunction::P95 => "p95",
            AggregateFunction::P99 => "p99",
            AggregateFunction::CountDistinct => "count_distinct",
            AggregateFunction::Rate => "rate",
            AggregateFunction::Increase => "increase",
        }
    }

    /// Case-insensitive, as all stage keywords are.
    pub fn from_name(name: &str) -> Option<AggregateFunction> {
        AggregateFunction::ALL
            .into_iter()
            .find(|function| function.name().eq_ignore_ascii_case(name))
    }

    /// The percentile a `p*` function computes, as tantivy's percentiles aggregation
    /// takes it.
    pub fn percentile(self) -> Option<f64> {
        match self {
            AggregateFunction::P50 => Some(50.0),
            AggregateFunction::P90 => Some(90.0),
            AggregateFunction::P95 => Some(95.0),
            AggregateFunction::P99 => Some(99.0),
            _ => None,
        }
    }

    /// Whether the function needs a field (all but `count`, `rate` and `increase`).
    pub fn requires_field(self) -> bool {
        !matches!(
            self,
            AggregateFunction::Count | AggregateFunction::Rate | AggregateFunction::Increase
        )
    }
}

/// A column a `fields` or `sort` stage names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Column {
    /// A field of the lines, or a group-by field of the aggregation before.
    Field(FieldRef),
    /// A column the aggregation before made: an aggregation's output name (`count`,
    /// `p99(value)`, an alias), or `count` / `pattern` / `example` from `top` and
    /// `patterns`.
    Output(String),
}

impl Column {
    /// The column's name as a query writes it.
    pub fn name(&self) -> String {
        match self {
            Column::Field(field) => field.to_string(),
            Column::Output(name) => name.clone(),
        }
    }
}

/// One key of a `sort` stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub column: Column,
    pub order: SortOrder,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    Ascending,
    Descending,
}
