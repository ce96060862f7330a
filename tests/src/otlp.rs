//! Talking OTLP/gRPC to the server directly, as a foreign client would.
//!
//! [`OtlpClient`] wraps epitaph-proto's tonic `LogsServiceClient` with a private
//! one-worker runtime, so tests stay synchronous. Every call is bounded: a server
//! that hangs fails the test with "no answer within ..." instead of hanging it.
//!
//! [`OtlpClient::export_raw`] (and `export_metrics_raw`) sends arbitrary bytes as the
//! request message, through tonic's own gRPC framing, to hand-craft what no well-behaved
//! encoder would produce (invalid UTF-8 in a string field, a field set twice).

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epitaph_proto::BATCH_HEADER;
use epitaph_proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use epitaph_proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use epitaph_proto::resource::v1::Resource;
use prost::Message;
use prost::bytes::BufMut;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub use tonic::codec::CompressionEncoding;

/// How long one export may take before the test calls it a hang.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(20);

/// The gRPC method path of OTLP log export.
const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
/// The gRPC method path of OTLP metrics export.
const METRICS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// A blocking OTLP logs and metrics client for one server address.
pub struct OtlpClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    compression: Option<CompressionEncoding>,
}

impl OtlpClient {
    /// A client for `grpc_url` (`http://127.0.0.1:PORT`). The connection is made lazily
    /// and re-made after a server restart on the same address.
    pub fn connect(grpc_url: &str) -> OtlpClient {
        // A worker thread of its own keeps the connection's background task running
        // between calls, so the client answers the server's pings and GOAWAY like a live
        // peer would (a current-thread runtime would sit frozen between calls).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("building a tokio runtime");
        let endpoint = Endpoint::from_shared(grpc_url.to_string())
            .unwrap_or_else(|error| panic!("bad gRPC url {grpc_url}: {error}"))
            .connect_timeout(Duration::from_secs(5))
            .timeout(EXPORT_TIMEOUT);
        let channel = {
            let _guard = runtime.enter();
            endpoint.connect_lazy()
        };
        OtlpClient {
            runtime,
            channel,
            compression: None,
        }
    }

    /// Compresses every request with `encoding` from now on.
    pub fn with_compression(mut self, encoding: CompressionEncoding) -> OtlpClient {
        self.compression = Some(encoding);
        self
    }

    /// Exports `request`, tagged with `epitaph-batch: <batch_header>` when given.
    pub fn export(
        &self,
        request: ExportLogsServiceRequest,
        batch_header: Option<&str>,
    ) -> Result<ExportLogsServiceResponse, Status> {
        let mut client = LogsServiceClient::new(self.channel.clone());
        if let Some(encoding) = self.compression {
            client = client.send_compressed(encoding);
        }
        let request = tagged_request(request, batch_header);
        self.bounded(async move {
            client
                .export(request)
                .await
                .map(|response| response.into_inner())
        })
    }

    /// Exports metrics, tagged with `epitaph-batch: <batch_header>` when given.
    pub fn export_metrics(
        &self,
        request: ExportMetricsServiceRequest,
        batch_header: Option<&str>,
    ) -> Result<ExportMetricsServiceResponse, Status> {
        let mut client = MetricsServiceClient::new(self.channel.clone());
        if let Some(encoding) = self.compression {
            client = client.send_compressed(encoding);
        }
        let request = tagged_request(request, batch_header);
        self.bounded(async move {
            client
                .export(request)
                .await
                .map(|response| response.into_inner())
        })
    }

    /// Exports `message_bytes` as the request message, unchecked: whatever bytes are given
    /// go on the wire inside a well-formed gRPC frame.
    pub fn export_raw(
        &self,
        message_bytes: Vec<u8>,
        batch_header: Option<&str>,
    ) -> Result<ExportLogsServiceResponse, Status> {
        self.export_raw_at(LOGS_EXPORT_PATH, message_bytes, batch_header)
    }

    /// [`OtlpClient::export_raw`] for metrics.
    pub fn export_metrics_raw(
        &self,
        message_bytes: Vec<u8>,
        batch_header: Option<&str>,
    ) -> Result<ExportMetricsServiceResponse, Status> {
        self.export_raw_at(METRICS_EXPORT_PATH, message_bytes, batch_header)
    }

    fn export_raw_at<R: Message + Default + Send + 'static>(
        &self,
        path: &'static str,
        message_bytes: Vec<u8>,
        batch_header: Option<&str>,
    ) -> Result<R, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if let Some(encoding) = self.compression {
            grpc = grpc.send_compressed(encoding);
        }
        let request = tagged_request(message_bytes, batch_header);
        self.bounded(async move {
            grpc.ready()
                .await
                .map_err(|error| Status::unavailable(format!("channel not ready: {error}")))?;
            let path = PathAndQuery::from_static(path);
            grpc.unary(request, path, RawRequestCodec::<R>::default())
                .await
                .map(|response| response.into_inner())
        })
    }

    /// Runs `call` on the runtime, failing the test if it outlives [`EXPORT_TIMEOUT`] by
    /// a margin (the channel's own timeout should have answered `DEADLINE_EXCEEDED`).
    fn bounded<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        let limit = EXPORT_TIMEOUT + Duration::from_secs(5);
        // The timer must be made inside the runtime, hence the async block.
        match self
            .runtime
            .block_on(async { tokio::time::timeout(limit, call).await })
        {
            Ok(result) => result,
            Err(_) => panic!("the export got no answer within {limit:?}: the server hangs"),
        }
    }

    /// Exports `request` until it succeeds, for at most `timeout` — for a server that is
    /// still coming up. Panics with the last status on timeout.
    pub fn export_until_ok(
        &self,
        request: &ExportLogsServiceRequest,
        batch_header: Option<&str>,
        timeout: Duration,
    ) -> ExportLogsServiceResponse {
        let mut last_status = None;
        let response = crate::poll::eventually(timeout, || {
            match self.export(request.clone(), batch_header) {
                Ok(response) => Some(response),
                Err(status) => {
                    last_status = Some(status);
                    None
                }
            }
        });
        response.unwrap_or_else(|| {
            panic!("export did not succeed within {timeout:?}; last status: {last_status:?}")
        })
    }
}

fn tagged_request<T>(message: T, batch_header: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = batch_header {
        let value = MetadataValue::try_from(value)
            .unwrap_or_else(|error| panic!("{value:?} is not a valid metadata value: {error}"));
        request.metadata_mut().insert(BATCH_HEADER, value);
    }
    request
}

/// Encodes `Vec<u8>` as-is and decodes the OTLP response `R` with prost.
struct RawRequestCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for RawRequestCodec<R> {
    fn default() -> Self {
        RawRequestCodec(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for RawRequestCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawBytesEncoder;
    type Decoder = ResponseDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder(PhantomData)
    }
}

#[derive(Debug, Clone, Copy)]
struct RawBytesEncoder;

impl Encoder for RawBytesEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ResponseDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for ResponseDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|error| Status::new(Code::Internal, format!("decoding the response: {error}")))
    }
}

/// A string attribute.
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// A resource with the given string attributes.
pub fn resource(attributes: &[(&str, &str)]) -> Resource {
    Resource {
        attributes: attributes
            .iter()
            .map(|(key, value)| string_attribute(key, value))
            .collect(),
        ..Default::default()
    }
}

/// Unix milliseconds now, as the HTTP API's `start` and `end` take them.
pub fn unix_millis_now() -> i64 {
    i64::try_from(unix_nanos(SystemTime::now()) / 1_000_000).expect("before 2554")
}

/// Unix nanoseconds of a time.
pub fn unix_nanos(time: SystemTime) -> u64 {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    u64::try_from(nanos).expect("before 2554")
}

/// An INFO record with a string body, timestamped now.
pub fn log_record(body: &str) -> LogRecord {
    let now = unix_nanos(SystemTime::now());
    LogRecord {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        severity_number: 9, // SEVERITY_NUMBER_INFO
        severity_text: "INFO".to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_string())),
        }),
        ..Default::default()
    }
}

/// One request: one resource, one scope, the given records.
pub fn export_request(
    resource: Option<Resource>,
    records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource,
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "epitaph-tests".to_string(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A request with one INFO record per body, under a resource of `service.name = service`.
pub fn bodies_request(service: &str, bodies: &[String]) -> ExportLogsServiceRequest {
    let records = bodies.iter().map(|body| log_record(body)).collect();
    export_request(Some(resource(&[("service.name", service)])), records)
}
