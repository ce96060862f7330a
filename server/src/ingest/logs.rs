//! OTLP `LogsService/Export`: log records to the WAL, answered after fsync.

use std::sync::Arc;

use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use tonic::codegen::BoxFuture;
use tonic::{Request, Response, Status};

use super::raw::{ExportHandler, Raw, RawExportService};
use super::{Admission, IngestState, batch_id_of};
use crate::index::indexer::RecordPayload;
use crate::index::schema::{MAX_ROWS_PER_RECORD, count_log_records};
use crate::wal::RecordKind;

/// The logs service, ready to add to a tonic server.
pub type LogsIngest = RawExportService<LogsHandler>;

pub fn logs_service(state: Arc<IngestState>, max_request_bytes: usize) -> LogsIngest {
    RawExportService::new(LogsHandler { state }, max_request_bytes)
}

#[derive(Clone)]
pub struct LogsHandler {
    state: Arc<IngestState>,
}

impl ExportHandler for LogsHandler {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";

    fn export(
        &self,
        request: Request<Raw<ExportLogsServiceRequest>>,
    ) -> BoxFuture<Response<ExportLogsServiceResponse>, Status> {
        Box::pin(export(self.state.clone(), request))
    }
}

async fn export(
    state: Arc<IngestState>,
    request: Request<Raw<ExportLogsServiceRequest>>,
) -> Result<Response<ExportLogsServiceResponse>, Status> {
    let batch = batch_id_of(&request)?;
    let Raw { bytes, request } = request.into_inner();
    let record_count = count_log_records(&request);
    if record_count == 0 {
        return Ok(Response::new(ExportLogsServiceResponse::default()));
    }
    if record_count > MAX_ROWS_PER_RECORD {
        return Err(Status::invalid_argument(format!(
            "request holds {record_count} log records; at most {MAX_ROWS_PER_RECORD} per request"
        )));
    }
    match state.admit_batch(batch.as_ref())? {
        Admission::AlreadyStored => {
            return Ok(Response::new(ExportLogsServiceResponse::default()));
        }
        Admission::Store => {}
    }
    // Stored in a task of its own: if the client goes away mid-call, the append may
    // still reach the WAL, and then the ledger must learn of it too, or the client's
    // resend would be stored twice (and its in-flight mark would never clear).
    let store = tokio::spawn(async move {
        let result = state
            .store(
                RecordKind::Logs,
                batch.clone(),
                bytes.to_vec(),
                RecordPayload::Logs(Arc::new(request)),
            )
            .await;
        state.finish_batch(batch.as_ref(), result.is_ok());
        result
    });
    store
        .await
        .map_err(|e| Status::internal(format!("storing task failed: {e}")))??;
    Ok(Response::new(ExportLogsServiceResponse::default()))
}
