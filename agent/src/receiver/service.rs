//! The gRPC face of the receiver: OTLP `LogsService/Export`, served by hand.
//!
//! tonic's generated server decodes with the stock prost codec, which reports a client's
//! malformed message (a string that is not UTF-8, a truncated field) as `INTERNAL` — a
//! fault of ours, which OTLP clients retry forever. [`ExportCodec`] reports it as
//! `INVALID_ARGUMENT`, which they do not retry. The service answers only `Export`; any
//! other path is `UNIMPLEMENTED`. It is served without tonic's router, which would pull
//! axum into the agent for the sake of one method.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::ExportHandler;

pub const LOGS_SERVICE: &str = "opentelemetry.proto.collector.logs.v1.LogsService";

/// The logs service, ready for `tonic::transport::Server::serve_with_incoming_shutdown`.
#[derive(Clone)]
pub struct LogsReceiverService {
    handler: ExportHandler,
    max_request_bytes: usize,
}

impl LogsReceiverService {
    pub fn new(handler: ExportHandler, max_request_bytes: usize) -> LogsReceiverService {
        LogsReceiverService {
            handler,
            max_request_bytes,
        }
    }
}

impl NamedService for LogsReceiverService {
    const NAME: &'static str = LOGS_SERVICE;
}

struct ExportMethod(ExportHandler);

impl UnaryService<ExportLogsServiceRequest> for ExportMethod {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<Response<ExportLogsServiceResponse>, Status>;

    fn call(&mut self, request: Request<ExportLogsServiceRequest>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move { handler.export(request.into_inner()).await })
    }
}

impl<B> Service<http::Request<B>> for LogsReceiverService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let is_export = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(LOGS_SERVICE))
            .is_some_and(|method| method == "/Export");
        if !is_export {
            let status = Status::unimplemented(format!(
                "this receiver serves only {LOGS_SERVICE}/Export, not {}",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let handler = self.handler.clone();
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut accept_compression = EnabledCompressionEncodings::default();
            accept_compression.enable(CompressionEncoding::Gzip);
            accept_compression.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(ExportCodec)
                .apply_compression_config(
                    accept_compression,
                    EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.unary(ExportMethod(handler), request).await)
        })
    }
}

/// Decodes export requests, reporting malformed ones as `INVALID_ARGUMENT`.
pub struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = ExportLogsServiceRequest;
    type Encoder = ResponseEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder(PhantomData)
    }
}

pub struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn encode(
        &mut self,
        item: ExportLogsServiceResponse,
        buffer: &mut EncodeBuf<'_>,
    ) -> Result<(), Status> {
        item.encode(buffer)
            .map_err(|error| Status::internal(format!("encoding the response: {error}")))
    }
}

pub struct RequestDecoder(PhantomData<()>);

impl Decoder for RequestDecoder {
    type Item = ExportLogsServiceRequest;
    type Error = Status;

    fn decode(
        &mut self,
        buffer: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportLogsServiceRequest>, Status> {
        decode_request(buffer).map(Some)
    }
}

/// Decodes one request; a malformed one is the client's fault: `INVALID_ARGUMENT`.
pub fn decode_request(bytes: impl prost::bytes::Buf) -> Result<ExportLogsServiceRequest, Status> {
    ExportLogsServiceRequest::decode(bytes).map_err(|error| {
        Status::invalid_argument(format!(
            "request is not a valid ExportLogsServiceRequest: {error}"
        ))
    })
}
