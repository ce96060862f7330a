//! Just enough HTTP/1.1 to ask a link-local metadata service a question.
//!
//! The agent talks HTTP to exactly one kind of peer: a cloud's instance metadata service,
//! which answers tiny plain-text bodies on a link-local address. A general HTTP client
//! (hyper, reqwest) would add more code to the image than everything else the agent does
//! with identity, so each request here is one `Connection: close` exchange on a fresh
//! `TcpStream`: write the request, read until the peer closes, parse the head with
//! `httparse`. Every step is bounded by the caller's deadline, because the worst metadata
//! service is not the one that refuses but the one that accepts and never answers.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// How long a TCP connect may take. A metadata service sits one hop away (often in the
/// hypervisor itself), so a connect that has not completed in this time will not.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Metadata answers are a few hundred bytes; anything this large is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Where the metadata service listens: `http://host[:port]`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses `http://host[:port]` (an optional trailing `/` is allowed). HTTPS, paths and
    /// credentials are refused: metadata services speak plain HTTP on a link-local address.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let Some(authority) = url.strip_prefix("http://") else {
            return Err(format!(
                "metadata_endpoint `{url}` must be an http:// URL such as http://169.254.169.254"
            ));
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "metadata_endpoint `{url}` must be http://host or http://host:port, without a path"
            ));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("metadata_endpoint `{url}` has a malformed host or port"))?;
        Ok(Endpoint {
            host: host.to_string(),
            port: port.unwrap_or(80),
        })
    }

    /// The value of the `Host` header.
    fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "http://{}", self.host_header())
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when malformed.
pub(crate) fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty() {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, port)) if !host.is_empty() => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
    }
}

/// A response as far as metadata lookups care: status, headers, body text.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The connect failed (refused, unreachable) or did not finish within
    /// [`CONNECT_TIMEOUT`].
    Connect(String),
    /// The deadline passed before the whole response arrived.
    DeadlinePassed,
    /// The peer answered something that is not a usable HTTP response.
    Malformed(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Connect(reason) => write!(formatter, "connecting: {reason}"),
            RequestError::DeadlinePassed => write!(formatter, "no answer before the deadline"),
            RequestError::Malformed(reason) => write!(formatter, "malformed response: {reason}"),
        }
    }
}

/// Sends one request (no body) and returns the response, or gives up at `deadline`.
pub async fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    deadline: Instant,
) -> Result<Response, RequestError> {
    debug_assert!(path.starts_with('/'), "request paths are absolute");
    let connect_budget = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
    let mut stream = match timeout(
        connect_budget,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(RequestError::Connect(error.to_string())),
        Err(_elapsed) => return Err(RequestError::Connect("timed out".to_string())),
    };

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: epitaph-agent/{}\r\nContent-Length: 0\r\n",
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let exchange = async {
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|error| RequestError::Malformed(format!("writing the request: {error}")))?;
        read_until_close(&mut stream).await
    };
    let raw = timeout_at(deadline, exchange)
        .await
        .map_err(|_elapsed| RequestError::DeadlinePassed)??;
    parse_response(&raw)
}

/// Reads until the peer closes (the request said `Connection: close`), up to the cap.
async fn read_until_close(stream: &mut TcpStream) -> Result<Vec<u8>, RequestError> {
    let mut raw = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|error| RequestError::Malformed(format!("reading the response: {error}")))?;
        if read == 0 {
            return Ok(raw);
        }
        if raw.len() + read > MAX_RESPONSE_BYTES {
            return Err(RequestError::Malformed(format!(
                "response larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        raw.extend_from_slice(&chunk[..read]);
    }
}

/// Parses a complete response (the connection is closed, so every byte is here).
fn parse_response(raw: &[u8]) -> Result<Response, RequestError> {
    let mut header_slots = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut header_slots);
    let head_length = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => {
            return Err(RequestError::Malformed(
                "connection closed inside the response head".to_string(),
            ));
        }
        Err(error) => return Err(RequestError::Malformed(error.to_string())),
    };
    let status = parsed
        .code
        .ok_or_else(|| RequestError::Malformed("no status code".to_string()))?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|header| {
            (
                header.name.to_string(),
                String::from_utf8_lossy(header.value).trim().to_string(),
            )
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };

    let rest = &raw[head_length..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| RequestError::Malformed(format!("content-length `{length}`")))?;
        if rest.len() < length {
            return Err(RequestError::Malformed(format!(
                "body cut short: {} of {length} bytes",
                rest.len()
            )));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    response.body = String::from_utf8(body)
        .map_err(|_| RequestError::Malformed("body is not UTF-8".to_string()))?;
    Ok(response)
}

/// Decodes a `Transfer-Encoding: chunked` body that is entirely in `raw`.
fn decode_chunked(mut raw: &[u8]) -> Result<Vec<u8>, RequestError> {
    let mut body = Vec::new();
    loop {
        let (size_line_length, size) = match httparse::parse_chunk_size(raw) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            _ => return Err(RequestError::Malformed("bad chunk size".to_string())),
        };
        raw = &raw[size_line_length..];
        if size == 0 {
            return Ok(body);
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|size| raw.len() >= size + 2)
            .ok_or_else(|| RequestError::Malformed("chunk cut short".to_string()))?;
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_host_and_port_forms() {
        let endpoint = Endpoint::parse("http://169.254.169.254").unwrap();
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port),
            ("169.254.169.254", 80)
        );
        assert_eq!(endpoint.host_header(), "169.254.169.254");
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 8080));
        assert_eq!(endpoint.host_header(), "127.0.0.1:8080");
        let endpoint = Endpoint::parse("http://[fd00:ec2::254]").unwrap();
        assert_eq!(endpoint.host, "fd00:ec2::254");
        let endpoint = Endpoint::parse("http://[::1]:9").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("::1", 9));
    }

    #[test]
    fn endpoint_rejects_what_a_metadata_service_is_not() {
        for bad in [
            "https://169.254.169.254",
            "169.254.169.254",
            "http://",
            "http://host/latest",
            "http://user@host",
            "http://host:notaport",
            "http://host:99999",
            "http://:80",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn response_with_content_length_is_cut_to_it() {
        let response =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "hello");
        assert_eq!(response.header("x-a"), Some("b"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello").is_err());
    }

    #[test]
    fn chunked_response_is_decoded() {
        let response = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(response.body, "hello world");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-"),
            Err(RequestError::Malformed(_))
        ));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
