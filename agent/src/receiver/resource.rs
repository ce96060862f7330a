//! Giving an application's records the instance's identity.
//!
//! An application's OpenTelemetry SDK describes itself with a resource of its own
//! (`service.name`, `telemetry.sdk.*`, `process.*`, ...). It cannot know which golden
//! image, generation or instance it runs on, and when it guesses (an SDK's default
//! `service.name` is `unknown_service:python`), its guess must not decide where the
//! server files its records.
//!
//! Received records travel in the agent's own batches, exactly as file lines do: under
//! the agent's resource (its [`crate::identity::Identity`]) and the agent's scope. What
//! the application said around its records therefore moves onto each record:
//!
//! - the application's resource attributes become record attributes, **except** the
//!   identity keys: every key of the agent's resource, and the core identity keys
//!   ([`CORE_IDENTITY_KEYS`]: service, image, generation, instance) even where the
//!   agent has no value for one — an application's `deployment.generation` is dropped
//!   when the agent knows none, rather than filing the records under a generation this
//!   instance does not belong to;
//! - the application's instrumentation scope becomes `otel.scope.name` and
//!   `otel.scope.version`, the OpenTelemetry names for a scope carried as attributes;
//! - a record's own attribute wins over a resource or scope attribute of the same key.
//!
//! The server stores resource attributes that are not identity fields together with the
//! record's attributes, so a search shows an application's `telemetry.sdk.language` or
//! `process.pid` the same way whether it came through the agent or straight from the
//! SDK. Records keep their body, severity, times, flags and trace context; only a record
//! without an `observed_time_unix_nano` gets the time the agent received it, as the
//! OpenTelemetry data model asks of the first collector that sees a record.

use std::collections::HashSet;

use epitaph_proto::collector::logs::v1::ExportLogsServiceRequest;
use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_proto::resource::v1::Resource;

/// The identity keys an application never sets: they say which image, generation and
/// instance a record comes from, which only the agent knows.
pub const CORE_IDENTITY_KEYS: [&str; 7] = [
    keys::SERVICE_NAME,
    keys::IMAGE_NAME,
    keys::IMAGE_VERSION,
    keys::IMAGE_ID,
    keys::GENERATION,
    keys::HOST_ID,
    keys::HOST_NAME,
];
pub const ATTRIBUTE_SCOPE_NAME: &str = "otel.scope.name";
pub const ATTRIBUTE_SCOPE_VERSION: &str = "otel.scope.version";

/// Turns received requests into records for the agent's batches.
#[derive(Debug, Clone)]
pub struct IdentityMerge {
    /// The resource keys an application's value is dropped for.
    identity_keys: HashSet<String>,
}

impl IdentityMerge {
    /// The merge for an agent whose resource is `agent`.
    pub fn new(agent: &Resource) -> IdentityMerge {
        let mut identity_keys: HashSet<String> = CORE_IDENTITY_KEYS
            .iter()
            .map(|key| key.to_string())
            .collect();
        identity_keys.extend(agent.attributes.iter().map(|kv| kv.key.clone()));
        IdentityMerge { identity_keys }
    }

    /// The records of `request`, each carrying its application's resource and scope as
    /// the module documentation says; `observed_unix_nano` fills in a missing observed
    /// time.
    pub fn records_of(
        &self,
        request: ExportLogsServiceRequest,
        observed_unix_nano: u64,
    ) -> Vec<LogRecord> {
        let mut records = Vec::new();
        for resource_logs in request.resource_logs {
            let resource_attributes: Vec<KeyValue> = resource_logs
                .resource
                .map(|resource| resource.attributes)
                .unwrap_or_default()
                .into_iter()
                .filter(|kv| !self.identity_keys.contains(&kv.key))
                .collect();
            for scope_logs in resource_logs.scope_logs {
                let mut inherited = resource_attributes.clone();
                if let Some(scope) = scope_logs.scope {
                    if !scope.name.is_empty() {
                        inherited.push(string_attribute(ATTRIBUTE_SCOPE_NAME, scope.name));
                    }
                    if !scope.version.is_empty() {
                        inherited.push(string_attribute(ATTRIBUTE_SCOPE_VERSION, scope.version));
                    }
                    inherited.extend(scope.attributes);
                }
                for mut record in scope_logs.log_records {
                    for attribute in &inherited {
                        if !record.attributes.iter().any(|own| own.key == attribute.key) {
                            record.attributes.push(attribute.clone());
                        }
                    }
                    if record.observed_time_unix_nano == 0 {
                        record.observed_time_unix_nano = observed_unix_nano;
                    }
                    records.push(record);
                }
            }
        }
        records
    }
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epitaph_proto::common::v1::InstrumentationScope;
    use epitaph_proto::logs::v1::{ResourceLogs, ScopeLogs};

    fn string(key: &str, value: &str) -> KeyValue {
        string_attribute(key, value.to_string())
    }

    fn values_of<'a>(record: &'a LogRecord, key: &str) -> Vec<&'a str> {
        record
            .attributes
            .iter()
            .filter(|kv| kv.key == key)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn agent() -> IdentityMerge {
        IdentityMerge::new(&Resource {
            attributes: vec![
                string(keys::SERVICE_NAME, "checkout"),
                string(keys::IMAGE_NAME, "checkout-golden"),
                string(keys::IMAGE_VERSION, "2026.11.26-3f2a"),
                string(keys::HOST_ID, "i-0abc"),
                string(keys::HOST_NAME, "ip-10-0-0-5"),
                string(keys::REGION, "eu-west-1"),
            ],
            ..Default::default()
        })
    }

    fn request(
        resource: Vec<KeyValue>,
        scope: Option<&str>,
        records: Vec<LogRecord>,
    ) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: scope.map(|name| InstrumentationScope {
                        name: name.to_string(),
                        version: "1.2".to_string(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn identity_keys_of_the_application_are_dropped_and_the_rest_moves_onto_records() {
        let records = agent().records_of(
            request(
                vec![
                    string(keys::SERVICE_NAME, "unknown_service:python"),
                    string(keys::IMAGE_VERSION, "stale-guess"),
                    string(keys::HOST_ID, "container-7"),
                    // The agent knows the region: the application's is not kept.
                    string(keys::REGION, "us-east-1"),
                    string("telemetry.sdk.language", "python"),
                    string("process.pid", "4242"),
                ],
                Some("payments"),
                vec![LogRecord::default()],
            ),
            1,
        );
        assert_eq!(records.len(), 1);
        let record = &records[0];
        for identity_key in [
            keys::SERVICE_NAME,
            keys::IMAGE_VERSION,
            keys::HOST_ID,
            keys::REGION,
        ] {
            assert!(values_of(record, identity_key).is_empty(), "{identity_key}");
        }
        assert_eq!(values_of(record, "telemetry.sdk.language"), ["python"]);
        assert_eq!(values_of(record, "process.pid"), ["4242"]);
        assert_eq!(values_of(record, ATTRIBUTE_SCOPE_NAME), ["payments"]);
        assert_eq!(values_of(record, ATTRIBUTE_SCOPE_VERSION), ["1.2"]);
    }

    #[test]
    fn an_application_cannot_claim_a_generation_the_agent_does_not_know() {
        // The agent above has no deployment.generation and no image id; it has no zone.
        let records = agent().records_of(
            request(
                vec![
                    string(keys::GENERATION, "99"),
                    string(keys::IMAGE_ID, "ami-forged"),
                    string(keys::ZONE, "us-east-1a"),
                ],
                None,
                vec![LogRecord::default()],
            ),
            1,
        );
        assert!(values_of(&records[0], keys::GENERATION).is_empty());
        assert!(values_of(&records[0], keys::IMAGE_ID).is_empty());
        // A placement key the agent does not know is the application's to give.
        assert_eq!(values_of(&records[0], keys::ZONE), ["us-east-1a"]);
        assert!(values_of(&records[0], ATTRIBUTE_SCOPE_NAME).is_empty());
    }

    #[test]
    fn record_attributes_win_and_record_fields_are_kept() {
        let own = LogRecord {
            time_unix_nano: 5,
            severity_number: 17,
            severity_text: "ERROR".to_string(),
            trace_id: vec![7; 16],
            attributes: vec![string("process.pid", "1")],
            ..Default::default()
        };
        let observed = LogRecord {
            observed_time_unix_nano: 7,
            ..Default::default()
        };
        let records = agent().records_of(
            request(
                vec![string("process.pid", "4242")],
                Some("app"),
                vec![own, observed],
            ),
            1_000,
        );
        assert_eq!(values_of(&records[0], "process.pid"), ["1"]);
        assert_eq!(records[0].time_unix_nano, 5);
        assert_eq!(records[0].observed_time_unix_nano, 1_000);
        assert_eq!(records[0].severity_number, 17);
        assert_eq!(records[0].trace_id, vec![7; 16]);
        assert_eq!(records[1].observed_time_unix_nano, 7);
        assert_eq!(values_of(&records[1], "process.pid"), ["4242"]);
    }
}
