//! A Python virtual environment with the OpenTelemetry SDK, made on first use.
//!
//! The test suite must run on a fresh machine that has only `python3` and `pip`, so the
//! test that needs the SDK installs it: into `<cargo target dir>/python-venv`, from the
//! pinned `tests/python/requirements.txt`. The venv is made once and reused; a marker file
//! inside it holds the requirements it was made from, so editing the requirements makes
//! the next run rebuild it. Test processes that run at the same time (nextest runs each
//! test in its own process) serialise on an exclusive lock of `python-venv.lock`; the
//! marker is written last, so a half-made venv (an interrupted pip) is rebuilt.
//!
//! `EPITAPH_PYTHON` names the interpreter that creates the venv (default `python3`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::{target_dir, workspace_root};

const MARKER_FILE: &str = "epitaph-requirements.txt";

static VENV_PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// `tests/python/` in the workspace.
pub fn python_dir() -> PathBuf {
    workspace_root().join("tests").join("python")
}

/// The venv's `python`, after making sure the venv exists and matches the requirements.
/// Panics with pip's output when it cannot be made.
pub fn venv_python() -> PathBuf {
    match VENV_PYTHON.get_or_init(ensure_venv) {
        Ok(python) => python.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn ensure_venv() -> Result<PathBuf, String> {
    let requirements_path = python_dir().join("requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .map_err(|error| format!("reading {}: {error}", requirements_path.display()))?;
    let target = target_dir();
    std::fs::create_dir_all(&target)
        .map_err(|error| format!("creating {}: {error}", target.display()))?;
    let venv = target.join("python-venv");
    let python = venv.join("bin").join("python");

    let lock_path = target.join("python-venv.lock");
    let lock_file = File::create(&lock_path)
        .map_err(|error| format!("creating {}: {error}", lock_path.display()))?;
    // Blocks while another test process builds the venv; released when `lock_file` drops.
    lock_file
        .lock()
        .map_err(|error| format!("locking {}: {error}", lock_path.display()))?;

    let marker = venv.join(MARKER_FILE);
    if std::fs::read_to_string(&marker).is_ok_and(|made_from| made_from == requirements)
        && python.is_file()
    {
        return Ok(python);
    }

    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .map_err(|error| format!("removing the stale {}: {error}", venv.display()))?;
    }
    let interpreter = std::env::var("EPITAPH_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run(
        Command::new(&interpreter).arg("-m").arg("venv").arg(&venv),
        "creating the Python venv",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
            ])
            .arg(&requirements_path),
        "installing tests/python/requirements.txt into the venv",
    )?;
    std::fs::write(&marker, &requirements)
        .map_err(|error| format!("writing {}: {error}", marker.display()))?;
    Ok(python)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("{what}: cannot run {command:?}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what}: {command:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    let path = python_dir().join(name);
    assert!(
        Path::new(&path).is_file(),
        "{} does not exist",
        path.display()
    );
    path
}
