//! The HTTP JSON API (axum), versioned under `/api/v1/`.
//!
//! Every handler answers JSON; bad parameters get a 400 whose `error` says which
//! parameter is wrong and why. A bad query (`q`) also gets `position`, the byte range of
//! `q` the error is about, and `expected`, what would have been accepted there:
//! `{"error": "at 8: ...", "position": {"start": 8, "end": 12}, "expected": [...]}`.
//! Searches run on the blocking pool, so a slow query never stalls the runtime that
//! serves ingest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::index::catalog::SplitCatalog;
use crate::index::indexer::now_nanos;
use crate::index::schema::LogSchema;
use crate::index::search::{
    Cursor, LogQueryParser, SearchError, SearchLimits, SearchRequest, rfc3339, search,
};
use crate::registry::{InstanceRegistry, InstanceState};
use crate::wal::WalSegments;

mod aggregate;
mod context;
mod fields;
mod tail;
mod versions;

pub struct ApiState {
    pub catalog: Arc<SplitCatalog>,
    /// The metric splits, and the parser that compiles filters over their schema.
    pub metric_catalog: Arc<SplitCatalog>,
    pub metric_parser: LogQueryParser,
    pub schema: LogSchema,
    pub parser: LogQueryParser,
    pub registry: Arc<RwLock<InstanceRegistry>>,
    pub ready: AtomicBool,
    pub lost_after: Duration,
    pub wal: RwLock<Option<WalSegments>>,
    /// Per-query time limit, result caps and search threads.
    pub limits: SearchLimits,
    /// Live lines for `/api/v1/tail`.
    pub tail: Arc<crate::tail::TailHub>,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/api/v1/search", get(search_handler))
        .route("/api/v1/aggregate", get(aggregate::aggregate_handler))
        .route("/api/v1/context", get(context::context_handler))
        .route("/api/v1/fields", get(fields::fields_handler))
        .route("/api/v1/versions", get(versions::versions_handler))
        .route("/api/v1/openapi.json", get(openapi_handler))
        .route("/api/v1/tail", get(tail::tail_handler))
        .route("/api/v1/instances", get(instances_handler))
        .route("/api/v1/stats", get(stats_handler))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

pub enum ApiError {
    BadRequest(String),
    /// A query that cannot be parsed or run: the 400 also carries where in `q`.
    BadQuery(epitaph_query::QueryError),
    NotFound(String),
    Unavailable(String),
    /// The query ran past its time limit: a 503 whose `limit` names the setting.
    QueryTimeLimit(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadQuery(error) => {
                let body = json!({
                    "error": error.to_string(),
                    "position": { "start": error.span.start, "end": error.span.end },
                    "expected": error.expected,
                });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ApiError::QueryTimeLimit(message) => {
                let body = json!({ "error": message, "limit": "query_time_limit" });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::BadRequest(m) => ApiError::BadRequest(m),
            SearchError::Query(error) => ApiError::BadQuery(error),
            SearchError::NotFound(m) => ApiError::NotFound(m),
            SearchError::TimeLimit(m) => ApiError::QueryTimeLimit(m),
            SearchError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// The OpenAPI 3 document of every route above, written by hand next to the handlers;
/// a test checks that it lists every route of [`router`] and nothing else.
const OPENAPI_DOCUMENT: &str = include_str!("openapi.json");

async fn openapi_handler() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
        .into_response()
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::Unavailable("recovering the write-ahead log".into()).into_response()
    }
}

fn ensure_ready(state: &ApiState) -> Result<(), ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(ApiError::Unavailable(
            "recovering the write-ahead log; retry shortly".into(),
        ))
    }
}

fn reject_unknown(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    for name in params.keys() {
        if !known.contains(&name.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter `{name}`; expected one of {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// The `start` and `end` parameters, each optional, checked to be in order.
pub fn time_range(
    params: &HashMap<String, String>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let start = params
        .get("start")
        .map(|t| parse_time("start", t))
        .transpose()?;
    let end = params
        .get("end")
        .map(|t| parse_time("end", t))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(ApiError::BadRequest("`start` is after `end`".into()));
    }
    Ok((start, end))
}

/// Parses a time as RFC 3339 (`2026-11-26T10:00:00Z`) or integer Unix milliseconds.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(millis) = text.parse::<i64>() {
        return millis
            .checked_mul(1_000_000)
            .ok_or_else(|| ApiError::BadRequest(format!("`{name}` is out of range")));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time (e.g. 2026-11-26T10:00:00Z) or Unix milliseconds, got `{text}`"
            ))
        })
}

async fn search_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["q", "start", "end", "limit", "cursor"])?;
    ensure_ready(&state)?;
    let limit = match params.get("limit") {
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("`limit` must be a positive integer, got `{text}`"))
        })?,
        None => 100,
    };
    let (start_nanos, end_nanos) = time_range(&params)?;
    let request = SearchRequest {
        query: params.get("q").cloned().unwrap_or_default(),
        start_nanos,
        end_nanos,
        limit,
        cursor: params
            .get("cursor")
            .map(|c| Cursor::decode(c))
            .transpose()?,
    };
    let response = tokio::task::spawn_blocking(move || {
        search(
            &state.catalog,
            &state.schema,
            &state.parser,
            &state.limits,
            &request,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("search task failed: {e}")))??;
    Ok(Json(response).into_response())
}

async fn instances_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["state"])?;
    ensure_ready(&state)?;
    let wanted_state = params.get("state").map(String::as_str);
    if let Some(wanted) = wanted_state
        && !["live", "terminated", "lost"].contains(&wanted)
    {
        return Err(ApiError::BadRequest(format!(
            "`state` must be live, terminated or lost, got `{wanted}`"
        )));
    }
    let now = now_nanos();
    let registry = state.registry.read().expect("registry lock poisoned");
    let mut instances = Vec::new();
    for record in registry.instances() {
        let instance_state = record.state(now, state.lost_after);
        if wanted_state.is_some_and(|w| w != instance_state.name()) {
            continue;
        }
        let (record_complete, lost_since) = match instance_state {
            InstanceState::Terminated { record_complete } => (record_complete, None),
            InstanceState::Lost { since_nanos } => (false, Some(rfc3339(since_nanos))),
            InstanceState::Live => (false, None),
        };
        instances.push(json!({
            "agent_id": record.agent_id,
            "state": instance_state.name(),
            "service": record.resource_value(epitaph_proto::keys::SERVICE_NAME),
            "image": record.resource_value(epitaph_proto::keys::IMAGE_NAME),
            "version": record.resource_value(epitaph_proto::keys::IMAGE_VERSION),
            "generation": record.resource_value(epitaph_proto::keys::GENERATION),
            "instance": record.host_id(),
            "host": record.resource_value(epitaph_proto::keys::HOST_NAME),
            "agent_version": record.agent_version,
            "first_seen": rfc3339(record.first_seen_nanos),
            "last_seen": rfc3339(record.last_seen_nanos),
            "final_sequence": record.goodbye.as_ref().map(|g| g.final_sequence),
            "unsent_records": record.goodbye.as_ref().map(|g| g.unsent_records),
            "last_sequence": record.last_sequence,
            "stored_watermark": record.stored_watermark,
            "record_complete": record_complete,
            "lost_since": lost_since,
            "records_lost": record.records_lost,
            "losses": record.losses.iter().map(|loss| json!({
                "records": loss.records,
                "from": rfc3339(loss.first_observed_nanos),
                "to": rfc3339(loss.last_observed_nanos),
                "reason": loss.reason,
                "reported_at": rfc3339(loss.reported_at_nanos),
            })).collect::<Vec<_>>(),
            "resource": record.resource,
        }));
    }
    Ok(Json(json!({ "instances": instances })).into_response())
}

async fn stats_handler(State(state): State<Arc<ApiState>>) -> Response {
    let totals = state.catalog.totals();
    let metric_totals = state.metric_catalog.totals();
    let wal_bytes = state
        .wal
        .read()
        .expect("wal lock poisoned")
        .as_ref()
        .map(|w| w.disk_bytes())
        .unwrap_or(0);
    Json(json!({
        "ready": state.ready.load(Ordering::Acquire),
        "splits": totals.splits,
        "sealed_splits": totals.sealed_splits,
        "documents": totals.documents,
        "raw_bytes": totals.raw_bytes,
        "wal_bytes": wal_bytes,
        "metrics": {
            "splits": metric_totals.splits,
            "sealed_splits": metric_totals.sealed_splits,
            "points": metric_totals.documents,
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::OPENAPI_DOCUMENT;

    /// The paths of every `.route("...")` in this file's router.
    fn routed_paths() -> BTreeSet<String> {
        let source = include_str!("mod.rs");
        let router = &source[source.find("pub fn router").expect("router is here")..];
        let router = &router[..router
            .find(".fallback(")
            .expect("router ends in a fallback")];
        router
            .split(".route(\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').expect("closing quote")].to_string())
            .collect()
    }

    #[test]
    fn openapi_documents_every_route_and_only_those() {
        let document: serde_json::Value =
            serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is JSON");
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let documented: BTreeSet<String> = document["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        let routed = routed_paths();
        assert!(routed.len() >= 10, "{routed:?}");
        assert_eq!(documented, routed, "openapi.json and the router disagree");
        for (path, item) in document["paths"].as_object().unwrap() {
            let get = &item["get"];
            assert!(get["summary"].is_string(), "{path} has no summary");
            assert!(get["responses"]["200"].is_object(), "{path} has no 200");
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI_DOCUMENT).unwrap();
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {reference}"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{reference} does not resolve"
            );
        }
    }

    fn collect_references(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    if key == "$ref" {
                        into.push(inner.as_str().unwrap().to_string());
                    } else {
                        collect_references(inner, into);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|item| collect_references(item, into))
            }
            _ => {}
        }
    }
}
