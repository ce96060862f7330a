//! `GET /api/v1/aggregate?q=<query>&start=&end=`: a query with one aggregating stage
//! (`stats`, `timechart`, `top`, then any `fields` / `sort` / `limit`) answered as a table:
//! `{"columns": [...], "rows": [[...], ...], "splits_searched": N, "splits_skipped": M}`,
//! plus `span_seconds` for a timechart. A `patterns` query answers the same table
//! (`[by,] pattern, count, example`) plus `lines_matched`, `lines_scanned`, `truncated`
//! and, when truncated, a `note` saying what was left out. Errors are those of
//! `/api/v1/search`: a bad query is a 400 with its position in `q`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, ensure_ready, reject_unknown, time_range};
use crate::index::aggregate::{AggregateRequest, aggregate, patterns};
use crate::index::metric_query::{metric_aggregate, required_metrics};

pub async fn aggregate_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["q", "start", "end"])?;
    ensure_ready(&state)?;
    let (start_nanos, end_nanos) = time_range(&params)?;
    let request = AggregateRequest {
        query: params.get("q").cloned().unwrap_or_default(),
        start_nanos,
        end_nanos,
    };
    if is_patterns_query(&request.query) {
        let response = tokio::task::spawn_blocking(move || {
            patterns(
                &state.catalog,
                &state.schema,
                &state.parser,
                &state.limits,
                &request,
            )
        })
        .await
        .map_err(|e| ApiError::Internal(format!("patterns task failed: {e}")))??;
        return Ok(Json(response).into_response());
    }
    let response = tokio::task::spawn_blocking(move || {
        // A filter that names a metric reads the metric splits.
        match epitaph_query::parse(&request.query) {
            Ok(parsed) if required_metrics(&parsed.filter).is_some() => metric_aggregate(
                &state.metric_catalog,
                &state.metric_parser,
                &state.limits,
                &parsed,
                &request,
            ),
            _ => aggregate(&state.catalog, &state.parser, &state.limits, &request),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("aggregate task failed: {e}")))??;
    Ok(Json(response).into_response())
}

/// Whether the query's aggregating stage is `patterns`, which reads messages rather than
/// columns and answers with how much it read. (A query that does not parse goes the
/// ordinary way, which reports the error.)
fn is_patterns_query(query: &str) -> bool {
    epitaph_query::parse(query).is_ok_and(|parsed| {
        matches!(
            parsed.aggregation(),
            Some(epitaph_query::Stage::Patterns { .. })
        )
    })
}
