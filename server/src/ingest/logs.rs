//! OTLP `LogsService/Export`, served by hand rather than by the generated server.
//!
//! The generated server decodes with tonic's stock prost codec, which has two flaws here:
//! it reports a client's malformed message (say, a string that is not UTF-8) as INTERNAL,
//! a server fault, where OTLP wants INVALID_ARGUMENT so that clients do not retry it; and it
//! drops the encoded bytes, which the WAL then needs again. [`RawLogsCodec`] keeps the
//! bytes it decoded and reports decode failures as INVALID_ARGUMENT, so the WAL stores the
//! request exactly as it arrived without encoding it twice.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{Admission, IngestState, batch_id_of};
use crate::index::indexer::RecordPayload;
use crate::index::schema::{MAX_ROWS_PER_RECORD, count_log_records};
use crate::wal::RecordKind;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// An export request together with the bytes it was decoded from.
pub struct RawLogs {
    pub bytes: Bytes,
    pub request: ExportLogsServiceRequest,
}

#[derive(Clone)]
pub struct LogsIngest {
    state: Arc<IngestState>,
    accept_compression: EnabledCompressionEncodings,
    max_request_bytes: usize,
}

impl LogsIngest {
    pub fn new(state: Arc<IngestState>, max_request_bytes: usize) -> LogsIngest {
        let mut accept_compression = EnabledCompressionEncodings::default();
        accept_compression.enable(CompressionEncoding::Gzip);
        accept_compression.enable(CompressionEncoding::Zstd);
        LogsIngest {
            state,
            accept_compression,
            max_request_bytes,
        }
    }

    async fn export(
        state: Arc<IngestState>,
        request: Request<RawLogs>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let batch = batch_id_of(&request)?;
        let RawLogs { bytes, request } = request.into_inner();
        let record_count = count_log_records(&request);
        if record_count == 0 {
            return Ok(Response::new(ExportLogsServiceResponse::default()));
        }
        if record_count > MAX_ROWS_PER_RECORD {
            return Err(Status::invalid_argument(format!(
                "request holds {record_count} log records; at most {MAX_ROWS_PER_RECORD} per request"
            )));
        }
        match state.admit_batch(batch.as_ref())? {
            Admission::AlreadyStored => {
                return Ok(Response::new(ExportLogsServiceResponse::default()));
            }
            Admission::Store => {}
        }
        // Stored in a task of its own: if the client goes away mid-call, the append may
        // still reach the WAL, and then the ledger must learn of it too, or the client's
        // resend would be stored twice (and its in-flight mark would never clear).
        let store = tokio::spawn(async move {
            let result = state
                .store(
                    RecordKind::Logs,
                    batch.clone(),
                    bytes.to_vec(),
                    RecordPayload::Logs(Arc::new(request)),
                )
                .await;
            state.finish_batch(batch.as_ref(), result.is_ok());
            result
        });
        store
            .await
            .map_err(|e| Status::internal(format!("storing task failed: {e}")))??;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

impl NamedService for LogsIngest {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

struct ExportMethod(Arc<IngestState>);

impl UnaryService<RawLogs> for ExportMethod {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<Response<ExportLogsServiceResponse>, Status>;

    fn call(&mut self, request: Request<RawLogs>) -> Self::Future {
        Box::pin(LogsIngest::export(self.0.clone(), request))
    }
}

impl<B> Service<http::Request<B>> for LogsIngest
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
        if request.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("no method {}", request.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let state = self.state.clone();
        let accept_compression = self.accept_compression;
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawLogsCodec)
                .apply_compression_config(
                    accept_compression,
                    EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.unary(ExportMethod(state), request).await)
        })
    }
}

/// Decodes requests keeping their bytes; encodes responses with prost.
#[derive(Clone, Copy, Default)]
pub struct RawLogsCodec;

impl Codec for RawLogsCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = RawLogs;
    type Encoder = ResponseEncoder;
    type Decoder = RawLogsDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RawLogsDecoder {
        RawLogsDecoder
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
            .map_err(|e| Status::internal(format!("encoding response: {e}")))
    }
}

pub struct RawLogsDecoder;

impl Decoder for RawLogsDecoder {
    type Item = RawLogs;
    type Error = Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<RawLogs>, Status> {
        let bytes = buffer.copy_to_bytes(buffer.remaining());
        let request = ExportLogsServiceRequest::decode(bytes.as_ref()).map_err(|e| {
            Status::invalid_argument(format!(
                "request is not a valid ExportLogsServiceRequest: {e}"
            ))
        })?;
        Ok(Some(RawLogs { bytes, request }))
    }
}
