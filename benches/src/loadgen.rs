//! The OTLP load generator: pre-encoded batches, N callers, per-batch ack latency.
//!
//! What is measured is the server, so the generator keeps its own work out of the
//! timed part: every request is generated and protobuf-encoded before the clock starts
//! ([`encode_batches`]), and a caller hands the encoded bytes to tonic as they are
//! ([`PreEncodedExportCodec`]); only the zstd compression a real agent also pays is left
//! in the loop.
//!
//! Each caller owns one tonic `Channel` (one HTTP/2 connection) and sends one batch at a
//! time, so `connections` is also the number of calls in flight. Batches are taken from
//! one shared counter, which makes the run closed-loop: the next batch goes as soon as
//! an ack comes back. With a rate, batch `k` is due at `start + k·batch/rate` and a
//! caller waits for that slot; latency is then counted from the slot, not from the send,
//! so a stalled server shows up in the percentiles instead of silently delaying the
//! schedule (coordinated omission).
//!
//! Retryable answers (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `ABORTED`, `DEADLINE_EXCEEDED`,
//! `CANCELLED`) are retried with the same `epitaph-batch` header after the server's
//! `RetryInfo` delay or an exponential back-off, as the agent does, so a run ends with
//! every line stored once; each failed attempt is counted under its gRPC code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use epitaph_proto::BATCH_HEADER;
use epitaph_proto::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use rand::Rng as _;
use tokio::time::Instant;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::corpus::Corpus;

/// The gRPC path of OTLP's `LogsService/Export`.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// One request, protobuf-encoded ahead of time.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    pub payload: Bytes,
    pub lines: u64,
    /// Sum of the bodies' lengths (the raw bytes every MB/s figure counts).
    pub body_bytes: u64,
}

/// Generates `total_lines` lines in batches of `batch_size` and encodes each request.
/// The same seed, config and batch size give the same requests as
/// [`Corpus::next_batch`] does for the bare-tantivy ceiling.
pub fn encode_batches(
    corpus: &mut Corpus,
    total_lines: u64,
    batch_size: usize,
) -> Vec<EncodedBatch> {
    let batch_size = batch_size.max(1);
    let mut batches = Vec::with_capacity((total_lines / batch_size as u64 + 1) as usize);
    let mut remaining = total_lines;
    while remaining > 0 {
        let lines = remaining.min(batch_size as u64) as usize;
        let batch = corpus.next_batch(lines);
        batches.push(EncodedBatch {
            payload: Bytes::from(batch.request.encode_to_vec()),
            lines: batch.lines as u64,
            body_bytes: batch.body_bytes,
        });
        remaining -= lines as u64;
    }
    batches
}

/// How to drive the endpoint.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://host:port` of the OTLP/gRPC endpoint.
    pub endpoint: String,
    /// Concurrent callers, each with its own connection and one call in flight.
    pub connections: usize,
    /// Tag each batch `epitaph-batch: <uuid per connection>/<sequence>`.
    pub batch_header: bool,
    /// Paced mode: total lines per second over all callers.
    pub rate_lines_per_second: Option<f64>,
    /// Run this long, cycling through the batches; `None` sends every batch once.
    pub duration: Option<Duration>,
    /// Deadline of one call.
    pub request_timeout: Duration,
    /// Retries of one batch after a retryable answer before it counts as failed.
    pub max_retries: u32,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            endpoint: "http://127.0.0.1:4317".to_string(),
            connections: 4,
            batch_header: true,
            rate_lines_per_second: None,
            duration: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 10,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub connections: usize,
    pub elapsed: Duration,
    pub acked_batches: u64,
    pub acked_lines: u64,
    pub acked_body_bytes: u64,
    pub failed_batches: u64,
    pub failed_lines: u64,
    /// Records the server reported as rejected in a `partial_success`.
    pub rejected_records: u64,
    pub retries: u64,
    /// Ack latency of every acked batch, in microseconds, sorted.
    pub latencies_micros: Vec<u64>,
    /// Failed attempts by gRPC code name.
    pub errors: BTreeMap<String, u64>,
}

impl LoadReport {
    pub fn lines_per_second(&self) -> f64 {
        self.acked_lines as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Acked raw body bytes per second, in MB (10^6 bytes).
    pub fn megabytes_per_second(&self) -> f64 {
        self.acked_body_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank percentile of the ack latency, in milliseconds (0 with no acks).
    pub fn latency_percentile_ms(&self, percentile: f64) -> f64 {
        if self.latencies_micros.is_empty() {
            return 0.0;
        }
        let rank = ((percentile / 100.0) * self.latencies_micros.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_micros.len()) - 1;
        self.latencies_micros[index] as f64 / 1000.0
    }

    pub fn latency_max_ms(&self) -> f64 {
        self.latencies_micros.last().copied().unwrap_or(0) as f64 / 1000.0
    }

    /// The human summary, one figure per line.
    pub fn to_text(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(code, count)| format!("{code}={count}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "lines/s: {:.0} ({} lines in {} batches over {:.2} s, {} connections)\n\
             MB/s: {:.2} (raw body bytes: {})\n\
             ack latency ms: p50={:.2} p90={:.2} p99={:.2} max={:.2}\n\
             errors: {errors} (retries {}, failed batches {}, failed lines {}, rejected records {})",
            self.lines_per_second(),
            self.acked_lines,
            self.acked_batches,
            self.elapsed.as_secs_f64(),
            self.connections,
            self.megabytes_per_second(),
            self.acked_body_bytes,
            self.latency_percentile_ms(50.0),
            self.latency_percentile_ms(90.0),
            self.latency_percentile_ms(99.0),
            self.latency_max_ms(),
            self.retries,
            self.failed_batches,
            self.failed_lines,
            self.rejected_records,
        )
    }

    /// The same figures as one JSON object, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "lines_per_second": self.lines_per_second(),
            "megabytes_per_second": self.megabytes_per_second(),
            "lines": self.acked_lines,
            "batches": self.acked_batches,
            "body_bytes": self.acked_body_bytes,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "connections": self.connections,
            "latency_ms": {
                "p50": self.latency_percentile_ms(50.0),
                "p90": self.latency_percentile_ms(90.0),
                "p99": self.latency_percentile_ms(99.0),
                "max": self.latency_max_ms(),
            },
            "errors": self.errors,
            "retries": self.retries,
            "failed_batches": self.failed_batches,
            "failed_lines": self.failed_lines,
            "rejected_records": self.rejected_records,
        })
    }

    fn merge(&mut self, other: CallerStats) {
        self.acked_batches += other.acked_batches;
        self.acked_lines += other.acked_lines;
        self.acked_body_bytes += other.acked_body_bytes;
        self.failed_batches += other.failed_batches;
        self.failed_lines += other.failed_lines;
        self.rejected_records += other.rejected_records;
        self.retries += other.retries;
        self.latencies_micros.extend(other.latencies_micros);
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }
}

#[derive(Debug, Default)]
struct CallerStats {
    acked_batches: u64,
    acked_lines: u64,
    acked_body_bytes: u64,
    failed_batches: u64,
    failed_lines: u64,
    rejected_records: u64,
    retries: u64,
    latencies_micros: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

/// Sends the batches as the config says and reports what came back.
///
/// Connects every caller before the clock starts, so connection setup is not timed;
/// an endpoint that cannot be reached is an error, not a report full of failures.
pub async fn run(
    config: &LoadConfig,
    batches: Arc<Vec<EncodedBatch>>,
) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(!batches.is_empty(), "no batches to send");
    anyhow::ensure!(config.connections > 0, "--connections must be at least 1");
    if let Some(rate) = config.rate_lines_per_second {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number of lines per second"
        );
    }
    let mut channels = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        // One Endpoint per caller: a tonic Channel is one HTTP/2 connection.
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .with_context(|| format!("invalid endpoint `{}`", config.endpoint))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", config.endpoint))?;
        channels.push(channel);
    }

    let next_batch = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = config.duration.map(|duration| start + duration);
    let nominal_batch_lines = batches[0].lines as f64;
    let mut callers = Vec::with_capacity(channels.len());
    for channel in channels {
        let caller = Caller {
            channel,
            batches: batches.clone(),
            next_batch: next_batch.clone(),
            agent_id: config
                .batch_header
                .then(|| uuid::Uuid::new_v4().to_string()),
            start,
            deadline,
            seconds_per_line: config.rate_lines_per_second.map(|rate| 1.0 / rate),
            nominal_batch_lines,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
        };
        callers.push(tokio::spawn(caller.run()));
    }
    let mut report = LoadReport {
        connections: config.connections,
        ..LoadReport::default()
    };
    for caller in callers {
        let stats = caller.await.context("a caller task panicked")?;
        report.merge(stats);
    }
    report.elapsed = start.elapsed();
    report.latencies_micros.sort_unstable();
    Ok(report)
}

struct Caller {
    channel: Channel,
    batches: Arc<Vec<EncodedBatch>>,
    next_batch: Arc<AtomicU64>,
    agent_id: Option<String>,
    start: Instant,
    deadline: Option<Instant>,
    seconds_per_line: Option<f64>,
    nominal_batch_lines: f64,
    request_timeout: Duration,
    max_retries: u32,
}

impl Caller {
    async fn run(self) -> CallerStats {
        let mut stats = CallerStats::default();
        let mut client = tonic::client::Grpc::new(self.channel.clone())
            .send_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Zstd);
        let mut sequence = 0u64;
        loop {
            let batch_number = self.next_batch.fetch_add(1, Ordering::Relaxed);
            if self.deadline.is_none() && batch_number >= self.batches.len() as u64 {
                break;
            }
            let slot = self.seconds_per_line.map(|seconds| {
                self.start
                    + Duration::from_secs_f64(
                        batch_number as f64 * self.nominal_batch_lines * seconds,
                    )
            });
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }
            if self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                break;
            }
            let batch = &self.batches[(batch_number % self.batches.len() as u64) as usize];
            sequence += 1;
            let header = self
                .agent_id
                .as_ref()
                .map(|agent| format!("{agent}/{sequence}"));
            let began = slot.unwrap_or_else(Instant::now);
            let mut attempt = 0u32;
            loop {
                let outcome = self
                    .export_once(&mut client, batch, header.as_deref())
                    .await;
                let status = match outcome {
                    Ok(response) => {
                        stats.acked_batches += 1;
                        stats.acked_lines += batch.lines;
                        stats.acked_body_bytes += batch.body_bytes;
                        stats
                            .latencies_micros
                            .push(began.elapsed().as_micros() as u64);
                        if let Some(partial) = response.partial_success {
                            stats.rejected_records += partial.rejected_log_records.max(0) as u64;
                        }
                        break;
                    }
                    Err(status) => status,
                };
                *stats
                    .errors
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
                if !is_retryable(status.code()) || attempt >= self.max_retries {
                    stats.failed_batches += 1;
                    stats.failed_lines += batch.lines;
                    break;
                }
                attempt += 1;
                stats.retries += 1;
                tokio::time::sleep(retry_delay(&status, attempt)).await;
            }
        }
        stats
    }

    async fn export_once(
        &self,
        client: &mut tonic::client::Grpc<Channel>,
        batch: &EncodedBatch,
        header: Option<&str>,
    ) -> Result<ExportLogsServiceResponse, Status> {
        client
            .ready()
            .await
            .map_err(|error| Status::unavailable(format!("connection not ready: {error}")))?;
        let mut request = tonic::Request::new(batch.payload.clone());
        request.set_timeout(self.request_timeout);
        if let Some(header) = header {
            let value = MetadataValue::try_from(header)
                .map_err(|_| Status::internal("batch header is not ASCII"))?;
            request.metadata_mut().insert(BATCH_HEADER, value);
        }
        let response = client
            .unary(
                request,
                PathAndQuery::from_static(EXPORT_PATH),
                PreEncodedExportCodec,
            )
            .await?;
        Ok(response.into_inner())
    }
}

/// OTLP's retryable codes; `RESOURCE_EXHAUSTED` is back-pressure here (DESIGN.md).
fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::Cancelled
    )
}

/// The server's `RetryInfo` delay, else 50 ms doubling per attempt up to 2 s, with jitter.
fn retry_delay(status: &Status, attempt: u32) -> Duration {
    if let Some(delay) = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
    {
        return delay;
    }
    let base = Duration::from_millis(50)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(2));
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// A codec that sends already-encoded `ExportLogsServiceRequest` bytes as they are and
/// decodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreEncodedExportCodec;

impl Codec for PreEncodedExportCodec {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = PreEncodedEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PreEncodedEncoder;

impl Encoder for PreEncodedEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, destination: &mut EncodeBuf<'_>) -> Result<(), Status> {
        destination.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportLogsServiceResponse::decode(source)
            .map(Some)
            .map_err(|error| Status::internal(format!("decoding the export response: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use epitaph_proto::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
    use epitaph_proto::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest};
    use tonic::transport::server::TcpIncoming;
    use tonic_types::{ErrorDetails, StatusExt as _};

    use super::*;
    use crate::corpus::CorpusConfig;

    /// What the fake server saw of the calls it accepted.
    #[derive(Default)]
    struct Seen {
        calls: u64,
        stored_lines: u64,
        headers: Vec<String>,
        encodings: Vec<String>,
    }

    /// An OTLP logs endpoint that answers after `delay`, refuses every `refuse_every`-th
    /// call with `UNAVAILABLE` + `RetryInfo`, and rejects `rejected_per_call` records.
    struct FakeLogsService {
        delay: Duration,
        refuse_every: Option<u64>,
        rejected_per_call: i64,
        seen: Arc<Mutex<Seen>>,
    }

    #[tonic::async_trait]
    impl LogsService for FakeLogsService {
        async fn export(
            &self,
            request: tonic::Request<ExportLogsServiceRequest>,
        ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
            let header = request
                .metadata()
                .get(BATCH_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let encoding = request
                .metadata()
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_string();
            let lines: u64 = request
                .get_ref()
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            let refuse = {
                let mut seen = self.seen.lock().expect("fake server lock");
                seen.calls += 1;
                let refuse = self
                    .refuse_every
                    .is_some_and(|every| seen.calls.is_multiple_of(every));
                if !refuse {
                    seen.stored_lines += lines;
                    seen.headers.extend(header);
                    seen.encodings.push(encoding);
                }
                refuse
            };
            if refuse {
                let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(5)));
                return Err(Status::with_error_details(
                    Code::Unavailable,
                    "wal busy",
                    details,
                ));
            }
            tokio::time::sleep(self.delay).await;
            let partial_success = (self.rejected_per_call > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: self.rejected_per_call,
                error_message: "too old".to_string(),
            });
            Ok(tonic::Response::new(ExportLogsServiceResponse {
                partial_success,
            }))
        }
    }

    async fn start_fake(service: FakeLogsService) -> SocketAddr {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("loopback address"))
            .expect("bind loopback");
        let address = incoming.local_addr().expect("bound address");
        let server = LogsServiceServer::new(service).accept_compressed(CompressionEncoding::Zstd);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(incoming),
        );
        address
    }

    fn test_batches(total_lines: u64, batch_size: usize) -> Arc<Vec<EncodedBatch>> {
        let mut corpus = Corpus::new(11, CorpusConfig::default());
        Arc::new(encode_batches(&mut corpus, total_lines, batch_size))
    }

    fn fake(
        delay_ms: u64,
        refuse_every: Option<u64>,
        rejected_per_call: i64,
    ) -> (FakeLogsService, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let service = FakeLogsService {
            delay: Duration::from_millis(delay_ms),
            refuse_every,
            rejected_per_call,
            seen: seen.clone(),
        };
        (service, seen)
    }

    #[test]
    fn batches_split_the_lines_and_decode_as_requests() {
        let batches = test_batches(1_050, 100);
        assert_eq!(batches.len(), 11);
        assert_eq!(batches.iter().map(|b| b.lines).sum::<u64>(), 1_050);
        assert_eq!(batches[10].lines, 50);
        let decoded = ExportLogsServiceRequest::decode(batches[3].payload.clone())
            .expect("payload is a request");
        let records: usize = decoded
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(records, 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_line_is_acked_once_with_per_connection_sequences() {
        let (service, seen) = fake(20, None, 0);
        let address = start_fake(service).await;
        let batches = test_batches(3_000, 100);
        let config = LoadConfig {
            endpoint: format!("http://{address}"),
            connections: 3,
            ..LoadConfig::default()
        };
        let report = run(&config, batches.clone())
            .await
            .expect("run against the fake server");

        assert_eq!(report.acked_lines, 3_000);
        assert_eq!(report.acked_batches, 30);
        assert_eq!(
            report.acked_body_bytes,
            batches.iter().map(|b| b.body_bytes).sum::<u64>()
        );
        assert_eq!(report.latencies_micros.len(), 30);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // Every call waited 20 ms in the server, and 3 callers share 30 calls.
        assert!(
            report.latency_percentile_ms(50.0) >= 20.0,
            "p50 {}",
            report.latency_percentile_ms(50.0)
        );
        assert!(
            report.latency_max_ms() < 2_000.0,
            "max {}",
            report.latency_max_ms()
        );
        assert!(
            report.elapsed >= Duration::from_millis(200),
            "10 rounds of 20 ms took {:?}",
            report.elapsed
        );

        let seen = seen.lock().expect("fake server lock");
        assert_eq!(seen.stored_lines, 3_000);
        assert!(
            seen.encodings.iter().all(|encoding| encoding == "zstd"),
            "{:?}",
            seen.encodings
        );
        let mut sequences: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for header in &seen.headers {
            let id = epitaph_proto::BatchId::parse(header).expect("well-formed batch header");
            sequences.entry(id.agent_id).or_default().push(id.sequence);
        }
        assert_eq!(sequences.len(), 3, "one agent id per connection");
        assert_eq!(sequences.values().map(Vec::len).sum::<usize>(), 30);
        for mut agent_sequences in sequences.into_values() {
            agent_sequences.sort_unstable();
            let expected: Vec<u64> = (1..=agent_sequences.len() as u64).collect();
            assert_eq!(
                agent_sequences, expected,
                "sequences start at 1 without gaps"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_batches_are_retried_and_counted_by_code() {
        let (service, seen) = fake(1, Some(3), 2);
        let address = start_fake(service).await;
        let config = LoadConfig {
            endpoint: format!("http://{address}"),
            connections: 2,
            ..LoadConfig::default()
        };
        let report = run(&config, test_batches(2_000, 100))
            .await
            .expect("run against the fake server");

        assert_eq!(report.acked_lines, 2_000, "retries deliver every batch");
        assert_eq!(report.failed_batches, 0);
        let refused = report.errors.get("Unavailable").copied().unwrap_or(0);
        assert!(refused >= 6, "errors {:?}", report.errors);
        assert_eq!(report.retries, refused);
        assert_eq!(report.rejected_records, 2 * 20);
        let seen = seen.lock().expect("fake server lock");
        assert_eq!(seen.stored_lines, 2_000);
        let unique: std::collections::HashSet<&String> = seen.headers.iter().collect();
        assert_eq!(unique.len(), 20, "a retried batch keeps its header");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rate_paces_the_batches() {
        let (service, _seen) = fake(0, None, 0);
        let address = start_fake(service).await;
        let config = LoadConfig {
            endpoint: format!("http://{address}"),
            connections: 4,
            rate_lines_per_second: Some(4_000.0),
            ..LoadConfig::default()
        };
        // 20 batches of 100 at 4,000 lines/s: the last is due 475 ms after the start.
        let report = run(&config, test_batches(2_000, 100))
            .await
            .expect("run against the fake server");
        assert_eq!(report.acked_lines, 2_000);
        assert!(
            report.elapsed >= Duration::from_millis(475),
            "finished in {:?}",
            report.elapsed
        );
        assert!(
            report.lines_per_second() < 4_300.0,
            "{} lines/s",
            report.lines_per_second()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duration_cycles_the_batches_until_it_ends() {
        let (service, seen) = fake(2, None, 0);
        let address = start_fake(service).await;
        let config = LoadConfig {
            endpoint: format!("http://{address}"),
            connections: 2,
            duration: Some(Duration::from_millis(300)),
            ..LoadConfig::default()
        };
        let report = run(&config, test_batches(300, 100))
            .await
            .expect("run against the fake server");
        assert!(
            report.acked_batches > 3,
            "only {} batches in 300 ms",
            report.acked_batches
        );
        assert!(report.elapsed < Duration::from_secs(2));
        assert_eq!(
            seen.lock().expect("fake server lock").stored_lines,
            report.acked_lines
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        drop(listener);
        let config = LoadConfig {
            endpoint: format!("http://{address}"),
            connections: 1,
            ..LoadConfig::default()
        };
        let error = run(&config, test_batches(10, 10))
            .await
            .expect_err("nothing listens there");
        assert!(format!("{error:#}").contains("connecting to"), "{error:#}");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let report = LoadReport {
            latencies_micros: (1..=100).map(|ms| ms * 1000).collect(),
            elapsed: Duration::from_secs(2),
            acked_lines: 1_000,
            acked_body_bytes: 4_000_000,
            ..LoadReport::default()
        };
        assert_eq!(report.latency_percentile_ms(50.0), 50.0);
        assert_eq!(report.latency_percentile_ms(99.0), 99.0);
        assert_eq!(report.latency_max_ms(), 100.0);
        assert_eq!(report.lines_per_second(), 500.0);
        assert_eq!(report.megabytes_per_second(), 2.0);
        let json = report.to_json();
        assert_eq!(json["latency_ms"]["p90"], 90.0);
    }
}
