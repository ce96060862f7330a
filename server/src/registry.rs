//! The instance registry: every agent that said hello, and how its story ended.
//!
//! The registry is rebuilt from WAL records in LSN order (hello, heartbeat, goodbye,
//! and every batch carrying the agent's `epitaph-batch` header), saved with each
//! checkpoint, so it survives restarts exactly as the data does. An instance's state is
//! derived when asked, not stored:
//!
//! - `terminated`: a goodbye was received. The record is complete once every batch up
//!   to the goodbye's final sequence is stored.
//! - `lost`: no goodbye, and nothing heard for longer than `lost_after`; the record may
//!   miss the instance's last moments, from `last_seen` on.
//! - `live`: otherwise.
//!
//! A hello after a goodbye (the same agent booting again) makes the instance live again.

use std::collections::BTreeMap;
use std::time::Duration;

use epitaph_proto::keys;
use epitaph_proto::lifecycle::{GoodbyeRequest, HeartbeatRequest, HelloRequest, LossReport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    pub final_sequence: u64,
    pub at_nanos: i64,
    pub reason: String,
    pub unsent_records: u64,
}

/// Records an agent read but had to drop, as it reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub records: u64,
    pub first_observed_nanos: i64,
    pub last_observed_nanos: i64,
    pub reason: String,
    pub reported_at_nanos: i64,
}

/// The most loss reports kept per instance; older ones still count in `records_lost`.
const MAX_LOSSES_KEPT: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub agent_id: String,
    pub agent_version: String,
    pub resource: BTreeMap<String, String>,
    pub first_seen_nanos: i64,
    pub last_seen_nanos: i64,
    pub started_at_nanos: i64,
    pub last_sequence: u64,
    pub stored_watermark: u64,
    pub goodbye: Option<Goodbye>,
    #[serde(default)]
    pub records_lost: u64,
    #[serde(default)]
    pub losses: Vec<Loss>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Live,
    Terminated { record_complete: bool },
    Lost { since_nanos: i64 },
}

impl InstanceState {
    pub fn name(&self) -> &'static str {
        match self {
            InstanceState::Live => "live",
            InstanceState::Terminated { .. } => "terminated",
            InstanceState::Lost { .. } => "lost",
        }
    }
}

impl InstanceRecord {
    fn new(agent_id: &str, at_nanos: i64) -> InstanceRecord {
        InstanceRecord {
            agent_id: agent_id.to_string(),
            agent_version: String::new(),
            resource: BTreeMap::new(),
            first_seen_nanos: at_nanos,
            last_seen_nanos: at_nanos,
            started_at_nanos: 0,
            last_sequence: 0,
            stored_watermark: 0,
            goodbye: None,
            records_lost: 0,
            losses: Vec::new(),
        }
    }

    pub fn state(&self, now_nanos: i64, lost_after: Duration) -> InstanceState {
        if let Some(goodbye) = &self.goodbye {
            // Complete: every batch sent is stored, nothing was left unsent in the
            // spool at the deadline, and the agent never had to drop a record.
            let record_complete = self.stored_watermark >= goodbye.final_sequence
                && goodbye.unsent_records == 0
                && self.records_lost == 0;
            return InstanceState::Terminated { record_complete };
        }
        let silence = now_nanos.saturating_sub(self.last_seen_nanos);
        if silence > lost_after.as_nanos() as i64 {
            return InstanceState::Lost {
                since_nanos: self.last_seen_nanos,
            };
        }
        InstanceState::Live
    }

    pub fn resource_value(&self, key: &str) -> &str {
        self.resource.get(key).map(String::as_str).unwrap_or("")
    }

    pub fn host_id(&self) -> &str {
        self.resource_value(keys::HOST_ID)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRegistry {
    instances: BTreeMap<String, InstanceRecord>,
}

impl InstanceRegistry {
    fn touch(&mut self, agent_id: &str, at_nanos: i64) -> &mut InstanceRecord {
        let record = self
            .instances
            .entry(agent_id.to_string())
            .or_insert_with(|| InstanceRecord::new(agent_id, at_nanos));
        record.last_seen_nanos = record.last_seen_nanos.max(at_nanos);
        record
    }

    /// Marks a known instance as seen; unknown ids are left alone (a metrics export that
    /// arrives before its agent's hello does not invent an instance).
    pub fn touch_if_known(&mut self, agent_id: &str, at_nanos: i64) {
        if let Some(record) = self.instances.get_mut(agent_id) {
            record.last_seen_nanos = record.last_seen_nanos.max(at_nanos);
        }
    }

    pub fn apply_hello(&mut self, hello: &HelloRequest, at_nanos: i64) {
        let record = self.touch(&hello.agent_id, at_nanos);
        record.agent_version = hello.agent_version.clone();
        record.resource = hello
            .resource
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        record.started_at_nanos = hello.start_time_unix_nano as i64;
        record.last_sequence = record.last_sequence.max(hello.last_sequence);
        record.goodbye = None;
    }

    pub fn apply_heartbeat(&mut self, heartbeat: &HeartbeatRequest, at_nanos: i64) {
        let record = self.touch(&heartbeat.agent_id, at_nanos);
        record.last_sequence = record.last_sequence.max(heartbeat.last_sequence);
    }

    pub fn apply_goodbye(&mut self, goodbye: &GoodbyeRequest, at_nanos: i64) {
        let record = self.touch(&goodbye.agent_id, at_nanos);
        record.last_sequence = record.last_sequence.max(goodbye.final_sequence);
        record.goodbye = Some(Goodbye {
            final_sequence: goodbye.final_sequence,
            at_nanos,
            reason: goodbye.reason.clone(),
            unsent_records: goodbye.unsent_records,
        });
    }

    pub fn apply_loss(&mut self, loss: &LossReport, at_nanos: i64) {
        let record = self.touch(&loss.agent_id, at_nanos);
        record.records_lost += loss.records;
        record.losses.push(Loss {
            records: loss.records,
            first_observed_nanos: loss.first_observed_unix_nano as i64,
            last_observed_nanos: loss.last_observed_unix_nano as i64,
            reason: loss.reason.clone(),
            reported_at_nanos: at_nanos,
        });
        if record.losses.len() > MAX_LOSSES_KEPT {
            record.losses.remove(0);
        }
    }

    /// A stored batch of an agent: it is alive, and its watermark may have moved.
    pub fn apply_batch(
        &mut self,
        agent_id: &str,
        sequence: u64,
        stored_watermark: u64,
        at_nanos: i64,
    ) {
        let record = self.touch(agent_id, at_nanos);
        record.last_sequence = record.last_sequence.max(sequence);
        record.stored_watermark = record.stored_watermark.max(stored_watermark);
    }

    pub fn instances(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.instances.values()
    }

    pub fn get(&self, agent_id: &str) -> Option<&InstanceRecord> {
        self.instances.get(agent_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn hello() -> HelloRequest {
        HelloRequest {
            agent_id: "a".into(),
            agent_version: "0.1.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn silent_instance_becomes_lost_from_its_last_sighting() {
        let mut registry = InstanceRegistry::default();
        registry.apply_hello(&hello(), 10 * SECOND);
        registry.apply_batch("a", 1, 1, 12 * SECOND);
        let record = registry.get("a").unwrap();
        assert_eq!(
            record.state(20 * SECOND, Duration::from_secs(60)),
            InstanceState::Live
        );
        assert_eq!(
            record.state(100 * SECOND, Duration::from_secs(60)),
            InstanceState::Lost {
                since_nanos: 12 * SECOND
            }
        );
    }

    #[test]
    fn reported_loss_makes_the_record_incomplete() {
        let mut registry = InstanceRegistry::default();
        registry.apply_hello(&hello(), SECOND);
        let loss = LossReport {
            agent_id: "a".into(),
            records: 40,
            first_observed_unix_nano: 2 * SECOND as u64,
            last_observed_unix_nano: 3 * SECOND as u64,
            reason: "spool_full".into(),
        };
        registry.apply_loss(&loss, 4 * SECOND);
        registry.apply_loss(&loss, 5 * SECOND);
        let goodbye = GoodbyeRequest {
            agent_id: "a".into(),
            final_sequence: 0,
            ..Default::default()
        };
        registry.apply_goodbye(&goodbye, 6 * SECOND);
        let record = registry.get("a").unwrap();
        assert_eq!(record.records_lost, 80);
        assert_eq!(record.losses.len(), 2);
        assert_eq!(
            record.state(7 * SECOND, Duration::from_secs(60)),
            InstanceState::Terminated {
                record_complete: false
            }
        );
    }

    #[test]
    fn goodbye_is_complete_only_when_every_batch_is_stored() {
        let mut registry = InstanceRegistry::default();
        registry.apply_hello(&hello(), SECOND);
        registry.apply_batch("a", 1, 1, 2 * SECOND);
        let goodbye = GoodbyeRequest {
            agent_id: "a".into(),
            final_sequence: 2,
            ..Default::default()
        };
        registry.apply_goodbye(&goodbye, 3 * SECOND);
        let lost_after = Duration::from_secs(60);
        assert_eq!(
            registry.get("a").unwrap().state(4 * SECOND, lost_after),
            InstanceState::Terminated {
                record_complete: false
            }
        );
        registry.apply_batch("a", 2, 2, 4 * SECOND);
        let state = registry.get("a").unwrap().state(1000 * SECOND, lost_after);
        assert_eq!(
            state,
            InstanceState::Terminated {
                record_complete: true
            },
            "terminated never turns lost"
        );
        registry.apply_hello(&hello(), 1001 * SECOND);
        assert_eq!(
            registry.get("a").unwrap().state(1001 * SECOND, lost_after),
            InstanceState::Live
        );
    }
}
