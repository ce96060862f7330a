//! The metrics benchmark's load generator and query checker: one seeded day of a
//! request counter, sent to Epitaph over OTLP/gRPC and to VictoriaMetrics over its
//! JSON-line import API, then the same 24-hour `rate()` by version asked of both.
//!
//! ```text
//! metrics-load plan     --end-ms E                      # what the dataset holds, and the expected answers
//! metrics-load epitaph  --end-ms E --grpc 127.0.0.1:4317  --connections 4
//! metrics-load victoria --end-ms E --http 127.0.0.1:8428  --connections 4
//! metrics-load query    --end-ms E --epitaph-http ADDR --victoria-http ADDR --runs 5
//! metrics-load space    --splits DATA_DIR/metric-splits   # bytes per document by component and field
//! ```
//!
//! # The dataset
//! A cumulative, monotonic counter `http.server.requests` (`http_server_requests_total`
//! in VictoriaMetrics), sampled every `--step-seconds` (30 s) over the 24 hours that end
//! at `--end-ms`, by a fleet of 4 services whose instances come and go during the day:
//! a blue/green rollout of a new image version, a canary that is promoted, a canary that
//! is rolled back, autoscaling waves in the afternoon peak and an instance refresh (same
//! version, new generation). Each instance serves 5 or 10 routes; a series is one
//! (service, version, generation, instance, route), and the day has exactly
//! [`SERIES`] of them. About 15 % of the instances restart their process once during the
//! day: their counters drop to zero and their start time moves to the restart, under the
//! same labels. Rates follow a daily curve (peak at 15:00 UTC) with noise; health checks
//! are constant. Each instance samples at its own phase inside the step, with a few
//! milliseconds of jitter, as an SDK's periodic reader does. Everything comes from one
//! ChaCha8 generator, so a seed and an end time give the same samples on every machine.
//!
//! # Requests
//! Request `j` holds sampling rounds `j·R .. (j+1)·R` (`--rounds-per-request`, R = 2,
//! about 1,000 samples) of every series alive then, as a fleet-wide collector would
//! forward them. For Epitaph: one `ResourceMetrics` per instance (`service.name`,
//! `host.image.version`, `deployment.generation`, `host.id`), one `Sum` with a point per
//! route and round (`route` attribute, integer values, the process's start time). For
//! VictoriaMetrics: the same samples as one JSON line per series with labels `service`,
//! `version`, `generation`, `instance`, `route`. Both are encoded before the clock
//! starts; each of `--connections` callers sends one request at a time, closed loop.
//! Nothing is compressed by default (`--grpc-zstd` compresses gRPC), so what is measured
//! is the servers, not the client's compression.
//!
//! # Expected answers
//! Both `rate()`s are checked against what was sent. Epitaph's `stats rate()` over
//! `[start, end]` is the series' increase in the range divided by the range (a series
//! that began in the range counts its first value whole; resets count the value after
//! them whole). VictoriaMetrics' `increase(m[24h])` should give the same increases (its
//! first-sample heuristic treats a small first value as a counter that started at zero);
//! its `rate(m[24h])` divides each series' increase after its first sample by the time
//! between its first and last samples, which differs for series that lived only part of
//! the day. `plan` and `query` print all three expectations per version.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Parser, Subcommand};
use epitaph_proto::BATCH_HEADER;
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use epitaph_proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use epitaph_proto::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use epitaph_proto::resource::v1::Resource;
use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufStream};
use tokio::net::TcpStream;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Distinct series over the day.
const SERIES: usize = 1_000;
const DAY_MS: i64 = 24 * 3_600_000;
const METRIC_OTLP: &str = "http.server.requests";
const METRIC_PROMETHEUS: &str = "http_server_requests_total";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// Health checks from the load balancer: every 5 s, day and night.
const HEALTH_CHECKS_PER_SECOND: f64 = 0.2;

#[derive(Parser, Debug)]
#[command(
    about = "Sends one day of a request counter to Epitaph and VictoriaMetrics, \
                   and checks a 24-hour rate() by version on both"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints what the dataset holds and the expected rates by version, as JSON.
    Plan(DatasetArgs),
    /// Sends the dataset to Epitaph's OTLP/gRPC endpoint.
    Epitaph {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Epitaph's gRPC address (host:port).
        #[arg(long)]
        grpc: String,
        #[command(flatten)]
        load: LoadArgs,
        /// Compress requests with zstd, as the agent does.
        #[arg(long)]
        grpc_zstd: bool,
    },
    /// Sends the dataset to VictoriaMetrics' `/api/v1/import`.
    Victoria {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// VictoriaMetrics' HTTP address (host:port).
        #[arg(long)]
        http: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Times the 24-hour rate() by version on both and checks the answers.
    Query {
        #[command(flatten)]
        dataset: DatasetArgs,
        /// Epitaph's HTTP address (host:port).
        #[arg(long)]
        epitaph_http: String,
        /// VictoriaMetrics' HTTP address (host:port).
        #[arg(long)]
        victoria_http: String,
        /// Timed runs of each query, after one untimed warm-up run.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Where the bytes of tantivy indexes go: bytes per document by component and field,
    /// over every index directly under `--splits` (e.g. `<data-dir>/metric-splits`).
    Space {
        #[arg(long)]
        splits: std::path::PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
struct DatasetArgs {
    /// The end of the day of data, Unix milliseconds (default: now, to the second).
    #[arg(long)]
    end_ms: Option<i64>,
    /// Seconds between two samples of a series.
    #[arg(long, default_value_t = 30)]
    step_seconds: u32,
    /// Sampling rounds per request.
    #[arg(long, default_value_t = 2)]
    rounds_per_request: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Concurrent callers, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Retries of a refused request before it counts as failed.
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Plan(dataset) => {
            let day = Day::generate(&dataset)?;
            println!("{}", serde_json::to_string_pretty(&day.plan_json())?);
        }
        Command::Epitaph {
            dataset,
            grpc,
            load,
            grpc_zstd,
        } => {
            let day = Day::generate(&dataset)?;
            let requests = Arc::new(day.otlp_requests());
            let report = runtime.block_on(send_to_epitaph(&grpc, &load, grpc_zstd, requests))?;
            println!("{}", report.to_json(&day));
        }
        Command::Victoria {
            dataset,
            http,
            load,
        } => {
            let day = Day::generate(&dataset)?;
            let requests = Arc::new(day.victoria_requests());
            let report = runtime.block_on(send_to_victoria(&http, &load, requests))?;
            println!("{}", report.to_json(&day));
        }
        Command::Query {
            dataset,
            epitaph_http,
            victoria_http,
            runs,
        } => {
            let day = Day::generate(&dataset)?;
            let comparison =
                runtime.block_on(compare_queries(&day, &epitaph_http, &victoria_http, runs))?;
            eprintln!("{}", comparison.to_text());
            println!("{}", comparison.to_json());
        }
        Command::Space { splits } => print!("{}", space_by_field(&splits)?),
    }
    Ok(())
}

/// Sums tantivy's space usage over the indexes under `directory`, by component and field.
fn space_by_field(directory: &std::path::Path) -> anyhow::Result<String> {
    let mut bytes: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut documents = 0u64;
    let mut segments = 0usize;
    let mut indexes = 0usize;
    let mut entries: Vec<_> = std::fs::read_dir(directory)
        .with_context(|| format!("reading {}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("meta.json").exists())
        .collect();
    entries.sort();
    for path in entries {
        let index = tantivy::Index::open_in_dir(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let searcher = index.reader()?.searcher();
        let usage = searcher.space_usage()?;
        indexes += 1;
        for segment in usage.segments() {
            segments += 1;
            documents += u64::from(segment.num_docs());
            let components = [
                ("fast", segment.fast_fields()),
                ("postings", segment.postings()),
                ("termdict", segment.termdict()),
                ("positions", segment.positions()),
                ("fieldnorms", segment.fieldnorms()),
            ];
            for (component, per_field) in components {
                for field in per_field.fields() {
                    *bytes
                        .entry((component.to_string(), field.field_name().to_string()))
                        .or_default() += field.total().get_bytes();
                }
            }
            *bytes
                .entry(("store".to_string(), "(all)".to_string()))
                .or_default() += segment.store().total().get_bytes();
        }
    }
    ensure!(documents > 0, "no documents under {}", directory.display());
    let mut rows: Vec<_> = bytes.into_iter().filter(|(_, b)| *b > 0).collect();
    rows.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let total: u64 = rows.iter().map(|(_, b)| b).sum();
    let mut text = format!(
        "{documents} documents in {segments} segments of {indexes} indexes: {:.2} bytes per document\n",
        total as f64 / documents as f64
    );
    for ((component, field), count) in rows {
        let _ = writeln!(
            text,
            "{component:<10} {field:<24} {:>8.3} B/doc {:>6.1} %",
            count as f64 / documents as f64,
            100.0 * count as f64 / total as f64
        );
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------
// The dataset

/// A service's routes: name, requests per second per instance at the daily peak.
struct ServiceSpec {
    name: &'static str,
    routes: &'static [(&'static str, f64)],
    deployments: &'static [DeploymentSpec],
}

/// A group of instances of one image version and generation, alive from `from_hours`
/// to `to_hours` after the start of the day (negative: before the day; `None`: still
/// running at its end).
struct DeploymentSpec {
    version: &'static str,
    generation: u32,
    instances: usize,
    from_hours: f64,
    to_hours: Option<f64>,
}

const fn deployment(
    version: &'static str,
    generation: u32,
    instances: usize,
    from_hours: f64,
    to_hours: Option<f64>,
) -> DeploymentSpec {
    DeploymentSpec {
        version,
        generation,
        instances,
        from_hours,
        to_hours,
    }
}

/// Health checks are marked with a rate of 0 and run at [`HEALTH_CHECKS_PER_SECOND`].
const FLEET: &[ServiceSpec] = &[
    ServiceSpec {
        name: "web",
        routes: &[
            ("/", 30.0),
            ("/login", 4.0),
            ("/logout", 1.0),
            ("/search", 12.0),
            ("/product/:id", 25.0),
            ("/cart", 8.0),
            ("/static/*", 60.0),
            ("/api/session", 15.0),
            ("/account", 2.5),
            ("/health", 0.0),
        ],
        // Blue/green rollout at 10:00 with 15 minutes of overlap; an autoscaling wave.
        deployments: &[
            deployment("2026.11.19-4c1e", 41, 12, -72.0, Some(10.0)),
            deployment("2026.11.26-9a03", 42, 12, 9.75, None),
            deployment("2026.11.26-9a03", 43, 6, 16.0, None),
        ],
    },
    ServiceSpec {
        name: "api",
        routes: &[
            ("/v1/orders", 9.0),
            ("/v1/orders/:id", 14.0),
            ("/v1/users/:id", 11.0),
            ("/v1/products", 20.0),
            ("/v1/products/:id", 35.0),
            ("/v1/inventory", 6.0),
            ("/v1/prices", 18.0),
            ("/v1/auth/token", 3.0),
            ("/v1/events", 7.5),
            ("/healthz", 0.0),
        ],
        // A canary promoted at 14:30, then an autoscaling wave that is scaled in again.
        deployments: &[
            deployment("2026.11.24-17d0", 17, 10, -50.0, Some(15.0)),
            deployment("2026.11.26-b8e5", 18, 2, 12.0, Some(15.0)),
            deployment("2026.11.26-b8e5", 19, 10, 14.5, None),
            deployment("2026.11.26-b8e5", 20, 8, 17.0, Some(22.0)),
        ],
    },
    ServiceSpec {
        name: "checkout",
        routes: &[
            ("/checkout", 5.0),
            ("/checkout/confirm", 2.0),
            ("/payment/authorize", 2.2),
            ("/payment/capture", 1.9),
            ("/healthz", 0.0),
        ],
        // Scale-out for the day, and a canary from 19:00 still running at the end.
        deployments: &[
            deployment("2026.11.23-0f3b", 8, 20, -80.0, None),
            deployment("2026.11.23-0f3b", 9, 12, 8.0, Some(21.0)),
            deployment("2026.11.26-a1c4", 10, 8, 19.0, None),
        ],
    },
    ServiceSpec {
        name: "search",
        routes: &[
            ("/search", 22.0),
            ("/suggest", 40.0),
            ("/facets", 9.0),
            ("/reindex", 0.3),
            ("/healthz", 0.0),
        ],
        // An instance refresh at 06:00: the same image, a new generation of instances.
        deployments: &[
            deployment("2026.11.21-5e6d", 3, 20, -120.0, Some(6.0)),
            deployment("2026.11.21-5e6d", 4, 20, 5.5, None),
        ],
    },
];

/// One instance's life and labels.
#[derive(Debug, Clone)]
struct Instance {
    service: &'static str,
    version: &'static str,
    generation: String,
    host_id: String,
    /// Process start; before the day for instances already running.
    from_ms: i64,
    /// Termination, or the end of the day.
    to_ms: i64,
    /// Offset of this instance's samples inside each step.
    phase_ms: i64,
    /// Process restart inside the day, if any.
    restart_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    round: u32,
    timestamp_ms: i64,
    value: u64,
    start_ms: i64,
}

#[derive(Debug, Clone)]
struct Series {
    instance: usize,
    route: &'static str,
    samples: Vec<Sample>,
}

/// The expected 24-hour answers of one version.
#[derive(Debug, Clone, Default)]
struct Expected {
    /// Increase over the day (resets followed, new series counted whole).
    increase: f64,
    /// Σ over series of (increase after the first sample / time between first and last
    /// sample): what a Prometheus-style `rate()` without extrapolation gives.
    sample_span_rate: f64,
    series: usize,
    samples: u64,
}

/// One request's content: per instance, its series that have samples in the request's
/// rounds, as (series index, range of its samples).
type RequestGroup = Vec<(usize, Vec<(usize, std::ops::Range<usize>)>)>;

struct Day {
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    rounds_per_request: u32,
    seed: u64,
    instances: Vec<Instance>,
    series: Vec<Series>,
}

impl Day {
    fn generate(args: &DatasetArgs) -> anyhow::Result<Day> {
        ensure!(args.step_seconds > 0, "--step-seconds must be positive");
        ensure!(
            args.rounds_per_request > 0,
            "--rounds-per-request must be positive"
        );
        let end_ms = match args.end_ms {
            Some(end) => end,
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("the clock is before 1970")?;
                now.as_secs() as i64 * 1000
            }
        };
        let step_ms = i64::from(args.step_seconds) * 1000;
        let start_ms = end_ms - DAY_MS;
        let hours = |h: f64| start_ms + (h * 3_600_000.0) as i64;
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        let mut instances = Vec::new();
        let mut series = Vec::new();
        for service in FLEET {
            for deployment in service.deployments {
                for _ in 0..deployment.instances {
                    let from_ms = hours(deployment.from_hours);
                    let to_ms = deployment.to_hours.map_or(end_ms, hours);
                    // Process restarts: at least 15 minutes after the instance (or the day)
                    // began and before it ends.
                    let alive_from = from_ms.max(start_ms) + 900_000;
                    let alive_to = to_ms - 900_000;
                    let restart_ms = (rng.random_bool(0.15) && alive_to > alive_from)
                        .then(|| rng.random_range(alive_from..alive_to));
                    let instance = Instance {
                        service: service.name,
                        version: deployment.version,
                        generation: deployment.generation.to_string(),
                        host_id: format!("i-0{:016x}", rng.random::<u64>()),
                        from_ms,
                        to_ms,
                        phase_ms: rng.random_range(1..step_ms),
                        restart_ms,
                    };
                    // How busy this instance is compared with its peers.
                    let load = rng.random_range(0.8..1.2);
                    instances.push(instance);
                    let index = instances.len() - 1;
                    for &(route, peak_rate) in service.routes {
                        let samples = sample_counter(
                            &instances[index],
                            peak_rate,
                            load,
                            start_ms,
                            end_ms,
                            step_ms,
                            &mut rng,
                        );
                        series.push(Series {
                            instance: index,
                            route,
                            samples,
                        });
                    }
                }
            }
        }
        ensure!(
            series.len() == SERIES,
            "the fleet has {} series, not {SERIES}",
            series.len()
        );
        Ok(Day {
            start_ms,
            end_ms,
            step_ms,
            rounds_per_request: args.rounds_per_request,
            seed: args.seed,
            instances,
            series,
        })
    }

    fn samples(&self) -> u64 {
        self.series.iter().map(|s| s.samples.len() as u64).sum()
    }

    fn rounds(&self) -> u32 {
        (DAY_MS / self.step_ms) as u32 + 1
    }

    fn requests(&self) -> u32 {
        self.rounds().div_ceil(self.rounds_per_request)
    }

    fn restarts(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.restart_ms.is_some())
            .count()
    }

    /// The expected answers, by version.
    fn expected(&self) -> BTreeMap<&'static str, Expected> {
        let mut by_version: BTreeMap<&'static str, Expected> = BTreeMap::new();
        for series in &self.series {
            let version = self.instances[series.instance].version;
            let expected = by_version.entry(version).or_default();
            expected.series += 1;
            expected.samples += series.samples.len() as u64;
            let (increase, after_first) = increases(&series.samples, self.start_ms);
            expected.increase += increase;
            if let (Some(first), Some(last)) = (series.samples.first(), series.samples.last())
                && last.timestamp_ms > first.timestamp_ms
            {
                expected.sample_span_rate +=
                    after_first / ((last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0);
            }
        }
        by_version
    }

    fn plan_json(&self) -> serde_json::Value {
        let seconds = (self.end_ms - self.start_ms) as f64 / 1000.0;
        let versions: Vec<serde_json::Value> = self
            .expected()
            .into_iter()
            .map(|(version, expected)| {
                serde_json::json!({
                    "version": version,
                    "series": expected.series,
                    "samples": expected.samples,
                    "increase": expected.increase,
                    "rate": expected.increase / seconds,
                    "sample_span_rate": expected.sample_span_rate,
                })
            })
            .collect();
        serde_json::json!({
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "step_seconds": self.step_ms / 1000,
            "seed": self.seed,
            "series": self.series.len(),
            "instances": self.instances.len(),
            "restarted_instances": self.restarts(),
            "samples": self.samples(),
            "requests": self.requests(),
            "rounds_per_request": self.rounds_per_request,
            "versions": versions,
        })
    }

    fn request_groups(&self) -> Vec<RequestGroup> {
        let per_request = self.rounds_per_request;
        let mut groups = Vec::with_capacity(self.requests() as usize);
        for request in 0..self.requests() {
            let rounds = request * per_request..(request + 1) * per_request;
            let mut instances: RequestGroup = Vec::new();
            for (index, series) in self.series.iter().enumerate() {
                let from = series.samples.partition_point(|s| s.round < rounds.start);
                let to = series.samples.partition_point(|s| s.round < rounds.end);
                if from == to {
                    continue;
                }
                // Series are generated instance by instance, so an instance's series are
                // next to each other.
                match instances.last_mut() {
                    Some((instance, list)) if *instance == series.instance => {
                        list.push((index, from..to));
                    }
                    _ => instances.push((series.instance, vec![(index, from..to)])),
                }
            }
            groups.push(instances);
        }
        groups
    }

    fn otlp_requests(&self) -> Vec<EncodedRequest> {
        self.request_groups()
            .into_iter()
            .map(|group| {
                let mut samples = 0;
                let resource_metrics = group
                    .into_iter()
                    .map(|(instance, list)| {
                        let instance = &self.instances[instance];
                        let mut data_points = Vec::new();
                        for (series, range) in list {
                            let route = self.series[series].route;
                            for sample in &self.series[series].samples[range] {
                                data_points.push(NumberDataPoint {
                                    attributes: vec![string_attribute("route", route)],
                                    start_time_unix_nano: (sample.start_ms * 1_000_000) as u64,
                                    time_unix_nano: (sample.timestamp_ms * 1_000_000) as u64,
                                    value: Some(number_data_point::Value::AsInt(
                                        sample.value as i64,
                                    )),
                                    ..Default::default()
                                });
                            }
                        }
                        samples += data_points.len() as u64;
                        ResourceMetrics {
                            resource: Some(Resource {
                                attributes: vec![
                                    string_attribute("service.name", instance.service),
                                    string_attribute("host.image.version", instance.version),
                                    string_attribute("deployment.generation", &instance.generation),
                                    string_attribute("host.id", &instance.host_id),
                                ],
                                ..Default::default()
                            }),
                            scope_metrics: vec![ScopeMetrics {
                                scope: Some(InstrumentationScope {
                                    name: "http-server".to_string(),
                                    ..Default::default()
                                }),
                                metrics: vec![Metric {
                                    name: METRIC_OTLP.to_string(),
                                    unit: "{request}".to_string(),
                                    data: Some(metric::Data::Sum(Sum {
                                        data_points,
                                        aggregation_temporality: AggregationTemporality::Cumulative
                                            as i32,
                                        is_monotonic: true,
                                    })),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }
                    })
                    .collect();
                let request = ExportMetricsServiceRequest { resource_metrics };
                EncodedRequest {
                    payload: Bytes::from(request.encode_to_vec()),
                    samples,
                }
            })
            .collect()
    }

    fn victoria_requests(&self) -> Vec<EncodedRequest> {
        self.request_groups()
            .into_iter()
            .map(|group| {
                let mut body = String::new();
                let mut samples = 0;
                for (instance, list) in group {
                    let instance = &self.instances[instance];
                    for (series, range) in list {
                        let slice = &self.series[series].samples[range];
                        samples += slice.len() as u64;
                        victoria_line(&mut body, instance, self.series[series].route, slice);
                    }
                }
                EncodedRequest {
                    payload: Bytes::from(body),
                    samples,
                }
            })
            .collect()
    }
}

/// The samples of one counter series over the day.
fn sample_counter(
    instance: &Instance,
    peak_rate: f64,
    load: f64,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    rng: &mut ChaCha8Rng,
) -> Vec<Sample> {
    let rate_at = |timestamp_ms: i64| {
        if peak_rate == 0.0 {
            HEALTH_CHECKS_PER_SECOND
        } else {
            peak_rate * load * daily_curve(timestamp_ms)
        }
    };
    let mut start = instance.from_ms;
    let mut value: f64 = 0.0;
    let mut previous_ms = instance.from_ms;
    if instance.from_ms < start_ms {
        // Running since before the day: what it counted until then, at the mean of the
        // daily curve.
        value = (rate_at(start_ms).max(HEALTH_CHECKS_PER_SECOND)
            * (start_ms - instance.from_ms) as f64
            / 1000.0
            * 0.65)
            .round();
        previous_ms = start_ms;
    }
    let mut samples = Vec::new();
    let mut round = 0u32;
    loop {
        let jitter_ms = rng.random_range(0..40);
        let timestamp_ms = start_ms + instance.phase_ms + i64::from(round) * step_ms + jitter_ms;
        if timestamp_ms > end_ms || timestamp_ms > instance.to_ms {
            break;
        }
        if timestamp_ms > instance.from_ms {
            if let Some(restart) = instance.restart_ms
                && previous_ms < restart
                && restart <= timestamp_ms
            {
                start = restart;
                value = 0.0;
                previous_ms = restart;
            }
            let mean = rate_at(timestamp_ms) * (timestamp_ms - previous_ms) as f64 / 1000.0;
            // Roughly normal noise of 15 % (the sum of four uniforms).
            let noise: f64 = (0..4).map(|_| rng.random::<f64>()).sum::<f64>() - 2.0;
            value += (mean * (1.0 + 0.15 * noise * 3f64.sqrt())).round().max(0.0);
            previous_ms = timestamp_ms;
            samples.push(Sample {
                round,
                timestamp_ms,
                value: value as u64,
                start_ms: start,
            });
        }
        round += 1;
    }
    samples
}

/// Traffic over the day: 30 % of the peak at 03:00 UTC, the peak at 15:00 UTC.
fn daily_curve(timestamp_ms: i64) -> f64 {
    let hour = (timestamp_ms.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
    let phase = (hour - 3.0) / 24.0 * std::f64::consts::TAU;
    0.3 + 0.7 * (0.5 - 0.5 * phase.cos())
}

/// A series' increase over the range that begins at `range_start_ms` (its first value
/// counts whole when the series began in the range; a reset counts the value after it
/// whole), and its increase after its first sample.
fn increases(samples: &[Sample], range_start_ms: i64) -> (f64, f64) {
    let Some(first) = samples.first() else {
        return (0.0, 0.0);
    };
    let mut after_first = 0.0;
    for pair in samples.windows(2) {
        let (previous, sample) = (pair[0], pair[1]);
        let restarted = sample.start_ms != previous.start_ms || sample.value < previous.value;
        after_first += if restarted {
            sample.value as f64
        } else {
            (sample.value - previous.value) as f64
        };
    }
    let first_whole = if first.start_ms >= range_start_ms {
        first.value as f64
    } else {
        0.0
    };
    (first_whole + after_first, after_first)
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// One line of VictoriaMetrics' JSON-line import format. Labels are plain ASCII here, so
/// they need no JSON escaping.
fn victoria_line(body: &mut String, instance: &Instance, route: &str, samples: &[Sample]) {
    let _ = write!(
        body,
        "{{\"metric\":{{\"__name__\":\"{METRIC_PROMETHEUS}\",\"service\":\"{}\",\"version\":\"{}\",\
         \"generation\":\"{}\",\"instance\":\"{}\",\"route\":\"{}\"}},\"values\":[",
        instance.service, instance.version, instance.generation, instance.host_id, route
    );
    for (index, sample) in samples.iter().enumerate() {
        let separator = if index == 0 { "" } else { "," };
        let _ = write!(body, "{separator}{}", sample.value);
    }
    body.push_str("],\"timestamps\":[");
    for (index, sample) in samples.iter().enumerate() {
        let separator = if index == 0 { "" } else { "," };
        let _ = write!(body, "{separator}{}", sample.timestamp_ms);
    }
    body.push_str("]}\n");
}

// ---------------------------------------------------------------------------------------
// Sending

/// One request, encoded before the clock starts.
struct EncodedRequest {
    payload: Bytes,
    samples: u64,
}

#[derive(Debug, Default)]
struct LoadReport {
    target: &'static str,
    connections: usize,
    elapsed: Duration,
    requests: u64,
    samples: u64,
    payload_bytes: u64,
    failed_requests: u64,
    rejected_samples: u64,
    retries: u64,
    /// Per-request latency, microseconds, sorted.
    latencies_micros: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

impl LoadReport {
    fn merge(&mut self, other: LoadReport) {
        self.requests += other.requests;
        self.samples += other.samples;
        self.payload_bytes += other.payload_bytes;
        self.failed_requests += other.failed_requests;
        self.rejected_samples += other.rejected_samples;
        self.retries += other.retries;
        self.latencies_micros.extend(other.latencies_micros);
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }

    fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.latencies_micros.is_empty() {
            return 0.0;
        }
        let rank = ((percentile / 100.0) * self.latencies_micros.len() as f64).ceil() as usize;
        self.latencies_micros[rank.clamp(1, self.latencies_micros.len()) - 1] as f64 / 1000.0
    }

    fn to_json(&self, day: &Day) -> serde_json::Value {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        serde_json::json!({
            "target": self.target,
            "samples_per_second": self.samples as f64 / seconds,
            "samples": self.samples,
            "expected_samples": day.samples(),
            "requests": self.requests,
            "payload_bytes": self.payload_bytes,
            "elapsed_seconds": seconds,
            "connections": self.connections,
            "latency_ms": {
                "p50": self.percentile_ms(50.0),
                "p99": self.percentile_ms(99.0),
                "max": self.percentile_ms(100.0),
            },
            "failed_requests": self.failed_requests,
            "rejected_samples": self.rejected_samples,
            "retries": self.retries,
            "errors": self.errors,
        })
    }
}

async fn send_to_epitaph(
    address: &str,
    load: &LoadArgs,
    zstd: bool,
    requests: Arc<Vec<EncodedRequest>>,
) -> anyhow::Result<LoadReport> {
    ensure!(load.connections > 0, "--connections must be at least 1");
    let url = format!("http://{address}");
    let mut clients = Vec::new();
    for _ in 0..load.connections {
        // One Endpoint per caller: a tonic Channel is one HTTP/2 connection.
        let channel = Endpoint::from_shared(url.clone())
            .with_context(|| format!("invalid address `{address}`"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let mut client = tonic::client::Grpc::new(channel);
        if zstd {
            client = client
                .send_compressed(CompressionEncoding::Zstd)
                .accept_compressed(CompressionEncoding::Zstd);
        }
        clients.push(client);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let requests = requests.clone();
        let next = next.clone();
        let max_retries = load.max_retries;
        tasks.push(tokio::spawn(async move {
            epitaph_caller(client, requests, next, max_retries).await
        }));
    }
    let mut report = LoadReport {
        target: "epitaph",
        connections: load.connections,
        ..LoadReport::default()
    };
    for task in tasks {
        report.merge(task.await.context("a caller panicked")?);
    }
    report.elapsed = started.elapsed();
    report.latencies_micros.sort_unstable();
    Ok(report)
}

async fn epitaph_caller(
    mut client: tonic::client::Grpc<Channel>,
    requests: Arc<Vec<EncodedRequest>>,
    next: Arc<AtomicUsize>,
    max_retries: u32,
) -> LoadReport {
    let mut report = LoadReport::default();
    let agent_id = uuid::Uuid::new_v4().to_string();
    let mut sequence = 0u64;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(request) = requests.get(index) else {
            break;
        };
        sequence += 1;
        let header = format!("{agent_id}/{sequence}");
        let began = Instant::now();
        let mut attempt = 0;
        loop {
            match export_once(&mut client, request, &header).await {
                Ok(response) => {
                    report.requests += 1;
                    report.samples += request.samples;
                    report.payload_bytes += request.payload.len() as u64;
                    report
                        .latencies_micros
                        .push(began.elapsed().as_micros() as u64);
                    if let Some(partial) = response.partial_success {
                        report.rejected_samples += partial.rejected_data_points.max(0) as u64;
                    }
                    break;
                }
                Err(status) => {
                    *report
                        .errors
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1;
                    if !is_retryable(status.code()) || attempt >= max_retries {
                        report.failed_requests += 1;
                        break;
                    }
                    attempt += 1;
                    report.retries += 1;
                    tokio::time::sleep(retry_delay(&status, attempt)).await;
                }
            }
        }
    }
    report
}

async fn export_once(
    client: &mut tonic::client::Grpc<Channel>,
    request: &EncodedRequest,
    header: &str,
) -> Result<ExportMetricsServiceResponse, Status> {
    client
        .ready()
        .await
        .map_err(|error| Status::unavailable(format!("connection not ready: {error}")))?;
    let mut grpc_request = tonic::Request::new(request.payload.clone());
    grpc_request.set_timeout(Duration::from_secs(30));
    let value = MetadataValue::try_from(header)
        .map_err(|_| Status::internal("batch header is not ASCII"))?;
    grpc_request.metadata_mut().insert(BATCH_HEADER, value);
    let response = client
        .unary(
            grpc_request,
            PathAndQuery::from_static(EXPORT_PATH),
            PreEncodedMetricsCodec,
        )
        .await?;
    Ok(response.into_inner())
}

/// OTLP's retryable codes.
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

/// The server's `RetryInfo` delay, else 50 ms doubling per attempt up to 2 s, jittered.
fn retry_delay(status: &Status, attempt: u32) -> Duration {
    if let Some(delay) = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
    {
        return delay;
    }
    Duration::from_millis(50)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(2))
        .mul_f64(rand::rng().random_range(0.5..1.5))
}

async fn send_to_victoria(
    address: &str,
    load: &LoadArgs,
    requests: Arc<Vec<EncodedRequest>>,
) -> anyhow::Result<LoadReport> {
    ensure!(load.connections > 0, "--connections must be at least 1");
    let mut connections = Vec::new();
    for _ in 0..load.connections {
        connections.push(HttpConnection::connect(address).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in connections {
        let requests = requests.clone();
        let next = next.clone();
        let address = address.to_string();
        let max_retries = load.max_retries;
        tasks.push(tokio::spawn(async move {
            victoria_caller(connection, &address, requests, next, max_retries).await
        }));
    }
    let mut report = LoadReport {
        target: "victoria-metrics",
        connections: load.connections,
        ..LoadReport::default()
    };
    for task in tasks {
        report.merge(task.await.context("a caller panicked")?);
    }
    report.elapsed = started.elapsed();
    report.latencies_micros.sort_unstable();
    Ok(report)
}

async fn victoria_caller(
    mut connection: HttpConnection,
    address: &str,
    requests: Arc<Vec<EncodedRequest>>,
    next: Arc<AtomicUsize>,
    max_retries: u32,
) -> LoadReport {
    let mut report = LoadReport::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(request) = requests.get(index) else {
            break;
        };
        let began = Instant::now();
        let mut attempt = 0;
        loop {
            let outcome = connection
                .request("POST", "/api/v1/import", &request.payload)
                .await;
            let error = match outcome {
                Ok((status, _)) if (200..300).contains(&status) => {
                    report.requests += 1;
                    report.samples += request.samples;
                    report.payload_bytes += request.payload.len() as u64;
                    report
                        .latencies_micros
                        .push(began.elapsed().as_micros() as u64);
                    break;
                }
                Ok((status, body)) => {
                    let text = String::from_utf8_lossy(&body);
                    format!("HTTP {status}: {}", text.trim())
                }
                Err(error) => {
                    // The connection is in an unknown state: open a new one.
                    if let Ok(fresh) = HttpConnection::connect(address).await {
                        connection = fresh;
                    }
                    format!("{error:#}")
                }
            };
            *report.errors.entry(error).or_default() += 1;
            if attempt >= max_retries {
                report.failed_requests += 1;
                break;
            }
            attempt += 1;
            report.retries += 1;
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
        }
    }
    report
}

/// A codec that sends already-encoded `ExportMetricsServiceRequest` bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
struct PreEncodedMetricsCodec;

impl Codec for PreEncodedMetricsCodec {
    type Encode = Bytes;
    type Decode = ExportMetricsServiceResponse;
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
struct PreEncodedEncoder;

impl Encoder for PreEncodedEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, destination: &mut EncodeBuf<'_>) -> Result<(), Status> {
        destination.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportMetricsServiceResponse::decode(source)
            .map(Some)
            .map_err(|error| Status::internal(format!("decoding the export response: {error}")))
    }
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: keep-alive, Content-Length or chunked responses. Enough for
// two loopback servers; not a general client.

struct HttpConnection {
    stream: BufStream<TcpStream>,
    host: String,
}

impl HttpConnection {
    async fn connect(address: &str) -> anyhow::Result<HttpConnection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection {
            stream: BufStream::new(stream),
            host: address.to_string(),
        })
    }

    /// Sends one request and reads the whole answer: (status, body).
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body).await?;
        self.stream.flush().await?;
        read_response(&mut self.stream).await
    }
}

async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        bail!("the server closed the connection");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line `{}`", line.trim_end()))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size_text = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size `{size_text}`"))?;
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            line.clear();
            reader.read_line(&mut line).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = content_length {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        bail!("a response without Content-Length or chunked encoding is not supported");
    }
    Ok((status, body))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Queries

struct TimedQuery {
    name: &'static str,
    text: String,
    runs_ms: Vec<f64>,
    /// Per version, the answer of the last run.
    answer: BTreeMap<String, f64>,
}

impl TimedQuery {
    fn median_ms(&self) -> f64 {
        let mut sorted = self.runs_ms.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }
}

struct Comparison {
    range_seconds: f64,
    expected: BTreeMap<&'static str, Expected>,
    epitaph: TimedQuery,
    victoria_rate: TimedQuery,
    victoria_increase: TimedQuery,
}

/// Largest |a - b| / |b| over the versions of `expected`, with a missing answer as
/// infinity.
fn max_relative_error(
    answer: &BTreeMap<String, f64>,
    expected: impl Iterator<Item = (String, f64)>,
) -> f64 {
    let mut worst: f64 = 0.0;
    for (version, value) in expected {
        let error = match answer.get(&version) {
            Some(got) => (got - value).abs() / value.abs().max(1e-12),
            None => f64::INFINITY,
        };
        worst = worst.max(error);
    }
    worst
}

impl Comparison {
    fn expected_rates(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.expected
            .iter()
            .map(|(v, e)| (v.to_string(), e.increase / self.range_seconds))
    }

    fn expected_span_rates(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.expected
            .iter()
            .map(|(v, e)| (v.to_string(), e.sample_span_rate))
    }

    fn to_json(&self) -> serde_json::Value {
        let versions: Vec<serde_json::Value> = self
            .expected
            .iter()
            .map(|(version, expected)| {
                serde_json::json!({
                    "version": version,
                    "series": expected.series,
                    "expected_rate": expected.increase / self.range_seconds,
                    "expected_sample_span_rate": expected.sample_span_rate,
                    "epitaph_rate": self.epitaph.answer.get(*version),
                    "victoria_rate": self.victoria_rate.answer.get(*version),
                    "victoria_increase_per_second": self.victoria_increase.answer.get(*version),
                })
            })
            .collect();
        let timed = |query: &TimedQuery| {
            serde_json::json!({
                "query": query.text,
                "runs_ms": query.runs_ms,
                "median_ms": query.median_ms(),
            })
        };
        serde_json::json!({
            "epitaph_query_median_ms": self.epitaph.median_ms(),
            "victoria_rate_query_median_ms": self.victoria_rate.median_ms(),
            "victoria_increase_query_median_ms": self.victoria_increase.median_ms(),
            "epitaph_max_relative_error": max_relative_error(&self.epitaph.answer, self.expected_rates()),
            "victoria_increase_max_relative_error": max_relative_error(&self.victoria_increase.answer, self.expected_rates()),
            "victoria_rate_max_relative_error_to_sample_span": max_relative_error(&self.victoria_rate.answer, self.expected_span_rates()),
            "victoria_rate_max_relative_difference_to_epitaph": max_relative_error(
                &self.victoria_rate.answer,
                self.epitaph.answer.iter().map(|(v, r)| (v.clone(), *r)),
            ),
            "epitaph": timed(&self.epitaph),
            "victoria_rate": timed(&self.victoria_rate),
            "victoria_increase": timed(&self.victoria_increase),
            "versions": versions,
        })
    }

    fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<18} {:>6} {:>12} {:>12} {:>14} {:>12} {:>12}",
            "version", "series", "expected", "epitaph", "vm increase/s", "vm rate", "vm expected"
        );
        for (version, expected) in &self.expected {
            let show = |answer: &BTreeMap<String, f64>| {
                answer
                    .get(*version)
                    .map_or("missing".to_string(), |v| format!("{v:.4}"))
            };
            let _ = writeln!(
                text,
                "{:<18} {:>6} {:>12.4} {:>12} {:>14} {:>12} {:>12.4}",
                version,
                expected.series,
                expected.increase / self.range_seconds,
                show(&self.epitaph.answer),
                show(&self.victoria_increase.answer),
                show(&self.victoria_rate.answer),
                expected.sample_span_rate,
            );
        }
        for query in [&self.epitaph, &self.victoria_rate, &self.victoria_increase] {
            let runs: Vec<String> = query.runs_ms.iter().map(|ms| format!("{ms:.1}")).collect();
            let _ = writeln!(
                text,
                "{}: median {:.1} ms (runs {}) — {}",
                query.name,
                query.median_ms(),
                runs.join(", "),
                query.text
            );
        }
        text
    }
}

async fn compare_queries(
    day: &Day,
    epitaph_address: &str,
    victoria_address: &str,
    runs: usize,
) -> anyhow::Result<Comparison> {
    ensure!(runs > 0, "--runs must be at least 1");
    let epitaph_text = format!("metric:{METRIC_OTLP} | stats rate() by version");
    let epitaph_path = format!(
        "/api/v1/aggregate?q={}&start={}&end={}",
        percent_encode(&epitaph_text),
        day.start_ms,
        day.end_ms
    );
    let victoria_time = format!("{}.{:03}", day.end_ms / 1000, day.end_ms % 1000);
    let rate_text = format!("sum by (version) (rate({METRIC_PROMETHEUS}[24h]))");
    let increase_text = format!("sum by (version) (increase({METRIC_PROMETHEUS}[24h]))");
    let victoria_path = |query: &str| {
        format!(
            "/api/v1/query?query={}&time={victoria_time}",
            percent_encode(query)
        )
    };
    let mut epitaph_connection = HttpConnection::connect(epitaph_address).await?;
    let mut victoria_connection = HttpConnection::connect(victoria_address).await?;
    let mut epitaph = TimedQuery {
        name: "epitaph",
        text: epitaph_text,
        runs_ms: Vec::new(),
        answer: BTreeMap::new(),
    };
    let mut victoria_rate = TimedQuery {
        name: "victoria-metrics rate",
        text: rate_text.clone(),
        runs_ms: Vec::new(),
        answer: BTreeMap::new(),
    };
    let mut victoria_increase = TimedQuery {
        name: "victoria-metrics increase",
        text: increase_text.clone(),
        runs_ms: Vec::new(),
        answer: BTreeMap::new(),
    };
    let range_seconds = (day.end_ms - day.start_ms) as f64 / 1000.0;
    // Run 0 warms up and is not timed; the queries alternate so that a change of the
    // machine's load hits both.
    for run in 0..=runs {
        let (ms, body) = timed_get(&mut epitaph_connection, &epitaph_path).await?;
        epitaph.answer = epitaph_answer(&body)?;
        let (rate_ms, rate_body) =
            timed_get(&mut victoria_connection, &victoria_path(&rate_text)).await?;
        victoria_rate.answer = victoria_answer(&rate_body)?;
        let (increase_ms, increase_body) =
            timed_get(&mut victoria_connection, &victoria_path(&increase_text)).await?;
        victoria_increase.answer = victoria_answer(&increase_body)?
            .into_iter()
            .map(|(version, increase)| (version, increase / range_seconds))
            .collect();
        if run > 0 {
            epitaph.runs_ms.push(ms);
            victoria_rate.runs_ms.push(rate_ms);
            victoria_increase.runs_ms.push(increase_ms);
        }
    }
    Ok(Comparison {
        range_seconds,
        expected: day.expected(),
        epitaph,
        victoria_rate,
        victoria_increase,
    })
}

async fn timed_get(connection: &mut HttpConnection, path: &str) -> anyhow::Result<(f64, Vec<u8>)> {
    let began = Instant::now();
    let (status, body) = connection.request("GET", path, &[]).await?;
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        status == 200,
        "GET {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((ms, body))
}

/// `{"columns":["version","rate()"],"rows":[["v",1.5],...]}` → version → rate.
fn epitaph_answer(body: &[u8]) -> anyhow::Result<BTreeMap<String, f64>> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).context("parsing Epitaph's answer")?;
    let columns = answer["columns"]
        .as_array()
        .context("Epitaph's answer has no columns")?;
    let version_column = columns
        .iter()
        .position(|c| c == "version")
        .context("Epitaph's answer has no version column")?;
    let rate_column = columns
        .iter()
        .position(|c| c.as_str().is_some_and(|c| c.starts_with("rate")))
        .context("Epitaph's answer has no rate column")?;
    let mut rates = BTreeMap::new();
    for row in answer["rows"].as_array().context("no rows")? {
        let version = row[version_column].as_str().unwrap_or_default().to_string();
        let rate = row[rate_column].as_f64().unwrap_or(f64::NAN);
        rates.insert(version, rate);
    }
    Ok(rates)
}

/// A Prometheus instant-query vector → version → value.
fn victoria_answer(body: &[u8]) -> anyhow::Result<BTreeMap<String, f64>> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).context("parsing VictoriaMetrics' answer")?;
    ensure!(
        answer["status"] == "success",
        "VictoriaMetrics answered {answer}"
    );
    let mut values = BTreeMap::new();
    for result in answer["data"]["result"]
        .as_array()
        .context("VictoriaMetrics' answer has no result")?
    {
        let version = result["metric"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let value = result["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        values.insert(version, value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(seed: u64) -> Day {
        Day::generate(&DatasetArgs {
            end_ms: Some(1_795_000_000_000),
            step_seconds: 30,
            rounds_per_request: 2,
            seed,
        })
        .unwrap()
    }

    #[test]
    fn the_same_seed_and_end_give_the_same_samples() {
        let (first, second) = (day(1), day(1));
        assert_eq!(first.samples(), second.samples());
        for (a, b) in first.series.iter().zip(&second.series) {
            assert_eq!(a.samples, b.samples);
        }
        let other = day(2);
        assert_ne!(first.series[0].samples, other.series[0].samples);
    }

    #[test]
    fn the_day_has_its_series_resets_and_samples_inside_the_range() {
        let day = day(1);
        assert_eq!(day.series.len(), SERIES);
        let samples = day.samples();
        assert!(
            (1_200_000..3_000_000).contains(&samples),
            "{samples} samples"
        );
        assert!(day.restarts() > 10, "{} restarts", day.restarts());
        let mut resets = 0;
        for series in &day.series {
            for sample in &series.samples {
                assert!(sample.timestamp_ms > day.start_ms && sample.timestamp_ms <= day.end_ms);
            }
            for pair in series.samples.windows(2) {
                assert!(pair[0].timestamp_ms < pair[1].timestamp_ms);
                if pair[1].value < pair[0].value {
                    assert!(pair[1].start_ms > pair[0].start_ms);
                    resets += 1;
                }
            }
        }
        assert!(resets >= 10 * 5, "{resets} counter resets");
    }

    #[test]
    fn every_sample_goes_to_exactly_one_request() {
        let day = day(3);
        let otlp = day.otlp_requests();
        let victoria = day.victoria_requests();
        assert_eq!(otlp.len(), victoria.len());
        assert_eq!(otlp.iter().map(|r| r.samples).sum::<u64>(), day.samples());
        for (a, b) in otlp.iter().zip(&victoria) {
            assert_eq!(a.samples, b.samples);
        }
        let decoded = ExportMetricsServiceRequest::decode(otlp[100].payload.clone()).unwrap();
        let points: usize = decoded
            .resource_metrics
            .iter()
            .map(|r| match &r.scope_metrics[0].metrics[0].data {
                Some(metric::Data::Sum(sum)) => sum.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points as u64, otlp[100].samples);
        let lines = std::str::from_utf8(&victoria[100].payload).unwrap();
        let mut values = 0;
        for line in lines.lines() {
            let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(parsed["metric"]["__name__"], METRIC_PROMETHEUS);
            values += parsed["values"].as_array().unwrap().len();
            assert_eq!(
                parsed["values"].as_array().unwrap().len(),
                parsed["timestamps"].as_array().unwrap().len()
            );
        }
        assert_eq!(values as u64, victoria[100].samples);
    }

    fn sample(timestamp_ms: i64, value: u64, start_ms: i64) -> Sample {
        Sample {
            round: 0,
            timestamp_ms,
            value,
            start_ms,
        }
    }

    #[test]
    fn increases_follow_resets_and_count_new_series_whole() {
        // Running before the range: the first value is the base.
        let old = [sample(10, 100, 0), sample(20, 130, 0), sample(30, 5, 25)];
        assert_eq!(increases(&old, 5), (35.0, 35.0));
        // Began inside the range: its first value counts too.
        let new = [sample(10, 4, 8), sample(20, 9, 8)];
        assert_eq!(increases(&new, 5), (9.0, 5.0));
        assert_eq!(increases(&[], 5), (0.0, 0.0));
    }

    #[tokio::test]
    async fn responses_are_read_by_length_and_by_chunks() {
        let mut fixed: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            read_response(&mut fixed).await.unwrap(),
            (200, b"hello".to_vec())
        );
        let mut chunked: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            read_response(&mut chunked).await.unwrap(),
            (200, b"abcde".to_vec())
        );
        let mut empty: &[u8] = b"HTTP/1.1 204 No Content\r\nX-Server-Hostname: h\r\n\r\n";
        assert_eq!(read_response(&mut empty).await.unwrap(), (204, Vec::new()));
    }

    #[test]
    fn both_answers_are_read_by_version_and_compared() {
        let epitaph = br#"{"columns":["version","rate()"],"rows":[["a",2.0],["b",4.0]]}"#;
        let victoria = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"version":"a"},"value":[1795000000,"2"]},
            {"metric":{"version":"b"},"value":[1795000000,"5"]}]}}"#;
        let epitaph = epitaph_answer(epitaph).unwrap();
        let victoria = victoria_answer(victoria).unwrap();
        assert_eq!(epitaph.get("b"), Some(&4.0));
        assert_eq!(victoria.get("b"), Some(&5.0));
        let expected = || [("a".to_string(), 2.0), ("b".to_string(), 4.0)].into_iter();
        assert_eq!(max_relative_error(&epitaph, expected()), 0.0);
        assert_eq!(max_relative_error(&victoria, expected()), 0.25);
        let missing = BTreeMap::from([("a".to_string(), 2.0)]);
        assert_eq!(max_relative_error(&missing, expected()), f64::INFINITY);
        assert!(victoria_answer(br#"{"status":"error","error":"bad"}"#).is_err());
    }

    #[test]
    fn query_text_is_percent_encoded() {
        assert_eq!(percent_encode("a b|c:d"), "a%20b%7Cc%3Ad");
    }
}
