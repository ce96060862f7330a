//! Host metrics: what `/proc` and `/sys` say about the instance, sent as OTLP metrics.
//!
//! One small task wakes every `interval` (10 s by default), reads the kernel's files by
//! hand — a few kilobytes of text, no dependency — and sends one
//! `ExportMetricsServiceRequest` with the same resource (the instance's identity) as the
//! logs. Names, units, kinds and attributes are those of the OpenTelemetry Collector's
//! `hostmetrics` receiver, which follow the host-metrics semantic conventions:
//!
//! | source | metrics |
//! |---|---|
//! | [`cpu`]: `/proc/stat`, `/proc/loadavg` | `system.cpu.time` {`cpu`, `state`}, `system.cpu.logical.count`, `system.processes.created`, `system.cpu.load_average.{1m,5m,15m}` |
//! | [`memory`]: `/proc/meminfo`, `/proc/swaps`, `/proc/vmstat` | `system.memory.usage` {`state`}, `system.memory.limit`, `system.paging.usage` {`device`, `state`}, `system.paging.operations` {`direction`, `type`}, `system.paging.faults` {`type`} |
//! | [`disk`]: `/proc/diskstats`, `/sys/block` | `system.disk.io`, `system.disk.operations`, `system.disk.operation_time` {`device`, `direction`}, `system.disk.io_time` {`device`} |
//! | [`filesystem`]: `/proc/self/mountinfo`, `statvfs` | `system.filesystem.usage` {`device`, `mountpoint`, `type`, `mode`, `state`}, `system.filesystem.inodes.usage` |
//! | [`network`]: `/proc/net/dev` | `system.network.io`, `.packets`, `.errors`, `.dropped` {`device`, `direction`} |
//! | [`processes`]: `/proc/<pid>/stat` | `system.processes.count` {`status`} |
//! | [`agent_health`]: the agent's counters, `/proc/self/stat` | `epitaph.agent.*` |
//!
//! Kernel counters are cumulative sums that start at boot (`btime` of `/proc/stat`);
//! the agent's own start when the agent started. A source that cannot be read (a
//! container without `/proc/diskstats`, say) is left out with one warning, and the
//! others are still sent. Sending, retries and the exactly-once header are in
//! [`export`]; metrics are never spooled to disk.

pub mod agent_health;
pub mod cpu;
pub mod disk;
pub mod export;
pub mod filesystem;
pub mod memory;
pub mod network;
pub mod otlp;
pub mod processes;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use epitaph_proto::collector::metrics::v1::ExportMetricsServiceRequest;
use epitaph_proto::resource::v1::Resource;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tracing::{debug, warn};

use crate::stats::{AgentStats, StatsSnapshot};
use agent_health::ExporterCounters;
use export::MetricsExporter;
use otlp::MetricSet;

/// The `[metrics]` table of the agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// How often host metrics are read and sent.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Filesystem types that are not measured: pseudo, in-memory and container-layer
    /// filesystems, whose "usage" says nothing about the disks.
    pub exclude_filesystem_types: Vec<String>,
    /// Intervals kept in memory while the server cannot take them; the oldest is
    /// dropped (and counted) beyond this.
    pub max_pending_intervals: usize,
    /// Where procfs is mounted (tests point it at fixture files).
    pub proc_root: PathBuf,
    /// Where sysfs is mounted.
    pub sys_root: PathBuf,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            interval: Duration::from_secs(10),
            exclude_filesystem_types: DEFAULT_EXCLUDED_FILESYSTEM_TYPES
                .iter()
                .map(|fs_type| fs_type.to_string())
                .collect(),
            max_pending_intervals: 30,
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
        }
    }
}

/// Pseudo filesystems (kernel interfaces), memory-backed ones, container overlays and
/// read-only images (snaps), none of which measures a disk the operator can fill.
pub const DEFAULT_EXCLUDED_FILESYSTEM_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.lxcfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

impl MetricsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.interval < Duration::from_millis(10) {
            bail!("metrics.interval must be at least 10ms");
        }
        if self.max_pending_intervals == 0 {
            bail!("metrics.max_pending_intervals must be at least 1");
        }
        Ok(())
    }
}

/// Reads every source under the configured roots into one [`MetricSet`].
pub struct HostCollector {
    proc_root: PathBuf,
    sys_root: PathBuf,
    excluded_filesystem_types: Vec<String>,
    ticks_per_second: u64,
    page_size: u64,
    /// Sources that failed once: they are warned about once, then logged at debug.
    failed_sources: HashSet<&'static str>,
}

impl HostCollector {
    pub fn new(config: &MetricsConfig) -> HostCollector {
        HostCollector {
            proc_root: config.proc_root.clone(),
            sys_root: config.sys_root.clone(),
            excluded_filesystem_types: config.exclude_filesystem_types.clone(),
            ticks_per_second: sysconf_or(libc::_SC_CLK_TCK, 100),
            page_size: sysconf_or(libc::_SC_PAGESIZE, 4096),
            failed_sources: HashSet::new(),
        }
    }

    /// One interval's metrics. Blocking: reads files and calls `statvfs`.
    pub fn collect(
        &mut self,
        stats: &StatsSnapshot,
        exporter: ExporterCounters,
        agent_start: SystemTime,
    ) -> MetricSet {
        let mut metrics = MetricSet::new(SystemTime::now());
        let stat = self.read("/proc/stat", "stat", cpu::parse_stat);
        let boot = stat.as_ref().map(cpu::KernelStat::boot_time);
        if let Some(stat) = &stat {
            cpu::push_stat(stat, self.ticks_per_second, &mut metrics);
        }
        if let Some(loads) = self.read("/proc/loadavg", "loadavg", cpu::parse_loadavg) {
            cpu::push_loadavg(loads, &mut metrics);
        }
        // Every other kernel counter starts at boot; without a boot time there is no
        // correct start time to give them, so they wait for a readable /proc/stat.
        if let Some(boot) = boot {
            self.collect_kernel_counters(boot, &mut metrics);
        }
        agent_health::push_agent_stats(stats, exporter, agent_start, &mut metrics);
        if let Some(cost) = self.read(
            "/proc/self/stat",
            "self/stat",
            agent_health::parse_process_cost,
        ) {
            agent_health::push_process_cost(
                cost,
                self.ticks_per_second,
                self.page_size,
                agent_start,
                &mut metrics,
            );
        }
        metrics
    }

    fn collect_kernel_counters(&mut self, boot: SystemTime, metrics: &mut MetricSet) {
        let meminfo = self.read("/proc/meminfo", "meminfo", |text| {
            Ok(memory::parse_meminfo(text))
        });
        if let Some(meminfo) = meminfo {
            let pushed = memory::push_meminfo(&meminfo, boot, metrics);
            self.note_result("/proc/meminfo", pushed);
        }
        if let Some(swaps) = self.read("/proc/swaps", "swaps", memory::parse_swaps) {
            memory::push_swaps(&swaps, boot, metrics);
        }
        if let Some(paging) = self.read("/proc/vmstat", "vmstat", memory::parse_vmstat) {
            memory::push_vmstat(paging, boot, metrics);
        }
        let is_disk = disk::disk_filter(read_sys_block(&self.sys_root));
        if let Some(disks) = self.read("/proc/diskstats", "diskstats", |text| {
            disk::parse_diskstats(text, &is_disk)
        }) {
            disk::push_disks(&disks, boot, metrics);
        }
        let excluded = self.excluded_filesystem_types.clone();
        if let Some(mounts) = self.read("/proc/self/mountinfo", "self/mountinfo", |text| {
            filesystem::parse_mountinfo(text, &excluded)
        }) {
            let measured: Vec<_> = mounts
                .into_iter()
                .filter_map(|mount| {
                    let usage = filesystem::measure(Path::new(&mount.mountpoint))?;
                    Some((mount, usage))
                })
                .collect();
            filesystem::push_filesystems(&measured, boot, metrics);
        }
        if let Some(interfaces) = self.read("/proc/net/dev", "net/dev", network::parse_net_dev) {
            network::push_interfaces(&interfaces, boot, metrics);
        }
        let counted = processes::count_processes(&self.proc_root).map_err(|e| e.to_string());
        if let Some(counts) = self.note_result("/proc/<pid>/stat", counted) {
            processes::push_processes(&counts, boot, metrics);
        }
    }

    /// Reads `<proc_root>/<relative>` and parses it; a failure is noted (see
    /// [`HostCollector::note_result`]) and gives `None`.
    fn read<T>(
        &mut self,
        source: &'static str,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let path = self.proc_root.join(relative);
        let parsed = std::fs::read_to_string(&path)
            .map_err(|error| format!("reading {}: {error}", path.display()))
            .and_then(|text| parse(&text).map_err(|error| format!("{}: {error}", path.display())));
        self.note_result(source, parsed)
    }

    /// The first failure of a source is a warning; repeats are debug lines, so that a
    /// machine without, say, `/proc/swaps` does not log every interval.
    fn note_result<T>(&mut self, source: &'static str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                if self.failed_sources.insert(source) {
                    warn!(source, %error, "host metrics source unreadable; its metrics are left out");
                } else {
                    debug!(source, %error, "host metrics source unreadable");
                }
                None
            }
        }
    }
}

/// The disk names under `<sys_root>/block`, or `None` when it cannot be listed.
fn read_sys_block(sys_root: &Path) -> Option<HashSet<String>> {
    let listing = std::fs::read_dir(sys_root.join("block")).ok()?;
    Some(
        listing
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect(),
    )
}

fn sysconf_or(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 { value as u64 } else { fallback }
}

/// Decodes the octal escapes (`\040` for a space) that the kernel writes in paths of
/// `/proc/self/mountinfo` and `/proc/swaps`.
pub fn unescape_octal(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                decoded.push(value.min(255) as u8);
                index += 4;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// What the metrics task needs besides its configuration.
pub struct HostMetricsTask {
    pub config: MetricsConfig,
    pub exporter: MetricsExporter,
    pub resource: Resource,
    pub stats: Arc<AgentStats>,
    /// When the agent started: the start time of its own counters.
    pub agent_start: SystemTime,
}

/// Starts the host-metrics task when `[metrics] enabled`; it ends when `stop` turns
/// true. `started` is when the agent started (the start time of its own counters).
#[allow(clippy::too_many_arguments)] // one caller, `run_with_stats`, which has each part
pub fn start(
    config: &crate::config::Config,
    agent_id: &str,
    resource: Resource,
    channel: Channel,
    authorization: Option<MetadataValue<Ascii>>,
    stats: Arc<AgentStats>,
    started: SystemTime,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let exporter = MetricsExporter::new(
        channel,
        agent_id,
        authorization,
        &config.state_dir,
        config.metrics.max_pending_intervals,
    )?;
    let task = HostMetricsTask {
        config: config.metrics.clone(),
        exporter,
        resource,
        stats,
        agent_start: started,
    };
    Ok(Some(tokio::spawn(run_host_metrics(task, stop))))
}

/// How long an export in flight when `stop` turns true may take to finish: long enough
/// on a working network for its ack to be recorded (else the next start would reuse its
/// sequence, and the server would drop that interval as already stored).
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Collects and sends host metrics every interval until `stop` turns true.
pub async fn run_host_metrics(task: HostMetricsTask, mut stop: watch::Receiver<bool>) {
    let HostMetricsTask {
        config,
        mut exporter,
        resource,
        stats,
        agent_start,
    } = task;
    let mut stop_during_attempt = stop.clone();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut idle_collector = Some(HostCollector::new(&config));
    let mut collecting: Option<JoinHandle<(HostCollector, ExportMetricsServiceRequest)>> = None;
    let mut warned_stuck = false;
    loop {
        let next_attempt = exporter.next_attempt_at();
        tokio::select! {
            _ = ticker.tick() => {
                if exporter.is_paused(tokio::time::Instant::now()) {
                    continue;
                }
                // A collection still running after a whole interval is stuck in the
                // kernel (statvfs on a dead network mount): wait for it rather than
                // leave a second blocking thread behind it.
                let Some(mut collector) = idle_collector.take() else {
                    if !std::mem::replace(&mut warned_stuck, true) {
                        warn!("host metrics collection still running after an interval (a hung mount?); skipping intervals until it returns");
                    }
                    continue;
                };
                let snapshot = stats.snapshot();
                let counters = exporter.counters();
                let resource = resource.clone();
                collecting = Some(tokio::task::spawn_blocking(move || {
                    let metrics = collector.collect(&snapshot, counters, agent_start);
                    let request = metrics.into_request(&resource);
                    (collector, request)
                }));
            }
            joined = async { collecting.as_mut().expect("guarded by the branch condition").await }, if collecting.is_some() => {
                collecting = None;
                match joined {
                    Ok((collector, request)) => {
                        idle_collector = Some(collector);
                        exporter.enqueue(request);
                    }
                    Err(join_error) => {
                        warn!(%join_error, "host metrics collection failed; starting afresh");
                        idle_collector = Some(HostCollector::new(&config));
                    }
                }
            }
            _ = tokio::time::sleep_until(next_attempt.unwrap_or_else(tokio::time::Instant::now)), if next_attempt.is_some() => {
                let attempt = exporter.attempt();
                tokio::pin!(attempt);
                tokio::select! {
                    _ = &mut attempt => trim_heap(),
                    _ = stopped(&mut stop_during_attempt) => {
                        let _ = tokio::time::timeout(STOP_GRACE, attempt).await;
                        return;
                    }
                }
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Hands the heap an interval's collection and export freed back to the kernel, so an
/// idle agent does not keep the high-water mark of its last export resident (glibc gives
/// free memory back only above a threshold). Once per interval, it costs microseconds.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages back to the kernel; it touches no memory
    // that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Completes when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it is dropped here, not held.
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
pub(crate) fn fixture_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc"))
}

#[cfg(test)]
pub(crate) fn fixture(relative: &str) -> String {
    std::fs::read_to_string(fixture_root().join(relative)).unwrap()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use epitaph_proto::metrics::v1::{metric, number_data_point};
    use std::collections::{BTreeMap, HashMap};

    /// The points of metric `name`: attribute values joined with `,` → value.
    pub fn points_of(metrics: MetricSet, name: &str) -> BTreeMap<String, f64> {
        let request = metrics.into_request(&Resource::default());
        let metric = request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|metric| metric.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
            .clone();
        let points = match metric.data.unwrap() {
            metric::Data::Sum(sum) => sum.data_points,
            metric::Data::Gauge(gauge) => gauge.data_points,
            other => panic!("unexpected kind {other:?}"),
        };
        points
            .into_iter()
            .map(|point| {
                let key: Vec<String> = point
                    .attributes
                    .iter()
                    .map(
                        |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(epitaph_proto::common::v1::any_value::Value::StringValue(s)) => {
                                s.clone()
                            }
                            other => panic!("non-string attribute {other:?}"),
                        },
                    )
                    .collect();
                let value = match point.value.unwrap() {
                    number_data_point::Value::AsDouble(value) => value,
                    number_data_point::Value::AsInt(value) => value as f64,
                };
                (key.join(","), value)
            })
            .collect()
    }

    fn fixture_config() -> MetricsConfig {
        MetricsConfig {
            proc_root: fixture_root(),
            sys_root: fixture_root().join("sys"),
            ..MetricsConfig::default()
        }
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_octal(r"tab\011here\134"), "tab\there\\");
        assert_eq!(unescape_octal(r"not\09escape\"), r"not\09escape\");
    }

    #[test]
    fn a_collection_from_fixtures_has_every_source_with_boot_as_start() {
        let mut collector = HostCollector::new(&fixture_config());
        let agent_start = SystemTime::now();
        let metrics = collector.collect(
            &StatsSnapshot::default(),
            ExporterCounters::default(),
            agent_start,
        );
        let request = metrics.into_request(&Resource::default());
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let names: HashSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        for expected in [
            "system.cpu.time",
            "system.cpu.load_average.1m",
            "system.cpu.load_average.15m",
            "system.memory.usage",
            "system.paging.usage",
            "system.paging.operations",
            "system.paging.faults",
            "system.disk.io",
            "system.disk.operations",
            "system.network.io",
            "system.network.packets",
            "system.network.errors",
            "system.processes.count",
            "system.processes.created",
            "epitaph.agent.lines.read",
            "epitaph.agent.spool.usage",
            "epitaph.agent.records.dropped",
            "epitaph.agent.cpu.time",
        ] {
            assert!(
                names.contains(expected),
                "{expected} missing from {names:?}"
            );
        }
        // The fixture's mounts are measured where they exist here: `/` always does.
        let filesystems = points_of(
            collector.collect(
                &StatsSnapshot::default(),
                ExporterCounters::default(),
                agent_start,
            ),
            "system.filesystem.usage",
        );
        assert!(
            filesystems.contains_key("/dev/sda1,/,ext4,rw,used"),
            "{filesystems:?}"
        );
        assert!(
            filesystems.keys().all(|key| key.starts_with("/dev/sda1,/,")
                || key.starts_with("/dev/nvme0n1p1,/var/lib/data,xfs,ro,")),
            "only the two measurable fixture mounts: {filesystems:?}"
        );
        let boot_nanos = 1_795_663_177 * 1_000_000_000u64;
        let starts: HashMap<&str, u64> = metrics
            .iter()
            .filter_map(|metric| match &metric.data {
                Some(metric::Data::Sum(sum)) => Some((
                    metric.name.as_str(),
                    sum.data_points[0].start_time_unix_nano,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(starts["system.cpu.time"], boot_nanos);
        assert_eq!(starts["system.network.io"], boot_nanos);
        assert_eq!(
            starts["epitaph.agent.lines.read"],
            otlp::unix_nanos(agent_start)
        );
    }

    #[test]
    fn an_unreadable_source_is_left_out_and_the_rest_still_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), fixture("stat")).unwrap();
        std::fs::write(dir.path().join("loadavg"), "garbage").unwrap();
        let config = MetricsConfig {
            proc_root: dir.path().to_path_buf(),
            sys_root: dir.path().join("sys"),
            ..MetricsConfig::default()
        };
        let mut collector = HostCollector::new(&config);
        for _ in 0..2 {
            let metrics = collector.collect(
                &StatsSnapshot::default(),
                ExporterCounters::default(),
                SystemTime::now(),
            );
            let request = metrics.into_request(&Resource::default());
            let names: Vec<&str> = request.resource_metrics[0].scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            assert!(names.contains(&"system.cpu.time"));
            assert!(names.contains(&"epitaph.agent.lines.read"));
            assert!(!names.iter().any(|name| name.contains("load_average")));
            assert!(!names.contains(&"system.memory.usage"));
        }
        assert!(collector.failed_sources.contains("/proc/loadavg"));
        assert!(collector.failed_sources.contains("/proc/meminfo"));
    }

    #[test]
    fn the_real_proc_can_be_read() {
        if !Path::new("/proc/stat").exists() {
            return; // not Linux
        }
        let mut collector = HostCollector::new(&MetricsConfig::default());
        let metrics = collector.collect(
            &StatsSnapshot::default(),
            ExporterCounters::default(),
            SystemTime::now(),
        );
        assert!(metrics.len() > 10);
        assert!(
            !collector.failed_sources.contains("/proc/stat"),
            "{:?}",
            collector.failed_sources
        );
    }

    #[test]
    fn the_metrics_table_parses_in_the_agent_config() {
        let config = crate::config::Config::from_toml_str(
            r#"
            [metrics]
            enabled = false
            interval = "30s"
            exclude_filesystem_types = ["tmpfs"]
            max_pending_intervals = 5
            proc_root = "/host/proc"
            sys_root = "/host/sys"
            "#,
        )
        .unwrap();
        assert!(!config.metrics.enabled);
        assert_eq!(config.metrics.interval, Duration::from_secs(30));
        assert_eq!(config.metrics.exclude_filesystem_types, vec!["tmpfs"]);
        assert_eq!(config.metrics.max_pending_intervals, 5);
        assert_eq!(config.metrics.proc_root, PathBuf::from("/host/proc"));
        config.validate().unwrap();
        let defaults = crate::config::Config::from_toml_str("").unwrap();
        assert_eq!(defaults.metrics, MetricsConfig::default());
        let error =
            crate::config::Config::from_toml_str("[metrics]\nintervall = \"1s\"").unwrap_err();
        assert!(format!("{error:#}").contains("intervall"), "{error:#}");
        let too_fast =
            crate::config::Config::from_toml_str("[metrics]\ninterval = \"1ms\"").unwrap();
        assert!(format!("{:#}", too_fast.validate().unwrap_err()).contains("metrics.interval"));
    }

    #[test]
    fn config_defaults_and_validation() {
        let config = MetricsConfig::default();
        assert!(config.enabled);
        assert_eq!(config.interval, Duration::from_secs(10));
        for fs_type in ["tmpfs", "proc", "sysfs", "overlay"] {
            assert!(config.exclude_filesystem_types.iter().any(|t| t == fs_type));
        }
        config.validate().unwrap();
        let zero = MetricsConfig {
            max_pending_intervals: 0,
            ..MetricsConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
