//! OTLP `MetricsService/Export`: data points to the WAL, answered after fsync, under the
//! same durability and `epitaph-batch` contract as logs.
//!
//! Points that would poison an aggregate (NaN, a negative monotonic sum, buckets that do
//! not match their bounds or count, …; see [`crate::index::metric_schema`]) are not
//! stored, and the answer's partial success says how many and why, as OTLP prescribes.
//! The request is still stored whole in the WAL: the indexer applies the same checks, so
//! a replay stores exactly the points the answer accepted.

use std::sync::Arc;

use bytes::Bytes;
use epitaph_proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use tonic::codegen::BoxFuture;
use tonic::{Request, Response, Status};

use super::raw::{DecodeRequest, ExportHandler, Raw, RawExportService};
use super::{Admission, IngestState, batch_id_of};
use crate::index::indexer::{RecordPayload, metrics_batch};
use crate::index::metric_schema::{MetricsRequest, RequestCheck};
use crate::wal::RecordKind;

/// The metrics service, ready to add to a tonic server.
pub type MetricsIngest = RawExportService<MetricsHandler>;

pub fn metrics_service(state: Arc<IngestState>, max_request_bytes: usize) -> MetricsIngest {
    RawExportService::new(MetricsHandler { state }, max_request_bytes)
}

#[derive(Clone)]
pub struct MetricsHandler {
    state: Arc<IngestState>,
}

impl ExportHandler for MetricsHandler {
    type Request = MetricsRequest;
    type Response = ExportMetricsServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";

    fn export(
        &self,
        request: Request<Raw<MetricsRequest>>,
    ) -> BoxFuture<Response<ExportMetricsServiceResponse>, Status> {
        Box::pin(export(self.state.clone(), request))
    }
}

async fn export(
    state: Arc<IngestState>,
    request: Request<Raw<MetricsRequest>>,
) -> Result<Response<ExportMetricsServiceResponse>, Status> {
    // Metrics batches are numbered apart from an agent's log batches.
    let batch = batch_id_of(&request)?;
    let admission_key = batch.as_ref().map(metrics_batch);
    let Raw { bytes, request } = request.into_inner();
    let check = request.check();
    let answer = response_for(check);
    if check.accepted == 0 {
        return Ok(answer);
    }
    match state.admit_batch(admission_key.as_ref())? {
        Admission::AlreadyStored => return Ok(answer),
        Admission::Store => {}
    }
    // As for logs: a task of its own, so a client that goes away cannot leave the
    // ledger ignorant of a record that reached the WAL.
    let store = tokio::spawn(async move {
        let result = state
            .store(
                RecordKind::Metrics,
                batch,
                bytes.to_vec(),
                RecordPayload::Metrics(request),
            )
            .await;
        state.finish_batch(admission_key.as_ref(), result.is_ok());
        result
    });
    store
        .await
        .map_err(|e| Status::internal(format!("storing task failed: {e}")))??;
    Ok(answer)
}

/// Metrics requests are read without decoding them (see `metric_wire`).
impl DecodeRequest for MetricsRequest {
    fn decode_request(bytes: &Bytes) -> Result<MetricsRequest, String> {
        MetricsRequest::decode(bytes.clone())
            .map_err(|e| format!("request is not a valid ExportMetricsServiceRequest: {e}"))
    }
}

fn response_for(check: &RequestCheck) -> Response<ExportMetricsServiceResponse> {
    let partial_success = (check.rejected > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: check.rejected as i64,
        error_message: check.message(),
    });
    Response::new(ExportMetricsServiceResponse { partial_success })
}
