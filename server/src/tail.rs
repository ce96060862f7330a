//! The live tail: log lines handed to subscribers the moment they are durable, without
//! waiting for the index to commit and without polling it.
//!
//! The WAL writer calls [`TailHub::publish`] for every record right after its fsync (the
//! same point where the record goes to the indexer), so a tailed line is one that has been
//! acknowledged and will be searchable. Publishing costs one atomic load when nobody
//! tails. With subscribers, the hub queues a shared [`TailBatch`] (the decoded request,
//! already in memory for the indexer) on each subscriber's queue; the batch's documents
//! are built once, on first use, by whichever subscriber gets to it first, and every
//! subscriber runs its own filter over them.
//!
//! Back-pressure never reaches ingest: each subscriber's queue holds at most
//! [`MAX_QUEUED_LINES`] lines, and a batch that does not fit is dropped for that
//! subscriber and counted, so the stream can say how many lines it skipped. Subscriptions
//! end when the server shuts down, so open streams do not hold the HTTP drain hostage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use tantivy::TantivyDocument;
use tokio::sync::{Notify, watch};

use crate::index::indexer::{DurableRecord, RecordPayload};
use crate::index::schema::{LogSchema, ROW_INDEX_BITS, count_log_records};
use crate::index::search::Cursor;

/// Lines a subscriber may have queued and not yet taken. Past it, new batches are dropped
/// for that subscriber (and counted): a reader this far behind is not keeping up with a
/// live stream, and holding more would let one slow client grow the server's memory.
pub const MAX_QUEUED_LINES: usize = 20_000;

/// Fans durable log records out to live-tail subscribers.
pub struct TailHub {
    schema: LogSchema,
    subscribers: Mutex<Vec<Arc<SubscriberQueue>>>,
    /// The length of `subscribers`, readable without the lock on the ingest path.
    subscriber_count: AtomicUsize,
    shutdown: watch::Receiver<bool>,
}

/// One durable log record as the tail hands it out.
pub struct TailBatch {
    lsn: u64,
    received_at_nanos: i64,
    request: Arc<ExportLogsServiceRequest>,
    line_count: usize,
    lines: OnceLock<Vec<TailLine>>,
}

/// One log line of a batch: its document, as the indexer builds it, and its place in the
/// newest-first order of search hits.
pub struct TailLine {
    pub document: TantivyDocument,
    pub key: Cursor,
}

struct SubscriberQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    batches: VecDeque<Arc<TailBatch>>,
    queued_lines: usize,
    skipped_lines: u64,
}

/// What a subscriber gets at each wake-up.
pub struct Delivery {
    /// Lines dropped for this subscriber since the last delivery because its queue was
    /// full.
    pub skipped_lines: u64,
    pub batches: Vec<Arc<TailBatch>>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<TailHub>,
    queue: Arc<SubscriberQueue>,
    shutdown: watch::Receiver<bool>,
}

impl TailHub {
    /// A hub whose subscriptions end when `shutdown` turns true.
    pub fn new(schema: LogSchema, shutdown: watch::Receiver<bool>) -> TailHub {
        TailHub {
            schema,
            subscribers: Mutex::new(Vec::new()),
            subscriber_count: AtomicUsize::new(0),
            shutdown,
        }
    }

    pub fn schema(&self) -> &LogSchema {
        &self.schema
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscriber_count.load(Ordering::Relaxed)
    }

    /// Offers a durable record to every subscriber. Never blocks on a subscriber; called
    /// by the WAL writer after the record's fsync.
    pub fn publish(&self, lsn: u64, record: &DurableRecord) {
        if self.subscriber_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let RecordPayload::Logs(request) = &record.payload else {
            return;
        };
        let line_count = count_log_records(request);
        if line_count == 0 {
            return;
        }
        let batch = Arc::new(TailBatch {
            lsn,
            received_at_nanos: record.received_at_nanos,
            request: request.clone(),
            line_count,
            lines: OnceLock::new(),
        });
        let subscribers = self
            .subscribers
            .lock()
            .expect("tail subscribers lock poisoned");
        for queue in subscribers.iter() {
            queue.offer(&batch);
        }
    }

    /// Subscribes to lines published from now on.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let queue = Arc::new(SubscriberQueue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
        });
        let mut subscribers = self
            .subscribers
            .lock()
            .expect("tail subscribers lock poisoned");
        subscribers.push(queue.clone());
        self.subscriber_count
            .store(subscribers.len(), Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            queue,
            shutdown: self.shutdown.clone(),
        }
    }
}

impl SubscriberQueue {
    fn offer(&self, batch: &Arc<TailBatch>) {
        let mut state = self.state.lock().expect("tail queue lock poisoned");
        if state.queued_lines + batch.line_count > MAX_QUEUED_LINES {
            state.skipped_lines += batch.line_count as u64;
        } else {
            state.queued_lines += batch.line_count;
            state.batches.push_back(batch.clone());
        }
        drop(state);
        // Stores a permit when the subscriber is not waiting, so no wake-up is lost.
        self.ready.notify_one();
    }

    fn take(&self) -> Option<Delivery> {
        let mut state = self.state.lock().expect("tail queue lock poisoned");
        if state.batches.is_empty() && state.skipped_lines == 0 {
            return None;
        }
        state.queued_lines = 0;
        Some(Delivery {
            skipped_lines: std::mem::take(&mut state.skipped_lines),
            batches: state.batches.drain(..).collect(),
        })
    }
}

impl Subscription {
    /// Waits for lines (or news of skipped ones). `None` once the server shuts down.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            if let Some(delivery) = self.queue.take() {
                return Some(delivery);
            }
            tokio::select! {
                _ = self.queue.ready.notified() => {}
                changed = self.shutdown.changed() => {
                    // The sender gone means the server is going away too.
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    pub fn hub(&self) -> &Arc<TailHub> {
        &self.hub
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subscribers = self
            .hub
            .subscribers
            .lock()
            .expect("tail subscribers lock poisoned");
        subscribers.retain(|queue| !Arc::ptr_eq(queue, &self.queue));
        self.hub
            .subscriber_count
            .store(subscribers.len(), Ordering::Relaxed);
    }
}

impl TailBatch {
    /// The batch's lines, built on first use with the indexer's own mapping (same
    /// timestamps, identity and row numbers as the index will have).
    pub fn lines(&self, schema: &LogSchema) -> &[TailLine] {
        self.lines.get_or_init(|| {
            let mut lines = Vec::with_capacity(self.line_count);
            let row_base = self.lsn << ROW_INDEX_BITS;
            schema.documents_from_request(
                &self.request,
                self.received_at_nanos,
                row_base,
                |document, facts| {
                    let key = Cursor {
                        timestamp_nanos: facts.timestamp_nanos,
                        row: row_base + lines.len() as u64,
                    };
                    lines.push(TailLine { document, key });
                },
            );
            lines
        })
    }
}

#[cfg(test)]
mod tests {
    use epitaph_proto::common::v1::{AnyValue, any_value};
    use epitaph_proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    use super::*;

    fn record(bodies: &[&str]) -> DurableRecord {
        let log_records = bodies
            .iter()
            .map(|body| LogRecord {
                time_unix_nano: 1,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body.to_string())),
                }),
                ..Default::default()
            })
            .collect();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        DurableRecord {
            received_at_nanos: 1,
            batch: None,
            payload: RecordPayload::Logs(Arc::new(request)),
            backlog_bytes: 0,
        }
    }

    fn hub() -> (Arc<TailHub>, watch::Sender<bool>) {
        let (sender, receiver) = watch::channel(false);
        (Arc::new(TailHub::new(LogSchema::new(), receiver)), sender)
    }

    #[tokio::test]
    async fn lines_published_after_subscribing_are_delivered_with_index_rows() {
        let (hub, _shutdown) = hub();
        hub.publish(1, &record(&["before anyone listened"]));
        let mut subscription = hub.subscribe();
        hub.publish(2, &record(&["first", "second"]));
        let delivery = subscription.next().await.expect("a delivery");
        assert_eq!(delivery.skipped_lines, 0);
        assert_eq!(delivery.batches.len(), 1);
        let lines = delivery.batches[0].lines(hub.schema());
        let rows: Vec<u64> = lines.iter().map(|line| line.key.row).collect();
        assert_eq!(rows, [2 << ROW_INDEX_BITS, (2 << ROW_INDEX_BITS) + 1]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_batches_and_counts_their_lines() {
        let (hub, _shutdown) = hub();
        let mut subscription = hub.subscribe();
        let bodies = vec!["x"; 1_000];
        let batches = MAX_QUEUED_LINES / bodies.len() + 3;
        for lsn in 1..=batches as u64 {
            hub.publish(lsn, &record(&bodies));
        }
        let delivery = subscription.next().await.expect("a delivery");
        let delivered: usize = delivery.batches.iter().map(|b| b.line_count).sum();
        assert_eq!(delivered, MAX_QUEUED_LINES);
        assert_eq!(
            delivery.skipped_lines as usize,
            batches * bodies.len() - MAX_QUEUED_LINES
        );
        // The queue has room again.
        hub.publish(100, &record(&["again"]));
        let delivery = subscription.next().await.expect("a delivery");
        assert_eq!((delivery.skipped_lines, delivery.batches.len()), (0, 1));
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes_and_shutdown_ends_the_rest() {
        let (hub, shutdown) = hub();
        let first = hub.subscribe();
        let mut second = hub.subscribe();
        assert_eq!(hub.subscriber_count(), 2);
        drop(first);
        assert_eq!(hub.subscriber_count(), 1);
        shutdown.send(true).unwrap();
        assert!(second.next().await.is_none());
    }
}
