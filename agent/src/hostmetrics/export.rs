//! Sending host metrics: one interval per export, in order, retried, never spooled.
//!
//! Metrics are not written to disk: an interval that cannot be sent waits in a bounded
//! in-memory queue (`max_pending_intervals`) and is retried with the OTLP rules of
//! [`crate::ship`]; when the queue is full the oldest waiting interval is dropped and
//! counted. The interval being sent keeps its place, because it already holds a
//! sequence: cumulative counters make a dropped interval cost only its gauges' points,
//! while a sequence that is never sent would leave the server a gap it must remember.
//!
//! **Exactly-once.** Each export carries `epitaph-batch: <agent-uuid>/<sequence>`, where
//! the sequence numbers metrics exports apart from the agent's log batches (1, 2, … for
//! the intervals): the server keeps the two streams apart by the service they arrive at,
//! so a metrics export is never taken for a log batch it already holds. Only the queue's
//! head is ever in flight, so its sequence is always one past the last finished (acked
//! or given up) one, which is kept in the state directory (`metrics-sequence`, written
//! atomically and fsynced after each ack): sequences never repeat and leave no gap
//! across restarts. The one uncertainty is an interval that was stored but whose ack
//! the agent did not live to record: after the restart its sequence is reused, and the
//! server drops that first interval as already stored.
//!
//! **Compression.** Each export goes out zstd-compressed (DESIGN.md: the agent sends
//! zstd), compressed by a one-shot context at level 1 that is freed right after, and sent
//! through [`crate::ship::wire`] as the log batches are: a persistent compression context
//! per export, as tonic's encoder sets up, would keep its memory resident in an idle
//! agent.
//!
//! **An older server** answers `UNIMPLEMENTED`. The agent then says so once, drops what
//! is queued, and stops collecting for a pause (one minute, doubling to thirty) before
//! it tries again, so that an upgraded server is noticed without spamming an old one.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use epitaph_proto::BATCH_HEADER;
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use prost::bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;
use tonic::codegen::http::{HeaderName, HeaderValue};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{debug, error, info, warn};

use super::agent_health::ExporterCounters;
use crate::ship::wire::{METRICS_EXPORT_PATH, call_with_compressed_frame};
use crate::ship::{REQUEST_TIMEOUT, RetryDecision, retry_decision};

/// The file in the state directory that holds the last finished metrics sequence.
pub const SEQUENCE_FILE: &str = "metrics-sequence";
/// The first pause after an `UNIMPLEMENTED` answer; each further one doubles it.
pub const UNIMPLEMENTED_FIRST_PAUSE: Duration = Duration::from_secs(60);
const UNIMPLEMENTED_PAUSE_CAP: Duration = Duration::from_secs(30 * 60);

/// One collected interval, waiting to be sent.
struct PendingInterval {
    /// Assigned at its first attempt, kept through retries.
    sequence: Option<u64>,
    request: ExportMetricsServiceRequest,
}

/// What one export attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Acked(u64),
    /// Failed; retried at [`MetricsExporter::next_attempt_at`].
    WillRetry,
    /// Rejected for good (the server sees a gap at this sequence).
    GivenUp(u64),
    /// The server has no metrics service; exports are paused.
    Unimplemented,
    /// Nothing was queued.
    Idle,
}

pub struct MetricsExporter {
    channel: Channel,
    agent_id: String,
    authorization: Option<MetadataValue<Ascii>>,
    sequence_path: PathBuf,
    /// The last acked or given-up sequence.
    last_finished: u64,
    pending: VecDeque<PendingInterval>,
    max_pending: usize,
    failures: u32,
    next_attempt: Instant,
    paused_until: Option<Instant>,
    next_pause: Duration,
    unimplemented_logged: bool,
    counters: ExporterCounters,
}

impl MetricsExporter {
    /// Reads the last finished sequence from `state_dir` (none yet: 0).
    pub fn new(
        channel: Channel,
        agent_id: &str,
        authorization: Option<MetadataValue<Ascii>>,
        state_dir: &Path,
        max_pending: usize,
    ) -> anyhow::Result<MetricsExporter> {
        let sequence_path = state_dir.join(SEQUENCE_FILE);
        let last_finished = read_sequence_file(&sequence_path)?;
        Ok(MetricsExporter {
            channel,
            agent_id: agent_id.to_string(),
            authorization,
            sequence_path,
            last_finished,
            pending: VecDeque::new(),
            max_pending: max_pending.max(1),
            failures: 0,
            next_attempt: Instant::now(),
            paused_until: None,
            next_pause: UNIMPLEMENTED_FIRST_PAUSE,
            unimplemented_logged: false,
            counters: ExporterCounters::default(),
        })
    }

    pub fn counters(&self) -> ExporterCounters {
        self.counters
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether collection and export are paused (the server answered `UNIMPLEMENTED`).
    pub fn is_paused(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.paused_until = None;
                false
            }
            None => false,
        }
    }

    /// When the head of the queue should be tried; `None` when nothing waits.
    pub fn next_attempt_at(&self) -> Option<Instant> {
        (!self.pending.is_empty()).then_some(self.next_attempt)
    }

    /// Queues an interval; a full queue drops its oldest interval not yet being sent.
    pub fn enqueue(&mut self, request: ExportMetricsServiceRequest) {
        if self.pending.len() >= self.max_pending {
            let oldest_waiting = usize::from(self.pending[0].sequence.is_some());
            if oldest_waiting < self.pending.len() {
                self.pending.remove(oldest_waiting);
            } else {
                // Only the interval in flight is queued (a queue of one): the new one
                // cannot wait, and it is the one dropped.
                self.counters.intervals_dropped += 1;
                return;
            }
            self.counters.intervals_dropped += 1;
            if self.counters.intervals_dropped == 1
                || self.counters.intervals_dropped.is_multiple_of(100)
            {
                warn!(
                    dropped_total = self.counters.intervals_dropped,
                    max_pending = self.max_pending,
                    "metrics queue full; dropping the oldest waiting interval"
                );
            }
        }
        if self.pending.is_empty() {
            self.next_attempt = Instant::now();
        }
        self.pending.push_back(PendingInterval {
            sequence: None,
            request,
        });
    }

    /// Sends the head of the queue once.
    pub async fn attempt(&mut self) -> AttemptOutcome {
        let Some(head) = self.pending.front_mut() else {
            return AttemptOutcome::Idle;
        };
        let sequence = *head.sequence.get_or_insert(self.last_finished + 1);
        let batch_id = format!("{}/{sequence}", self.agent_id);
        debug!(
            batch = %batch_id,
            bytes = prost::Message::encoded_len(&head.request),
            "exporting metrics"
        );
        // The agent id is checked at load (`<uuid>`), so `<uuid>/<digits>` is a valid header.
        let mut headers = vec![(
            HeaderName::from_static(BATCH_HEADER),
            HeaderValue::try_from(batch_id.as_str()).expect("batch id is ASCII"),
        )];
        if let Some(authorization) = &self.authorization {
            headers.push((
                HeaderName::from_static("authorization"),
                HeaderValue::from_bytes(authorization.as_bytes())
                    .expect("a metadata value is a header value"),
            ));
        }
        let answer = match compressed_frame(&head.request) {
            Ok(frame) => {
                call_with_compressed_frame::<ExportMetricsServiceResponse>(
                    &mut self.channel,
                    METRICS_EXPORT_PATH,
                    frame,
                    &headers,
                    REQUEST_TIMEOUT,
                )
                .await
            }
            Err(error) => Err(Status::internal(format!(
                "compressing the metrics export: {error}"
            ))),
        };
        let status = match answer {
            Ok(response) => {
                if let Some(partial) = response.partial_success
                    && (partial.rejected_data_points > 0 || !partial.error_message.is_empty())
                {
                    warn!(
                        batch = %batch_id,
                        rejected_points = partial.rejected_data_points,
                        detail = %partial.error_message,
                        "server rejected part of a metrics export; not retrying"
                    );
                }
                if self.unimplemented_logged && self.next_pause > UNIMPLEMENTED_FIRST_PAUSE {
                    info!("the server accepts metrics now");
                }
                self.next_pause = UNIMPLEMENTED_FIRST_PAUSE;
                self.finish(sequence).await;
                return AttemptOutcome::Acked(sequence);
            }
            Err(status) => status,
        };
        if status.code() == Code::Unimplemented {
            self.pause_for_unimplemented(&status);
            return AttemptOutcome::Unimplemented;
        }
        let jitter = rand::rng().random_range(0.0..=1.0);
        match retry_decision(&status, self.failures, jitter) {
            RetryDecision::RetryAfter(delay) => {
                if self.failures.is_multiple_of(10) {
                    warn!(
                        batch = %batch_id,
                        code = ?status.code(),
                        detail = status.message(),
                        attempt = self.failures + 1,
                        retry_in = ?delay,
                        "metrics export failed, retrying"
                    );
                } else {
                    debug!(batch = %batch_id, code = ?status.code(), retry_in = ?delay, "metrics export failed, retrying");
                }
                self.failures = self.failures.saturating_add(1);
                self.counters.export_retries += 1;
                self.next_attempt = Instant::now() + delay;
                AttemptOutcome::WillRetry
            }
            RetryDecision::GiveUp => {
                error!(
                    batch = %batch_id,
                    code = ?status.code(),
                    detail = status.message(),
                    "metrics export rejected with a non-retryable error, dropping the interval"
                );
                self.counters.intervals_dropped += 1;
                self.finish(sequence).await;
                AttemptOutcome::GivenUp(sequence)
            }
        }
    }

    /// The head is done with: forget it and record its sequence as finished.
    async fn finish(&mut self, sequence: u64) {
        debug_assert_eq!(sequence, self.last_finished + 1, "only the head is sent");
        self.pending.pop_front();
        self.failures = 0;
        self.next_attempt = Instant::now();
        self.last_finished = sequence;
        let path = self.sequence_path.clone();
        let written = tokio::task::spawn_blocking(move || write_sequence_file(&path, sequence))
            .await
            .map_err(std::io::Error::other)
            .and_then(|result| result);
        if let Err(error) = written {
            // Kept in memory, the sequence still never repeats in this run; after a
            // restart the server would drop intervals up to it as already stored.
            error!(path = %self.sequence_path.display(), %error, "cannot record the last metrics sequence");
        }
    }

    fn pause_for_unimplemented(&mut self, status: &tonic::Status) {
        let pause = self.next_pause;
        if self.unimplemented_logged {
            debug!(retry_in = ?pause, "the server still does not accept metrics");
        } else {
            warn!(
                detail = status.message(),
                retry_in = ?pause,
                "the server does not accept OTLP metrics (UNIMPLEMENTED, an older server?); host metrics are paused and tried again later"
            );
            self.unimplemented_logged = true;
        }
        // The head's sequence was not stored: it is used again for the next interval.
        self.counters.intervals_dropped += self.pending.len() as u64;
        self.pending.clear();
        self.failures = 0;
        self.paused_until = Some(Instant::now() + pause);
        self.next_pause = (pause * 2).min(UNIMPLEMENTED_PAUSE_CAP);
    }
}

fn read_sequence_file(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{} holds `{}`, not a sequence number; delete it to restart the metrics sequence",
                path.display(),
                text.trim()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(anyhow::Error::new(error).context(format!("reading {}", path.display()))),
    }
}

/// Temp file, fsync, rename: the file always holds a whole number.
fn write_sequence_file(path: &Path, sequence: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    writeln!(file, "{sequence}")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The gRPC message frame of `request`, zstd-compressed: the compressed flag, the length
/// (big-endian) and the compressed message.
fn compressed_frame(request: &ExportMetricsServiceRequest) -> std::io::Result<Bytes> {
    let compressed = zstd::bulk::compress(&request.encode_to_vec(), 1)?;
    let length = u32::try_from(compressed.len())
        .map_err(|_| std::io::Error::other("a metrics export over 4 GiB"))?;
    let mut frame = Vec::with_capacity(5 + compressed.len());
    frame.push(1);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&compressed);
    Ok(Bytes::from(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_file_round_trips_and_a_missing_one_means_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEQUENCE_FILE);
        assert_eq!(read_sequence_file(&path).unwrap(), 0);
        write_sequence_file(&path, 41).unwrap();
        write_sequence_file(&path, 42).unwrap();
        assert_eq!(read_sequence_file(&path).unwrap(), 42);
        std::fs::write(&path, "garbage").unwrap();
        let error = read_sequence_file(&path).unwrap_err();
        assert!(
            format!("{error:#}").contains("metrics-sequence"),
            "{error:#}"
        );
    }

    /// An exporter whose server refuses connections: every attempt fails, retryably.
    fn exporter_to_nowhere(state_dir: &Path, max_pending: usize) -> MetricsExporter {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refusing = listener.local_addr().unwrap();
        drop(listener);
        let channel = crate::ship::connect_lazily(&format!("http://{refusing}")).unwrap();
        MetricsExporter::new(channel, "agent-a", None, state_dir, max_pending).unwrap()
    }

    /// A request told apart by its number of (empty) resources.
    fn interval(marker: usize) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![Default::default(); marker],
        }
    }

    fn queued(exporter: &MetricsExporter) -> Vec<(Option<u64>, usize)> {
        exporter
            .pending
            .iter()
            .map(|pending| (pending.sequence, pending.request.resource_metrics.len()))
            .collect()
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_waiting_interval_and_keeps_the_one_being_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SEQUENCE_FILE), "41\n").unwrap();
        let mut exporter = exporter_to_nowhere(dir.path(), 3);
        exporter.enqueue(interval(1));
        assert_eq!(exporter.attempt().await, AttemptOutcome::WillRetry);
        assert_eq!(exporter.counters().export_retries, 1);
        exporter.enqueue(interval(2));
        exporter.enqueue(interval(3));
        assert_eq!(exporter.counters().intervals_dropped, 0);
        exporter.enqueue(interval(4));
        exporter.enqueue(interval(5));
        assert_eq!(
            queued(&exporter),
            vec![(Some(42), 1), (None, 4), (None, 5)],
            "the head keeps its sequence (one past the recorded 41); 2 and 3 made way"
        );
        assert_eq!(exporter.counters().intervals_dropped, 2);
        assert!(exporter.next_attempt_at().is_some());
        // Retries keep the head's sequence.
        assert_eq!(exporter.attempt().await, AttemptOutcome::WillRetry);
        assert_eq!(queued(&exporter)[0], (Some(42), 1));
    }

    #[tokio::test]
    async fn with_room_for_one_the_interval_being_sent_stays_and_new_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut exporter = exporter_to_nowhere(dir.path(), 1);
        assert_eq!(exporter.attempt().await, AttemptOutcome::Idle);
        exporter.enqueue(interval(1));
        exporter.enqueue(interval(2));
        assert_eq!(queued(&exporter), vec![(None, 2)], "not yet sent: replaced");
        assert_eq!(exporter.attempt().await, AttemptOutcome::WillRetry);
        exporter.enqueue(interval(3));
        assert_eq!(queued(&exporter), vec![(Some(1), 2)]);
        assert_eq!(exporter.counters().intervals_dropped, 2);
    }
}
