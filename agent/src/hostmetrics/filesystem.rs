//! Filesystem use: the mounts of `/proc/self/mountinfo`, measured with `statvfs`.
//!
//! A mountinfo line is `id parent major:minor root mountpoint options [optional…] -
//! type source super-options`, with spaces and other specials in paths written as
//! octal escapes (`\040`). Mounts of excluded types (pseudo and in-memory filesystems,
//! container overlays — see [`super::MetricsConfig`]) are skipped, and so is every
//! mount after the first of the same device: a bind mount shows the same blocks again.
//!
//! `statvfs` may block on a network filesystem whose server is gone; the caller runs
//! the collection off the async runtime and never starts a second one while a first is
//! still stuck (see `super::run_host_metrics`).

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};
use super::unescape_octal;

const FILESYSTEM_USAGE: Descriptor = Descriptor {
    name: "system.filesystem.usage",
    description: "Bytes of each filesystem used, free, and reserved for the superuser.",
    unit: "By",
    kind: Kind::UpDownCounter,
};
const FILESYSTEM_INODES: Descriptor = Descriptor {
    name: "system.filesystem.inodes.usage",
    description: "Inodes of each filesystem used and free.",
    unit: "{inodes}",
    kind: Kind::UpDownCounter,
};

/// One mount worth measuring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fs_type: String,
    /// `ro` or `rw`, from the mount's own options.
    pub mode: String,
}

/// The mounts of a mountinfo text, without excluded types and repeated devices.
pub fn parse_mountinfo(text: &str, excluded_types: &[String]) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    let mut devices_seen = HashSet::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let separator = fields
            .iter()
            .position(|field| *field == "-")
            .filter(|position| *position >= 6)
            .ok_or_else(|| format!("mountinfo line `{line}` has no `-` separator"))?;
        if fields.len() < separator + 3 {
            return Err(format!("mountinfo line `{line}` ends after its separator"));
        }
        let fs_type = fields[separator + 1];
        if excluded_types.iter().any(|excluded| excluded == fs_type) {
            continue;
        }
        // Bind mounts repeat a device number; the first mount of it stands for all.
        if !devices_seen.insert(fields[2]) {
            continue;
        }
        let read_only = fields[5].split(',').any(|option| option == "ro");
        mounts.push(Mount {
            device: unescape_octal(fields[separator + 2]),
            mountpoint: unescape_octal(fields[4]),
            fs_type: unescape_octal(fs_type),
            mode: if read_only { "ro" } else { "rw" }.to_string(),
        });
    }
    Ok(mounts)
}

/// What `statvfs` says of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    /// Free for unprivileged users.
    pub free_bytes: u64,
    /// Free, but kept for the superuser.
    pub reserved_bytes: u64,
    pub used_inodes: u64,
    pub free_inodes: u64,
}

/// Measures the filesystem mounted at `mountpoint`; `None` when it cannot be measured
/// (gone, no permission) or has no blocks at all (a pseudo filesystem not excluded by
/// type).
pub fn measure(mountpoint: &Path) -> Option<Usage> {
    let stats = statvfs(mountpoint)?;
    if stats.blocks == 0 {
        return None;
    }
    let fragment = stats.fragment_size;
    Some(Usage {
        used_bytes: stats
            .blocks
            .saturating_sub(stats.blocks_free)
            .saturating_mul(fragment),
        free_bytes: stats.blocks_available.saturating_mul(fragment),
        reserved_bytes: stats
            .blocks_free
            .saturating_sub(stats.blocks_available)
            .saturating_mul(fragment),
        used_inodes: stats.files.saturating_sub(stats.files_free),
        free_inodes: stats.files_free,
    })
}

struct VfsStats {
    fragment_size: u64,
    blocks: u64,
    blocks_free: u64,
    blocks_available: u64,
    files: u64,
    files_free: u64,
}

fn statvfs(path: &Path) -> Option<VfsStats> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call, and
    // `stats` is a plain C struct that statvfs fills (all-zero is a valid value for it).
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if result != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)] // the field types differ between libc targets
    Some(VfsStats {
        fragment_size: u64::from(stats.f_frsize),
        blocks: u64::from(stats.f_blocks),
        blocks_free: u64::from(stats.f_bfree),
        blocks_available: u64::from(stats.f_bavail),
        files: u64::from(stats.f_files),
        files_free: u64::from(stats.f_ffree),
    })
}

pub fn push_filesystems(measured: &[(Mount, Usage)], boot: SystemTime, metrics: &mut MetricSet) {
    let attributes = |mount: &Mount, state: &str| {
        vec![
            ("device", mount.device.clone()),
            ("mountpoint", mount.mountpoint.clone()),
            ("type", mount.fs_type.clone()),
            ("mode", mount.mode.clone()),
            ("state", state.to_string()),
        ]
    };
    let mut usage = Vec::with_capacity(measured.len() * 3);
    let mut inodes = Vec::with_capacity(measured.len() * 2);
    for (mount, measure) in measured {
        usage.push(Point::int(attributes(mount, "used"), measure.used_bytes));
        usage.push(Point::int(attributes(mount, "free"), measure.free_bytes));
        usage.push(Point::int(
            attributes(mount, "reserved"),
            measure.reserved_bytes,
        ));
        inodes.push(Point::int(attributes(mount, "used"), measure.used_inodes));
        inodes.push(Point::int(attributes(mount, "free"), measure.free_inodes));
    }
    metrics.push(FILESYSTEM_USAGE, boot, usage);
    metrics.push(FILESYSTEM_INODES, boot, inodes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::MetricsConfig;
    use crate::hostmetrics::fixture;
    use crate::hostmetrics::tests::points_of;

    fn default_exclusions() -> Vec<String> {
        MetricsConfig::default().exclude_filesystem_types
    }

    #[test]
    fn mountinfo_skips_excluded_types_and_bind_mounts_and_unescapes_paths() {
        let mounts = parse_mountinfo(&fixture("self/mountinfo"), &default_exclusions()).unwrap();
        assert_eq!(
            mounts,
            vec![
                Mount {
                    device: "/dev/sda1".into(),
                    mountpoint: "/".into(),
                    fs_type: "ext4".into(),
                    mode: "rw".into(),
                },
                Mount {
                    device: "/dev/nvme0n1p1".into(),
                    mountpoint: "/var/lib/data".into(),
                    fs_type: "xfs".into(),
                    mode: "ro".into(),
                },
            ]
        );
        let everything = parse_mountinfo(&fixture("self/mountinfo"), &[]).unwrap();
        let points: Vec<&str> = everything.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(
            points,
            vec![
                "/proc",
                "/sys",
                "/",
                "/run",
                "/var/lib/data",
                "/var/lib/docker/overlay2/abc/merged"
            ],
            "the bind mount of /dev/sda1 at `/mnt/bind mount` is the same device as /"
        );
    }

    #[test]
    fn a_mountinfo_line_without_separator_is_an_error() {
        assert!(parse_mountinfo("1 2 8:1 / / rw ext4 /dev/sda1 rw\n", &[]).is_err());
        assert!(parse_mountinfo("1 2 8:1 / / rw shared:1 -\n", &[]).is_err());
    }

    #[test]
    fn a_real_directory_is_measured_with_statvfs() {
        let dir = tempfile::tempdir().unwrap();
        let usage = measure(dir.path()).expect("a temp dir's filesystem can be measured");
        assert!(usage.used_bytes + usage.free_bytes + usage.reserved_bytes > 0);
        assert!(
            usage.free_inodes > 0 || usage.used_inodes == 0,
            "inode-less filesystems report zeros"
        );
        assert_eq!(measure(&dir.path().join("missing")), None);

        // Measured through a mountinfo that names the directory, with an escaped space.
        let spaced = dir.path().join("with space");
        std::fs::create_dir(&spaced).unwrap();
        let escaped = spaced.display().to_string().replace(' ', "\\040");
        let mountinfo = format!("40 1 8:9 / {escaped} rw,relatime - ext4 /dev/test rw\n");
        let mounts = parse_mountinfo(&mountinfo, &default_exclusions()).unwrap();
        let usage = measure(Path::new(&mounts[0].mountpoint)).unwrap();
        let mut metrics = MetricSet::new(SystemTime::now());
        push_filesystems(
            &[(mounts[0].clone(), usage)],
            SystemTime::UNIX_EPOCH,
            &mut metrics,
        );
        let points = points_of(metrics, "system.filesystem.usage");
        let key = |state: &str| format!("/dev/test,{},ext4,rw,{state}", spaced.display());
        assert_eq!(points[&key("used")], usage.used_bytes as f64);
        assert_eq!(points[&key("free")], usage.free_bytes as f64);
        assert_eq!(points[&key("reserved")], usage.reserved_bytes as f64);
    }
}
