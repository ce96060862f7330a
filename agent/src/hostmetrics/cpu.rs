//! `/proc/stat` (CPU time per CPU and state, boot time, forks) and `/proc/loadavg`.
//!
//! Each `cpuN` line counts clock ticks (`USER_HZ`, almost always 100 per second) spent
//! in each state since boot: user, nice, system, idle, iowait, irq, softirq, steal, then
//! guest and guest_nice — which are already included in user and nice, so they are not
//! reported again. The aggregate `cpu` line is the sum of the others and is skipped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::otlp::{Descriptor, Kind, MetricSet, Point};

pub const CPU_TIME: Descriptor = Descriptor {
    name: "system.cpu.time",
    description: "Seconds each logical CPU spent in each state since boot.",
    unit: "s",
    kind: Kind::Counter,
};
pub const CPU_LOGICAL_COUNT: Descriptor = Descriptor {
    name: "system.cpu.logical.count",
    description: "Logical CPUs the kernel reports.",
    unit: "{cpu}",
    kind: Kind::UpDownCounter,
};
pub const PROCESSES_CREATED: Descriptor = Descriptor {
    name: "system.processes.created",
    description: "Processes and threads created (forks) since boot.",
    unit: "{processes}",
    kind: Kind::Counter,
};
const LOAD_1M: Descriptor = Descriptor {
    name: "system.cpu.load_average.1m",
    description: "Average run-queue length (runnable and uninterruptible tasks) over one minute.",
    unit: "{thread}",
    kind: Kind::Gauge,
};
const LOAD_5M: Descriptor = Descriptor {
    name: "system.cpu.load_average.5m",
    description: "Average run-queue length over five minutes.",
    unit: "{thread}",
    kind: Kind::Gauge,
};
const LOAD_15M: Descriptor = Descriptor {
    name: "system.cpu.load_average.15m",
    description: "Average run-queue length over fifteen minutes.",
    unit: "{thread}",
    kind: Kind::Gauge,
};

/// The `state` values of `system.cpu.time`, in `/proc/stat` column order.
const CPU_STATES: [&str; 8] = [
    "user",
    "nice",
    "system",
    "idle",
    "wait",
    "interrupt",
    "softirq",
    "steal",
];

/// What the agent takes from `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KernelStat {
    /// Per logical CPU (`cpu0`, `cpu1`, …): ticks in each of [`CPU_STATES`].
    pub cpus: Vec<(String, [u64; 8])>,
    /// Seconds since the epoch when the machine booted (`btime`).
    pub boot_time_seconds: u64,
    /// Forks since boot (`processes`).
    pub processes_created: Option<u64>,
}

impl KernelStat {
    pub fn boot_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.boot_time_seconds)
    }
}

pub fn parse_stat(text: &str) -> Result<KernelStat, String> {
    let mut stat = KernelStat::default();
    let mut boot_time = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(number) = key.strip_prefix("cpu") {
            if number.is_empty() {
                continue; // the aggregate line
            }
            let mut ticks = [0u64; 8];
            for (slot, field) in ticks.iter_mut().zip(&mut fields) {
                *slot = field
                    .parse()
                    .map_err(|_| format!("{key}: `{field}` is not a tick count"))?;
            }
            stat.cpus.push((key.to_string(), ticks));
            continue;
        }
        match key {
            "btime" => boot_time = fields.next().and_then(|value| value.parse().ok()),
            "processes" => {
                stat.processes_created = fields.next().and_then(|value| value.parse().ok())
            }
            _ => {}
        }
    }
    stat.boot_time_seconds = boot_time.ok_or("no `btime` line")?;
    Ok(stat)
}

/// Pushes `system.cpu.time`, the CPU count and forks; counters start at boot.
pub fn push_stat(stat: &KernelStat, ticks_per_second: u64, metrics: &mut MetricSet) {
    let boot = stat.boot_time();
    let ticks_per_second = ticks_per_second.max(1) as f64;
    let mut points = Vec::with_capacity(stat.cpus.len() * CPU_STATES.len());
    for (cpu, ticks) in &stat.cpus {
        for (state, ticks) in CPU_STATES.iter().zip(ticks) {
            points.push(Point::double(
                vec![("cpu", cpu.clone()), ("state", state.to_string())],
                *ticks as f64 / ticks_per_second,
            ));
        }
    }
    metrics.push(CPU_TIME, boot, points);
    if !stat.cpus.is_empty() {
        metrics.push(
            CPU_LOGICAL_COUNT,
            boot,
            vec![Point::int(vec![], stat.cpus.len() as u64)],
        );
    }
    if let Some(created) = stat.processes_created {
        metrics.push(PROCESSES_CREATED, boot, vec![Point::int(vec![], created)]);
    }
}

/// The three load averages of `/proc/loadavg` (`0.48 1.25 2.50 3/89 19115`).
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let mut fields = text.split_ascii_whitespace();
    let mut loads = [0.0; 3];
    for load in &mut loads {
        let field = fields.next().ok_or("fewer than three load averages")?;
        *load = field
            .parse()
            .ok()
            .filter(|load: &f64| load.is_finite() && *load >= 0.0)
            .ok_or_else(|| format!("`{field}` is not a load average"))?;
    }
    Ok(loads)
}

pub fn push_loadavg(loads: [f64; 3], metrics: &mut MetricSet) {
    for (descriptor, load) in [LOAD_1M, LOAD_5M, LOAD_15M].into_iter().zip(loads) {
        metrics.push(descriptor, UNIX_EPOCH, vec![Point::double(vec![], load)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::fixture;

    #[test]
    fn stat_gives_ticks_per_cpu_and_state_boot_time_and_forks() {
        let stat = parse_stat(&fixture("stat")).unwrap();
        assert_eq!(stat.cpus.len(), 2, "the aggregate `cpu` line is skipped");
        assert_eq!(stat.cpus[0].0, "cpu0");
        assert_eq!(stat.cpus[0].1, [1000, 100, 500, 45000, 200, 10, 30, 3]);
        assert_eq!(stat.cpus[1].1, [2000, 100, 700, 45000, 250, 0, 30, 2]);
        assert_eq!(stat.boot_time_seconds, 1_795_663_177);
        assert_eq!(stat.processes_created, Some(311_235));
    }

    #[test]
    fn stat_from_an_old_kernel_with_fewer_columns_reads_zero_for_the_missing_ones() {
        let stat = parse_stat("cpu0 10 20 30 40\nbtime 5\n").unwrap();
        assert_eq!(stat.cpus[0].1, [10, 20, 30, 40, 0, 0, 0, 0]);
    }

    #[test]
    fn stat_without_boot_time_or_with_garbage_is_an_error() {
        assert!(parse_stat("cpu0 1 2 3 4\n").is_err());
        assert!(parse_stat("cpu0 1 x 3 4\nbtime 5\n").is_err());
    }

    #[test]
    fn cpu_time_is_in_seconds_per_cpu_and_state() {
        let stat = parse_stat(&fixture("stat")).unwrap();
        let mut metrics = MetricSet::new(stat.boot_time() + Duration::from_secs(1000));
        push_stat(&stat, 100, &mut metrics);
        let points = crate::hostmetrics::tests::points_of(metrics, "system.cpu.time");
        assert_eq!(points.len(), 16);
        assert_eq!(points["cpu1,user"], 20.0);
        assert_eq!(points["cpu0,wait"], 2.0);
        assert_eq!(points["cpu0,interrupt"], 0.1);
        assert_eq!(points["cpu1,steal"], 0.02);
    }

    #[test]
    fn loadavg_gives_three_gauges() {
        assert_eq!(
            parse_loadavg(&fixture("loadavg")).unwrap(),
            [0.48, 1.25, 2.5]
        );
        assert!(parse_loadavg("0.1 0.2").is_err());
        assert!(parse_loadavg("0.1 NaN 0.3 1/2 3").is_err());
    }
}
