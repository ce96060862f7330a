//! The agent's real main loop against a tiny in-process OTLP + lifecycle server.
//!
//! The fake server records every export it acknowledges (with its `epitaph-batch`
//! header), can refuse the first exports with `UNAVAILABLE` to force retries, and
//! records hellos, heartbeats and goodbyes. The tests write log lines, stop the agent
//! through its shutdown trigger and check what a server would have stored: every line
//! once, sequences contiguous from 1, and a goodbye naming the final sequence.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use epitaph_agent::config::Config;
use epitaph_agent::identity::Identity;
use epitaph_agent::{RunReport, run};
use epitaph_proto::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use epitaph_proto::common::v1::any_value;
use epitaph_proto::lifecycle::lifecycle_server::{Lifecycle, LifecycleServer};
use epitaph_proto::lifecycle::{
    GoodbyeRequest, GoodbyeResponse, HeartbeatRequest, HeartbeatResponse, HelloRequest,
    HelloResponse, LossReport, LossReportResponse,
};
use epitaph_proto::{BATCH_HEADER, BatchId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One acknowledged export.
#[derive(Debug, Clone)]
struct StoredBatch {
    batch: BatchId,
    /// (log.file.name, body) per record, in order.
    lines: Vec<(String, String)>,
}

#[derive(Default)]
struct Recorded {
    stored: Vec<StoredBatch>,
    refused_exports: usize,
    exports_without_header: usize,
    hellos: Vec<HelloRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    goodbyes: Vec<GoodbyeRequest>,
    losses: Vec<LossReport>,
}

#[derive(Clone)]
struct FakeServer {
    recorded: Arc<Mutex<Recorded>>,
    /// Exports still to refuse with UNAVAILABLE; `usize::MAX` refuses forever.
    refuse_exports: Arc<AtomicUsize>,
    /// A sequence refused with UNAVAILABLE forever (0: none).
    stuck_sequence: u64,
}

impl FakeServer {
    fn new(refuse_exports: usize) -> FakeServer {
        FakeServer {
            recorded: Arc::default(),
            refuse_exports: Arc::new(AtomicUsize::new(refuse_exports)),
            stuck_sequence: 0,
        }
    }

    fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.recorded.lock().unwrap())
    }

    fn stored_line_count(&self) -> usize {
        self.recorded(|recorded| recorded.stored.iter().map(|batch| batch.lines.len()).sum())
    }
}

fn lines_of(request: &ExportLogsServiceRequest) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for resource_logs in &request.resource_logs {
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                let file_name = record
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "log.file.name")
                    .and_then(|kv| kv.value.as_ref()?.value.clone());
                let Some(any_value::Value::StringValue(file_name)) = file_name else {
                    panic!("record without log.file.name");
                };
                let Some(any_value::Value::StringValue(body)) =
                    record.body.as_ref().and_then(|body| body.value.clone())
                else {
                    panic!("record without a string body");
                };
                lines.push((file_name, body));
            }
        }
    }
    lines
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
        let lines = lines_of(request.get_ref());
        self.recorded
            .lock()
            .unwrap()
            .stored
            .push(StoredBatch { batch, lines });
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
        self.recorded
            .lock()
            .unwrap()
            .losses
            .push(request.into_inner());
        Ok(Response::new(LossReportResponse {}))
    }
}

async fn start_fake_server(server: FakeServer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let logs = LogsServiceServer::new(server.clone())
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
    let lifecycle = LifecycleServer::new(server);
    tokio::spawn(
        Server::builder()
            .add_service(logs)
            .add_service(lifecycle)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    address
}

fn test_config(server: SocketAddr, state_dir: &Path, logs_dir: &Path) -> Config {
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

fn test_identity() -> Identity {
    Identity::from_attributes(BTreeMap::from([
        ("service.name".to_string(), "web".to_string()),
        (
            "host.image.version".to_string(),
            "2026.11.26-3f2a".to_string(),
        ),
    ]))
}

/// Starts the agent; dropping or firing the sender stops it.
fn start_agent(config: Config) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<RunReport>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(run(config, test_identity(), async {
        let _ = stopped.await;
    }));
    (stop, agent)
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn spool_files(state_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(state_dir.join("spool")) {
        Ok(listing) => listing.map(|entry| entry.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Every stored line, in sequence order, checked to arrive once per sequence.
fn stored_in_sequence_order(
    server: &FakeServer,
    agent_id: &str,
) -> (Vec<u64>, Vec<(String, String)>) {
    let stored = server.recorded(|recorded| recorded.stored.clone());
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

fn assert_each_line_once(stored: &[(String, String)], expected: &[(String, String)]) {
    let mut counts: HashMap<&(String, String), usize> = HashMap::new();
    for line in stored {
        *counts.entry(line).or_default() += 1;
    }
    for line in expected {
        assert_eq!(counts.get(line).copied().unwrap_or(0), 1, "line {line:?}");
    }
    assert_eq!(stored.len(), expected.len(), "unexpected extra lines");
}

fn numbered(file_name: &str, prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|n| (file_name.to_string(), format!("{prefix} {n}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_exactly_once_with_contiguous_sequences() {
    let server = FakeServer::new(3);
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "old line written before the agent started\n");

    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    // The state file is written right after the first scan: from then on, new lines count.
    wait_until("the agent's first scan", || {
        state_dir.join("state").exists()
    })
    .await;

    let mut expected = Vec::new();
    for chunk in 0..6 {
        let lines = numbered(
            "app.log",
            "level=info request",
            chunk * 50..(chunk + 1) * 50,
        );
        let text: String = lines.iter().map(|(_, body)| format!("{body}\n")).collect();
        append(&app_log, &text);
        expected.extend(lines);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // A file that appears after the start is read from its beginning.
    let worker_log = logs_dir.join("worker.log");
    let worker_lines = numbered("worker.log", "ERROR job failed", 0..50);
    append(
        &worker_log,
        &worker_lines
            .iter()
            .map(|(_, body)| format!("{body}\r\n"))
            .collect::<String>(),
    );
    expected.extend(worker_lines);
    let full_lines = expected.len();
    wait_until("every complete line to be stored", || {
        server.stored_line_count() >= full_lines
    })
    .await;

    // An unterminated last line goes out at shutdown.
    append(&app_log, "last words without a newline");
    expected.push((
        "app.log".to_string(),
        "last words without a newline".to_string(),
    ));
    stop.send(()).unwrap();
    let report = agent.await.unwrap().unwrap();

    let agent_id = std::fs::read_to_string(state_dir.join("agent-id"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(report.agent_id, agent_id);
    let (sequences, stored) = stored_in_sequence_order(&server, &agent_id);
    assert_each_line_once(&stored, &expected);
    let app_order: Vec<&(String, String)> = stored
        .iter()
        .filter(|(file, _)| file == "app.log")
        .collect();
    let expected_order: Vec<&(String, String)> = expected
        .iter()
        .filter(|(file, _)| file == "app.log")
        .collect();
    assert_eq!(
        app_order, expected_order,
        "lines of one file keep their order across batches"
    );
    assert_eq!(
        sequences,
        (1..=report.final_sequence).collect::<Vec<u64>>(),
        "contiguous from 1"
    );
    assert!(
        report.final_sequence >= 9,
        "40-record batches: {}",
        report.final_sequence
    );

    assert!(!report.deadline_hit);
    assert_eq!(report.unsent_records, 0);
    assert_eq!(report.acked_batches, report.final_sequence);
    assert_eq!(report.record_complete, Some(true));
    server.recorded(|recorded| {
        assert_eq!(
            recorded.refused_exports, 3,
            "the first exports were refused and retried"
        );
        assert_eq!(recorded.exports_without_header, 0);
        assert_eq!(recorded.hellos.len(), 1);
        assert_eq!(recorded.hellos[0].agent_id, agent_id);
        assert_eq!(recorded.hellos[0].last_sequence, 0);
        assert_eq!(
            recorded.hellos[0]
                .resource
                .get("service.name")
                .map(String::as_str),
            Some("web")
        );
        assert!(
            !recorded.heartbeats.is_empty(),
            "heartbeats at the server's 50 ms interval"
        );
        assert_eq!(recorded.goodbyes.len(), 1);
        let goodbye = &recorded.goodbyes[0];
        assert_eq!(goodbye.agent_id, agent_id);
        assert_eq!(goodbye.final_sequence, report.final_sequence);
        assert_eq!(goodbye.reason, "shutdown");
        assert_eq!(goodbye.unsent_records, 0);
    });
    assert!(
        spool_files(&state_dir).is_empty(),
        "acked batches leave the spool"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("state")).unwrap()).unwrap();
    assert_eq!(state["last_acked_sequence"], report.final_sequence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_are_resent_with_their_sequences_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let app_log = logs_dir.join("app.log");
    append(&app_log, "");

    // First life: the server never accepts an export, and the deadline is short.
    let refusing = FakeServer::new(usize::MAX);
    let address = start_fake_server(refusing.clone()).await;
    let mut config = test_config(address, &state_dir, &logs_dir);
    config.shutdown_deadline = Duration::from_millis(300);
    let (stop, agent) = start_agent(config);
    wait_until("the agent's first scan", || {
        state_dir.join("state").exists()
    })
    .await;
    let first_lines = numbered("app.log", "first life", 0..60);
    append(
        &app_log,
        &first_lines
            .iter()
            .map(|(_, body)| format!("{body}\n"))
            .collect::<String>(),
    );
    wait_until("batches in the spool", || {
        spool_files(&state_dir).len() >= 2
    })
    .await;
    stop.send(()).unwrap();
    let first = agent.await.unwrap().unwrap();
    assert!(first.deadline_hit);
    assert_eq!(first.unsent_records, 60);
    assert_eq!(first.final_sequence, 2, "60 lines in 40-record batches");
    refusing.recorded(|recorded| {
        assert!(recorded.stored.is_empty());
        assert_eq!(
            recorded.goodbyes.len(),
            1,
            "goodbye even after the deadline"
        );
        assert_eq!(recorded.goodbyes[0].final_sequence, 2);
        assert_eq!(recorded.goodbyes[0].unsent_records, 60);
    });

    // Second life: a healthy server. The spooled batches go out under their sequences.
    let healthy = FakeServer::new(0);
    let address = start_fake_server(healthy.clone()).await;
    let (stop, agent) = start_agent(test_config(address, &state_dir, &logs_dir));
    wait_until("the spooled batches", || healthy.stored_line_count() >= 60).await;
    let second_lines = numbered("app.log", "second life", 0..30);
    append(
        &app_log,
        &second_lines
            .iter()
            .map(|(_, body)| format!("{body}\n"))
            .collect::<String>(),
    );
    wait_until("the new lines", || healthy.stored_line_count() >= 90).await;
    stop.send(()).unwrap();
    let second = agent.await.unwrap().unwrap();

    assert_eq!(
        second.agent_id, first.agent_id,
        "the agent id survives restarts"
    );
    let (sequences, stored) = stored_in_sequence_order(&healthy, &second.agent_id);
    let expected: Vec<(String, String)> = first_lines.into_iter().chain(second_lines).collect();
    assert_each_line_once(&stored, &expected);
    assert_eq!(stored, expected, "order is kept across the restart");
    assert_eq!(sequences, (1..=second.final_sequence).collect::<Vec<u64>>());
    healthy.recorded(|recorded| {
        assert_eq!(
            recorded.hellos[0].last_sequence, 2,
            "hello reports the last assigned sequence"
        );
        let first_life: Vec<u64> = recorded
            .stored
            .iter()
            .filter(|stored| {
                stored
                    .lines
                    .iter()
                    .any(|(_, body)| body.starts_with("first life"))
            })
            .map(|stored| stored.batch.sequence)
            .collect();
        assert_eq!(
            first_life.iter().copied().max(),
            Some(2),
            "resent under their original sequences"
        );
        assert_eq!(recorded.goodbyes[0].final_sequence, second.final_sequence);
    });
    assert!(spool_files(&state_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_starts_and_stops_cleanly_while_the_server_is_down() {
    // Nothing listens on this port: hello and goodbye fail, the agent still exits.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = unused.local_addr().unwrap();
    drop(unused);
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let mut config = test_config(address, &state_dir, &logs_dir);
    config.shutdown_deadline = Duration::from_millis(300);
    let (stop, agent) = start_agent(config);
    wait_until("the agent's first scan", || {
        state_dir.join("state").exists()
    })
    .await;
    append(&logs_dir.join("app.log"), "one line\n");
    wait_until("a spooled batch", || !spool_files(&state_dir).is_empty()).await;
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(report.deadline_hit);
    assert_eq!(report.final_sequence, 1);
    assert_eq!(report.unsent_records, 1);
    assert_eq!(report.record_complete, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stuck_batch_caps_the_spool_instead_of_growing_it() {
    let server = FakeServer {
        stuck_sequence: 1,
        ..FakeServer::new(0)
    };
    let address = start_fake_server(server.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let mut config = test_config(address, &state_dir, &logs_dir);
    config.shutdown_deadline = Duration::from_millis(200);
    let (stop, agent) = start_agent(config);
    wait_until("the agent's first scan", || {
        state_dir.join("state").exists()
    })
    .await;
    let lines = numbered("app.log", "line", 0..2000);
    append(
        &logs_dir.join("app.log"),
        &lines
            .iter()
            .map(|(_, body)| format!("{body}\n"))
            .collect::<String>(),
    );

    // 4 in flight allowed: at most 16 batches in the spool, however long batch 1 is stuck.
    wait_until("a full spool", || spool_files(&state_dir).len() >= 16).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(spool_files(&state_dir).len(), 16);
    assert_eq!(
        server.recorded(|recorded| recorded.stored.len()),
        15,
        "batches 2..=16 are acked"
    );
    stop.send(()).unwrap();
    let report = agent.await.unwrap().unwrap();
    assert!(report.deadline_hit);
    assert_eq!(report.final_sequence, 16);
    assert_eq!(report.unsent_records, 40, "only the stuck batch is unsent");
}
