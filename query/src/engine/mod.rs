//! The engine's filter half: a parsed [`Filter`] becomes a tantivy query over the log
//! schema, and the same filter tells which splits cannot hold a match.
//!
//! The engine looks the schema's fields up by the language's names (`service`, `body`,
//! `attrs`, ...), so it needs only a [`tantivy::schema::Schema`], never the server. How a
//! filter maps onto the index:
//!
//! - keyword fields (`service`, `level`, `source`, ...) match the whole value as one raw
//!   term; wildcards and regexes run over those raw terms;
//! - the body is tokenized with tantivy's `default` tokenizer (the one it is indexed
//!   with): one token is a term query, several a phrase (`10.0.0.7` is the phrase
//!   `10 0 0 7`); wildcards and regexes run over its tokens, case-insensitively, because
//!   the index holds them lowercased;
//! - `severity` and `timestamp` ranges use their fast columns (nanosecond precision);
//! - `attrs.<key>` terms match the key's tokens and, when the value reads as a number, the
//!   number; numeric comparisons run over the inverted index, because `attrs` has no fast
//!   column;
//! - `version:latest` / `version:previous` are resolved through a [`VersionResolver`]
//!   into `(service:S AND version:V) OR ...`.
//!
//! Every failure is a [`QueryError`] pointing at the part of the query that cannot run.
//!
//! [`required_identity`] and [`required_time_range`] are the pruning half: the identity
//! values and the time range a matching line must have, which a split's metadata can rule
//! out before the split is opened.

pub mod aggregate;
mod compile;
pub mod facets;
pub mod matcher;
pub mod patterns;
mod prune;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

pub use compile::{INTEGER_VALUE_FIELD, NANOS_PER_MILLI, compile_filter, time_range_query};
pub use prune::{RequiredIdentity, RequiredTimeRange, required_identity, required_time_range};

use crate::ast::VersionAlias;

/// Resolves `version:latest` / `version:previous` to concrete versions.
///
/// Implemented by whoever knows which versions exist (the server, from its split
/// metadata); the engine only combines the answer with the rest of the filter.
pub trait VersionResolver {
    /// The `(service, version)` pairs the alias stands for: for each service in
    /// `services` (every known service when `None`), its newest ([`VersionAlias::Latest`])
    /// or second-newest ([`VersionAlias::Previous`]) version by first seen. A service
    /// without such a version is left out.
    fn resolve(
        &self,
        alias: VersionAlias,
        services: Option<&BTreeSet<String>>,
    ) -> Vec<(String, String)>;
}

/// A resolver that knows no versions: every alias matches nothing. For callers that
/// have no version history (tests, tools over a single split).
pub struct NoVersions;

impl VersionResolver for NoVersions {
    fn resolve(&self, _: VersionAlias, _: Option<&BTreeSet<String>>) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What compiling a filter needs besides the filter.
pub struct EngineContext<'a> {
    pub schema: &'a tantivy::schema::Schema,
    pub versions: &'a dyn VersionResolver,
    /// The query's "now", for `now-15m`: nanoseconds since the Unix epoch.
    pub now_nanos: i64,
}
