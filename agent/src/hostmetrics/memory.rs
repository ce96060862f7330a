//! Memory (`/proc/meminfo`), swap (`/proc/swaps`) and paging (`/proc/vmstat`).
//!
//! `system.memory.usage` splits `MemTotal` into states that add up to it exactly:
//! `free`, `buffered`, `cached` (page cache), `slab_reclaimable`, `slab_unreclaimable`,
//! and `used` for the rest (process memory, kernel stacks, page tables…). The states are
//! the OpenTelemetry Collector's on Linux; unlike its implementation, `cached` here does
//! not also hold the reclaimable slab, so nothing is counted twice.

use std::collections::HashMap;
use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};
use super::unescape_octal;

const MEMORY_USAGE: Descriptor = Descriptor {
    name: "system.memory.usage",
    description: "Bytes of physical memory in each state; the states add up to the total.",
    unit: "By",
    kind: Kind::UpDownCounter,
};
const MEMORY_LIMIT: Descriptor = Descriptor {
    name: "system.memory.limit",
    description: "Total bytes of physical memory usable by the kernel.",
    unit: "By",
    kind: Kind::UpDownCounter,
};
const PAGING_USAGE: Descriptor = Descriptor {
    name: "system.paging.usage",
    description: "Bytes of each swap device or file in use and free.",
    unit: "By",
    kind: Kind::UpDownCounter,
};
const PAGING_OPERATIONS: Descriptor = Descriptor {
    name: "system.paging.operations",
    description: "Pages swapped in and out since boot.",
    unit: "{operations}",
    kind: Kind::Counter,
};
const PAGING_FAULTS: Descriptor = Descriptor {
    name: "system.paging.faults",
    description: "Page faults since boot: major ones needed disk I/O, minor ones did not.",
    unit: "{faults}",
    kind: Kind::Counter,
};

/// `/proc/meminfo` as `field → bytes` (the file states kB, meaning KiB).
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_ascii_whitespace();
        let Some(Ok(value)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match words.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value, // counts such as HugePages_Total
        };
        fields.insert(key.trim().to_string(), bytes);
    }
    fields
}

pub fn push_meminfo(
    meminfo: &HashMap<String, u64>,
    boot: SystemTime,
    metrics: &mut MetricSet,
) -> Result<(), String> {
    let field = |name: &str| meminfo.get(name).copied();
    let total = field("MemTotal").ok_or("no MemTotal")?;
    let free = field("MemFree").ok_or("no MemFree")?;
    let buffered = field("Buffers").unwrap_or(0);
    let cached = field("Cached").unwrap_or(0);
    let slab_reclaimable = field("SReclaimable").unwrap_or(0);
    let slab_unreclaimable = field("SUnreclaim").unwrap_or(0);
    let used = total
        .saturating_sub(free)
        .saturating_sub(buffered)
        .saturating_sub(cached)
        .saturating_sub(slab_reclaimable)
        .saturating_sub(slab_unreclaimable);
    let states = [
        ("used", used),
        ("free", free),
        ("buffered", buffered),
        ("cached", cached),
        ("slab_reclaimable", slab_reclaimable),
        ("slab_unreclaimable", slab_unreclaimable),
    ];
    let points = states
        .into_iter()
        .map(|(state, bytes)| Point::int(vec![("state", state.to_string())], bytes))
        .collect();
    metrics.push(MEMORY_USAGE, boot, points);
    metrics.push(MEMORY_LIMIT, boot, vec![Point::int(vec![], total)]);
    Ok(())
}

/// One line of `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    pub device: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
}

/// `/proc/swaps`: a header, then `Filename Type Size Used Priority` in KiB, with spaces
/// in file names written as `\040`.
pub fn parse_swaps(text: &str) -> Result<Vec<SwapArea>, String> {
    let mut areas = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [device, _kind, size, used, ..] = fields[..] else {
            return Err(format!("swap line `{line}` has fewer than four fields"));
        };
        let kib = |field: &str| {
            field
                .parse::<u64>()
                .map(|kib| kib.saturating_mul(1024))
                .map_err(|_| format!("swap line `{line}`: `{field}` is not a size"))
        };
        areas.push(SwapArea {
            device: unescape_octal(device),
            size_bytes: kib(size)?,
            used_bytes: kib(used)?,
        });
    }
    Ok(areas)
}

pub fn push_swaps(areas: &[SwapArea], boot: SystemTime, metrics: &mut MetricSet) {
    let mut points = Vec::with_capacity(areas.len() * 2);
    for area in areas {
        let free = area.size_bytes.saturating_sub(area.used_bytes);
        for (state, bytes) in [("used", area.used_bytes), ("free", free)] {
            points.push(Point::int(
                vec![
                    ("device", area.device.clone()),
                    ("state", state.to_string()),
                ],
                bytes,
            ));
        }
    }
    metrics.push(PAGING_USAGE, boot, points);
}

/// The paging counters of `/proc/vmstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagingCounters {
    pub swapped_in: u64,
    pub swapped_out: u64,
    pub faults: u64,
    pub major_faults: u64,
}

pub fn parse_vmstat(text: &str) -> Result<PagingCounters, String> {
    let mut counters = PagingCounters::default();
    let mut found = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "pswpin" => &mut counters.swapped_in,
            "pswpout" => &mut counters.swapped_out,
            "pgfault" => &mut counters.faults,
            "pgmajfault" => &mut counters.major_faults,
            _ => continue,
        };
        *slot = value
            .trim()
            .parse()
            .map_err(|_| format!("vmstat {key}: `{value}` is not a count"))?;
        found += 1;
    }
    if found == 0 {
        return Err("none of pswpin, pswpout, pgfault, pgmajfault".to_string());
    }
    Ok(counters)
}

pub fn push_vmstat(paging: PagingCounters, boot: SystemTime, metrics: &mut MetricSet) {
    let major = || ("type", "major".to_string());
    metrics.push(
        PAGING_OPERATIONS,
        boot,
        vec![
            Point::int(
                vec![("direction", "page_in".to_string()), major()],
                paging.swapped_in,
            ),
            Point::int(
                vec![("direction", "page_out".to_string()), major()],
                paging.swapped_out,
            ),
        ],
    );
    metrics.push(
        PAGING_FAULTS,
        boot,
        vec![
            Point::int(vec![major()], paging.major_faults),
            Point::int(
                vec![("type", "minor".to_string())],
                paging.faults.saturating_sub(paging.major_faults),
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::fixture;
    use crate::hostmetrics::tests::points_of;

    #[test]
    fn memory_states_add_up_to_the_total() {
        let meminfo = parse_meminfo(&fixture("meminfo"));
        assert_eq!(meminfo["MemTotal"], 8_000_000 * 1024);
        assert_eq!(meminfo["HugePages_Total"], 0);
        let mut metrics = MetricSet::new(SystemTime::now());
        push_meminfo(&meminfo, SystemTime::UNIX_EPOCH, &mut metrics).unwrap();
        let usage = points_of(metrics, "system.memory.usage");
        let kib = |value: u64| (value * 1024) as f64;
        assert_eq!(usage["free"], kib(1_000_000));
        assert_eq!(usage["buffered"], kib(200_000));
        assert_eq!(usage["cached"], kib(3_000_000));
        assert_eq!(usage["slab_reclaimable"], kib(300_000));
        assert_eq!(usage["slab_unreclaimable"], kib(100_000));
        assert_eq!(usage["used"], kib(3_400_000));
        assert_eq!(usage.values().sum::<f64>(), kib(8_000_000));
    }

    #[test]
    fn meminfo_without_its_totals_is_an_error() {
        let mut metrics = MetricSet::new(SystemTime::now());
        let meminfo = parse_meminfo("Buffers: 1 kB\n");
        assert!(push_meminfo(&meminfo, SystemTime::UNIX_EPOCH, &mut metrics).is_err());
    }

    #[test]
    fn swaps_give_used_and_free_per_device_with_unescaped_names() {
        let areas = parse_swaps(&fixture("swaps")).unwrap();
        assert_eq!(
            areas,
            vec![
                SwapArea {
                    device: "/dev/sda2".into(),
                    size_bytes: 1_048_572 * 1024,
                    used_bytes: 500_000 * 1024,
                },
                SwapArea {
                    device: "/swap file".into(),
                    size_bytes: 1_048_576 * 1024,
                    used_bytes: 0,
                },
            ]
        );
        let mut metrics = MetricSet::new(SystemTime::now());
        push_swaps(&areas, SystemTime::UNIX_EPOCH, &mut metrics);
        let usage = points_of(metrics, "system.paging.usage");
        assert_eq!(usage["/dev/sda2,free"], (548_572 * 1024) as f64);
        assert_eq!(usage["/swap file,used"], 0.0);
        assert!(
            parse_swaps("Filename Type Size Used Priority\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse_swaps("header\n/dev/x partition big 0 -2\n").is_err());
    }

    #[test]
    fn vmstat_gives_swap_operations_and_faults_split_major_and_minor() {
        let paging = parse_vmstat(&fixture("vmstat")).unwrap();
        assert_eq!(
            paging,
            PagingCounters {
                swapped_in: 120,
                swapped_out: 340,
                faults: 9_000_000,
                major_faults: 4500,
            }
        );
        let mut metrics = MetricSet::new(SystemTime::now());
        push_vmstat(paging, SystemTime::UNIX_EPOCH, &mut metrics);
        let faults = points_of(metrics, "system.paging.faults");
        assert_eq!(faults["major"], 4500.0);
        assert_eq!(faults["minor"], 8_995_500.0);
        assert!(parse_vmstat("nr_free_pages 3\n").is_err());
    }
}
