//! Who this instance is: the resource attributes attached to everything the agent sends.
//!
//! A golden image is built once and booted many times, so identity has two halves: what
//! the image is (baked into the identity file at build time by `epitaph-agent install`)
//! and which instance this is (learned at every boot). Layers, lowest precedence first:
//!
//! 1. **the machine**: `host.name` from the kernel's hostname, `host.id` from
//!    `/etc/machine-id` — fallbacks for when nothing better names the host;
//! 2. **the identity file** baked into the image (`service`, `image_name`,
//!    `image_version`, optional `image_id` and `[attributes]`);
//! 3. **the cloud metadata service** (EC2 IMDSv2 or GCP, see [`metadata`]): `host.id`,
//!    `host.name`, `host.type`, `cloud.*` placement and, when the instance is tagged with
//!    it, `deployment.generation`; on EC2 also `host.image.id` (the AMI), which only fills
//!    in when the identity file names no image id;
//! 4. **the instance file** that user-data may write at boot (default
//!    `/run/epitaph/instance.env`, see [`instance_file`]);
//! 5. **`OTEL_RESOURCE_ATTRIBUTES`** (`k=v,k2=v2`, values percent-decoded as the
//!    OpenTelemetry specification says), then **`OTEL_SERVICE_NAME`** for `service.name`.
//!
//! Each layer overrides the keys it names and leaves the rest alone, so an operator can
//! set just `deployment.generation` in user-data and still get `host.id` from the cloud.
//! The per-instance layers sit above the baked file because a value that differs per
//! instance can only be right when it comes from the instance.
//!
//! A malformed `OTEL_RESOURCE_ATTRIBUTES` is discarded as a whole with a warning, as the
//! specification asks, rather than half-applied. Nothing found at boot (no instance
//! file, no metadata service) is an error: the agent starts with what it has.

pub mod instance_file;
pub mod metadata;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use epitaph_proto::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::{Config, EnvLookup};
use crate::identity::metadata::{Cloud, MetadataSettings};

/// The identity file as baked into the image.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub service: String,
    pub image_name: String,
    pub image_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Extra resource attributes, e.g. `"deployment.environment.name" = "prod"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl IdentityFile {
    /// Reads and parses the identity file at `path`; errors name the file.
    pub fn read(path: &Path) -> anyhow::Result<IdentityFile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading identity file {} (set identity_file or EPITAPH_IDENTITY_FILE)",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("parsing identity file {}", path.display()))
    }
}

/// What the machine itself says about the host, read once at start.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub machine_id: Option<String>,
    /// The cloud the firmware (DMI) names, which decides whether `metadata = "auto"`
    /// asks a metadata service at all.
    pub firmware_cloud: Option<Cloud>,
}

impl HostFacts {
    /// Reads the hostname from the kernel (falling back to `/etc/hostname`), the machine
    /// id from `/etc/machine-id` and the firmware's vendor from DMI; any may be absent.
    pub fn read() -> HostFacts {
        let hostname = read_trimmed(Path::new("/proc/sys/kernel/hostname"))
            .or_else(|| read_trimmed(Path::new("/etc/hostname")));
        let machine_id = read_trimmed(Path::new("/etc/machine-id"));
        HostFacts {
            hostname,
            machine_id,
            firmware_cloud: metadata::cloud_named_by_firmware(Path::new("/")),
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// What was learned about this instance at boot, between the baked file and the
/// environment (layers 3 and 4 of the module documentation).
#[derive(Debug, Clone, Default)]
pub struct BootFacts {
    /// What the cloud metadata service said.
    pub cloud_metadata: BTreeMap<String, String>,
    /// What the instance file said, in file order.
    pub instance_file: Vec<(String, String)>,
}

/// The resolved resource attributes of this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    attributes: BTreeMap<String, String>,
}

impl Identity {
    /// Builds an identity from explicit attributes (tests, embedding).
    pub fn from_attributes(attributes: BTreeMap<String, String>) -> Identity {
        Identity { attributes }
    }

    /// Reads the identity file at `path` and layers the host and environment on top,
    /// without the boot-time sources (instance file, cloud metadata); see
    /// [`Identity::resolve_at_boot`] for everything.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> anyhow::Result<Identity> {
        let file = IdentityFile::read(path)?;
        Ok(Identity::resolve(&file, env, &HostFacts::read()))
    }

    /// Everything the agent knows at start, in the order of the module documentation:
    /// the machine, the identity file, the cloud metadata service (at most
    /// [`metadata::METADATA_BUDGET`] of waiting), the instance file, the environment.
    ///
    /// Errors are configuration errors (unreadable identity file, malformed
    /// `metadata_endpoint`); a missing instance file or metadata service is not one.
    pub async fn resolve_at_boot(config: &Config, env: EnvLookup<'_>) -> anyhow::Result<Identity> {
        Identity::resolve_at_boot_on(config, env, HostFacts::read()).await
    }

    /// [`Identity::resolve_at_boot`] with the machine's facts given rather than read, so
    /// tests can pose as any machine.
    pub async fn resolve_at_boot_on(
        config: &Config,
        env: EnvLookup<'_>,
        host: HostFacts,
    ) -> anyhow::Result<Identity> {
        let file = IdentityFile::read(&config.identity_file)?;
        let settings = MetadataSettings::new(config.metadata, &config.metadata_endpoint)
            .map_err(anyhow::Error::msg)
            .context("invalid configuration")?;
        let instance_file = instance_file::read(&config.instance_identity_file);
        let cloud_metadata = metadata::discover(&settings, host.firmware_cloud).await;
        let boot = BootFacts {
            cloud_metadata,
            instance_file,
        };
        let identity = Identity::resolve_with_boot_facts(&file, env, &host, &boot);
        info!(
            service = identity.get(keys::SERVICE_NAME).unwrap_or_default(),
            image_version = identity.get(keys::IMAGE_VERSION).unwrap_or_default(),
            host_id = identity.get(keys::HOST_ID).unwrap_or_default(),
            host_name = identity.get(keys::HOST_NAME).unwrap_or_default(),
            generation = identity.get(keys::GENERATION).unwrap_or_default(),
            from_metadata = !boot.cloud_metadata.is_empty(),
            from_instance_file = !boot.instance_file.is_empty(),
            "identity resolved"
        );
        Ok(identity)
    }

    /// The machine, the identity file and the environment (no boot-time sources).
    pub fn resolve(file: &IdentityFile, env: EnvLookup<'_>, host: &HostFacts) -> Identity {
        Identity::resolve_with_boot_facts(file, env, host, &BootFacts::default())
    }

    /// The whole layering described in the module documentation.
    pub fn resolve_with_boot_facts(
        file: &IdentityFile,
        env: EnvLookup<'_>,
        host: &HostFacts,
        boot: &BootFacts,
    ) -> Identity {
        let mut attributes = BTreeMap::new();
        if let Some(hostname) = &host.hostname {
            attributes.insert(keys::HOST_NAME.to_string(), hostname.clone());
        }
        if let Some(machine_id) = &host.machine_id {
            attributes.insert(keys::HOST_ID.to_string(), machine_id.clone());
        }

        for (key, value) in &file.attributes {
            attributes.insert(key.clone(), value.clone());
        }
        attributes.insert(keys::SERVICE_NAME.to_string(), file.service.clone());
        attributes.insert(keys::IMAGE_NAME.to_string(), file.image_name.clone());
        attributes.insert(keys::IMAGE_VERSION.to_string(), file.image_version.clone());
        if let Some(image_id) = &file.image_id {
            attributes.insert(keys::IMAGE_ID.to_string(), image_id.clone());
        }

        for (key, value) in &boot.cloud_metadata {
            // The baked image id is what the builder named the image; the cloud's (the AMI
            // an EC2 instance booted from) only fills in where the builder could not know
            // it — Packer, for one, makes the AMI after the build has run.
            if key == keys::IMAGE_ID && file.image_id.is_some() {
                continue;
            }
            attributes.insert(key.clone(), value.clone());
        }
        attributes.extend(boot.instance_file.iter().cloned());

        if let Some(raw) = env("OTEL_RESOURCE_ATTRIBUTES") {
            match parse_otel_resource_attributes(&raw) {
                Ok(pairs) => attributes.extend(pairs),
                Err(reason) => {
                    warn!(%reason, "ignoring the whole of OTEL_RESOURCE_ATTRIBUTES")
                }
            }
        }
        if let Some(service) = env("OTEL_SERVICE_NAME").filter(|name| !name.trim().is_empty()) {
            attributes.insert(keys::SERVICE_NAME.to_string(), service.trim().to_string());
        }
        Identity { attributes }
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The OTLP resource: every attribute as a string value.
    pub fn to_resource(&self) -> Resource {
        let attributes = self
            .attributes
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.clone())),
                }),
                ..Default::default()
            })
            .collect();
        Resource {
            attributes,
            ..Default::default()
        }
    }
}

/// Parses `k=v,k2=v2` as the OpenTelemetry SDK environment specification defines it:
/// entries separated by `,`, key and value by the first `=`, surrounding whitespace
/// trimmed, values percent-decoded. Empty entries are skipped; any malformed entry fails
/// the whole string.
pub fn parse_otel_resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry `{entry}` has no `=`"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("entry `{entry}` has an empty key"));
        }
        let value =
            percent_decode(value.trim()).map_err(|reason| format!("value of `{key}`: {reason}"))?;
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'%' {
            decoded.push(bytes[index]);
            index += 1;
            continue;
        }
        let high = bytes.get(index + 1).and_then(|b| (*b as char).to_digit(16));
        let low = bytes.get(index + 2).and_then(|b| (*b as char).to_digit(16));
        let (Some(high), Some(low)) = (high, low) else {
            return Err(format!("bad percent escape at byte {index}"));
        };
        decoded.push((high * 16 + low) as u8);
        index += 3;
    }
    String::from_utf8(decoded).map_err(|_| "percent-decoded value is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn baked() -> IdentityFile {
        toml::from_str(
            r#"
            service = "web"
            image_name = "web-golden"
            image_version = "2026.11.26-3f2a"
            image_id = "ami-0abc"
            [attributes]
            "deployment.environment.name" = "prod"
            "cloud.region" = "eu-west-1"
            "#,
        )
        .unwrap()
    }

    fn host() -> HostFacts {
        HostFacts {
            hostname: Some("ip-10-0-0-1".into()),
            machine_id: Some("abcdef0123".into()),
            firmware_cloud: None,
        }
    }

    #[test]
    fn identity_file_and_host_fill_the_resource() {
        let identity = Identity::resolve(&baked(), &env_of(&[]), &host());
        assert_eq!(identity.get(keys::SERVICE_NAME), Some("web"));
        assert_eq!(identity.get(keys::IMAGE_NAME), Some("web-golden"));
        assert_eq!(identity.get(keys::IMAGE_VERSION), Some("2026.11.26-3f2a"));
        assert_eq!(identity.get(keys::IMAGE_ID), Some("ami-0abc"));
        assert_eq!(identity.get(keys::ENVIRONMENT), Some("prod"));
        assert_eq!(identity.get(keys::HOST_NAME), Some("ip-10-0-0-1"));
        assert_eq!(identity.get(keys::HOST_ID), Some("abcdef0123"));
        assert_eq!(identity.get(keys::GENERATION), None);
    }

    #[test]
    fn resource_attributes_env_overrides_identity_file() {
        let env = env_of(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.generation=42, host.image.version=override ,host.name=i-123",
            ),
            ("OTEL_SERVICE_NAME", "api"),
        ]);
        let identity = Identity::resolve(&baked(), &env, &host());
        assert_eq!(identity.get(keys::GENERATION), Some("42"));
        assert_eq!(identity.get(keys::IMAGE_VERSION), Some("override"));
        assert_eq!(identity.get(keys::HOST_NAME), Some("i-123"));
        assert_eq!(identity.get(keys::SERVICE_NAME), Some("api"));
    }

    #[test]
    fn boot_facts_sit_between_the_identity_file_and_the_environment() {
        let boot = BootFacts {
            cloud_metadata: BTreeMap::from([
                (keys::HOST_ID.to_string(), "i-meta".to_string()),
                (keys::REGION.to_string(), "us-east-1".to_string()),
                (keys::GENERATION.to_string(), "from-tag".to_string()),
                (keys::IMAGE_ID.to_string(), "ami-from-metadata".to_string()),
            ]),
            instance_file: vec![
                (keys::GENERATION.to_string(), "from-file".to_string()),
                (keys::HOST_NAME.to_string(), "from-file".to_string()),
            ],
        };
        let identity = Identity::resolve_with_boot_facts(&baked(), &env_of(&[]), &host(), &boot);
        // Metadata beats the machine and the baked file's cloud.region.
        assert_eq!(identity.get(keys::HOST_ID), Some("i-meta"));
        assert_eq!(identity.get(keys::REGION), Some("us-east-1"));
        // The instance file beats the metadata.
        assert_eq!(identity.get(keys::GENERATION), Some("from-file"));
        assert_eq!(identity.get(keys::HOST_NAME), Some("from-file"));
        assert_eq!(identity.get(keys::SERVICE_NAME), Some("web"));
        // A baked image id stands; the cloud's only fills in a missing one.
        assert_eq!(identity.get(keys::IMAGE_ID), Some("ami-0abc"));
        let unnamed_image = IdentityFile {
            image_id: None,
            ..baked()
        };
        let identity =
            Identity::resolve_with_boot_facts(&unnamed_image, &env_of(&[]), &host(), &boot);
        assert_eq!(identity.get(keys::IMAGE_ID), Some("ami-from-metadata"));

        let env = env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.generation=from-env")]);
        let identity = Identity::resolve_with_boot_facts(&baked(), &env, &host(), &boot);
        assert_eq!(identity.get(keys::GENERATION), Some("from-env"));
    }

    #[test]
    fn otel_service_name_beats_service_name_in_resource_attributes() {
        let env = env_of(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-service-name"),
        ]);
        let identity = Identity::resolve(&baked(), &env, &host());
        assert_eq!(identity.get(keys::SERVICE_NAME), Some("from-service-name"));
    }

    #[test]
    fn otel_resource_attributes_values_are_percent_decoded() {
        let pairs =
            parse_otel_resource_attributes("team=a%2Cb%3Dc,note=hello%20world,plain=x").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("team".to_string(), "a,b=c".to_string()),
                ("note".to_string(), "hello world".to_string()),
                ("plain".to_string(), "x".to_string()),
            ]
        );
        assert_eq!(
            parse_otel_resource_attributes("k=caf%C3%A9").unwrap()[0].1,
            "café"
        );
    }

    #[test]
    fn malformed_resource_attributes_are_discarded_whole() {
        assert!(parse_otel_resource_attributes("a=1,b=%zz").is_err());
        assert!(parse_otel_resource_attributes("a=1,novalue").is_err());
        let env = env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.generation=7,b=%zz")]);
        let identity = Identity::resolve(&baked(), &env, &host());
        assert_eq!(identity.get(keys::GENERATION), None);
    }

    #[test]
    fn missing_identity_file_error_names_the_path() {
        let error =
            Identity::load(Path::new("/nonexistent/identity.toml"), &env_of(&[])).unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/identity.toml"),
            "{error:#}"
        );
    }

    #[test]
    fn identity_file_with_unknown_field_is_rejected() {
        let result: Result<IdentityFile, _> = toml::from_str(
            "service = \"web\"\nimage_name = \"a\"\nimage_version = \"1\"\nimage_verison = \"2\"\n",
        );
        assert!(result.is_err());
    }

    #[test]
    fn resource_carries_every_attribute_as_a_string() {
        let identity = Identity::resolve(&baked(), &env_of(&[]), &host());
        let resource = identity.to_resource();
        assert_eq!(resource.attributes.len(), identity.attributes().len());
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == keys::SERVICE_NAME)
            .unwrap();
        assert_eq!(
            service.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("web".into()))
        );
    }
}
