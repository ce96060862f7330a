//! `GET /api/v1/versions[?service=S]`: per service, its image versions newest first, each
//! with where its numbers come from:
//!
//! | field | source |
//! |---|---|
//! | `first_seen` | split metadata (`version_first_seen`, the earliest line over all splits) — what `version:latest` / `version:previous` order by |
//! | `alias` | `latest` / `previous` by that order, as the query language resolves them |
//! | `last_seen`, `lines`, `instances`, `generations` (each with `lines`, `instances`, `first_line`, `last_line`) | the index: a `stats count(), min(timestamp), max(timestamp), count_distinct(instance)` aggregation over every split, by version and by version and generation |
//! | `registry` (`instances`, `live`, `terminated`, `lost`) | the instance registry: agents that said hello with this service and version, by their state now |
//!
//! `instances` from the index counts the distinct `instance` values of the lines
//! (HyperLogLog: exact for small sets); `registry.instances` counts agents, which also
//! knows instances that have not logged yet and not those whose client is not an Epitaph
//! agent. Versions are ordered newest first by `first_seen`, ties by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use epitaph_query::VersionAlias;
use epitaph_query::engine::VersionResolver;
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, ApiState, ensure_ready, reject_unknown};
use crate::index::aggregate::{AggregateRequest, AggregateResponse, aggregate};
use crate::index::indexer::now_nanos;
use crate::index::search::{SearchError, SplitVersions, rfc3339};

#[derive(Debug, Serialize)]
pub struct VersionsResponse {
    pub services: Vec<ServiceVersions>,
}

#[derive(Debug, Serialize)]
pub struct ServiceVersions {
    pub service: String,
    /// Newest first.
    pub versions: Vec<VersionSummary>,
}

#[derive(Debug, Serialize, Default)]
pub struct VersionSummary {
    pub version: String,
    /// `"latest"`, `"previous"` or null.
    pub alias: Option<&'static str>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub lines: u64,
    pub instances: u64,
    pub generations: Vec<GenerationSummary>,
    pub registry: RegistryCounts,
}

#[derive(Debug, Serialize)]
pub struct GenerationSummary {
    pub generation: String,
    pub lines: u64,
    pub instances: u64,
    pub first_line: Option<String>,
    pub last_line: Option<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct RegistryCounts {
    pub instances: u64,
    pub live: u64,
    pub terminated: u64,
    pub lost: u64,
}

/// Per (service, version): lines, first and last line, distinct instances.
const PER_VERSION: &str = "| stats count() as lines, min(timestamp) as first_line, max(timestamp) as last_line, count_distinct(instance) as instances by service, version";
/// The same per generation of each version.
const PER_GENERATION: &str = "| stats count() as lines, min(timestamp) as first_line, max(timestamp) as last_line, count_distinct(instance) as instances by service, version, generation";

pub async fn versions_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["service"])?;
    ensure_ready(&state)?;
    let service = params.get("service").cloned();
    let response = tokio::task::spawn_blocking(move || versions(&state, service.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(format!("versions task failed: {e}")))??;
    Ok(Json(response).into_response())
}

fn versions(state: &ApiState, service: Option<&str>) -> Result<VersionsResponse, SearchError> {
    let filter = match service {
        Some(service) => format!("service:\"{}\"", escape_quoted(service)),
        None => "*".to_string(),
    };
    let run = |stages: &str| {
        aggregate(
            &state.catalog,
            &state.parser,
            &state.limits,
            &AggregateRequest {
                query: format!("{filter} {stages}"),
                start_nanos: None,
                end_nanos: None,
            },
        )
    };
    let per_version = run(PER_VERSION)?;
    let per_generation = run(PER_GENERATION)?;

    // service → version → summary, filled from the index first.
    let mut services: BTreeMap<String, BTreeMap<String, VersionSummary>> = BTreeMap::new();
    for row in rows(&per_version) {
        let summary = services
            .entry(text(&row["service"]))
            .or_default()
            .entry(text(&row["version"]))
            .or_default();
        summary.lines = row["lines"].as_u64().unwrap_or(0);
        summary.instances = row["instances"].as_u64().unwrap_or(0);
        summary.last_seen = row["last_line"].as_str().map(str::to_string);
        // Until split metadata says otherwise (splits from before it kept first-seen
        // times per version), the earliest line is the first seen.
        summary.first_seen = row["first_line"].as_str().map(str::to_string);
    }
    for row in rows(&per_generation) {
        let Some(summary) = services
            .get_mut(&text(&row["service"]))
            .and_then(|versions| versions.get_mut(&text(&row["version"])))
        else {
            continue;
        };
        summary.generations.push(GenerationSummary {
            generation: text(&row["generation"]),
            lines: row["lines"].as_u64().unwrap_or(0),
            instances: row["instances"].as_u64().unwrap_or(0),
            first_line: row["first_line"].as_str().map(str::to_string),
            last_line: row["last_line"].as_str().map(str::to_string),
        });
    }

    // First seen and the aliases from split metadata, as `version:latest` sees them.
    let splits = state.catalog.snapshot();
    let mut first_seen_nanos: BTreeMap<(String, String), i64> = BTreeMap::new();
    for split in &splits {
        for (service, version, seen) in split.metadata.first_seen() {
            let earliest = first_seen_nanos
                .entry((service.to_string(), version.to_string()))
                .or_insert(seen);
            *earliest = (*earliest).min(seen);
        }
    }
    let resolver = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    for (alias, name) in [
        (VersionAlias::Latest, "latest"),
        (VersionAlias::Previous, "previous"),
    ] {
        for (service, version) in resolver.resolve(alias, None) {
            if let Some(summary) = services
                .get_mut(&service)
                .and_then(|versions| versions.get_mut(&version))
            {
                summary.alias = Some(name);
            }
        }
    }

    // The registry's instances, by their state now.
    {
        let now = now_nanos();
        let registry = state.registry.read().expect("registry lock poisoned");
        for record in registry.instances() {
            let key = (
                record.resource_value(epitaph_proto::keys::SERVICE_NAME),
                record.resource_value(epitaph_proto::keys::IMAGE_VERSION),
            );
            if service.is_some_and(|wanted| wanted != key.0) {
                continue;
            }
            let summary = services
                .entry(key.0.to_string())
                .or_default()
                .entry(key.1.to_string())
                .or_default();
            let counts = &mut summary.registry;
            counts.instances += 1;
            match record.state(now, state.lost_after).name() {
                "live" => counts.live += 1,
                "terminated" => counts.terminated += 1,
                _ => counts.lost += 1,
            }
        }
    }

    let mut answer = Vec::with_capacity(services.len());
    for (service_name, versions) in services {
        let mut ordered: Vec<(Option<i64>, VersionSummary)> = Vec::with_capacity(versions.len());
        for (version, mut summary) in versions {
            let seen = first_seen_nanos
                .get(&(service_name.clone(), version.clone()))
                .copied();
            if let Some(seen) = seen {
                summary.first_seen = Some(rfc3339(seen));
            }
            summary.version = version;
            ordered.push((seen, summary));
        }
        // Newest first; versions the index has no line of (registered, silent) last.
        ordered.sort_by(|(a_seen, a), (b_seen, b)| {
            b_seen.cmp(a_seen).then_with(|| b.version.cmp(&a.version))
        });
        answer.push(ServiceVersions {
            service: service_name,
            versions: ordered.into_iter().map(|(_, summary)| summary).collect(),
        });
    }
    Ok(VersionsResponse { services: answer })
}

/// An aggregation's rows as objects keyed by column.
fn rows(response: &AggregateResponse) -> Vec<serde_json::Map<String, Value>> {
    response
        .rows
        .iter()
        .map(|row| {
            response
                .columns
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .collect()
        })
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_string()
}

/// `text` inside a quoted query value: backslashes and quotes escaped.
fn escape_quoted(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '\\' | '"') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_service_names_parse_back_to_themselves() {
        for name in ["web", "my \"odd\" service", "back\\slash", "a b:c"] {
            let query = format!("service:\"{}\"", escape_quoted(name));
            let parsed = epitaph_query::parse(&query).unwrap();
            let epitaph_query::Filter::Term { value, .. } = parsed.filter else {
                panic!("{query} is not a term");
            };
            assert_eq!(value.text, name, "{query}");
        }
    }
}
