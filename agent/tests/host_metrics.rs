//! Host metrics from the real agent, received by an in-test OTLP MetricsService on
//! loopback (beside the fake logs and lifecycle server of `common`).
//!
//! What a metrics backend relies on is checked on what arrives: names, kinds, units and
//! attributes; cumulative counters that never go down between intervals and start at
//! boot (kernel) or at the agent's start (its own); the same identity resource as the
//! logs; an `epitaph-batch` header with contiguous sequences, kept across retries and
//! restarts; and, against a server without metrics, one warning and no spam.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use epitaph_agent::config::Config;
use epitaph_agent::hostmetrics::MetricsConfig;
use epitaph_proto::collector::logs::v1::logs_service_server::LogsServiceServer;
use epitaph_proto::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use epitaph_proto::lifecycle::lifecycle_server::LifecycleServer;
use epitaph_proto::metrics::v1::{AggregationTemporality, metric, number_data_point};
use epitaph_proto::{BATCH_HEADER, BatchId};
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// How the fake metrics service answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MetricsAnswer {
    /// Stores each `(agent, sequence)` once, after refusing the first N calls.
    Accept,
    /// What a server built before metrics ingest answers.
    Unimplemented,
}

#[derive(Default)]
struct ReceivedMetrics {
    /// Every call's `epitaph-batch` header, refused ones included, in arrival order.
    headers: Vec<Option<String>>,
    /// Stored exports by sequence (a resend of a stored sequence is not stored again).
    stored: BTreeMap<u64, (BatchId, ExportMetricsServiceRequest)>,
    duplicates: usize,
    conflicts: usize,
}

#[derive(Clone)]
struct FakeMetrics {
    answer: MetricsAnswer,
    refuse_first: Arc<AtomicUsize>,
    received: Arc<Mutex<ReceivedMetrics>>,
}

impl FakeMetrics {
    fn new(answer: MetricsAnswer, refuse_first: usize) -> FakeMetrics {
        FakeMetrics {
            answer,
            refuse_first: Arc::new(AtomicUsize::new(refuse_first)),
            received: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.received.lock().unwrap().headers.len()
    }

    fn stored(&self) -> Vec<(BatchId, ExportMetricsServiceRequest)> {
        self.received
            .lock()
            .unwrap()
            .stored
            .values()
            .cloned()
            .collect()
    }
}

#[tonic::async_trait]
impl MetricsService for FakeMetrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let header = request
            .metadata()
            .get(BATCH_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let mut received = self.received.lock().unwrap();
        received.headers.push(header.clone());
        if self.answer == MetricsAnswer::Unimplemented {
            return Err(Status::unimplemented("metrics are not supported"));
        }
        let refused = self
            .refuse_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if refused {
            return Err(Status::unavailable("wal is busy"));
        }
        let Some(batch) = header.as_deref().and_then(|h| BatchId::parse(h).ok()) else {
            return Err(Status::invalid_argument("missing epitaph-batch header"));
        };
        let request = request.into_inner();
        match received.stored.get(&batch.sequence) {
            Some((_, earlier)) if *earlier == request => received.duplicates += 1,
            Some(_) => received.conflicts += 1,
            None => {
                received.stored.insert(batch.sequence, (batch, request));
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The fake logs + lifecycle server of `common`, and `metrics`, on one loopback port.
async fn serve_with_metrics(logs: FakeServer, metrics: FakeMetrics) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Server::builder()
        .add_service(
            LogsServiceServer::new(logs.clone()).accept_compressed(CompressionEncoding::Zstd),
        )
        .add_service(LifecycleServer::new(logs))
        .add_service(
            MetricsServiceServer::new(metrics).accept_compressed(CompressionEncoding::Zstd),
        );
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    address
}

/// One data point, flattened.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    unit: String,
    kind: &'static str,
    attributes: BTreeMap<String, String>,
    start: u64,
    time: u64,
    value: f64,
}

const COUNTER: &str = "monotonic cumulative sum";
const UP_DOWN: &str = "non-monotonic cumulative sum";
const GAUGE: &str = "gauge";

fn samples_of(request: &ExportMetricsServiceRequest) -> Vec<Sample> {
    let mut samples = Vec::new();
    for resource_metrics in &request.resource_metrics {
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                let (kind, points) = match metric.data.as_ref().expect("metric without data") {
                    metric::Data::Sum(sum) => {
                        assert_eq!(
                            sum.aggregation_temporality,
                            AggregationTemporality::Cumulative as i32,
                            "{}",
                            metric.name
                        );
                        let kind = if sum.is_monotonic { COUNTER } else { UP_DOWN };
                        (kind, &sum.data_points)
                    }
                    metric::Data::Gauge(gauge) => (GAUGE, &gauge.data_points),
                    other => panic!("{}: unexpected kind {other:?}", metric.name),
                };
                for point in points {
                    let attributes = point
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), string_value(&kv.value).unwrap()))
                        .collect();
                    let value = match point.value.expect("point without value") {
                        number_data_point::Value::AsDouble(value) => value,
                        number_data_point::Value::AsInt(value) => value as f64,
                    };
                    samples.push(Sample {
                        name: metric.name.clone(),
                        unit: metric.unit.clone(),
                        kind,
                        attributes,
                        start: point.start_time_unix_nano,
                        time: point.time_unix_nano,
                        value,
                    });
                }
            }
        }
    }
    samples
}

fn resource_of(request: &ExportMetricsServiceRequest) -> BTreeMap<String, String> {
    assert_eq!(request.resource_metrics.len(), 1, "one resource per export");
    request.resource_metrics[0]
        .resource
        .as_ref()
        .expect("a resource")
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), string_value(&kv.value).unwrap()))
        .collect()
}

fn find<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .collect()
}

/// The one sample of a metric without attributes.
fn single(samples: &[Sample], name: &str) -> Sample {
    let found = find(samples, name);
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0].clone()
}

/// This machine's boot time from `/proc/stat`, in nanoseconds since the epoch.
fn boot_time_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let seconds: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    seconds * 1_000_000_000
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A state directory, identity and log directory for the agent binary.
struct AgentFiles {
    dir: tempfile::TempDir,
}

impl AgentFiles {
    fn new() -> AgentFiles {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(
            dir.path().join("identity.toml"),
            "service = \"web\"\nimage_name = \"web-golden\"\nimage_version = \"2026.11.26-3f2a\"\n",
        )
        .unwrap();
        AgentFiles { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write_config(&self, server: SocketAddr, metrics_interval: &str) -> PathBuf {
        let config = format!(
            "server = \"http://{server}\"\nstate_dir = {state:?}\nidentity_file = {identity:?}\n\
             instance_identity_file = {instance:?}\nmetadata = \"none\"\nfiles = [{files:?}]\n\
             poll_interval = \"20ms\"\nbatch_timeout = \"50ms\"\nheartbeat_interval = \"100ms\"\n\
             [metrics]\ninterval = \"{metrics_interval}\"\n",
            state = self.path("state"),
            identity = self.path("identity.toml"),
            instance = self.path("instance.env"),
            files = format!("{}/*.log", self.path("logs").display()),
        );
        let path = self.path("agent.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    fn start_binary(&self, config: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_epitaph-agent"))
            .arg("--config")
            .arg(config)
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "host.id=i-0metrics,host.name=web-7,deployment.generation=7",
            )
            .env_remove("OTEL_SERVICE_NAME")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("agent.stderr")).unwrap())
            .spawn()
            .unwrap()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.path("agent.stderr")).unwrap_or_default())
            .into_owned()
    }
}

/// SIGTERM, then the exit status (within 30 s).
async fn terminate(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill only sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if tokio::time::Instant::now() > give_up {
            let _ = child.kill();
            panic!("the agent did not stop within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_binary_sends_host_metrics_that_a_backend_can_trust() {
    let logs = FakeServer::new(0);
    // The first two exports are refused: the first interval is retried, not doubled.
    let metrics = FakeMetrics::new(MetricsAnswer::Accept, 2);
    let address = serve_with_metrics(logs.clone(), metrics.clone()).await;
    let files = AgentFiles::new();
    let config = files.write_config(address, "200ms");
    let test_start = now_nanos();
    let child = files.start_binary(&config);

    wait_up_to(
        Duration::from_secs(20),
        "two stored metrics exports",
        || metrics.stored().len() >= 2,
    )
    .await;
    let app_log = files.path("logs/app.log");
    let lines = numbered("app.log", "level=info request", 0..25);
    append(&app_log, &as_text(&lines, "\n"));
    wait_until("the lines to be stored as logs", || {
        logs.stored_line_count() >= lines.len()
    })
    .await;
    // An export collected after the lines were read counts them.
    let exports_with_lines_read = || {
        metrics.stored().iter().any(|(_, request)| {
            single(&samples_of(request), "epitaph.agent.lines.read").value >= 25.0
        })
    };
    wait_until(
        "an export that counts the lines read",
        exports_with_lines_read,
    )
    .await;
    let status = terminate(child).await;
    assert!(status.success(), "{status}\n{}", files.stderr());

    let agent_id = agent_id(&files.path("state"));
    let stored = metrics.stored();
    let received = metrics.received.lock().unwrap();
    assert_eq!(
        received.conflicts, 0,
        "a sequence was reused for other data"
    );

    // The header: this agent's id, its own sequence from 1 without gaps; the two refused
    // calls were the first interval, resent under the same sequence.
    assert!(
        received.headers.iter().all(Option::is_some),
        "every export is tagged"
    );
    assert_eq!(
        received.headers[0].as_deref(),
        Some(&*format!("{agent_id}/1"))
    );
    assert_eq!(received.headers[1], received.headers[0]);
    assert_eq!(received.headers[2], received.headers[0]);
    let sequences: Vec<u64> = stored.iter().map(|(batch, _)| batch.sequence).collect();
    assert_eq!(sequences, (1..=stored.len() as u64).collect::<Vec<_>>());
    assert!(stored.iter().all(|(batch, _)| batch.agent_id == agent_id));
    drop(received);

    // The resource is the logs' identity: the one the hello carried.
    let hello_resource: BTreeMap<String, String> = logs.recorded(|recorded| {
        recorded.hellos[0]
            .resource
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    for (_, request) in &stored {
        assert_eq!(resource_of(request), hello_resource);
    }
    assert_eq!(hello_resource["service.name"], "web");
    assert_eq!(hello_resource["host.image.version"], "2026.11.26-3f2a");
    assert_eq!(hello_resource["host.id"], "i-0metrics");
    assert_eq!(hello_resource["deployment.generation"], "7");

    // Names, kinds, units and attribute keys.
    let first = samples_of(&stored[0].1);
    let expected: [(&str, &str, &str, &[&str]); 16] = [
        ("system.cpu.time", COUNTER, "s", &["cpu", "state"]),
        ("system.cpu.load_average.1m", GAUGE, "{thread}", &[]),
        ("system.cpu.load_average.5m", GAUGE, "{thread}", &[]),
        ("system.cpu.load_average.15m", GAUGE, "{thread}", &[]),
        ("system.memory.usage", UP_DOWN, "By", &["state"]),
        ("system.memory.limit", UP_DOWN, "By", &[]),
        ("system.paging.faults", COUNTER, "{faults}", &["type"]),
        ("system.disk.io", COUNTER, "By", &["device", "direction"]),
        (
            "system.disk.operations",
            COUNTER,
            "{operations}",
            &["device", "direction"],
        ),
        (
            "system.filesystem.usage",
            UP_DOWN,
            "By",
            &["device", "mode", "mountpoint", "state", "type"],
        ),
        ("system.network.io", COUNTER, "By", &["device", "direction"]),
        (
            "system.network.packets",
            COUNTER,
            "{packets}",
            &["device", "direction"],
        ),
        (
            "system.network.errors",
            COUNTER,
            "{errors}",
            &["device", "direction"],
        ),
        (
            "system.processes.count",
            UP_DOWN,
            "{processes}",
            &["status"],
        ),
        ("epitaph.agent.lines.read", COUNTER, "{lines}", &[]),
        ("epitaph.agent.spool.usage", UP_DOWN, "By", &[]),
    ];
    for (name, kind, unit, attribute_keys) in expected {
        let found = find(&first, name);
        assert!(!found.is_empty(), "{name} missing");
        for sample in found {
            assert_eq!(sample.kind, kind, "{name}");
            assert_eq!(sample.unit, unit, "{name}");
            let keys: Vec<&str> = sample.attributes.keys().map(String::as_str).collect();
            assert_eq!(keys, attribute_keys, "{name}");
        }
    }
    let cpu_states: std::collections::BTreeSet<&str> = find(&first, "system.cpu.time")
        .iter()
        .map(|sample| sample.attributes["state"].as_str())
        .collect();
    assert_eq!(
        cpu_states.into_iter().collect::<Vec<_>>(),
        vec![
            "idle",
            "interrupt",
            "nice",
            "softirq",
            "steal",
            "system",
            "user",
            "wait"
        ]
    );
    // Memory states add up to the total.
    let memory_total: f64 = find(&first, "system.memory.usage")
        .iter()
        .map(|sample| sample.value)
        .sum();
    assert_eq!(memory_total, single(&first, "system.memory.limit").value);

    // Start times: boot for the kernel's counters, the agent's start for its own.
    let boot = boot_time_nanos();
    for sample in find(&first, "system.cpu.time")
        .into_iter()
        .chain(find(&first, "system.network.io"))
    {
        assert_eq!(sample.start, boot, "{}", sample.name);
    }
    let agent_start = single(&first, "epitaph.agent.lines.read").start;
    assert!(
        test_start <= agent_start && agent_start <= single(&first, "epitaph.agent.lines.read").time,
        "the agent's counters start when it started"
    );
    for sample in find(&first, "system.cpu.load_average.1m") {
        assert_eq!(sample.start, 0, "gauges have no start time");
    }

    // Across intervals: time moves on, start times stay, counters never go down.
    for pair in stored.windows(2) {
        let (earlier, later) = (samples_of(&pair[0].1), samples_of(&pair[1].1));
        assert!(later[0].time > earlier[0].time, "each interval is later");
        let earlier_by_key: HashMap<(String, BTreeMap<String, String>), &Sample> = earlier
            .iter()
            .map(|s| ((s.name.clone(), s.attributes.clone()), s))
            .collect();
        let mut compared = 0;
        for sample in later.iter().filter(|sample| sample.kind == COUNTER) {
            let key = (sample.name.clone(), sample.attributes.clone());
            let Some(before) = earlier_by_key.get(&key) else {
                continue; // e.g. an interface that appeared meanwhile
            };
            assert_eq!(sample.start, before.start, "{key:?}");
            assert!(
                sample.value >= before.value,
                "{key:?} went down: {} then {}",
                before.value,
                sample.value
            );
            compared += 1;
        }
        assert!(compared > 20, "only {compared} counters in common");
    }
    // The agent's own counters moved with what it did.
    let last = samples_of(&stored.last().unwrap().1);
    assert_eq!(single(&last, "epitaph.agent.lines.read").value, 25.0);
    assert!(single(&first, "epitaph.agent.lines.read").value == 0.0);
    assert!(
        single(&last, "epitaph.agent.metrics.export.retries").value >= 2.0,
        "the two refused exports were counted as retries"
    );
    let first_ticks: f64 = find(&first, "system.cpu.time")
        .iter()
        .map(|s| s.value)
        .sum();
    let last_ticks: f64 = find(&last, "system.cpu.time").iter().map(|s| s.value).sum();
    assert!(last_ticks > first_ticks, "CPU time passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_sequences_continue_across_a_restart() {
    let logs = FakeServer::new(0);
    let metrics = FakeMetrics::new(MetricsAnswer::Accept, 0);
    let address = serve_with_metrics(logs.clone(), metrics.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (state_dir, logs_dir) = (dir.path().join("state"), dir.path().join("logs"));
    std::fs::create_dir_all(&logs_dir).unwrap();
    let config = Config {
        metrics: MetricsConfig {
            interval: Duration::from_millis(50),
            ..MetricsConfig::default()
        },
        ..test_config(address, &state_dir, &logs_dir)
    };

    let agent = start_agent_with_stats(config.clone());
    wait_until("three metrics exports", || metrics.stored().len() >= 3).await;
    agent.shut_down().await;
    let after_first_run = metrics.stored().len() as u64;

    let agent = start_agent_with_stats(config);
    wait_until("three more metrics exports", || {
        metrics.stored().len() as u64 >= after_first_run + 3
    })
    .await;
    agent.shut_down().await;

    let received = metrics.received.lock().unwrap();
    assert_eq!(
        received.conflicts, 0,
        "no sequence was reused for other data"
    );
    let sequences: Vec<u64> = received.stored.keys().copied().collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "one stream, no gap, across the restart"
    );
    let agent_ids: std::collections::BTreeSet<&str> = received
        .stored
        .values()
        .map(|(batch, _)| batch.agent_id.as_str())
        .collect();
    assert_eq!(agent_ids.len(), 1, "the same agent id in both runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_without_metrics_is_told_once_and_not_asked_every_interval() {
    let logs = FakeServer::new(0);
    let metrics = FakeMetrics::new(MetricsAnswer::Unimplemented, 0);
    let address = serve_with_metrics(logs.clone(), metrics.clone()).await;
    let files = AgentFiles::new();
    let config = files.write_config(address, "50ms");
    let child = files.start_binary(&config);

    wait_up_to(Duration::from_secs(20), "the first metrics export", || {
        metrics.calls() >= 1
    })
    .await;
    // Logs flow as ever while metrics are paused.
    let lines = numbered("app.log", "still shipping", 0..10);
    append(&files.path("logs/app.log"), &as_text(&lines, "\n"));
    wait_until("the lines to be stored", || {
        logs.stored_line_count() >= lines.len()
    })
    .await;
    // Thirty intervals: without the pause there would be about thirty calls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        metrics.calls(),
        1,
        "the agent backed off after UNIMPLEMENTED"
    );
    let status = terminate(child).await;
    assert!(status.success(), "{status}");

    let stderr = files.stderr();
    let warnings = stderr
        .lines()
        .filter(|line| line.contains("does not accept OTLP metrics"))
        .count();
    assert_eq!(warnings, 1, "said once:\n{stderr}");
    assert!(
        logs.recorded(|recorded| recorded.goodbyes.len()) == 1,
        "the agent shut down as usual"
    );
}
