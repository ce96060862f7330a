//! One OTLP `Export` call whose message is already encoded and compressed: the log
//! batches of the spool, and the host metrics' intervals.
//!
//! A spooled batch is a zstd-compressed `ExportLogsServiceRequest` (see
//! [`crate::spool::format`]). tonic's client would take a request *message*, encode it
//! and compress it again; its codec sees only the uncompressed side, and it sets the
//! frame's compressed flag itself. So this module makes the call on the tonic
//! [`Channel`] directly: an HTTP/2 POST with the gRPC headers tonic would send
//! (`te: trailers`, `content-type: application/grpc`, `grpc-encoding: zstd`,
//! `grpc-timeout`) and the batch's frame as the body, as it is. The answer is read with
//! tonic's own [`Streaming`], so status codes, trailers and transport errors come back as
//! the same [`Status`] values a generated client returns, and the retry rules in
//! [`super`] apply unchanged.

use std::marker::PhantomData;
use std::time::Duration;

use epitaph_proto::collector::logs::v1::ExportLogsServiceResponse;
use http_body_util::Full;
use prost::Message;
use prost::bytes::Bytes;
use tonic::Status;
use tonic::codec::{CompressionEncoding, DecodeBuf, Decoder, Streaming};
use tonic::codegen::Service;
use tonic::codegen::http::{self, HeaderMap, HeaderName, HeaderValue, header};
use tonic::transport::Channel;

/// The gRPC path of OTLP's `LogsService/Export`.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
/// The gRPC path of OTLP's `MetricsService/Export`.
pub const METRICS_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Sends `frame` (a gRPC message frame holding a zstd-compressed
/// `ExportLogsServiceRequest`) with `headers` added (authorization, batch id) and waits
/// for the answer, at most `timeout`.
pub async fn export_compressed_frame(
    channel: &mut Channel,
    frame: Bytes,
    headers: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<ExportLogsServiceResponse, Status> {
    call_with_compressed_frame(channel, EXPORT_PATH, frame, headers, timeout).await
}

/// Sends `frame` (a gRPC message frame holding a zstd-compressed request) to the unary
/// method at `path` and decodes its answer as `R`.
pub async fn call_with_compressed_frame<R: Message + Default + Send + 'static>(
    channel: &mut Channel,
    path: &'static str,
    frame: Bytes,
    headers: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<R, Status> {
    let mut request = http::Request::new(tonic::body::Body::new(Full::new(frame)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    *request.version_mut() = http::Version::HTTP_2;
    let request_headers = request.headers_mut();
    request_headers.insert(header::TE, HeaderValue::from_static("trailers"));
    request_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    request_headers.insert("grpc-encoding", HeaderValue::from_static("zstd"));
    request_headers.insert(
        "grpc-accept-encoding",
        HeaderValue::from_static("zstd,gzip"),
    );
    request_headers.insert("grpc-timeout", grpc_timeout(timeout));
    for (name, value) in headers {
        request_headers.insert(name.clone(), value.clone());
    }

    std::future::poll_fn(|context| channel.poll_ready(context))
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    let response = channel
        .call(request)
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    read_response(response).await
}

/// What tonic's client does with a unary answer: a trailers-only status ends the call; else
/// one message, then the status in the trailers.
async fn read_response<R: Message + Default + Send + 'static>(
    response: http::Response<tonic::body::Body>,
) -> Result<R, Status> {
    let trailers_only_status = Status::from_header_map(response.headers());
    if let Some(status) = trailers_only_status {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
        return Err(Status::internal("missing response message"));
    }
    let encoding = response_encoding(response.headers())?;
    let status_code = response.status();
    let mut body = Streaming::new_response(
        ResponseDecoder::<R>(PhantomData),
        response.into_body(),
        status_code,
        encoding,
        None,
    );
    let message = body
        .message()
        .await?
        .ok_or_else(|| Status::internal("missing response message"))?;
    // A non-OK status in the trailers turns an answer into an error.
    body.trailers().await?;
    Ok(message)
}

/// The answer's `grpc-encoding`, among those this client accepts.
fn response_encoding(headers: &HeaderMap) -> Result<Option<CompressionEncoding>, Status> {
    match headers.get("grpc-encoding").map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(None),
        Some(b"zstd") => Ok(Some(CompressionEncoding::Zstd)),
        Some(b"gzip") => Ok(Some(CompressionEncoding::Gzip)),
        Some(other) => Err(Status::unimplemented(format!(
            "the answer is compressed with {:?}, which this client did not offer",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// `grpc-timeout` in milliseconds (the format allows at most 8 digits).
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    let millis = timeout.as_millis().clamp(1, 99_999_999);
    HeaderValue::try_from(format!("{millis}m")).expect("digits and a unit are a valid header")
}

struct ResponseDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for ResponseDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        R::decode(source)
            .map(Some)
            .map_err(|error| Status::internal(format!("decoding the export response: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_is_in_milliseconds_within_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(1 << 40)), "99999999m");
    }

    #[test]
    fn only_offered_encodings_are_accepted_in_answers() {
        let mut headers = HeaderMap::new();
        assert_eq!(response_encoding(&headers).unwrap(), None);
        headers.insert("grpc-encoding", HeaderValue::from_static("zstd"));
        assert_eq!(
            response_encoding(&headers).unwrap(),
            Some(CompressionEncoding::Zstd)
        );
        headers.insert("grpc-encoding", HeaderValue::from_static("br"));
        assert_eq!(
            response_encoding(&headers).unwrap_err().code(),
            tonic::Code::Unimplemented
        );
    }
}
