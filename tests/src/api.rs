//! The server's HTTP JSON API as a test sees it: response types and a small client.
//!
//! The response types list every field the contract promises and deserialise strictly
//! (a missing field fails the test that reads it, with serde's message naming the
//! field); fields the server adds beyond the contract are ignored.

use std::time::Duration;

use serde::Deserialize;

/// One search hit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Hit {
    pub timestamp: String,
    pub timestamp_nanos: i64,
    pub observed_timestamp: String,
    pub service: String,
    pub image: String,
    pub version: String,
    pub image_id: String,
    pub generation: String,
    pub instance: String,
    pub host: String,
    pub env: String,
    pub region: String,
    pub zone: String,
    pub level: String,
    pub severity_text: String,
    pub severity: i64,
    pub body: String,
    pub source: String,
    pub scope: String,
    pub trace_id: String,
    pub span_id: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A page of search results.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    pub next_cursor: Option<String>,
    pub splits_searched: u64,
}

/// One instance of the registry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Instance {
    pub agent_id: String,
    pub state: String,
    pub service: String,
    pub image: String,
    pub version: String,
    pub generation: String,
    pub instance: String,
    pub host: String,
    pub agent_version: String,
    pub first_seen: String,
    pub last_seen: String,
    pub final_sequence: Option<u64>,
    pub stored_watermark: u64,
    pub record_complete: bool,
    pub lost_since: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InstancesResponse {
    instances: Vec<Instance>,
}

/// The largest search page the contract allows.
pub const MAX_SEARCH_LIMIT: usize = 10_000;

/// A raw HTTP answer: status and body text.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

impl HttpAnswer {
    /// The body as JSON, panicking with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("response body is not JSON ({error}): {:?}", self.body))
    }
}

/// A blocking HTTP client for one server's API. 4xx and 5xx answers are values, not
/// errors, so tests can assert on them.
#[derive(Clone)]
pub struct ApiClient {
    base_url: String,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(base_url: &str) -> ApiClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build();
        ApiClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// `GET path?params`; `Err` only when no HTTP answer came (connection refused, timeout).
    pub fn try_get(&self, path: &str, params: &[(&str, &str)]) -> Result<HttpAnswer, String> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.agent.get(&url);
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        let mut response = request
            .call()
            .map_err(|error| format!("GET {url}: {error}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|error| format!("reading the body of GET {url}: {error}"))?;
        Ok(HttpAnswer { status, body })
    }

    /// `GET path?params`, panicking when no HTTP answer came.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> HttpAnswer {
        self.try_get(path, params)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// One page of `/api/v1/search`, panicking unless the answer is 200 with the
    /// contract's JSON.
    pub fn search_page(&self, params: &[(&str, &str)]) -> SearchResponse {
        let answer = self.get("/api/v1/search", params);
        assert_eq!(
            answer.status, 200,
            "GET /api/v1/search {params:?} answered {}: {}",
            answer.status, answer.body
        );
        serde_json::from_str(&answer.body).unwrap_or_else(|error| {
            panic!(
                "GET /api/v1/search {params:?}: body does not match the contract ({error}): {}",
                shorten(&answer.body)
            )
        })
    }

    /// The newest (up to 10 000) hits of `query`.
    pub fn search(&self, query: &str) -> Vec<Hit> {
        let limit = MAX_SEARCH_LIMIT.to_string();
        self.search_page(&[("q", query), ("limit", &limit)]).hits
    }

    /// Every hit of `query`, following `next_cursor` page by page.
    pub fn search_all(&self, query: &str) -> Vec<Hit> {
        // Far more pages than any test stores lines; reaching it means a cursor loop.
        const MAX_PAGES: usize = 100;
        let limit = MAX_SEARCH_LIMIT.to_string();
        let mut hits = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = vec![("q", query), ("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                params.push(("cursor", cursor.as_str()));
            }
            let page = self.search_page(&params);
            let page_was_empty = page.hits.is_empty();
            hits.extend(page.hits);
            match page.next_cursor {
                Some(next) if !page_was_empty => cursor = Some(next),
                _ => return hits,
            }
        }
        panic!("search for {query:?} still had a next_cursor after {MAX_PAGES} pages");
    }

    /// `/api/v1/instances`.
    pub fn instances(&self) -> Vec<Instance> {
        let answer = self.get("/api/v1/instances", &[]);
        assert_eq!(
            answer.status, 200,
            "GET /api/v1/instances answered {}: {}",
            answer.status, answer.body
        );
        let response: InstancesResponse =
            serde_json::from_str(&answer.body).unwrap_or_else(|error| {
                panic!(
                    "GET /api/v1/instances: body does not match the contract ({error}): {}",
                    shorten(&answer.body)
                )
            });
        response.instances
    }
}

/// At most the first 2000 characters of a text, for failure messages.
pub fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 2000;
    if text.chars().count() <= MAX_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_CHARS).collect();
    format!("{head}... ({} bytes in all)", text.len())
}

/// One item of a server-sent-events stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    /// A `: text` comment line (the tail's `tailing` and `heartbeat`).
    Comment(String),
    /// An event: its `event:` name (empty for plain messages) and its `data:` lines joined
    /// with newlines.
    Event { name: String, data: String },
}

/// An open server-sent-events stream, read by a background thread so that a test waits
/// for items with a bound instead of blocking on the socket. The thread ends when the
/// server closes the stream (or dies); [`EventStream::next_within`] then says so.
pub struct EventStream {
    items: std::sync::mpsc::Receiver<SseItem>,
}

/// What waiting on an [`EventStream`] gave.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamWait {
    Item(SseItem),
    /// Nothing arrived in time; the stream is still open.
    Nothing,
    /// The server ended the stream.
    Ended,
}

impl EventStream {
    pub fn next_within(&self, timeout: Duration) -> StreamWait {
        match self.items.recv_timeout(timeout) {
            Ok(item) => StreamWait::Item(item),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => StreamWait::Nothing,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => StreamWait::Ended,
        }
    }
}

impl ApiClient {
    /// Opens `GET path?params` as a server-sent-events stream. A non-200 answer comes back
    /// as `Err` with its body, for tests of refused streams; no answer at all panics.
    pub fn open_events(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<EventStream, HttpAnswer> {
        use std::io::BufRead as _;

        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(20)))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let url = format!("{}{path}", self.base_url);
        let mut request = agent.get(&url);
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        let mut response = request
            .call()
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(HttpAnswer { status, body });
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let (sender, items) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut name = String::new();
            let mut data: Vec<String> = Vec::new();
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let item = if line.is_empty() {
                    if data.is_empty() {
                        continue;
                    }
                    SseItem::Event {
                        name: std::mem::take(&mut name),
                        data: std::mem::take(&mut data).join("\n"),
                    }
                } else if let Some(comment) = line.strip_prefix(':') {
                    SseItem::Comment(comment.trim_start().to_string())
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    continue;
                } else if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_string();
                    continue;
                } else {
                    continue;
                };
                if sender.send(item).is_err() {
                    break;
                }
            }
        });
        Ok(EventStream { items })
    }
}
