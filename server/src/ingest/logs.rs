//! OTLP `LogsService/Export`.

use std::sync::Arc;

use epitaph_proto::collector::logs::v1::logs_service_server::LogsService;
use epitaph_proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Admission, IngestState, batch_id_of};
use crate::index::indexer::RecordPayload;
use crate::index::schema::{MAX_ROWS_PER_RECORD, count_log_records};
use crate::wal::RecordKind;

pub struct LogsIngest {
    pub state: Arc<IngestState>,
}

#[tonic::async_trait]
impl LogsService for LogsIngest {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let batch = batch_id_of(&request)?;
        let request = request.into_inner();
        let record_count = count_log_records(&request);
        if record_count == 0 {
            return Ok(Response::new(ExportLogsServiceResponse::default()));
        }
        if record_count > MAX_ROWS_PER_RECORD {
            return Err(Status::invalid_argument(format!(
                "request holds {record_count} log records; at most {MAX_ROWS_PER_RECORD} per request"
            )));
        }
        match self.state.admit_batch(batch.as_ref())? {
            Admission::AlreadyStored => {
                return Ok(Response::new(ExportLogsServiceResponse::default()));
            }
            Admission::Store => {}
        }
        let payload_bytes = request.encode_to_vec();
        let result = self
            .state
            .store(
                RecordKind::Logs,
                batch.clone(),
                payload_bytes,
                RecordPayload::Logs(Arc::new(request)),
            )
            .await;
        self.state.finish_batch(batch.as_ref(), result.is_ok());
        result?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}
