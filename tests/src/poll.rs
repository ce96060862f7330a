//! Waiting for a condition without fixed sleeps.
//!
//! Everything the binaries do is asynchronous (a line becomes searchable after the next
//! commit, an instance turns `lost` after a silence), so tests poll for the state they
//! expect with a bounded timeout instead of sleeping "long enough".

use std::time::{Duration, Instant};

/// How long to wait between two polls: short enough that a test does not idle, long
/// enough not to hammer a server that is busy recovering.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Some`, at most for `timeout`, and returns that value;
/// `None` once the time is up (the probe ran at least once, and once more right at the
/// deadline). Callers turn `None` into a panic that says what was expected and what was
/// last seen.
pub fn eventually<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    eventually_every(timeout, POLL_INTERVAL, &mut probe)
}

/// [`eventually`] with a chosen interval, for probes that are expensive (fetching every
/// stored line) and should not run ten times a second.
pub fn eventually_every<T>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}
