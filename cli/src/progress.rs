//! A progress line on stderr for queries that take a while, only when stderr is a
//! terminal (never in a pipe, a file or a CI log) and only after a short delay, so quick
//! queries print nothing but their answer.

use std::io::{IsTerminal as _, Write as _};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a query runs before the progress line appears.
const SHOW_AFTER: Duration = Duration::from_millis(400);
const TICK: Duration = Duration::from_millis(100);

/// Shows `what… 1.2s` until dropped.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(what: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let what = what.to_string();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            if stopped.recv_timeout(SHOW_AFTER).is_ok() {
                return;
            }
            let frames = ['|', '/', '-', '\\'];
            let mut frame = 0;
            let mut stderr = std::io::stderr();
            loop {
                let _ = write!(
                    stderr,
                    "\r{} {what}… {:.1}s",
                    frames[frame % frames.len()],
                    started.elapsed().as_secs_f64()
                );
                let _ = stderr.flush();
                frame += 1;
                match stopped.recv_timeout(TICK) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            // Erase the line so the answer starts clean.
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        });
        Progress {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
