//! A tiny in-process OTLP + lifecycle server, and helpers to run the real agent loop
//! against it.
//!
//! The fake server behaves like the real one where the agent can tell: it stores each
//! `(agent, sequence)` once and acknowledges a resend without storing it again (a resend
//! with *different* content is counted as a conflict, which no test may see), and it
//! records hellos, heartbeats, goodbyes and loss reports. It can refuse exports with
//! `UNAVAILABLE` (a number of them, or all until told otherwise), keep refusing one
//! sequence forever, delay every export (a slow server: the delay comes before storing,
//! so an export the agent gives up on is not stored), and be stopped and started again
//! on the same port (a server that is down).

#![allow(dead_code)] // each test binary uses its own part of this

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use epitaph_agent::config::Config;
use epitaph_agent::identity::Identity;
use epitaph_agent::stats::AgentStats;
use epitaph_agent::{RunReport, run_with_stats};
use epitaph_proto::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use epitaph_proto::common::v1::any_value;
use epitaph_proto::lifecycle::lifecycle_server::{Lifecycle, LifecycleServer};
use epitaph_proto::lifecycle::{
    GoodbyeRequest, GoodbyeResponse, HeartbeatRequest, HeartbeatResponse, HelloRequest,
    HelloResponse, LossReport, LossReportResponse,
};
use epitaph_proto::logs::v1::LogRecord;
use epitaph_proto::{BATCH_HEADER, BatchId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One stored export.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub batch: BatchId,
    /// (log.file.name, body) per record, in order; the file name is empty for records
    /// that come from no file (loss markers).
    pub lines: Vec<(String, String)>,
    pub records: Vec<LogRecord>,
}

#[derive(Default)]
pub struct Recorded {
    pub stored: Vec<StoredBatch>,
    pub refused_exports: usize,
    pub exports_without_header: usize,
    /// Resends of a stored sequence (acknowledged, not stored again).
    pub duplicate_exports: usize,
    /// Resends of a stored sequence with other records: a sequence reused, a bug.
    pub conflicting_exports: usize,
    pub hellos: Vec<HelloRequest>,
    pub heartbeats: Vec<HeartbeatRequest>,
    pub goodbyes: Vec<GoodbyeRequest>,
    pub losses: Vec<LossReport>,
}

#[derive(Clone)]
pub struct FakeServer {
    pub recorded: Arc<Mutex<Recorded>>,
    /// Exports still to refuse with UNAVAILABLE; `usize::MAX` refuses until changed.
    pub refuse_exports: Arc<AtomicUsize>,
    /// A sequence refused with UNAVAILABLE forever (0: none).
    pub stuck_sequence: u64,
    /// Milliseconds every export waits before it is stored and acknowledged.
    pub export_delay_ms: Arc<AtomicU64>,
}

impl FakeServer {
    pub fn new(refuse_exports: usize) -> FakeServer {
        FakeServer {
            recorded: Arc::default(),
            refuse_exports: Arc::new(AtomicUsize::new(refuse_exports)),
            stuck_sequence: 0,
            export_delay_ms: Arc::default(),
        }
    }

    pub fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.recorded.lock().unwrap())
    }

    pub fn stored_line_count(&self) -> usize {
        self.recorded(|recorded| recorded.stored.iter().map(|batch| batch.lines.len()).sum())
    }

    pub fn stored_sequences(&self) -> Vec<u64> {
        let mut sequences: Vec<u64> =
            self.recorded(|recorded| recorded.stored.iter().map(|b| b.batch.sequence).collect());
        sequences.sort_unstable();
        sequences
    }

    /// Refuse every export until [`FakeServer::accept_exports`].
    pub fn refuse_all_exports(&self) {
        self.refuse_exports.store(usize::MAX, Ordering::SeqCst);
    }

    pub fn accept_exports(&self) {
        self.refuse_exports.store(0, Ordering::SeqCst);
    }

    pub fn set_export_delay(&self, delay: Duration) {
        self.export_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

pub fn string_value(value: &Option<epitaph_proto::common::v1::AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

pub fn attribute(record: &LogRecord, key: &str) -> Option<any_value::Value> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

pub fn records_of(request: &ExportLogsServiceRequest) -> Vec<LogRecord> {
    request
        .resource_logs
        .iter()
        .flat_map(|resource_logs| &resource_logs.scope_logs)
        .flat_map(|scope_logs| scope_logs.log_records.iter().cloned())
        .collect()
}

fn line_of(record: &LogRecord) -> (String, String) {
    let file_name = record
        .attributes
        .iter()
        .find(|kv| kv.key == "log.file.name")
        .and_then(|kv| string_value(&kv.value))
        .unwrap_or_default();
    let Some(body) = string_value(&record.body) else {
        panic!("record without a string body");
    };
    (file_name, body)
}

#[tonic::async_trait]
impl LogsService for FakeServer {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let header = request
            .metadata()
            .get(BATCH_HEADER)
            .and_then(|value| value.to_str().ok());
        let Some(batch) = header.and_then(|value| BatchId::parse(value).ok()) else {
            self.recorded.lock().unwrap().exports_without_header += 1;
            return Err(Status::invalid_argument("missing epitaph-batch header"));
        };
        if batch.sequence == self.stuck_sequence {
            return Err(Status::unavailable("this one is stuck"));
        }
        let refused = self
            .refuse_exports
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                usize::MAX => Some(usize::MAX),
                left => Some(left - 1),
            })
            .is_ok();
        if refused {
            let mut recorded = self.recorded.lock().unwrap();
            recorded.refused_exports += 1;
            // Alternate between a bare UNAVAILABLE and one with a RetryInfo delay.
            if recorded.refused_exports % 2 == 1 {
                return Err(Status::with_error_details(
                    tonic::Code::Unavailable,
                    "wal is busy",
                    ErrorDetails::with_retry_info(Some(Duration::from_millis(30))),
                ));
            }
            return Err(Status::unavailable("not now"));
        }
        let delay = self.export_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let records = records_of(request.get_ref());
        let lines: Vec<(String, String)> = records.iter().map(line_of).collect();
        let mut recorded = self.recorded.lock().unwrap();
        let earlier = recorded
            .stored
            .iter()
            .find(|stored| stored.batch == batch)
            .map(|stored| stored.lines == lines);
        match earlier {
            Some(true) => recorded.duplicate_exports += 1,
            Some(false) => recorded.conflicting_exports += 1,
            None => recorded.stored.push(StoredBatch {
                batch,
                lines,
                records,
            }),
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl Lifecycle for FakeServer {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        self.recorded
            .lock()
            .unwrap()
            .hellos
            .push(request.into_inner());
        Ok(Response::new(HelloResponse {
            heartbeat_interval_ms: 50,
            stored_watermark: 0,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.recorded
            .lock()
            .unwrap()
            .heartbeats
            .push(request.into_inner());
        Ok(Response::new(HeartbeatResponse::default()))
    }

    async fn goodbye(
        &self,
        request: Request<GoodbyeRequest>,
    ) -> Result<Response<GoodbyeResponse>, Status> {
        let goodbye = request.into_inner();
        let mut recorded = self.recorded.lock().unwrap();
        let stored: Vec<u64> = recorded
            .stored
            .iter()
            .map(|stored| stored.batch.sequence)
            .collect();
        let record_complete =
            (1..=goodbye.final_sequence).all(|sequence| stored.contains(&sequence));
        recorded.goodbyes.push(goodbye);
        Ok(Response::new(GoodbyeResponse {
            record_complete,
            stored_watermark: 0,
        }))
    }

    async fn report_loss(
        &self,
        request: Request<LossReport>,
    ) -> Result<Response<LossReportResponse>, Status> {
        let loss = request.into_inner();
        if loss.records == 0 {
            return Err(Status::invalid_argument(
                "a loss report must count at least one record",
            ));
        }
        self.recorded.lock().unwrap().losses.push(loss);
        Ok(Response::new(LossReportResponse {}))
    }
}

/// A running fake server; [`RunningServer::stop`] takes it down (connections refused).
pub struct RunningServer {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

/// Serves `server` on `address` (port 0: one the OS picks), retrying the bind for a
/// while (the port of a server just stopped may still be held).
pub async fn serve_at(server: FakeServer, address: SocketAddr) -> RunningServer {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => break listener,
            Err(error) if tokio::time::Instant::now() < give_up => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind {address}: {error}"),
        }
    };
    let address = listener.local_addr().unwrap();
    let logs = LogsServiceServer::new(server.clone())
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
    let lifecycle = LifecycleServer::new(server);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .add_service(logs)
            .add_service(lifecycle)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    RunningServer {
        address,
        stop: Some(stop),
        task,
    }
}

/// Serves `server` on a port the OS picks, for the rest of the test.
pub async fn start_fake_server(server: FakeServer) -> SocketAddr {
    let running = serve_at(server, "127.0.0.1:0".parse().unwrap()).await;
    let address = running.address;
    std::mem::forget(running.stop); // keep the server up: dropping the sender stops it
    address
}

pub fn test_config(server: SocketAddr, state_dir: &Path, logs_dir: &Path) -> Config {
    Config {
        server: format!("http://{server}"),
        state_dir: state_dir.to_path_buf(),
        files: vec![format!("{}/*.log", logs_dir.display())],
        poll_interval: Duration::from_millis(20),
        batch_timeout: Duration::from_millis(50),
        batch_max_records: 40,
        heartbeat_interval: Duration::from_millis(100),
        shutdown_deadline: Duration::from_secs(10),
        ..Config::default()
    }
}

pub fn test_identity() -> Identity {
    Identity::from_attributes(BTreeMap::from([
        ("service.name".to_string(), "web".to_string()),
        (
            "host.image.version".to_string(),
            "2026.11.26-3f2a".to_string(),
        ),
    ]))
}

/// A running agent: fire `stop` (or drop it) to shut it down; `stats` are live.
pub struct RunningAgent {
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<anyhow::Result<RunReport>>,
    pub stats: Arc<AgentStats>,
}

impl RunningAgent {
    pub async fn shut_down(self) -> RunReport {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the agent stops within 30 s")
            .unwrap()
            .unwrap()
    }
}

pub fn start_agent_with_stats(config: Config) -> RunningAgent {
    let (stop, stopped) = oneshot::channel::<()>();
    let stats = Arc::new(AgentStats::default());
    let task = tokio::spawn(run_with_stats(
        config,
        test_identity(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    RunningAgent { stop, task, stats }
}

/// Starts the agent; dropping or firing the sender stops it.
pub fn start_agent(config: Config) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<RunReport>>) {
    let agent = start_agent_with_stats(config);
    (agent.stop, agent.task)
}

pub async fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_up_to(Duration::from_secs(10), what, condition).await;
}

pub async fn wait_up_to(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the agent has tracked its files (the state file is written right after
/// the first scan: from then on, new lines count).
pub async fn wait_for_first_scan(state_dir: &Path) {
    wait_until("the agent's first scan", || {
        state_dir.join("state").exists()
    })
    .await;
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

pub fn spool_files(state_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(state_dir.join("spool")) {
        Ok(listing) => listing.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The spool's size: the sum of its batch files.
pub fn spool_bytes(state_dir: &Path) -> u64 {
    spool_files(state_dir)
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "batch"))
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// The bodies of the records in the spool's batch files.
pub fn spooled_bodies(state_dir: &Path) -> Vec<String> {
    let mut bodies = Vec::new();
    for path in spool_files(state_dir) {
        let Some(sequence) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".batch"))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        let request = epitaph_agent::spool::read_batch_request(&path, sequence).unwrap();
        for record in records_of(&request) {
            bodies.push(string_value(&record.body).unwrap());
        }
    }
    bodies
}

pub fn agent_id(state_dir: &Path) -> String {
    std::fs::read_to_string(state_dir.join("agent-id"))
        .unwrap()
        .trim()
        .to_string()
}

/// Every stored line, in sequence order; checks no sequence was reused for other data.
pub fn stored_in_sequence_order(
    server: &FakeServer,
    agent_id: &str,
) -> (Vec<u64>, Vec<(String, String)>) {
    let (stored, conflicting) =
        server.recorded(|recorded| (recorded.stored.clone(), recorded.conflicting_exports));
    assert_eq!(
        conflicting, 0,
        "a sequence was sent twice with different records"
    );
    let mut by_sequence: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for batch in stored {
        assert_eq!(
            batch.batch.agent_id, agent_id,
            "batch tagged with another agent id"
        );
        let previous = by_sequence.insert(batch.batch.sequence, batch.lines);
        assert!(
            previous.is_none(),
            "sequence {} stored twice",
            batch.batch.sequence
        );
    }
    let sequences = by_sequence.keys().copied().collect();
    (sequences, by_sequence.into_values().flatten().collect())
}

pub fn assert_each_line_once(stored: &[(String, String)], expected: &[(String, String)]) {
    let mut counts: HashMap<&(String, String), usize> = HashMap::new();
    for line in stored {
        *counts.entry(line).or_default() += 1;
    }
    for line in expected {
        assert_eq!(counts.get(line).copied().unwrap_or(0), 1, "line {line:?}");
    }
    assert_eq!(stored.len(), expected.len(), "unexpected extra lines");
}

/// Like [`assert_each_line_once`], on bodies only (lines of rotated files change name).
pub fn assert_each_body_once(stored: &[String], expected: &[String]) {
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for body in stored {
        *counts.entry(body).or_default() += 1;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|body| !counts.contains_key(body))
        .collect();
    let doubled: Vec<(&&String, &usize)> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines missing, first {:?}",
        missing.len(),
        expected.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert!(doubled.is_empty(), "lines stored twice: {doubled:?}");
    assert_eq!(stored.len(), expected.len(), "unexpected extra lines");
}

pub fn numbered(
    file_name: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Vec<(String, String)> {
    range
        .map(|n| (file_name.to_string(), format!("{prefix} {n}")))
        .collect()
}

pub fn as_text(lines: &[(String, String)], newline: &str) -> String {
    lines
        .iter()
        .map(|(_, body)| format!("{body}{newline}"))
        .collect()
}

/// A writer thread that appends numbered lines (`chunk` every `every`) until told to
/// stop; joining it gives the lines written.
pub struct SteadyWriter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(String, String)>>,
}

impl SteadyWriter {
    pub fn start(
        path: PathBuf,
        prefix: &'static str,
        chunk: usize,
        every: Duration,
    ) -> SteadyWriter {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let thread = std::thread::spawn(move || {
            let mut written = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                let lines = numbered(&file_name, prefix, written.len()..written.len() + chunk);
                append(&path, &as_text(&lines, "\n"));
                written.extend(lines);
                std::thread::sleep(every);
            }
            written
        });
        SteadyWriter { stop, thread }
    }

    pub async fn stop(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap()
    }
}

/// The server goes away for `down_for` while a writer keeps appending, then comes back
/// on the same port: every line must arrive once, in contiguous sequences.
pub async fn server_outage_while_lines_keep_coming(down_for: Duration) {
    let server = FakeServer::new(0);
    let running = serve_at(server.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let address = running.address;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");
    let config = Config {
        batch_max_records: 200,
        ..test_config(address, &state_dir, &logs_dir)
    };
    let agent = start_agent_with_stats(config);
    wait_for_first_scan(&state_dir).await;

    let writer = SteadyWriter::start(app_log, "steady", 10, Duration::from_millis(20));
    wait_until("lines flowing", || server.stored_line_count() >= 50).await;
    running.stop().await;
    let stored_when_down = server.stored_line_count();
    tokio::time::sleep(down_for).await;
    // Meanwhile the agent kept reading into its spool.
    let read_while_down = agent.stats.snapshot().lines_read;
    assert!(
        read_while_down as usize > stored_when_down + 10,
        "the agent kept reading: {read_while_down} read, {stored_when_down} stored"
    );
    assert!(
        !spool_files(&state_dir).is_empty(),
        "batches wait in the spool"
    );
    assert!(
        server.stored_line_count() <= stored_when_down + 200,
        "the server was really down"
    );

    let _running = serve_at(server.clone(), address).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = writer.stop().await;
    wait_up_to(Duration::from_secs(30), "every line to be stored", || {
        server.stored_line_count() >= written.len()
    })
    .await;
    let report = agent.shut_down().await;

    let (sequences, stored) = stored_in_sequence_order(&server, &report.agent_id);
    assert_each_line_once(&stored, &written);
    assert_eq!(stored, written, "order is kept");
    assert_eq!(sequences, (1..=report.final_sequence).collect::<Vec<u64>>());
    assert_eq!(report.record_complete, Some(true));
    assert!(!report.deadline_hit);
    assert!(report.stats.export_retries > 0, "exports were retried");
    assert!(spool_files(&state_dir).is_empty());
}
