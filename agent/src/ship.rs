//! Sending spooled batches to the server over OTLP/gRPC, with the OTLP retry rules.
//!
//! The [`Shipper`] takes batches from the spool oldest first (the [`AckLedger`] says
//! which is next) and keeps at most `max_inflight_batches` exports in flight — a bounded
//! set of tasks. A batch travels as the spool holds it — its request encoded and
//! zstd-compressed once, by the collector — in a gRPC frame sent as it is ([`wire`]):
//! from the spool's small in-memory cache when the collector has just taken it, else
//! read back from its spool file (and its checksum verified). While the server is away,
//! batches accumulate on disk, not in memory, and are sent in order when it returns.
//! Each export retries until it is acked:
//!
//! - retryable: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`,
//!   `UNAVAILABLE`, `DATA_LOSS`, and `RESOURCE_EXHAUSTED` only when the server attached a
//!   `RetryInfo` (without one it means "this will never fit"); a client-side transport
//!   failure (connection refused or reset) is retryable whatever code tonic gave it;
//! - the delay is the server's `RetryInfo` delay when there is one, else exponential
//!   back-off with full jitter: a random delay in `[0, min(5 s, 100 ms · 2^attempt)]`;
//! - a `partial_success` with rejected records is a success that is logged, never
//!   retried (the spec forbids it: the server already kept the rest);
//! - any other error (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...) drops the batch with an
//!   error log, so one poisoned batch cannot wedge the agent forever; so does a spool
//!   file that can no longer be read (the server then sees the gap).
//!
//! Acked and dropped batches are reported to the [`AckLedger`]; when its contiguous
//! prefix grows, the state file is rewritten and the finished spool files deleted — in
//! groups: at most [`COMMIT_INTERVAL`] after the first uncommitted ack, or once
//! [`COMMIT_MAX_BATCHES`] wait, and at once while shutting down. The shipper ends once
//! the collector has stopped and no batch is left to send.

pub mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use epitaph_proto::BATCH_HEADER;
use prost::bytes::Bytes;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::codegen::http::{HeaderName, HeaderValue};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use tracing::{debug, error, info, warn};

use crate::spool::{Commit, Spool, apply_commit, read_batch_frame};
use crate::stats::AgentStats;
pub use wire::EXPORT_PATH;

#[cfg(doc)]
use crate::spool::AckLedger;

/// Every export and lifecycle call gives up after this long (and is then retried).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A server asking for a longer pause than this is asked again after this long.
const RETRY_INFO_CAP: Duration = Duration::from_secs(300);
/// Acked batches are committed (state file written, spool files deleted) at most this
/// long after the first of them was acked...
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// ...or as soon as this many are waiting, whichever comes first. Each commit costs two
/// fsyncs; committing per batch doubled the agent's fsyncs. Waiting is safe: until the
/// commit, an acked batch is still in the spool, and after a crash it is sent again
/// under its sequence, which the server de-duplicates.
pub const COMMIT_MAX_BATCHES: usize = 16;

/// A lazily connecting channel: a server that is down does not delay the agent's start.
pub fn connect_lazily(server: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(server.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// The `authorization` header value for a bearer token (validated with the config).
pub fn authorization_value(token: Option<&str>) -> anyhow::Result<Option<MetadataValue<Ascii>>> {
    token
        .map(|token| Ok(MetadataValue::try_from(format!("Bearer {token}"))?))
        .transpose()
}

/// Wraps a message in a request carrying the bearer token, if any.
pub fn authorized_request<T>(
    message: T,
    authorization: Option<&MetadataValue<Ascii>>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(authorization) = authorization {
        request
            .metadata_mut()
            .insert("authorization", authorization.clone());
    }
    request
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

/// The OTLP retry rules for one failure. `attempt` counts failures so far starting at
/// 0; `jitter` is a uniform sample in `[0, 1]` (a parameter so the rules are testable).
pub fn retry_decision(status: &Status, attempt: u32, jitter: f64) -> RetryDecision {
    let retry_info_delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_info_delay.is_some(),
        _ => is_transport_failure(status),
    };
    if !retryable {
        return RetryDecision::GiveUp;
    }
    if let Some(delay) = retry_info_delay {
        return RetryDecision::RetryAfter(delay.min(RETRY_INFO_CAP));
    }
    RetryDecision::RetryAfter(backoff_with_full_jitter(attempt, jitter))
}

/// A status made on this side of the wire from an I/O or HTTP/2 error carries that error
/// as its source; one received from the server never does.
fn is_transport_failure(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// `jitter · min(cap, base · 2^attempt)`.
pub fn backoff_with_full_jitter(attempt: u32, jitter: f64) -> Duration {
    let ceiling =
        BACKOFF_BASE.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    ceiling.min(BACKOFF_CAP).mul_f64(jitter.clamp(0.0, 1.0))
}

/// How one batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome {
    Acked,
    /// Accepted, but the server rejected this many records (not retried).
    AckedWithRejections(i64),
    /// A non-retryable error: the batch is given up.
    Dropped,
    /// Its spool file could not be read back: the batch is lost.
    Unreadable,
}

/// Counters for the end-of-run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipReport {
    pub acked_batches: u64,
    pub dropped_batches: u64,
    pub rejected_records: u64,
}

/// Exports spooled batches and commits them as they are acked.
pub struct Shipper {
    channel: Channel,
    agent_id: String,
    authorization: Option<MetadataValue<Ascii>>,
    max_inflight: usize,
    spool: Arc<Spool>,
    report: Arc<Mutex<ShipReport>>,
    /// Acked batches not yet committed (including a commit whose state write failed),
    /// and when the first of them was acked.
    uncommitted: Option<(Commit, Instant)>,
}

impl Shipper {
    pub fn new(
        channel: Channel,
        agent_id: String,
        authorization: Option<MetadataValue<Ascii>>,
        max_inflight: usize,
        spool: Arc<Spool>,
    ) -> Shipper {
        Shipper {
            channel,
            agent_id,
            authorization,
            max_inflight,
            spool,
            report: Arc::new(Mutex::new(ShipReport::default())),
            uncommitted: None,
        }
    }

    /// Counters that stay readable if the shipper is aborted at the shutdown deadline.
    pub fn report_handle(&self) -> Arc<Mutex<ShipReport>> {
        self.report.clone()
    }

    /// Ships spooled batches until `collector_done` turns true (or its sender goes away)
    /// and every batch has been sent.
    pub async fn run(mut self, mut collector_done: watch::Receiver<bool>) -> ShipReport {
        let spool = self.spool.clone();
        let mut collector_running = !*collector_done.borrow();
        let mut inflight: JoinSet<(u64, ExportOutcome)> = JoinSet::new();
        loop {
            // Bounded concurrency: a new export starts only when a slot is free.
            while inflight.len() < self.max_inflight
                && let Some(sequence) = spool.ledger().next_to_send()
            {
                self.start_export(&mut inflight, sequence);
            }
            if !collector_running && inflight.is_empty() && !spool.ledger().has_unsent() {
                break;
            }
            let commit_due = self
                .uncommitted
                .as_ref()
                .map(|(_, first_acked)| *first_acked + COMMIT_INTERVAL);
            tokio::select! {
                biased;
                Some(joined) = inflight.join_next(), if !inflight.is_empty() => match joined {
                    Ok((sequence, outcome)) => {
                        self.on_finished(sequence, outcome, collector_running).await;
                    }
                    // Export tasks do not panic; if one did, its batch stays in the spool
                    // and is resent at the next start.
                    Err(join_error) => error!(%join_error, "export task failed"),
                },
                _ = spool.wakeup.notified() => {}
                changed = collector_done.changed(), if collector_running => {
                    collector_running = changed.is_ok() && !*collector_done.borrow();
                    if !collector_running {
                        self.write_commit().await;
                    }
                }
                _ = tokio::time::sleep_until(commit_due.unwrap_or_else(Instant::now)), if commit_due.is_some() => {
                    self.write_commit().await;
                }
            }
        }
        self.write_commit().await;
        *self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_export(&self, inflight: &mut JoinSet<(u64, ExportOutcome)>, sequence: u64) {
        let channel = self.channel.clone();
        let batch_id = format!("{}/{}", self.agent_id, sequence);
        let authorization = self.authorization.clone();
        let spool = self.spool.clone();
        inflight.spawn(async move {
            make_durable(&spool, sequence).await;
            let frame = match load_frame(&spool, sequence).await {
                Ok(frame) => frame,
                Err(reason) => {
                    error!(batch = %batch_id, %reason, "a spooled batch cannot be read back; its records are lost");
                    return (sequence, ExportOutcome::Unreadable);
                }
            };
            let records = spool
                .ledger()
                .entry(sequence)
                .map(|entry| entry.record_count)
                .unwrap_or(0);
            let outcome = export_with_retry(
                channel,
                frame,
                &batch_id,
                records,
                authorization.as_ref(),
                &spool.stats,
            )
            .await;
            (sequence, outcome)
        });
    }

    /// Counts a finished batch and commits what can be committed: in groups while the
    /// collector runs, at once when it has stopped (shutting down: the shipper may be
    /// aborted at the deadline, and what it acked should not stay in the spool).
    async fn on_finished(
        &mut self,
        sequence: u64,
        outcome: ExportOutcome,
        collector_running: bool,
    ) {
        {
            let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            let stats = &self.spool.stats;
            match outcome {
                ExportOutcome::Acked => {
                    report.acked_batches += 1;
                    AgentStats::add(&stats.batches_acked, 1);
                }
                ExportOutcome::AckedWithRejections(rejected) => {
                    report.acked_batches += 1;
                    report.rejected_records += rejected.max(0) as u64;
                    AgentStats::add(&stats.batches_acked, 1);
                }
                ExportOutcome::Dropped | ExportOutcome::Unreadable => {
                    report.dropped_batches += 1;
                    AgentStats::add(&stats.batches_rejected, 1);
                }
            }
        }
        let commit = self.spool.ledger().finish(sequence);
        let Some(mut commit) = commit else {
            return;
        };
        let first_acked = match self.uncommitted.take() {
            Some((older, first_acked)) => {
                commit.absorb(older);
                first_acked
            }
            None => Instant::now(),
        };
        let waiting = commit.sequences.len();
        self.uncommitted = Some((commit, first_acked));
        if waiting >= COMMIT_MAX_BATCHES || !collector_running {
            self.write_commit().await;
        }
    }

    /// Commits the acked batches that wait for it, if any.
    async fn write_commit(&mut self) {
        let Some((commit, _)) = self.uncommitted.take() else {
            return;
        };
        let paths = self.spool.paths.clone();
        let written = tokio::task::spawn_blocking(move || {
            let result = apply_commit(&paths, &commit);
            (result, commit)
        })
        .await;
        match written {
            Ok((Ok(()), commit)) => debug!(watermark = commit.watermark, "committed acked batches"),
            Ok((Err(error), commit)) => {
                // The batches stay in the spool; at worst they are resent after a crash
                // and the server de-duplicates them.
                error!(watermark = commit.watermark, %error, "cannot write the state file");
                self.uncommitted = Some((commit, Instant::now()));
            }
            Err(join_error) => error!(%join_error, "state commit task failed"),
        }
    }
}

/// Waits until batch `sequence`'s spool file has a durable name (see
/// [`Spool::make_durable`]): a batch is sent only once a crash can no longer make its
/// sequence disappear. A failing directory fsync is retried; the batch waits meanwhile.
async fn make_durable(spool: &Arc<Spool>, sequence: u64) {
    let mut failures: u32 = 0;
    while !spool.is_durable(sequence) {
        let syncing = spool.clone();
        let synced = tokio::task::spawn_blocking(move || syncing.make_durable(sequence))
            .await
            .map_err(|join_error| join_error.to_string())
            .and_then(|result| result.map_err(|error| error.to_string()));
        let Err(reason) = synced else {
            return;
        };
        if failures.is_multiple_of(10) {
            error!(sequence, %reason, "cannot sync the spool directory; the batch waits");
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(backoff_with_full_jitter(failures, 1.0)).await;
    }
}

/// A batch's gRPC frame: from the cache if the collector just took it, else from disk.
async fn load_frame(spool: &Arc<Spool>, sequence: u64) -> Result<Bytes, String> {
    if let Some(frame) = spool.cache.take(sequence) {
        return Ok(frame);
    }
    let path = spool.paths.batch_file(sequence);
    tokio::task::spawn_blocking(move || read_batch_frame(&path, sequence))
        .await
        .map_err(|join_error| join_error.to_string())?
}

/// Sends one batch (its compressed request in a gRPC frame) until it is acked or given
/// up. Every attempt sends the same bytes: nothing is encoded, compressed or copied again.
async fn export_with_retry(
    mut channel: Channel,
    frame: Bytes,
    batch_id: &str,
    records: u64,
    authorization: Option<&MetadataValue<Ascii>>,
    stats: &AgentStats,
) -> ExportOutcome {
    let mut headers = Vec::with_capacity(2);
    // The id is `<uuid>/<digits>`, always a valid header value.
    headers.push((
        HeaderName::from_static(BATCH_HEADER),
        HeaderValue::try_from(batch_id).expect("batch id is ASCII"),
    ));
    if let Some(authorization) = authorization {
        headers.push((
            HeaderName::from_static("authorization"),
            HeaderValue::from_bytes(authorization.as_bytes())
                .expect("a metadata value is a header value"),
        ));
    }
    let mut failures: u32 = 0;
    loop {
        let answer =
            wire::export_compressed_frame(&mut channel, frame.clone(), &headers, REQUEST_TIMEOUT)
                .await;
        let status = match answer {
            Ok(response) => {
                if failures > 0 {
                    info!(batch = %batch_id, attempts = failures + 1, "batch delivered after retries");
                }
                return outcome_of_success(batch_id, response.partial_success);
            }
            Err(status) => status,
        };
        let jitter = rand::rng().random_range(0.0..=1.0);
        match retry_decision(&status, failures, jitter) {
            RetryDecision::RetryAfter(delay) => {
                // Log the first failure and then every tenth: a server that is down for
                // a minute should not fill the instance's disk with our complaints.
                if failures.is_multiple_of(10) {
                    warn!(
                        batch = %batch_id,
                        code = ?status.code(),
                        detail = status.message(),
                        attempt = failures + 1,
                        retry_in = ?delay,
                        "export failed, retrying"
                    );
                } else {
                    debug!(batch = %batch_id, code = ?status.code(), retry_in = ?delay, "export failed, retrying");
                }
                failures = failures.saturating_add(1);
                AgentStats::add(&stats.export_retries, 1);
                tokio::time::sleep(delay).await;
            }
            RetryDecision::GiveUp => {
                error!(
                    batch = %batch_id,
                    code = ?status.code(),
                    detail = status.message(),
                    records,
                    "export rejected with a non-retryable error, dropping the batch"
                );
                return ExportOutcome::Dropped;
            }
        }
    }
}

fn outcome_of_success(
    batch_id: &str,
    partial_success: Option<epitaph_proto::collector::logs::v1::ExportLogsPartialSuccess>,
) -> ExportOutcome {
    let Some(partial) = partial_success else {
        return ExportOutcome::Acked;
    };
    if partial.rejected_log_records > 0 {
        warn!(
            batch = %batch_id,
            rejected = partial.rejected_log_records,
            detail = %partial.error_message,
            "server rejected part of a batch; not retrying"
        );
        return ExportOutcome::AckedWithRejections(partial.rejected_log_records);
    }
    if !partial.error_message.is_empty() {
        info!(batch = %batch_id, detail = %partial.error_message, "server accepted the batch with a warning");
    }
    ExportOutcome::Acked
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    fn with_retry_info(code: Code, delay: Duration) -> Status {
        Status::with_error_details(
            code,
            "slow down",
            ErrorDetails::with_retry_info(Some(delay)),
        )
    }

    #[test]
    fn retry_info_delay_is_honoured() {
        let status = with_retry_info(Code::Unavailable, Duration::from_millis(1500));
        assert_eq!(
            retry_decision(&status, 0, 0.0),
            RetryDecision::RetryAfter(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_decision(&status, 7, 1.0),
            RetryDecision::RetryAfter(Duration::from_millis(1500))
        );
    }

    #[test]
    fn resource_exhausted_is_retried_only_with_retry_info() {
        let with_info = with_retry_info(Code::ResourceExhausted, Duration::from_secs(2));
        assert_eq!(
            retry_decision(&with_info, 0, 0.5),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        let without = Status::resource_exhausted("too big");
        assert_eq!(retry_decision(&without, 0, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn retryable_codes_back_off_and_others_give_up() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert!(
                matches!(
                    retry_decision(&Status::new(code, "x"), 0, 1.0),
                    RetryDecision::RetryAfter(_)
                ),
                "{code:?} not retried"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Internal,
            Code::Unimplemented,
            Code::Unknown,
        ] {
            assert_eq!(
                retry_decision(&Status::new(code, "x"), 0, 1.0),
                RetryDecision::GiveUp,
                "{code:?}"
            );
        }
        // Retry info on a non-retryable code does not make it retryable.
        let status = with_retry_info(Code::InvalidArgument, Duration::from_secs(1));
        assert_eq!(retry_decision(&status, 0, 1.0), RetryDecision::GiveUp);
    }

    #[test]
    fn connection_failure_is_retryable_whatever_its_code() {
        let io_error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = Status::from_error(Box::new(io_error));
        assert_eq!(status.code(), Code::Unknown);
        assert!(matches!(
            retry_decision(&status, 0, 1.0),
            RetryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn backoff_doubles_from_100ms_to_a_5s_cap_with_full_jitter() {
        let ceilings: Vec<u128> = (0..8)
            .map(|attempt| backoff_with_full_jitter(attempt, 1.0).as_millis())
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff_with_full_jitter(3, 0.0), Duration::ZERO);
        assert_eq!(backoff_with_full_jitter(3, 0.5), Duration::from_millis(400));
        assert_eq!(
            backoff_with_full_jitter(u32::MAX, 1.0),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn partial_success_with_rejections_is_not_retried() {
        use epitaph_proto::collector::logs::v1::ExportLogsPartialSuccess;
        let rejected = ExportLogsPartialSuccess {
            rejected_log_records: 3,
            error_message: "bad".into(),
        };
        assert_eq!(
            outcome_of_success("a/1", Some(rejected)),
            ExportOutcome::AckedWithRejections(3)
        );
        let warning = ExportLogsPartialSuccess {
            rejected_log_records: 0,
            error_message: "hint".into(),
        };
        assert_eq!(
            outcome_of_success("a/1", Some(warning)),
            ExportOutcome::Acked
        );
        assert_eq!(outcome_of_success("a/1", None), ExportOutcome::Acked);
    }
}
