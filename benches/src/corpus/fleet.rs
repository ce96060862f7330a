//! The simulated fleet: services, their golden images, generations and instances.
//!
//! Each service runs two or three image versions at once, as during a rolling or
//! blue/green deployment: an old version draining, the current one and sometimes a
//! canary. Each version is one replacement wave (`deployment.generation`) of a few
//! instances. Traffic is skewed across services (a few busy, many quiet) and within a
//! service towards the current version, so every record carries a realistic resource
//! identity for the server to index and group by.

use std::fmt::Write as _;

use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use rand::Rng;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;

const SERVICE_NAMES: &[&str] = &[
    "gateway",
    "checkout",
    "catalog",
    "payments",
    "auth",
    "search",
    "inventory",
    "notifications",
    "recommendations",
    "shipping",
    "billing",
    "reviews",
    "media",
    "pricing",
    "ledger",
    "geo",
];

const ZONES: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];

/// The resource identity of one instance, as its agent would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub service_index: usize,
    pub service_name: String,
    pub image_name: String,
    pub image_version: String,
    pub image_id: String,
    pub generation: String,
    pub host_id: String,
    pub host_name: String,
    pub environment: String,
    pub region: String,
    pub zone: String,
}

impl Instance {
    /// The OTLP resource attributes of this instance.
    pub fn resource_attributes(&self) -> Vec<KeyValue> {
        [
            (keys::SERVICE_NAME, &self.service_name),
            (keys::IMAGE_NAME, &self.image_name),
            (keys::IMAGE_VERSION, &self.image_version),
            (keys::IMAGE_ID, &self.image_id),
            (keys::GENERATION, &self.generation),
            (keys::HOST_ID, &self.host_id),
            (keys::HOST_NAME, &self.host_name),
            (keys::ENVIRONMENT, &self.environment),
            (keys::REGION, &self.region),
            (keys::ZONE, &self.zone),
        ]
        .into_iter()
        .map(|(key, value)| string_attribute(key, value))
        .collect()
    }
}

pub(crate) fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// Every instance of the fleet and how much of the log traffic each one sends.
#[derive(Debug, Clone)]
pub struct Fleet {
    instances: Vec<Instance>,
    traffic: WeightedIndex<f64>,
}

impl Fleet {
    pub(crate) fn generate(
        rng: &mut ChaCha8Rng,
        services: usize,
        instances_per_generation: (usize, usize),
    ) -> Fleet {
        let services = services.max(1);
        let (min_instances, max_instances) = (
            instances_per_generation.0.max(1),
            instances_per_generation
                .1
                .max(instances_per_generation.0.max(1)),
        );
        let mut instances = Vec::new();
        let mut weights = Vec::new();
        for service_index in 0..services {
            let service_name = match SERVICE_NAMES.get(service_index) {
                Some(name) => name.to_string(),
                None => format!(
                    "{}-{}",
                    SERVICE_NAMES[service_index % SERVICE_NAMES.len()],
                    service_index / SERVICE_NAMES.len()
                ),
            };
            // A few busy services and a long quiet tail.
            let service_weight = 1.0 / (service_index as f64 + 1.0).powf(0.8);
            let version_count = rng.random_range(2..=3);
            // Oldest first: draining, current, canary.
            let version_shares: &[f64] = if version_count == 2 {
                &[0.25, 0.75]
            } else {
                &[0.05, 0.80, 0.15]
            };
            let first_generation = rng.random_range(3..120);
            let mut day = rng.random_range(1..=12);
            for (version_index, version_share) in version_shares.iter().enumerate() {
                day += rng.random_range(1..=6);
                let image_version = format!("2026.11.{day:02}-{:04x}", rng.random::<u16>());
                let image_id = format!("ami-0{:016x}", rng.random::<u64>());
                let generation = (first_generation + version_index).to_string();
                let instance_count = rng.random_range(min_instances..=max_instances);
                for _ in 0..instance_count {
                    let mut host_id = String::from("i-0");
                    let _ = write!(host_id, "{:016x}", rng.random::<u64>());
                    let host_name = format!(
                        "ip-10-0-{}-{}.ec2.internal",
                        rng.random_range(0..64),
                        rng.random_range(1..255)
                    );
                    instances.push(Instance {
                        service_index,
                        service_name: service_name.clone(),
                        image_name: format!("{service_name}-golden"),
                        image_version: image_version.clone(),
                        image_id: image_id.clone(),
                        generation: generation.clone(),
                        host_id,
                        host_name,
                        environment: "prod".to_string(),
                        region: "us-east-1".to_string(),
                        zone: ZONES[rng.random_range(0..ZONES.len())].to_string(),
                    });
                    weights.push(service_weight * version_share / instance_count as f64);
                }
            }
        }
        let traffic = WeightedIndex::new(&weights)
            .expect("fleet weights are positive and finite by construction");
        Fleet { instances, traffic }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instance(&self, index: usize) -> &Instance {
        &self.instances[index]
    }

    pub(crate) fn traffic(&self) -> &WeightedIndex<f64> {
        &self.traffic
    }
}
