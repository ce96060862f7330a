//! Who this instance is: the resource attributes attached to everything the agent sends.
//!
//! Identity comes in layers, lowest precedence first:
//!
//! 1. host fallbacks: `host.name` from the kernel's hostname, `host.id` from
//!    `/etc/machine-id` — used only when nothing else names the host;
//! 2. the identity file baked into the golden image at build time (`service`,
//!    `image_name`, `image_version`, optional `image_id` and `[attributes]`);
//! 3. `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded as the OpenTelemetry
//!    specification says), which carries per-instance values such as
//!    `deployment.generation` and overrides everything above;
//! 4. `OTEL_SERVICE_NAME`, which overrides `service.name` (also per the specification).
//!
//! A malformed `OTEL_RESOURCE_ATTRIBUTES` is discarded as a whole with a warning, as the
//! specification asks, rather than half-applied.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use epitaph_proto::common::v1::{AnyValue, KeyValue, any_value};
use epitaph_proto::keys;
use epitaph_proto::resource::v1::Resource;
use serde::Deserialize;
use tracing::warn;

use crate::config::EnvLookup;

/// The identity file as baked into the image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub service: String,
    pub image_name: String,
    pub image_version: String,
    #[serde(default)]
    pub image_id: Option<String>,
    /// Extra resource attributes, e.g. `"deployment.environment.name" = "prod"`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// What the machine itself says about the host, read once at start.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub machine_id: Option<String>,
}

impl HostFacts {
    /// Reads the hostname from the kernel (falling back to `/etc/hostname`) and the
    /// machine id from `/etc/machine-id`; either may be absent.
    pub fn read() -> HostFacts {
        let hostname = read_trimmed(Path::new("/proc/sys/kernel/hostname"))
            .or_else(|| read_trimmed(Path::new("/etc/hostname")));
        let machine_id = read_trimmed(Path::new("/etc/machine-id"));
        HostFacts {
            hostname,
            machine_id,
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
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

    /// Reads the identity file at `path` and layers the host and environment on top.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> anyhow::Result<Identity> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading identity file {} (set identity_file or EPITAPH_IDENTITY_FILE)",
                path.display()
            )
        })?;
        let file: IdentityFile = toml::from_str(&text)
            .with_context(|| format!("parsing identity file {}", path.display()))?;
        Ok(Identity::resolve(&file, env, &HostFacts::read()))
    }

    /// The layering described in the module documentation.
    pub fn resolve(file: &IdentityFile, env: EnvLookup<'_>, host: &HostFacts) -> Identity {
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
