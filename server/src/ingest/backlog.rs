//! The indexing backlog: bytes acknowledged (in the WAL) but not yet applied by the
//! indexer, and the back-pressure it exerts on ingest.
//!
//! When the backlog is over its limit, an export waits for it to drain — holding the
//! call is the gentlest back-pressure, as a client with calls in flight simply slows
//! down — for at most a few seconds; only then is it refused with UNAVAILABLE and a
//! RetryInfo delay. Refusing at once would leave the indexer idle while every client
//! sleeps out its delay. The limit also bounds how stale search can get under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub struct IndexingBacklog {
    bytes: AtomicU64,
    limit: u64,
    drained: Notify,
}

impl IndexingBacklog {
    pub fn new(limit: u64) -> IndexingBacklog {
        IndexingBacklog {
            bytes: AtomicU64::new(0),
            limit,
            drained: Notify::new(),
        }
    }

    /// Counts `bytes` in once the backlog is under its limit, waiting at most
    /// `patience`. Returns the backlog it saw if it stayed over the limit.
    pub async fn admit(&self, bytes: u64, patience: Duration) -> Result<(), u64> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a drain between check and wait is not missed.
            drained.as_mut().enable();
            let current = self.bytes.load(Ordering::Acquire);
            if current <= self.limit {
                self.bytes.fetch_add(bytes, Ordering::AcqRel);
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return Err(current);
            }
        }
    }

    /// Counts `bytes` in without waiting (for small records that must not be refused).
    pub fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Counts `bytes` out: applied by the indexer, or never written.
    pub fn release(&self, bytes: u64) {
        let before = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "backlog released more than it held");
        if before.saturating_sub(bytes) <= self.limit {
            self.drained.notify_waiters();
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn admission_waits_for_the_indexer_then_gives_up() {
        let backlog = Arc::new(IndexingBacklog::new(10));
        backlog.add(20);
        assert_eq!(backlog.admit(5, Duration::from_millis(50)).await, Err(20));

        let waiting = {
            let backlog = backlog.clone();
            tokio::spawn(async move { backlog.admit(5, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "admission waits while over the limit"
        );
        backlog.release(15);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert_eq!(backlog.bytes(), 10);
    }
}
