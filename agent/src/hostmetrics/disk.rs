//! Disk I/O from `/proc/diskstats`, for whole disks only.
//!
//! `/proc/diskstats` lists partitions beside their disks (`sda` and `sda1`), so summing
//! its lines counts the same bytes twice. The disks are the entries of `/sys/block`
//! (partitions live below them there); loop and RAM disks are left out as the noise of
//! snaps and initramfs. Without a readable `/sys/block` every line but loop and RAM disks
//! is kept. Sectors in this file are always 512 bytes, whatever the disk's own.

use std::collections::HashSet;
use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};

const SECTOR_BYTES: u64 = 512;

const DISK_IO: Descriptor = Descriptor {
    name: "system.disk.io",
    description: "Bytes read from and written to each disk since boot.",
    unit: "By",
    kind: Kind::Counter,
};
const DISK_OPERATIONS: Descriptor = Descriptor {
    name: "system.disk.operations",
    description: "Reads and writes completed by each disk since boot.",
    unit: "{operations}",
    kind: Kind::Counter,
};
const DISK_IO_TIME: Descriptor = Descriptor {
    name: "system.disk.io_time",
    description: "Seconds each disk had at least one I/O in flight since boot.",
    unit: "s",
    kind: Kind::Counter,
};
const DISK_OPERATION_TIME: Descriptor = Descriptor {
    name: "system.disk.operation_time",
    description: "Seconds spent by all reads and by all writes of each disk since boot.",
    unit: "s",
    kind: Kind::Counter,
};

/// One disk's counters since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCounters {
    pub device: String,
    pub reads: u64,
    pub read_sectors: u64,
    pub read_millis: u64,
    pub writes: u64,
    pub written_sectors: u64,
    pub write_millis: u64,
    pub io_millis: u64,
}

/// Parses `/proc/diskstats`, keeping the devices `is_disk` accepts.
pub fn parse_diskstats(
    text: &str,
    is_disk: impl Fn(&str) -> bool,
) -> Result<Vec<DiskCounters>, String> {
    let mut disks = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        // major minor name, then at least 11 counters (kernels before 4.18 stop there).
        if fields.len() < 14 {
            return Err(format!("diskstats line `{line}` has fewer than 14 fields"));
        }
        let device = fields[2];
        if !is_disk(device) {
            continue;
        }
        let counter = |index: usize| {
            fields[index]
                .parse::<u64>()
                .map_err(|_| format!("diskstats {device}: `{}` is not a count", fields[index]))
        };
        disks.push(DiskCounters {
            device: device.to_string(),
            reads: counter(3)?,
            read_sectors: counter(5)?,
            read_millis: counter(6)?,
            writes: counter(7)?,
            written_sectors: counter(9)?,
            write_millis: counter(10)?,
            io_millis: counter(12)?,
        });
    }
    Ok(disks)
}

/// Which devices are whole disks: `/sys/block` entries (where `/` in a device name
/// becomes `!`, e.g. `cciss!c0d0`), or every device when `/sys/block` is unreadable;
/// never loop or RAM disks.
pub fn disk_filter(sys_block: Option<HashSet<String>>) -> impl Fn(&str) -> bool {
    move |device: &str| {
        if device.starts_with("loop") || device.starts_with("ram") {
            return false;
        }
        match &sys_block {
            Some(disks) => disks.contains(&device.replace('/', "!")),
            None => true,
        }
    }
}

pub fn push_disks(disks: &[DiskCounters], boot: SystemTime, metrics: &mut MetricSet) {
    let attributes = |disk: &DiskCounters, direction: &str| {
        vec![
            ("device", disk.device.clone()),
            ("direction", direction.to_string()),
        ]
    };
    let seconds = |millis: u64| millis as f64 / 1000.0;
    let mut io = Vec::new();
    let mut operations = Vec::new();
    let mut operation_time = Vec::new();
    let mut io_time = Vec::new();
    for disk in disks {
        io.push(Point::int(
            attributes(disk, "read"),
            disk.read_sectors.saturating_mul(SECTOR_BYTES),
        ));
        io.push(Point::int(
            attributes(disk, "write"),
            disk.written_sectors.saturating_mul(SECTOR_BYTES),
        ));
        operations.push(Point::int(attributes(disk, "read"), disk.reads));
        operations.push(Point::int(attributes(disk, "write"), disk.writes));
        operation_time.push(Point::double(
            attributes(disk, "read"),
            seconds(disk.read_millis),
        ));
        operation_time.push(Point::double(
            attributes(disk, "write"),
            seconds(disk.write_millis),
        ));
        io_time.push(Point::double(
            vec![("device", disk.device.clone())],
            seconds(disk.io_millis),
        ));
    }
    metrics.push(DISK_IO, boot, io);
    metrics.push(DISK_OPERATIONS, boot, operations);
    metrics.push(DISK_IO_TIME, boot, io_time);
    metrics.push(DISK_OPERATION_TIME, boot, operation_time);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::tests::points_of;
    use crate::hostmetrics::{fixture, fixture_root};

    fn fixture_disks() -> Vec<DiskCounters> {
        let sys_block = super::super::read_sys_block(&fixture_root().join("sys"));
        parse_diskstats(&fixture("diskstats"), disk_filter(sys_block)).unwrap()
    }

    #[test]
    fn only_whole_disks_are_kept() {
        let devices: Vec<String> = fixture_disks().into_iter().map(|d| d.device).collect();
        assert_eq!(
            devices,
            vec!["sda", "nvme0n1"],
            "no partition, loop or RAM disk"
        );

        let without_sys = parse_diskstats(&fixture("diskstats"), disk_filter(None)).unwrap();
        let devices: Vec<String> = without_sys.into_iter().map(|d| d.device).collect();
        assert_eq!(devices, vec!["sda", "sda1", "nvme0n1"]);
    }

    #[test]
    fn disk_counters_become_bytes_operations_and_seconds() {
        let disks = fixture_disks();
        assert_eq!(
            disks[0],
            DiskCounters {
                device: "sda".into(),
                reads: 1000,
                read_sectors: 20000,
                read_millis: 3000,
                writes: 2000,
                written_sectors: 40000,
                write_millis: 5000,
                io_millis: 6000,
            }
        );
        let mut metrics = MetricSet::new(SystemTime::now());
        push_disks(&disks, SystemTime::UNIX_EPOCH, &mut metrics);
        let io = points_of(metrics, "system.disk.io");
        assert_eq!(io["sda,read"], (20000 * 512) as f64);
        assert_eq!(io["nvme0n1,write"], (160000 * 512) as f64);
        let mut metrics = MetricSet::new(SystemTime::now());
        push_disks(&disks, SystemTime::UNIX_EPOCH, &mut metrics);
        assert_eq!(points_of(metrics, "system.disk.io_time")["nvme0n1"], 3.5);
    }

    #[test]
    fn short_or_garbled_lines_are_errors() {
        assert!(parse_diskstats("8 0 sda 1 2 3", |_| true).is_err());
        assert!(parse_diskstats("8 0 sda 1 2 x 4 5 6 7 8 9 10 11", |_| true).is_err());
    }
}
