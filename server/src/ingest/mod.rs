//! Ingest: the gRPC front door. OTLP logs and the lifecycle service both end in the WAL;
//! a request is answered only once its record is fsynced.
//!
//! Admission happens before the WAL, in this order: a malformed `epitaph-batch` header is
//! INVALID_ARGUMENT; a batch already stored is acknowledged without being stored again; a
//! batch with the same id still in flight is asked to retry shortly (its first copy will
//! either be stored or fail); and when the indexer is too far behind, ingest answers
//! UNAVAILABLE with a RetryInfo delay instead of queueing without bound.

pub mod auth;
pub mod backlog;
pub mod ledger;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod raw;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use epitaph_proto::BatchId;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::index::indexer::{DurableRecord, RecordPayload, now_nanos};
use crate::wal::record::{RecordContent, RecordKind, encode_body};
use crate::wal::{WalError, WalHandle};
use backlog::IndexingBacklog;
use ledger::BatchLedger;

/// Delay suggested to a client whose batch is already in flight.
const IN_FLIGHT_RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long an export may wait for the indexer to catch up before it is refused.
const BACKLOG_PATIENCE: Duration = Duration::from_secs(3);
/// Delay suggested when the indexer is behind or the WAL cannot write.
const OVERLOAD_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Which batches are stored, and which are being stored right now.
#[derive(Default)]
pub struct BatchAdmission {
    pub ledger: BatchLedger,
    in_flight: HashSet<BatchId>,
}

/// What every ingest service shares.
pub struct IngestState {
    pub wal: WalHandle<DurableRecord>,
    pub admission: Mutex<BatchAdmission>,
    /// Bytes acknowledged but not yet applied by the indexer.
    pub backlog: Arc<IndexingBacklog>,
    pub heartbeat_interval: Duration,
}

/// Outcome of checking a batch id before storing.
enum Admission {
    /// Not a duplicate: store it, then call `finish`.
    Store,
    /// Already stored: acknowledge without storing.
    AlreadyStored,
}

impl BatchAdmission {
    pub fn new(ledger: BatchLedger) -> BatchAdmission {
        BatchAdmission {
            ledger,
            in_flight: HashSet::new(),
        }
    }
}

impl IngestState {
    fn admit_batch(&self, batch: Option<&BatchId>) -> Result<Admission, Status> {
        let Some(batch) = batch else {
            return Ok(Admission::Store);
        };
        let mut admission = self.admission.lock().expect("admission lock poisoned");
        if admission.ledger.contains(batch) {
            return Ok(Admission::AlreadyStored);
        }
        if !admission.in_flight.insert(batch.clone()) {
            return Err(retryable(
                Code::Unavailable,
                format!("batch {batch} is already being stored"),
                IN_FLIGHT_RETRY_DELAY,
            ));
        }
        Ok(Admission::Store)
    }

    fn finish_batch(&self, batch: Option<&BatchId>, stored: bool) {
        let Some(batch) = batch else { return };
        let mut admission = self.admission.lock().expect("admission lock poisoned");
        admission.in_flight.remove(batch);
        if stored {
            admission.ledger.record(batch);
        }
    }

    pub fn stored_watermark(&self, agent_id: &str) -> u64 {
        self.admission
            .lock()
            .expect("admission lock poisoned")
            .ledger
            .watermark(agent_id)
    }

    /// Writes one record to the WAL and waits for its fsync.
    async fn store(
        &self,
        kind: RecordKind,
        batch: Option<BatchId>,
        payload_bytes: Vec<u8>,
        payload: RecordPayload,
    ) -> Result<u64, Status> {
        let backlog_bytes = payload_bytes.len() as u64;
        if matches!(kind, RecordKind::Logs | RecordKind::Metrics) {
            if let Err(behind) = self.backlog.admit(backlog_bytes, BACKLOG_PATIENCE).await {
                return Err(retryable(
                    Code::Unavailable,
                    format!("indexer is {behind} bytes behind; retry later"),
                    OVERLOAD_RETRY_DELAY,
                ));
            }
        } else {
            self.backlog.add(backlog_bytes);
        }
        let received_at_nanos = now_nanos();
        let content = RecordContent {
            kind,
            received_at_nanos,
            batch: batch.clone(),
            payload: payload_bytes,
        };
        let body = match encode_body(&content) {
            Ok(body) => body,
            Err(e) => {
                self.backlog.release(backlog_bytes);
                return Err(Status::internal(format!("compressing record: {e}")));
            }
        };
        let record = DurableRecord {
            received_at_nanos,
            batch,
            payload,
            backlog_bytes,
        };
        match self.wal.append(body, record).await {
            Ok(lsn) => Ok(lsn),
            Err(error) => {
                self.backlog.release(backlog_bytes);
                Err(match error {
                    WalError::Io(_) => {
                        retryable(Code::Unavailable, error.to_string(), OVERLOAD_RETRY_DELAY)
                    }
                    WalError::Poisoned | WalError::Closed => Status::unavailable(error.to_string()),
                })
            }
        }
    }
}

pub fn retryable(code: Code, message: impl Into<String>, delay: Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(delay)))
}

/// Reads the `epitaph-batch` header, if present.
pub fn batch_id_of<T>(request: &tonic::Request<T>) -> Result<Option<BatchId>, Status> {
    let Some(value) = request.metadata().get(epitaph_proto::BATCH_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        Status::invalid_argument(format!(
            "{} header is not ASCII",
            epitaph_proto::BATCH_HEADER
        ))
    })?;
    BatchId::parse(text).map(Some).map_err(|e| {
        Status::invalid_argument(format!("{} header: {e}", epitaph_proto::BATCH_HEADER))
    })
}
