//! `GET /api/v1/context?cursor=<hit cursor>&before=N&after=N`: the lines logged around one
//! search hit by the same instance to the same source (file, stream), oldest first:
//! `{"before": [...], "hit": {...}, "after": [...], "splits_searched": N, "splits_skipped": M}`.
//! Each hit of `/api/v1/search` carries its own `cursor`; `before` and `after` default to
//! 10 and are capped by `max_context_lines`. A cursor whose line is gone is a 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, ensure_ready, reject_unknown};
use crate::index::search::{ContextRequest, Cursor, context};

/// Lines on each side when the request does not say.
const DEFAULT_CONTEXT_LINES: usize = 10;

pub async fn context_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["cursor", "before", "after"])?;
    ensure_ready(&state)?;
    let Some(cursor) = params.get("cursor") else {
        return Err(ApiError::BadRequest(
            "`cursor` is required: the `cursor` of a search hit".into(),
        ));
    };
    let count = |name: &str| match params.get(name) {
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be a whole number of lines, got `{text}`"
            ))
        }),
        None => Ok(DEFAULT_CONTEXT_LINES.min(state.limits.max_context_lines)),
    };
    let request = ContextRequest {
        hit: Cursor::decode(cursor)?,
        before: count("before")?,
        after: count("after")?,
    };
    let response = tokio::task::spawn_blocking(move || {
        context(&state.catalog, &state.schema, &state.limits, &request)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("context task failed: {e}")))??;
    Ok(Json(response).into_response())
}
