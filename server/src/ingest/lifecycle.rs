//! Epitaph's lifecycle service: hello, heartbeat and goodbye go through the WAL like
//! data, so the instance registry is exactly as durable as the lines it describes.

use std::sync::Arc;

use epitaph_proto::lifecycle::lifecycle_server::Lifecycle;
use epitaph_proto::lifecycle::{
    GoodbyeRequest, GoodbyeResponse, HeartbeatRequest, HeartbeatResponse, HelloRequest,
    HelloResponse, LossReport, LossReportResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::IngestState;
use crate::index::indexer::RecordPayload;
use crate::wal::RecordKind;

pub struct LifecycleIngest {
    pub state: Arc<IngestState>,
}

fn check_agent_id(agent_id: &str) -> Result<(), Status> {
    epitaph_proto::BatchId::parse(&format!("{agent_id}/1"))
        .map(|_| ())
        .map_err(|e| Status::invalid_argument(format!("agent_id: {e}")))
}

#[tonic::async_trait]
impl Lifecycle for LifecycleIngest {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let hello = request.into_inner();
        check_agent_id(&hello.agent_id)?;
        let agent_id = hello.agent_id.clone();
        self.state
            .store(
                RecordKind::Hello,
                None,
                hello.encode_to_vec(),
                RecordPayload::Hello(hello),
            )
            .await?;
        Ok(Response::new(HelloResponse {
            heartbeat_interval_ms: self.state.heartbeat_interval.as_millis() as u64,
            stored_watermark: self.state.stored_watermark(&agent_id),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let heartbeat = request.into_inner();
        check_agent_id(&heartbeat.agent_id)?;
        let agent_id = heartbeat.agent_id.clone();
        self.state
            .store(
                RecordKind::Heartbeat,
                None,
                heartbeat.encode_to_vec(),
                RecordPayload::Heartbeat(heartbeat),
            )
            .await?;
        Ok(Response::new(HeartbeatResponse {
            stored_watermark: self.state.stored_watermark(&agent_id),
        }))
    }

    async fn goodbye(
        &self,
        request: Request<GoodbyeRequest>,
    ) -> Result<Response<GoodbyeResponse>, Status> {
        let goodbye = request.into_inner();
        check_agent_id(&goodbye.agent_id)?;
        let agent_id = goodbye.agent_id.clone();
        let final_sequence = goodbye.final_sequence;
        self.state
            .store(
                RecordKind::Goodbye,
                None,
                goodbye.encode_to_vec(),
                RecordPayload::Goodbye(goodbye),
            )
            .await?;
        let stored_watermark = self.state.stored_watermark(&agent_id);
        Ok(Response::new(GoodbyeResponse {
            record_complete: stored_watermark >= final_sequence,
            stored_watermark,
        }))
    }

    async fn report_loss(
        &self,
        request: Request<LossReport>,
    ) -> Result<Response<LossReportResponse>, Status> {
        let loss = request.into_inner();
        check_agent_id(&loss.agent_id)?;
        if loss.records == 0 {
            return Err(Status::invalid_argument(
                "a loss report must count at least one record",
            ));
        }
        self.state
            .store(
                RecordKind::Loss,
                None,
                loss.encode_to_vec(),
                RecordPayload::Loss(loss),
            )
            .await?;
        Ok(Response::new(LossReportResponse {}))
    }
}
