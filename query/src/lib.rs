//! Epitaph's query language: one syntax for the UI, the CLI, the HTTP API and alert
//! rules.
//!
//! A query is a Lucene-like filter over log lines followed by optional pipe stages:
//!
//! ```text
//! service:web version:latest level:error "connection refused" -source:/.*health.*/
//!   | stats count(), p99(attrs.duration_ms) as p99 by version, generation
//! ```
//!
//! The language: [`parse`] turns text into a [`Query`] tree that carries everything the
//! engine needs to build tantivy queries and aggregation requests (resolved
//! [`FieldRef`]s, typed values, wildcard and regex patterns, aggregation functions,
//! durations) plus byte spans for error messages. Parsing does no I/O and depends on no
//! index; the field table ([`FIELDS`]) is what the server's schema agrees with.
//!
//! The engine ([`engine`]): compiles a filter into a tantivy query over any schema with
//! those field names, and derives from it what a split's metadata must contain for the
//! split to be worth opening (pruning). The server runs it over its splits.
//!
//! Every error is a [`QueryError`] with a span into the input and what was expected there;
//! no input makes the parser panic. `Display` on a [`Query`] prints a canonical form that
//! parses back to the same tree. The full syntax is in the crate's `README.md`.
//!
//! ```
//! use epitaph_query::{AggregateFunction, Filter, Stage, parse};
//!
//! let query = parse("service:web level:error | stats count() by version")?;
//! let Filter::And { operands, .. } = &query.filter else { panic!("two terms") };
//! assert_eq!(operands.len(), 2);
//! let Some(Stage::Stats { aggregations, by, .. }) = query.aggregation() else { panic!() };
//! assert_eq!(aggregations[0].function, AggregateFunction::Count);
//! assert_eq!(by[0].node.to_string(), "version");
//! assert_eq!(query.to_string(), "service:web level:error | stats count() by version");
//!
//! let error = parse("level:error | stats count() by |").unwrap_err();
//! assert_eq!(error.to_string(), r#"at 31: expected a field name after "by", found "|""#);
//! # Ok::<(), epitaph_query::QueryError>(())
//! ```

mod ast;
mod error;
mod fields;
mod lexer;
mod parser;

pub mod engine;

pub use ast::{
    AggregateFunction, Aggregation, Bound, Column, CompareOp, Filter, Query, SortKey, SortOrder,
    Spanned, Stage, TimePoint, TypedValue, Value, VersionAlias, WildcardPart, WildcardPattern,
};
pub use error::{QueryError, Span};
pub use fields::{
    ATTRIBUTE_PREFIX, FIELD_NAMES, FIELDS, FieldKind, FieldRef, FieldSpec, IdentityField,
};
pub use parser::{MAX_NESTING, parse};
