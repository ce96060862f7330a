//! Finding (and building) the binaries under test.
//!
//! `cargo nextest run -p epitaph-tests` builds only this crate and its dependencies, not
//! the `epitaph-server`, `epitaph-agent` and `epitaph` binaries, so the harness runs
//! `cargo build -p epitaph-server -p epitaph-agent -p epitaph-cli` once per test process
//! (guarded by a `OnceLock`; a second test process finds cargo's no-op build quick, and
//! cargo's own lock serialises concurrent ones). `EPITAPH_BIN_DIR` skips the build and
//! takes the binaries from that directory, for CI steps that built them already.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub agent: PathBuf,
    /// The `epitaph` command line.
    pub cli: PathBuf,
}

static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();

/// The binaries, built on first use. Panics with cargo's output when the build fails.
pub fn binaries() -> &'static Binaries {
    let result = BINARIES.get_or_init(locate_or_build);
    match result {
        Ok(binaries) => binaries,
        Err(message) => panic!("{message}"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the workspace root
/// when relative, as cargo reads it there); otherwise the directory holding this test
/// executable's `CACHEDIR.TAG` (cargo writes one at the root of every target directory,
/// so `--target-dir` and config files are honoured too); otherwise `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for ancestor in exe.ancestors().skip(1) {
            if ancestor.join("CACHEDIR.TAG").is_file() {
                return ancestor.to_path_buf();
            }
        }
    }
    workspace_root().join("target")
}

fn locate_or_build() -> Result<Binaries, String> {
    if let Some(dir) = std::env::var_os("EPITAPH_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return existing_binaries(&dir);
    }
    let target_dir = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "epitaph-server",
            "-p",
            "epitaph-agent",
            "-p",
            "epitaph-cli",
            "--target-dir",
        ])
        .arg(&target_dir)
        .output()
        .map_err(|error| format!("running `{}` build: {error}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p epitaph-server -p epitaph-agent -p epitaph-cli` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    existing_binaries(&target_dir.join("debug"))
}

fn existing_binaries(dir: &Path) -> Result<Binaries, String> {
    let binaries = Binaries {
        server: dir.join("epitaph-server"),
        agent: dir.join("epitaph-agent"),
        cli: dir.join("epitaph"),
    };
    for path in [&binaries.server, &binaries.agent, &binaries.cli] {
        if !path.is_file() {
            return Err(format!("binary {} does not exist", path.display()));
        }
    }
    Ok(binaries)
}
