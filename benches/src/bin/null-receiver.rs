//! A receiver that acknowledges everything and stores nothing, so that an agent benchmark
//! measures the agent and not the server behind it.
//!
//! It serves, on loopback:
//! - OTLP `LogsService/Export` (zstd and gzip accepted): every request is answered with
//!   an empty `ExportLogsServiceResponse` as soon as its records are counted. Counting
//!   decodes a skeleton of the request ([`RequestSkeleton`]) that skips every field
//!   except the repeated messages down to the log records, so the receiver spends
//!   almost nothing per record and cannot become the bottleneck it is meant to remove;
//! - Epitaph's lifecycle service: hello, heartbeat, goodbye and loss reports are
//!   counted and acknowledged; the stored watermark it returns is the highest
//!   `epitaph-batch` sequence it acked for that agent;
//! - OTLP `MetricsService/Export` (zstd and gzip accepted), counted per request and
//!   acknowledged: the agent sends its host metrics every interval, and a receiver
//!   without the service would have it retry;
//! - with `--tcp-sink`, a plain TCP sink that counts newline-terminated lines, the
//!   local end of rsyslog's `omfwd` in `benches/agent.sh`'s side-by-side run.
//!
//! Once bound it prints `listening grpc=ADDR` (plus ` tcp=ADDR` with a sink) on stdout.
//! The counters, and the wall-clock times of the first and last export and TCP read,
//! are written as one JSON object to `--report FILE` every `--report-every` seconds
//! (atomically: temp file + rename) and once more, also on stdout, at SIGTERM/SIGINT.
//!
//! ```text
//! null-receiver --grpc-addr 127.0.0.1:0 --tcp-sink 127.0.0.1:0 --report /tmp/counts.json
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use clap::Parser;
use epitaph_proto::collector::logs::v1::ExportLogsServiceResponse;
use epitaph_proto::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use epitaph_proto::lifecycle::lifecycle_server::{Lifecycle, LifecycleServer};
use epitaph_proto::lifecycle::{
    GoodbyeRequest, GoodbyeResponse, HeartbeatRequest, HeartbeatResponse, HelloRequest,
    HelloResponse, LossReport, LossReportResponse,
};
use epitaph_proto::{BATCH_HEADER, BatchId};
use epitaph_server::ingest::raw::{ExportHandler, Raw, RawExportService};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::codegen::BoxFuture;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Far above the agent's 1 MiB batches; a larger request is still counted, not refused.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// What the heartbeat interval in `HelloResponse` asks for (the server's default).
const HEARTBEAT_INTERVAL_MS: u64 = 10_000;

#[derive(Parser, Debug)]
#[command(
    about = "Acknowledges OTLP log exports and lifecycle calls without storing them, counting records"
)]
struct Args {
    /// Address of the gRPC server (OTLP logs + lifecycle); port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:0")]
    grpc_addr: SocketAddr,
    /// Also listen on this TCP address (or port on 127.0.0.1) and count the
    /// newline-terminated lines received there.
    #[arg(long, value_name = "ADDR|PORT", value_parser = parse_sink_address)]
    tcp_sink: Option<SocketAddr>,
    /// Write the counters as JSON to this file, every `--report-every` seconds and at exit.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Seconds between two writes of `--report`.
    #[arg(long, default_value_t = 0.1)]
    report_every: f64,
}

fn parse_sink_address(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse()
        .map_err(|_| format!("`{value}` is neither a port nor an address like 127.0.0.1:5140"))
}

// ---------------------------------------------------------------------------------------
// Counters

/// Everything the receiver has seen; shared by the services, the sink and the reporter.
#[derive(Default)]
struct Counters {
    export_requests: AtomicU64,
    log_records: AtomicU64,
    /// Decompressed protobuf bytes of the export requests.
    export_bytes: AtomicU64,
    first_export_unix_nanos: AtomicU64,
    last_export_unix_nanos: AtomicU64,
    tcp_connections: AtomicU64,
    tcp_lines: AtomicU64,
    tcp_bytes: AtomicU64,
    first_tcp_unix_nanos: AtomicU64,
    last_tcp_unix_nanos: AtomicU64,
    hellos: AtomicU64,
    heartbeats: AtomicU64,
    goodbyes: AtomicU64,
    loss_reports: AtomicU64,
    lost_records: AtomicU64,
    metric_exports: AtomicU64,
    /// Highest acked `epitaph-batch` sequence per agent id, for the watermarks.
    acked_sequences: Mutex<HashMap<String, u64>>,
}

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

impl Counters {
    fn note_export(&self, records: u64, bytes: u64) {
        let now = unix_nanos_now();
        // Only the first export sets it: 0 means "none yet".
        let _ = self.first_export_unix_nanos.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.export_requests.fetch_add(1, Ordering::Relaxed);
        self.export_bytes.fetch_add(bytes, Ordering::Relaxed);
        // Timestamp before the count, so a reader that sees the final count also sees
        // (at least) the time of the export that completed it.
        self.last_export_unix_nanos
            .fetch_max(now, Ordering::Release);
        self.log_records.fetch_add(records, Ordering::Release);
    }

    fn note_tcp_read(&self, bytes: &[u8]) {
        let now = unix_nanos_now();
        let _ = self.first_tcp_unix_nanos.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let lines = bytes.iter().filter(|&&byte| byte == b'\n').count() as u64;
        self.tcp_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.last_tcp_unix_nanos.fetch_max(now, Ordering::Release);
        self.tcp_lines.fetch_add(lines, Ordering::Release);
    }

    fn note_acked_batch(&self, batch: &BatchId) {
        let mut acked = self
            .acked_sequences
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let highest = acked.entry(batch.agent_id.clone()).or_insert(0);
        *highest = (*highest).max(batch.sequence);
    }

    fn watermark(&self, agent_id: &str) -> u64 {
        let acked = self
            .acked_sequences
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        acked.get(agent_id).copied().unwrap_or(0)
    }

    fn to_json(&self) -> serde_json::Value {
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        serde_json::json!({
            "log_records": load(&self.log_records),
            "export_requests": load(&self.export_requests),
            "export_bytes": load(&self.export_bytes),
            "first_export_unix_nanos": load(&self.first_export_unix_nanos),
            "last_export_unix_nanos": load(&self.last_export_unix_nanos),
            "tcp_connections": load(&self.tcp_connections),
            "tcp_lines": load(&self.tcp_lines),
            "tcp_bytes": load(&self.tcp_bytes),
            "first_tcp_unix_nanos": load(&self.first_tcp_unix_nanos),
            "last_tcp_unix_nanos": load(&self.last_tcp_unix_nanos),
            "hellos": load(&self.hellos),
            "heartbeats": load(&self.heartbeats),
            "goodbyes": load(&self.goodbyes),
            "loss_reports": load(&self.loss_reports),
            "lost_records": load(&self.lost_records),
            "metric_exports": load(&self.metric_exports),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Counting the records of an export request

/// `ExportLogsServiceRequest` with only its `resource_logs` (field 1). prost skips the
/// fields a message does not declare, so decoding this walks the request's structure
/// without copying a single body, attribute or resource.
#[derive(Clone, PartialEq, prost::Message)]
struct RequestSkeleton {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogsSkeleton>,
}

/// `ResourceLogs` with only its `scope_logs` (field 2).
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceLogsSkeleton {
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogsSkeleton>,
}

/// `ScopeLogs` with only its `log_records` (field 2).
#[derive(Clone, PartialEq, prost::Message)]
struct ScopeLogsSkeleton {
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecordSkeleton>,
}

/// A `LogRecord` with every field skipped: a zero-sized value, so the vector of them
/// does not allocate per record.
#[derive(Clone, PartialEq, prost::Message)]
struct LogRecordSkeleton {}

impl RequestSkeleton {
    fn log_records(&self) -> u64 {
        let mut records = 0;
        for resource_logs in &self.resource_logs {
            for scope_logs in &resource_logs.scope_logs {
                records += scope_logs.log_records.len() as u64;
            }
        }
        records
    }
}

// ---------------------------------------------------------------------------------------
// OTLP LogsService: the server's hand-served export method, decoding only the skeleton

/// Counts each export's records and acknowledges it. Served by the server's
/// [`RawExportService`], which hands over the request's bytes with what they decode to.
#[derive(Clone)]
struct NullLogs {
    counters: Arc<Counters>,
}

impl ExportHandler for NullLogs {
    type Request = RequestSkeleton;
    type Response = ExportLogsServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";

    fn export(
        &self,
        request: Request<Raw<RequestSkeleton>>,
    ) -> BoxFuture<Response<ExportLogsServiceResponse>, Status> {
        let counters = self.counters.clone();
        Box::pin(async move {
            let batch = request
                .metadata()
                .get(BATCH_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| BatchId::parse(value).ok());
            let Raw { bytes, request } = request.into_inner();
            counters.note_export(request.log_records(), bytes.len() as u64);
            if let Some(batch) = batch {
                counters.note_acked_batch(&batch);
            }
            Ok(Response::new(ExportLogsServiceResponse::default()))
        })
    }
}

fn null_logs_service(counters: Arc<Counters>) -> RawExportService<NullLogs> {
    RawExportService::new(NullLogs { counters }, MAX_REQUEST_BYTES)
}

// ---------------------------------------------------------------------------------------
// Lifecycle

struct NullLifecycle {
    counters: Arc<Counters>,
}

/// Counts metric exports and acknowledges them without looking inside.
struct NullMetrics {
    counters: Arc<Counters>,
}

#[tonic::async_trait]
impl MetricsService for NullMetrics {
    async fn export(
        &self,
        _request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.counters.metric_exports.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The metrics service, accepting what the agent may compress with.
fn null_metrics_service(counters: Arc<Counters>) -> MetricsServiceServer<NullMetrics> {
    MetricsServiceServer::new(NullMetrics { counters })
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
}

#[tonic::async_trait]
impl Lifecycle for NullLifecycle {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        self.counters.hellos.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(HelloResponse {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
            stored_watermark: self.counters.watermark(&request.get_ref().agent_id),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(HeartbeatResponse {
            stored_watermark: self.counters.watermark(&request.get_ref().agent_id),
        }))
    }

    async fn goodbye(
        &self,
        request: Request<GoodbyeRequest>,
    ) -> Result<Response<GoodbyeResponse>, Status> {
        self.counters.goodbyes.fetch_add(1, Ordering::Relaxed);
        let goodbye = request.into_inner();
        let stored_watermark = self.counters.watermark(&goodbye.agent_id);
        Ok(Response::new(GoodbyeResponse {
            record_complete: stored_watermark >= goodbye.final_sequence,
            stored_watermark,
        }))
    }

    async fn report_loss(
        &self,
        request: Request<LossReport>,
    ) -> Result<Response<LossReportResponse>, Status> {
        self.counters.loss_reports.fetch_add(1, Ordering::Relaxed);
        self.counters
            .lost_records
            .fetch_add(request.get_ref().records, Ordering::Relaxed);
        Ok(Response::new(LossReportResponse {}))
    }
}

// ---------------------------------------------------------------------------------------
// TCP line sink

/// Accepts connections until shutdown; each one is drained and its newlines counted.
async fn run_tcp_sink(
    listener: TcpListener,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, _peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                eprintln!("null-receiver: tcp sink accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => counters.note_tcp_read(&buffer[..read]),
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Reporting

/// Replaces `path` with the current counters (temp file + rename, so a reader never
/// sees a half-written object).
fn write_report(path: &Path, counters: &Counters) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, format!("{}\n", counters.to_json()))
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
}

async fn report_periodically(path: PathBuf, every: Duration, counters: Arc<Counters>) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if let Err(error) = write_report(&path, &counters) {
            eprintln!("null-receiver: {error:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.report_every.is_finite() && args.report_every > 0.0,
        "--report-every must be a positive number of seconds"
    );
    // Two workers: enough for one agent's exports, and the receiver shares the machine
    // with what it measures.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let incoming = TcpIncoming::bind(args.grpc_addr)
        .map_err(|error| anyhow::anyhow!("binding {}: {error}", args.grpc_addr))?
        .with_nodelay(Some(true));
    let grpc_addr = incoming
        .local_addr()
        .context("reading the bound gRPC address")?;
    let tcp_sink = match args.tcp_sink {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the tcp sink to {address}"))?;
            Some(listener)
        }
        None => None,
    };

    let mut listening = format!("listening grpc={grpc_addr}");
    let (stop, stopped) = watch::channel(false);
    let mut sink_task = None;
    if let Some(listener) = tcp_sink {
        let address = listener
            .local_addr()
            .context("reading the bound tcp sink address")?;
        listening.push_str(&format!(" tcp={address}"));
        sink_task = Some(tokio::spawn(run_tcp_sink(
            listener,
            counters.clone(),
            stopped.clone(),
        )));
    }
    let report_task = args.report.clone().map(|path| {
        tokio::spawn(report_periodically(
            path,
            Duration::from_secs_f64(args.report_every),
            counters.clone(),
        ))
    });

    let mut grpc_stopped = stopped.clone();
    let grpc = tonic::transport::Server::builder()
        .add_service(null_logs_service(counters.clone()))
        .add_service(LifecycleServer::new(NullLifecycle {
            counters: counters.clone(),
        }))
        .add_service(null_metrics_service(counters.clone()))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stopped.changed().await;
        });
    let grpc_task = tokio::spawn(grpc);

    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{listening}")?;
        stdout.flush()?;
    }

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    let _ = stop.send(true);
    if let Some(task) = report_task {
        task.abort();
    }
    // Open gRPC connections would hold a graceful shutdown forever; give it a moment.
    let _ = tokio::time::timeout(Duration::from_secs(2), grpc_task).await;
    if let Some(task) = sink_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    if let Some(path) = &args.report {
        write_report(path, &counters)?;
    }
    println!("{}", counters.to_json());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use epitaph_benches::corpus::{Corpus, CorpusConfig};
    use epitaph_benches::loadgen::{self, LoadConfig, encode_batches};
    use prost::Message as _;
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// Starts the receiver's services on loopback ports the OS picks.
    async fn start() -> (Arc<Counters>, SocketAddr, SocketAddr, watch::Sender<bool>) {
        let counters = Arc::new(Counters::default());
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("loopback address"))
            .expect("bind loopback");
        let grpc_addr = incoming.local_addr().expect("bound address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let sink_addr = listener.local_addr().expect("bound sink address");
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run_tcp_sink(listener, counters.clone(), stopped));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(null_logs_service(counters.clone()))
                .add_service(LifecycleServer::new(NullLifecycle {
                    counters: counters.clone(),
                }))
                .add_service(null_metrics_service(counters.clone()))
                .serve_with_incoming(incoming),
        );
        (counters, grpc_addr, sink_addr, stop)
    }

    #[test]
    fn skeleton_counts_every_record_of_a_request() {
        let mut corpus = Corpus::new(5, CorpusConfig::default());
        let batch = corpus.next_batch(777);
        assert!(
            batch.request.resource_logs.len() > 1,
            "want several resources"
        );
        let bytes = batch.request.encode_to_vec();
        let skeleton = RequestSkeleton::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(skeleton.log_records(), 777);
    }

    #[test]
    fn garbage_is_not_a_request() {
        assert!(RequestSkeleton::decode(&[0x0a, 0xff, 0xff][..]).is_err());
    }

    #[tokio::test]
    async fn zstd_exports_are_acked_and_every_record_counted() {
        let (counters, grpc_addr, _sink, _stop) = start().await;
        let mut corpus = Corpus::new(3, CorpusConfig::default());
        let batches = Arc::new(encode_batches(&mut corpus, 5_000, 700));
        let config = LoadConfig {
            endpoint: format!("http://{grpc_addr}"),
            connections: 2,
            ..LoadConfig::default()
        };
        let report = loadgen::run(&config, batches).await.expect("load run");
        assert_eq!(report.acked_lines, 5_000);
        assert_eq!(counters.log_records.load(Ordering::Acquire), 5_000);
        assert_eq!(counters.export_requests.load(Ordering::Acquire), 8);
        assert!(counters.last_export_unix_nanos.load(Ordering::Acquire) > 0);
    }

    #[tokio::test]
    async fn the_tcp_sink_counts_lines_across_reads() {
        let (counters, _grpc, sink_addr, _stop) = start().await;
        let mut stream = tokio::net::TcpStream::connect(sink_addr)
            .await
            .expect("connect to sink");
        stream.write_all(b"one\ntwo\nthr").await.expect("write");
        stream.write_all(b"ee\nfour\n").await.expect("write");
        stream.shutdown().await.expect("shutdown");
        for _ in 0..200 {
            if counters.tcp_lines.load(Ordering::Acquire) == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counters.tcp_lines.load(Ordering::Acquire), 4);
        assert_eq!(counters.tcp_bytes.load(Ordering::Acquire), 19);
    }

    #[tokio::test]
    async fn compressed_metric_exports_are_acked_and_counted() {
        use epitaph_proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
        let (counters, grpc_addr, _sink, _stop) = start().await;
        let mut client = MetricsServiceClient::connect(format!("http://{grpc_addr}"))
            .await
            .expect("connect")
            .send_compressed(CompressionEncoding::Zstd);
        for _ in 0..2 {
            client
                .export(ExportMetricsServiceRequest::default())
                .await
                .expect("metrics export acked");
        }
        assert_eq!(counters.metric_exports.load(Ordering::Relaxed), 2);
        assert_eq!(counters.to_json()["metric_exports"], 2);
    }

    #[tokio::test]
    async fn goodbye_is_complete_once_the_final_batch_was_acked() {
        let (counters, grpc_addr, _sink, _stop) = start().await;
        counters.note_acked_batch(&BatchId::parse("agent-a/3").expect("valid id"));
        let mut client = epitaph_proto::lifecycle::lifecycle_client::LifecycleClient::connect(
            format!("http://{grpc_addr}"),
        )
        .await
        .expect("connect");
        let goodbye = |final_sequence| GoodbyeRequest {
            agent_id: "agent-a".to_string(),
            final_sequence,
            reason: "shutdown".to_string(),
            unsent_records: 0,
        };
        let complete = client.goodbye(goodbye(3)).await.expect("goodbye");
        assert!(complete.get_ref().record_complete);
        let incomplete = client.goodbye(goodbye(4)).await.expect("goodbye");
        assert!(!incomplete.get_ref().record_complete);
        assert_eq!(counters.goodbyes.load(Ordering::Relaxed), 2);
    }
}
