//! OTLP `Export` services served by hand rather than by the generated servers.
//!
//! The generated servers decode with tonic's stock prost codec, which has two flaws here:
//! it reports a client's malformed message (say, a string that is not UTF-8) as INTERNAL,
//! a server fault, where OTLP wants INVALID_ARGUMENT so that clients do not retry it; and
//! it drops the encoded bytes, which the WAL then needs again. [`RawCodec`] keeps the
//! bytes it decoded and reports decode failures as INVALID_ARGUMENT, so the WAL stores the
//! request exactly as it arrived without encoding it twice.
//!
//! How a request is read from its bytes is the request type's business
//! ([`DecodeRequest`]): logs are decoded by prost, metrics are read where they lie (see
//! `index::metric_wire`).
//!
//! One [`RawExportService`] serves one OTLP signal's single `Export` method; what the
//! method does is the [`ExportHandler`]'s business.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// An export request together with the bytes it was decoded from.
pub struct Raw<T> {
    pub bytes: Bytes,
    pub request: T,
}

/// How an export request is read from its bytes.
pub trait DecodeRequest: Sized + Send + 'static {
    /// Reads a request, or says what is wrong with the bytes.
    fn decode_request(bytes: &Bytes) -> Result<Self, String>;
}

/// A request decoded by prost.
impl<M: Message + Default + Send + 'static> DecodeRequest for M {
    fn decode_request(bytes: &Bytes) -> Result<M, String> {
        M::decode(bytes.as_ref()).map_err(|e| {
            format!(
                "request is not a valid {}: {e}",
                std::any::type_name::<M>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("message")
            )
        })
    }
}

/// What one OTLP signal's `Export` does with a decoded request.
pub trait ExportHandler: Clone + Send + Sync + 'static {
    type Request: DecodeRequest;
    type Response: Message + Send + 'static;
    /// The gRPC service name, e.g. `opentelemetry.proto.collector.logs.v1.LogsService`.
    const SERVICE: &'static str;

    fn export(
        &self,
        request: Request<Raw<Self::Request>>,
    ) -> BoxFuture<Response<Self::Response>, Status>;
}

/// A tonic service with one `Export` method, decoding with [`RawCodec`].
#[derive(Clone)]
pub struct RawExportService<H> {
    handler: H,
    accept_compression: EnabledCompressionEncodings,
    max_request_bytes: usize,
}

impl<H: ExportHandler> RawExportService<H> {
    pub fn new(handler: H, max_request_bytes: usize) -> RawExportService<H> {
        let mut accept_compression = EnabledCompressionEncodings::default();
        accept_compression.enable(CompressionEncoding::Gzip);
        accept_compression.enable(CompressionEncoding::Zstd);
        RawExportService {
            handler,
            accept_compression,
            max_request_bytes,
        }
    }
}

impl<H: ExportHandler> NamedService for RawExportService<H> {
    const NAME: &'static str = H::SERVICE;
}

struct ExportMethod<H>(H);

impl<H: ExportHandler> UnaryService<Raw<H::Request>> for ExportMethod<H> {
    type Response = H::Response;
    type Future = BoxFuture<Response<H::Response>, Status>;

    fn call(&mut self, request: Request<Raw<H::Request>>) -> Self::Future {
        self.0.export(request)
    }
}

impl<H, B> Service<http::Request<B>> for RawExportService<H>
where
    H: ExportHandler,
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
        let path = request.uri().path();
        let is_export = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(H::SERVICE))
            .is_some_and(|method| method == "/Export");
        if !is_export {
            let status = Status::unimplemented(format!("no method {path}"));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let handler = self.handler.clone();
        let accept_compression = self.accept_compression;
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec::<H::Request, H::Response>::default())
                .apply_compression_config(
                    accept_compression,
                    EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.unary(ExportMethod(handler), request).await)
        })
    }
}

/// Decodes requests keeping their bytes; encodes responses with prost.
pub struct RawCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for RawCodec<Req, Resp> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<Req, Resp> Codec for RawCodec<Req, Resp>
where
    Req: DecodeRequest,
    Resp: Message + Send + 'static,
{
    type Encode = Resp;
    type Decode = Raw<Req>;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = RawDecoder<Req>;

    fn encoder(&mut self) -> ResponseEncoder<Resp> {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> RawDecoder<Req> {
        RawDecoder(PhantomData)
    }
}

pub struct ResponseEncoder<Resp>(PhantomData<fn() -> Resp>);

impl<Resp: Message> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, buffer: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buffer)
            .map_err(|e| Status::internal(format!("encoding response: {e}")))
    }
}

pub struct RawDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req: DecodeRequest> Decoder for RawDecoder<Req> {
    type Item = Raw<Req>;
    type Error = Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<Raw<Req>>, Status> {
        let bytes = buffer.copy_to_bytes(buffer.remaining());
        let request = Req::decode_request(&bytes).map_err(Status::invalid_argument)?;
        Ok(Some(Raw { bytes, request }))
    }
}
