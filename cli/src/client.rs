//! The server's HTTP API over a small blocking client.
//!
//! Every answer that is not a 200 becomes an [`ApiError`] carrying what the server said,
//! including, for a bad query, where in the query it went wrong — so the command can point
//! at it. Failing to reach the server at all is its own error, because the fix (start the
//! server, set `--server`) is different.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

/// Talks to one server.
pub struct Client {
    base_url: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// The agent for streams: no overall deadline, since a tail runs until stopped.
    stream_agent: ureq::Agent,
}

/// Why a call failed.
#[derive(Debug)]
pub enum ApiError {
    /// No HTTP answer: refused, unresolvable, timed out.
    Unreachable { url: String, reason: String },
    /// The server answered with an error status.
    Refused {
        status: u16,
        message: String,
        /// For a bad query: the byte range of the query the error is about. (What was
        /// expected there is already in the message.)
        position: Option<(usize, usize)>,
    },
    /// A 200 whose body is not what the API documents.
    Malformed { url: String, reason: String },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable { url, reason } => write!(
                formatter,
                "cannot reach the Epitaph server at {url}: {reason} (is it running? set --server or EPITAPH_SERVER)"
            ),
            ApiError::Refused {
                status, message, ..
            } => write!(formatter, "the server answered {status}: {message}"),
            ApiError::Malformed { url, reason } => {
                write!(formatter, "unexpected answer from {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let base_url = base_url.trim_end_matches('/').to_string();
        if base_url.starts_with("https://") {
            anyhow::bail!(
                "{base_url}: this build of epitaph speaks plain HTTP only, as the server's HTTP API does; \
                 reach a remote server through an SSH tunnel or a TLS-terminating proxy's plain side"
            );
        }
        if !base_url.starts_with("http://") {
            anyhow::bail!("{base_url}: the server URL must start with http://");
        }
        let agent = |timeout: Option<Duration>| {
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_global(timeout)
                .build();
            ureq::Agent::new_with_config(config)
        };
        Ok(Client {
            base_url,
            token,
            // The server bounds every query by its own time limit; this only catches a
            // server that stopped answering.
            agent: agent(Some(Duration::from_secs(300))),
            stream_agent: agent(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn request(
        &self,
        agent: &ureq::Agent,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        let url = self.url(path);
        let mut request = agent.get(&url);
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|error| ApiError::Unreachable {
            url: self.base_url.clone(),
            reason: error.to_string(),
        })?;
        if response.status().as_u16() == 200 {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Err(refusal(status, &body))
    }

    /// `GET path?params` and its JSON body.
    pub fn get_json(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        let mut response = self.request(&self.agent, path, params)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|error| ApiError::Malformed {
                url: self.url(path),
                reason: format!("reading the body: {error}"),
            })?;
        serde_json::from_str(&body).map_err(|error| ApiError::Malformed {
            url: self.url(path),
            reason: format!("the body is not JSON: {error}"),
        })
    }

    /// `GET path?params` as a stream read as it arrives.
    pub fn open_stream(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<impl Read + use<>, ApiError> {
        let response = self.request(&self.stream_agent, path, params)?;
        Ok(response.into_body().into_reader())
    }
}

/// An error answer: the API's `{"error", "position", "expected"}`, or whatever text came.
fn refusal(status: u16, body: &str) -> ApiError {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return ApiError::Refused {
            status,
            message: body.trim().to_string(),
            position: None,
        };
    };
    let message = json["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| json.to_string());
    let position = match (
        json["position"]["start"].as_u64(),
        json["position"]["end"].as_u64(),
    ) {
        (Some(start), Some(end)) => Some((start as usize, end as usize)),
        _ => None,
    };
    ApiError::Refused {
        status,
        message,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_keep_their_position() {
        let error = refusal(
            400,
            r#"{"error":"at 4: expected a value","position":{"start":4,"end":5},"expected":["a value"]}"#,
        );
        let ApiError::Refused {
            status,
            message,
            position,
        } = error
        else {
            panic!("{error:?}")
        };
        assert_eq!((status, position), (400, Some((4, 5))));
        assert_eq!(message, "at 4: expected a value");
    }

    #[test]
    fn a_body_that_is_not_json_is_shown_as_is() {
        let error = refusal(502, "Bad Gateway\n");
        assert_eq!(error.to_string(), "the server answered 502: Bad Gateway");
    }
}
