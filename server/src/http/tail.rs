//! `GET /api/v1/tail?q=<filter>`: live lines that match a filter, as server-sent events.
//!
//! Fed by the [`TailHub`](crate::tail::TailHub) as records become durable, not by polling
//! the index. The stream speaks plain SSE:
//!
//! - `: tailing` as soon as the subscription exists (a client that has read it will see
//!   every line acknowledged from then on);
//! - one `data: {...}` event per matching line, shaped exactly like a search hit;
//! - `event: skipped` with `data: {"skipped_lines": N}` when this client fell so far
//!   behind that N ingested lines (matching or not) were dropped for it rather than
//!   slowing ingest down;
//! - a `: heartbeat` comment after [`HEARTBEAT_INTERVAL`] of silence, so proxies and load
//!   balancers keep an idle stream open.
//!
//! The filter is checked like a search's (a 400 with `position` and `expected`), pipe
//! stages are refused (a live stream has no end to aggregate up to), and
//! `version:latest` resolves once, against the splits as they are when the tail starts.
//! The stream ends when the server shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use epitaph_query::QueryError;
use epitaph_query::engine::EngineContext;
use epitaph_query::engine::matcher::Matcher;

use super::{ApiError, ApiState, ensure_ready, reject_unknown};
use crate::index::indexer::now_nanos;
use crate::index::search::{SplitVersions, hit_to_json};
use crate::tail::{Delivery, Subscription, TailHub};

/// Silence after which the stream sends a comment. Below the 60 s idle timeout that
/// nginx and most cloud load balancers default to.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

pub async fn tail_handler(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    reject_unknown(&params, &["q"])?;
    ensure_ready(&state)?;
    let text = params.get("q").map(String::as_str).unwrap_or_default();
    let parsed = epitaph_query::parse(text).map_err(ApiError::BadQuery)?;
    if let Some(first_stage) = parsed.stages.first() {
        return Err(ApiError::BadQuery(QueryError {
            span: first_stage.span().clone(),
            message: format!(
                "/api/v1/tail takes a filter only; `{}` and the other pipe stages need a finished time range and are answered by /api/v1/aggregate",
                first_stage.keyword()
            ),
            expected: Vec::new(),
        }));
    }
    let splits = state.catalog.snapshot();
    let versions = SplitVersions::from_splits(splits.iter().map(|split| &split.metadata));
    let context = EngineContext {
        schema: state.parser.schema(),
        versions: &versions,
        now_nanos: now_nanos(),
    };
    let matcher = Matcher::new(&parsed.filter, &context).map_err(ApiError::BadQuery)?;
    let stream = TailStream {
        subscription: state.tail.subscribe(),
        matcher: Arc::new(matcher),
        opened: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Tells nginx not to buffer the stream.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

struct TailStream {
    subscription: Subscription,
    matcher: Arc<Matcher>,
    opened: bool,
}

/// The next piece of the stream: the opening comment, matching lines, a skip notice or a
/// heartbeat. `None` (end of stream) at shutdown.
async fn next_chunk(mut stream: TailStream) -> Option<(Result<Bytes, Infallible>, TailStream)> {
    if !stream.opened {
        stream.opened = true;
        return Some((Ok(Bytes::from_static(b": tailing\n\n")), stream));
    }
    loop {
        let delivery =
            match tokio::time::timeout(HEARTBEAT_INTERVAL, stream.subscription.next()).await {
                Ok(Some(delivery)) => delivery,
                Ok(None) => return None,
                Err(_) => return Some((Ok(Bytes::from_static(b": heartbeat\n\n")), stream)),
            };
        // Building, matching and serializing up to a full queue of lines is CPU work:
        // done on the blocking pool, like searches, so it never stalls the runtime that
        // serves ingest.
        let hub = stream.subscription.hub().clone();
        let matcher = stream.matcher.clone();
        let chunk = tokio::task::spawn_blocking(move || render(&hub, &matcher, delivery))
            .await
            .unwrap_or_default();
        if !chunk.is_empty() {
            return Some((Ok(Bytes::from(chunk)), stream));
        }
    }
}

/// The events of one delivery: the skip notice first (those lines were older), then
/// every matching line in ingest order.
fn render(hub: &TailHub, matcher: &Matcher, delivery: Delivery) -> Vec<u8> {
    let mut chunk = Vec::new();
    if delivery.skipped_lines > 0 {
        chunk.extend_from_slice(b"event: skipped\ndata: ");
        let notice = serde_json::json!({ "skipped_lines": delivery.skipped_lines });
        chunk.extend_from_slice(notice.to_string().as_bytes());
        chunk.extend_from_slice(b"\n\n");
    }
    let now = now_nanos();
    for batch in &delivery.batches {
        for line in batch.lines(hub.schema()) {
            if !matcher.matches(&line.document, now) {
                continue;
            }
            let hit = hit_to_json(hub.schema(), &line.document, line.key);
            // Compact JSON has no raw newlines, so one `data:` line holds the whole hit.
            chunk.extend_from_slice(b"data: ");
            chunk.extend_from_slice(hit.to_string().as_bytes());
            chunk.extend_from_slice(b"\n\n");
        }
    }
    chunk
}
