//! The batch ledger: which `epitaph-batch` sequences of each agent are stored.
//!
//! Per agent it keeps a watermark (every sequence up to it is stored) and the stored
//! sequences above it, so batches may arrive concurrently or out of order and a replayed
//! batch is recognised. When the sequence after the watermark arrives, the watermark
//! moves up through every contiguous stored sequence, so the set above it stays as small
//! as the reordering window.
//!
//! Two ledgers exist: the live one consulted by ingest before the WAL, and the
//! checkpointed one rebuilt by the indexer in LSN order, saved with each checkpoint and
//! replayed on recovery. After recovery the live ledger starts as a copy of it.

use std::collections::{BTreeMap, BTreeSet};

use epitaph_proto::BatchId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentBatches {
    pub watermark: u64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub stored_above: BTreeSet<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLedger {
    agents: BTreeMap<String, AgentBatches>,
}

impl BatchLedger {
    pub fn contains(&self, batch: &BatchId) -> bool {
        self.agents.get(&batch.agent_id).is_some_and(|a| {
            batch.sequence <= a.watermark || a.stored_above.contains(&batch.sequence)
        })
    }

    /// Records a stored batch. Returns false if it was already recorded.
    pub fn record(&mut self, batch: &BatchId) -> bool {
        let agent = self.agents.entry(batch.agent_id.clone()).or_default();
        if batch.sequence <= agent.watermark || !agent.stored_above.insert(batch.sequence) {
            return false;
        }
        while agent.stored_above.remove(&(agent.watermark + 1)) {
            agent.watermark += 1;
        }
        true
    }

    pub fn watermark(&self, agent_id: &str) -> u64 {
        self.agents.get(agent_id).map(|a| a.watermark).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sequence: u64) -> BatchId {
        BatchId {
            agent_id: "agent".into(),
            sequence,
        }
    }

    #[test]
    fn out_of_order_batches_advance_the_watermark_once_contiguous() {
        let mut ledger = BatchLedger::default();
        assert!(ledger.record(&id(2)));
        assert!(ledger.record(&id(3)));
        assert_eq!(ledger.watermark("agent"), 0);
        assert!(ledger.contains(&id(3)));
        assert!(!ledger.contains(&id(1)));
        assert!(ledger.record(&id(1)));
        assert_eq!(ledger.watermark("agent"), 3);
        assert!(ledger.agents["agent"].stored_above.is_empty());
    }

    #[test]
    fn replayed_batch_is_recognised() {
        let mut ledger = BatchLedger::default();
        assert!(ledger.record(&id(1)));
        assert!(!ledger.record(&id(1)));
        assert!(ledger.record(&id(5)));
        assert!(!ledger.record(&id(5)));
        assert!(ledger.contains(&id(5)));
        assert!(!ledger.contains(&BatchId {
            agent_id: "other".into(),
            sequence: 1
        }));
    }
}
