//! The wire contract between Epitaph's agent and server.
//!
//! Logs and metrics travel as standard OTLP over gRPC, so the OTLP types and tonic
//! services are re-exported from `opentelemetry-proto` rather than copied. Epitaph's own
//! lifecycle service (hello, heartbeat, goodbye) is compiled from `proto/lifecycle.proto`.
//!
//! Besides the messages, the contract has one header: [`BATCH_HEADER`], whose value
//! `<agent-uuid>/<sequence>` makes a replayed batch a no-op on the server.

pub use opentelemetry_proto::tonic::{collector, common, logs, metrics, resource};

/// Epitaph's lifecycle service and messages.
pub mod lifecycle {
    tonic::include_proto!("epitaph.lifecycle.v1");
}

/// gRPC metadata key that tags a batch with `<agent-uuid>/<sequence>`.
pub const BATCH_HEADER: &str = "epitaph-batch";

/// Resource attribute keys that Epitaph indexes as identity fields.
pub mod keys {
    pub const SERVICE_NAME: &str = "service.name";
    pub const IMAGE_NAME: &str = "host.image.name";
    pub const IMAGE_VERSION: &str = "host.image.version";
    pub const IMAGE_ID: &str = "host.image.id";
    pub const GENERATION: &str = "deployment.generation";
    pub const HOST_ID: &str = "host.id";
    pub const HOST_NAME: &str = "host.name";
    pub const ENVIRONMENT: &str = "deployment.environment.name";
    pub const REGION: &str = "cloud.region";
    pub const ZONE: &str = "cloud.availability_zone";
}

/// A parsed `epitaph-batch` header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId {
    pub agent_id: String,
    pub sequence: u64,
}

impl BatchId {
    /// Parses `<agent-uuid>/<sequence>`. The agent id must be non-empty printable ASCII
    /// without `/`, and the sequence a positive integer (sequences start at 1).
    pub fn parse(value: &str) -> Result<BatchId, String> {
        let Some((agent_id, sequence)) = value.rsplit_once('/') else {
            return Err(format!("expected `<agent-uuid>/<sequence>`, got `{value}`"));
        };
        if agent_id.is_empty() || agent_id.len() > 128 {
            return Err("agent id must have 1 to 128 characters".to_string());
        }
        if !agent_id.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err(format!(
                "agent id `{agent_id}` has characters other than printable ASCII"
            ));
        }
        let sequence: u64 = sequence
            .parse()
            .map_err(|_| format!("sequence `{sequence}` is not a positive integer"))?;
        if sequence == 0 {
            return Err("sequences start at 1".to_string());
        }
        Ok(BatchId {
            agent_id: agent_id.to_string(),
            sequence,
        })
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.agent_id, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_header_round_trips() {
        let id = BatchId::parse("7d3c-aa/42").unwrap();
        assert_eq!(id.agent_id, "7d3c-aa");
        assert_eq!(id.sequence, 42);
        assert_eq!(id.to_string(), "7d3c-aa/42");
    }

    #[test]
    fn malformed_batch_headers_are_rejected() {
        for bad in ["", "abc", "/1", "abc/0", "abc/-1", "abc/x", "a b/1"] {
            assert!(BatchId::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
