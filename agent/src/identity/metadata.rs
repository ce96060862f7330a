//! The cloud's own answer to "who is this instance": EC2's and GCP's metadata services.
//!
//! Both listen on `169.254.169.254`, a link-local address that exists only on their
//! instances. Asking it elsewhere (a laptop, a data-centre VM, a CI runner) means waiting
//! for a connect that never completes, so the design is about not waiting:
//!
//! - **A hard budget.** Everything — connects, the EC2 token, every lookup — shares one
//!   deadline, [`METADATA_BUDGET`] after the first request; connects give up after
//!   [`http::CONNECT_TIMEOUT`]. Lookups run concurrently, and in `auto` mode EC2 and GCP
//!   are probed concurrently too, so an absent service costs at most one budget.
//! - **Only where a cloud is plausible.** In `auto` mode with the default endpoint the
//!   agent first reads what the firmware says (DMI: `sys_vendor`, `bios_vendor`, …; EC2
//!   says `Amazon EC2` or a `…amazon` BIOS, GCP says `Google`), as cloud-init does, and asks
//!   only the cloud the machine claims to be. A machine that names neither is never sent
//!   a packet to `169.254.169.254`. An explicit `metadata = "ec2"`/`"gcp"`, or a
//!   non-default `metadata_endpoint`, skips that check.
//! - **Best effort.** A lookup that fails leaves its key to the layers below (machine id,
//!   hostname); the agent starts either way.
//!
//! What each cloud yields, in OpenTelemetry resource semantic conventions: `cloud.provider`,
//! `cloud.platform`, `cloud.region`, `cloud.availability_zone`, `cloud.account.id`,
//! `host.id`, `host.name`, `host.type`, and `deployment.generation` when the instance is
//! tagged with it (see [`ec2`] and [`gcp`]).

pub mod ec2;
pub mod gcp;
pub mod http;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use http::Endpoint;

/// Where both clouds' metadata services listen.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// The most time metadata lookups may add to the agent's start.
pub const METADATA_BUDGET: Duration = Duration::from_secs(1);

/// Which metadata service to ask (`metadata` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetadataMode {
    /// Ask the cloud the firmware names (both, concurrently, at a non-default endpoint).
    #[default]
    Auto,
    /// EC2's instance metadata service, with the IMDSv2 token flow.
    Ec2,
    /// Google Compute Engine's metadata server.
    Gcp,
    /// Ask nothing.
    None,
}

/// A cloud whose metadata service the agent knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Ec2,
    Gcp,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Ec2 => "ec2",
            Cloud::Gcp => "gcp",
        }
    }
}

/// The DMI files that name a machine's maker, relative to the root they are read from.
const FIRMWARE_FILES: [&str; 6] = [
    "sys/class/dmi/id/sys_vendor",
    "sys/class/dmi/id/bios_vendor",
    "sys/class/dmi/id/bios_version",
    "sys/class/dmi/id/board_vendor",
    "sys/class/dmi/id/product_name",
    // Xen-based EC2 instances (older families) have no Amazon DMI, but this uuid.
    "sys/hypervisor/uuid",
];

/// Which cloud, if any, the firmware under `root` (normally `/`) says this machine is in.
pub fn cloud_named_by_firmware(root: &Path) -> Option<Cloud> {
    let texts: Vec<String> = FIRMWARE_FILES
        .iter()
        .filter_map(|relative| std::fs::read_to_string(root.join(relative)).ok())
        .collect();
    cloud_named_by(texts.iter().map(String::as_str))
}

fn cloud_named_by<'a>(firmware_texts: impl Iterator<Item = &'a str>) -> Option<Cloud> {
    for text in firmware_texts {
        let text = text.trim().to_ascii_lowercase();
        if text.contains("amazon") || text.starts_with("ec2") {
            return Some(Cloud::Ec2);
        }
        if text.contains("google") {
            return Some(Cloud::Gcp);
        }
    }
    None
}

/// How to look up cloud metadata, from the configuration.
#[derive(Debug, Clone)]
pub struct MetadataSettings {
    pub mode: MetadataMode,
    pub endpoint: Endpoint,
    /// Whether `endpoint` is the clouds' own address (then `auto` trusts the firmware).
    pub endpoint_is_default: bool,
    pub budget: Duration,
}

impl MetadataSettings {
    /// Checks `metadata_endpoint`; the error names the setting.
    pub fn new(mode: MetadataMode, endpoint: &str) -> Result<MetadataSettings, String> {
        let parsed = Endpoint::parse(endpoint)?;
        let endpoint_is_default = parsed == Endpoint::parse(DEFAULT_METADATA_ENDPOINT)?;
        Ok(MetadataSettings {
            mode,
            endpoint: parsed,
            endpoint_is_default,
            budget: METADATA_BUDGET,
        })
    }

    /// The clouds to probe, given what the firmware says.
    fn clouds_to_probe(&self, firmware_cloud: Option<Cloud>) -> Vec<Cloud> {
        match self.mode {
            MetadataMode::None => vec![],
            MetadataMode::Ec2 => vec![Cloud::Ec2],
            MetadataMode::Gcp => vec![Cloud::Gcp],
            MetadataMode::Auto if !self.endpoint_is_default => vec![Cloud::Ec2, Cloud::Gcp],
            MetadataMode::Auto => firmware_cloud.into_iter().collect(),
        }
    }
}

/// What the metadata service said, as resource attributes (empty when nothing answered).
pub async fn discover(
    settings: &MetadataSettings,
    firmware_cloud: Option<Cloud>,
) -> BTreeMap<String, String> {
    let clouds = settings.clouds_to_probe(firmware_cloud);
    if clouds.is_empty() {
        if settings.mode == MetadataMode::Auto {
            info!(
                "cloud metadata not asked: the firmware names no known cloud (set metadata = \"ec2\" or \"gcp\" to ask anyway)"
            );
        }
        return BTreeMap::new();
    }
    let started = Instant::now();
    let deadline = started + settings.budget;
    let wants = |cloud| clouds.contains(&cloud);
    // Concurrent, so that in `auto` mode the cloud that is absent costs no extra time.
    let (ec2_answer, gcp_answer) = tokio::join!(
        async {
            if !wants(Cloud::Ec2) {
                return None;
            }
            Some(ec2::probe(&settings.endpoint, deadline).await)
        },
        async {
            if !wants(Cloud::Gcp) {
                return None;
            }
            Some(gcp::probe(&settings.endpoint, deadline).await)
        },
    );

    let explicit = settings.mode != MetadataMode::Auto;
    let mut found = None;
    for (cloud, answer) in [(Cloud::Ec2, ec2_answer), (Cloud::Gcp, gcp_answer)] {
        match answer {
            None => {}
            // EC2 first when both answer, which only a test's fake endpoint can make happen.
            Some(Ok(attributes)) if found.is_none() => found = Some((cloud, attributes)),
            Some(Ok(_)) => {}
            Some(Err(reason)) if explicit => warn!(
                cloud = cloud.name(),
                endpoint = %settings.endpoint,
                %reason,
                "cloud metadata service did not answer, identity falls back to the machine id"
            ),
            Some(Err(reason)) => debug!(
                cloud = cloud.name(),
                endpoint = %settings.endpoint,
                %reason,
                "no cloud metadata service"
            ),
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match found {
        Some((cloud, attributes)) => {
            info!(
                cloud = cloud.name(),
                keys = attributes.len(),
                elapsed_ms,
                "read identity from the cloud metadata service"
            );
            attributes
        }
        None => {
            debug!(elapsed_ms, "cloud metadata lookup gave nothing");
            BTreeMap::new()
        }
    }
}

/// Inserts `value` under `key` when it is a usable attribute value: trimmed, non-empty,
/// one line. A metadata service that answers with an HTML error page gets no say.
fn insert_value(attributes: &mut BTreeMap<String, String>, key: &str, value: Option<String>) {
    let Some(value) = value else { return };
    let value = value.trim();
    if value.is_empty() || value.len() > 1024 || value.contains(['\n', '\r', '<']) {
        return;
    }
    attributes.insert(key.to_string(), value.to_string());
}

/// The body of a successful response, or `None` (404, error, timeout).
fn success_body(response: Result<http::Response, http::RequestError>) -> Option<String> {
    response
        .ok()
        .filter(http::Response::is_success)
        .map(|response| response.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_names_the_cloud() {
        assert_eq!(
            cloud_named_by(["Amazon EC2\n"].into_iter()),
            Some(Cloud::Ec2)
        );
        assert_eq!(
            cloud_named_by(["Xen\n", "4.11.amazon\n"].into_iter()),
            Some(Cloud::Ec2)
        );
        assert_eq!(
            cloud_named_by(["ec2e1916-9099-7caf-fd21-012345abcdef\n"].into_iter()),
            Some(Cloud::Ec2)
        );
        assert_eq!(
            cloud_named_by(["Google\n", "Google Compute Engine\n"].into_iter()),
            Some(Cloud::Gcp)
        );
        assert_eq!(cloud_named_by(["QEMU\n", "Standard PC"].into_iter()), None);
        assert_eq!(cloud_named_by(std::iter::empty()), None);
    }

    #[test]
    fn firmware_is_read_from_the_dmi_files_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(cloud_named_by_firmware(root.path()), None);
        let dmi = root.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(dmi.join("product_name"), "Google Compute Engine\n").unwrap();
        assert_eq!(cloud_named_by_firmware(root.path()), Some(Cloud::Gcp));
    }

    #[test]
    fn auto_asks_only_the_cloud_the_firmware_names_at_the_default_endpoint() {
        let settings =
            MetadataSettings::new(MetadataMode::Auto, DEFAULT_METADATA_ENDPOINT).unwrap();
        assert!(settings.endpoint_is_default);
        assert_eq!(settings.clouds_to_probe(None), vec![]);
        assert_eq!(settings.clouds_to_probe(Some(Cloud::Gcp)), vec![Cloud::Gcp]);

        let settings = MetadataSettings::new(MetadataMode::Auto, "http://127.0.0.1:9").unwrap();
        assert_eq!(settings.clouds_to_probe(None), vec![Cloud::Ec2, Cloud::Gcp]);

        let settings = MetadataSettings::new(MetadataMode::Ec2, DEFAULT_METADATA_ENDPOINT).unwrap();
        assert_eq!(settings.clouds_to_probe(None), vec![Cloud::Ec2]);
        let settings = MetadataSettings::new(MetadataMode::None, "http://127.0.0.1:9").unwrap();
        assert_eq!(settings.clouds_to_probe(Some(Cloud::Ec2)), vec![]);
    }

    #[test]
    fn unusable_values_are_left_out() {
        let mut attributes = BTreeMap::new();
        insert_value(&mut attributes, "a", Some(" i-123 \n".into()));
        insert_value(&mut attributes, "b", Some("".into()));
        insert_value(&mut attributes, "c", Some("<html>404</html>".into()));
        insert_value(&mut attributes, "d", None);
        assert_eq!(attributes, BTreeMap::from([("a".into(), "i-123".into())]));
    }
}
