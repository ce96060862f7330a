//! A child process that cannot outlive its test.
//!
//! Three guards keep orphans away:
//! - [`Drop`] sends `SIGKILL` and reaps the child, so a panicking test cleans up;
//! - every child is spawned with `PR_SET_PDEATHSIG = SIGKILL`, so if the test process
//!   itself is killed (a runner's timeout, a `kill -9`) the kernel kills the child. The
//!   signal fires when the *thread* that spawned the child ends, which is why the harness
//!   spawns only from the test's own thread, never from a short-lived helper thread;
//! - the child's stderr goes to a file, never to a pipe nobody drains, so a chatty child
//!   cannot block on a full pipe.
//!
//! When a test panics, [`Drop`] prints the tail of the child's stderr: the failure
//! message then shows what the server or agent said about it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Lines of a child's stderr shown when a test fails.
const STDERR_TAIL_LINES: usize = 60;

/// A command for `program` without the inherited `EPITAPH_*` and `OTEL_*` variables, which
/// would configure the binaries (or the Python SDK) behind the test's back. Set the
/// variables a test wants on the returned command.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("EPITAPH_") || key_text.starts_with("OTEL_") {
            command.env_remove(&key);
        }
    }
    command
}

/// A spawned binary, killed when dropped.
pub struct ManagedChild {
    name: String,
    child: Child,
    stderr_path: PathBuf,
    exit_status: Option<ExitStatus>,
    /// Set once a failure message included the stderr tail, so `Drop` does not repeat it.
    stderr_reported: std::sync::atomic::AtomicBool,
}

impl ManagedChild {
    /// Spawns `command` with stdin closed and stderr appended to `stderr_path` (appended so
    /// that one file tells the story of every restart). Stdout is left as the caller set it.
    pub fn spawn(name: &str, command: &mut Command, stderr_path: &Path) -> ManagedChild {
        let stderr_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .unwrap_or_else(|error| panic!("opening {}: {error}", stderr_path.display()));
        command.stdin(Stdio::null()).stderr(stderr_file);
        arm_parent_death_signal(command);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawning {name}: {error}"));
        ManagedChild {
            name: name.to_string(),
            child,
            stderr_path: stderr_path.to_path_buf(),
            exit_status: None,
            stderr_reported: Default::default(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's stdout pipe, if the command was spawned with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("waiting for {}: {error}", self.name));
        }
        self.exit_status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit_status() {
            return status;
        }
        // An error here means the child exited in between; `wait` below reaps it either way.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|error| panic!("reaping {}: {error}", self.name));
        self.exit_status = Some(status);
        status
    }

    /// Sends `SIGTERM` (no-op if the child already exited).
    pub fn sigterm(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = libc::pid_t::try_from(self.pid()).expect("pids fit in pid_t");
        // SAFETY: plain syscall; the child is not reaped yet (checked above), so the pid
        // still names it and cannot have been reused.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            result,
            0,
            "sending SIGTERM to {}: {}",
            self.name,
            io::Error::last_os_error()
        );
    }

    /// Waits at most `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGTERM`, then waits at most `timeout`; a child still running then is killed and
    /// the test fails, since a graceful stop that never ends is the bug being tested for.
    pub fn sigterm_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        self.sigterm();
        let started = Instant::now();
        if let Some(status) = self.wait_timeout(timeout) {
            return status;
        }
        self.kill9();
        panic!(
            "{} did not exit within {:?} of SIGTERM (killed it)\n{}",
            self.name,
            started.elapsed(),
            self.stderr_report()
        );
    }

    /// The last lines of the child's stderr, labelled, for failure messages.
    pub fn stderr_report(&self) -> String {
        self.stderr_reported
            .store(true, std::sync::atomic::Ordering::Relaxed);
        format!(
            "--- last {STDERR_TAIL_LINES} lines of {} stderr ({}) ---\n{}\n--- end of {} stderr ---",
            self.name,
            self.stderr_path.display(),
            tail_of_file(&self.stderr_path, STDERR_TAIL_LINES),
            self.name
        )
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.kill9();
        let already_reported = self
            .stderr_reported
            .load(std::sync::atomic::Ordering::Relaxed);
        if std::thread::panicking() && !already_reported {
            eprintln!("{}", self.stderr_report());
        }
    }
}

/// The last `lines` lines of a text file (reading at most its last 256 KiB).
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    const MAX_TAIL_BYTES: u64 = 256 * 1024;
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) => return format!("(cannot open {}: {error})", path.display()),
    };
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let start = length.saturating_sub(MAX_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all_lines: Vec<&str> = text.lines().collect();
    all_lines[all_lines.len().saturating_sub(lines)..].join("\n")
}

/// Makes the kernel send `SIGKILL` to the child when the spawning thread dies.
fn arm_parent_death_signal(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid), allocating nothing.
    let parent_pid = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect; then no signal will come.
            if libc::getppid() != parent_pid {
                return Err(io::Error::other("the test process died while spawning"));
            }
            Ok(())
        });
    }
}
