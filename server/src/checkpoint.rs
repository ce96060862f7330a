//! The checkpoint: the state derived from the WAL up to one LSN, saved so that the WAL
//! before it can be deleted and recovery replays only what follows.
//!
//! It is written after the open split's commit, so every log record up to its LSN is in a
//! committed split; the batch ledger and the instance registry it carries are exactly
//! those built from the records up to that LSN.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomically;
use crate::ingest::ledger::BatchLedger;
use crate::registry::InstanceRegistry;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub lsn: u64,
    pub ledger: BatchLedger,
    pub registry: InstanceRegistry,
}

impl Checkpoint {
    pub fn load(data_dir: &Path) -> anyhow::Result<Checkpoint> {
        let path = data_dir.join(CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing checkpoint {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(e) => Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
        }
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(self).context("encoding checkpoint")?;
        write_atomically(&data_dir.join(CHECKPOINT_FILE), &bytes)
    }
}
