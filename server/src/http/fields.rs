//! `GET /api/v1/fields?q=<filter>&start=&end=&size=N`: the facets of a filter — for every
//! keyword field (`service`, `image`, `version`, `image_id`, `generation`, `instance`,
//! `host`, `env`, `region`, `zone`, `level`, `source`), its `size` most frequent values
//! among the matching lines with their exact counts:
//! `{"lines": N, "fields": [{"field": "service", "values": [{"value": "web", "count": 12}],
//! "other_count": 3}, ...], "splits_searched": N, "splits_skipped": M}`.
//! `size` defaults to 10 and is capped by `max_facet_values`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, ensure_ready, reject_unknown, time_range};
use crate::index::aggregate::{FacetsRequest, facets};

/// Values per field when the request does not say.
const DEFAULT_FACET_VALUES: usize = 10;

pub async fn fields_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["q", "start", "end", "size"])?;
    ensure_ready(&state)?;
    let (start_nanos, end_nanos) = time_range(&params)?;
    let size = match params.get("size") {
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("`size` must be a positive integer, got `{text}`"))
        })?,
        None => DEFAULT_FACET_VALUES.min(state.limits.max_facet_values),
    };
    let request = FacetsRequest {
        query: params.get("q").cloned().unwrap_or_default(),
        start_nanos,
        end_nanos,
        size,
    };
    let response = tokio::task::spawn_blocking(move || {
        facets(&state.catalog, &state.parser, &state.limits, &request)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("fields task failed: {e}")))??;
    Ok(Json(response).into_response())
}
