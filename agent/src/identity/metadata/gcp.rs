//! Google Compute Engine's metadata server.
//!
//! Every request carries `Metadata-Flavor: Google` (the server refuses requests without
//! it, which keeps browsers and forwarded requests out), and every genuine answer carries
//! the same header back — an answer without it comes from something else listening on
//! the address, and is not believed.
//!
//! | attribute | from (`/computeMetadata/v1/…`) |
//! |---|---|
//! | `host.id` | `instance/id` (required) |
//! | `host.name` | `instance/name` |
//! | `host.type` | last segment of `instance/machine-type` |
//! | `cloud.availability_zone` | last segment of `instance/zone`; `cloud.region` is the zone without its last `-x` |
//! | `cloud.account.id` | `project/project-id` |
//! | `deployment.generation` | instance metadata attribute `deployment-generation` (`instance/attributes/deployment-generation`) |

use std::collections::BTreeMap;

use epitaph_proto::keys;
use tokio::time::Instant;

use super::http::{self, Endpoint};
use super::insert_value;

const FLAVOR_HEADER: &str = "Metadata-Flavor";
const FLAVOR: &str = "Google";

/// The instance metadata attribute that carries the deployment generation.
pub const GENERATION_ATTRIBUTE: &str = "deployment-generation";

/// Asks the server at `endpoint` everything it knows about this instance, giving up at
/// `deadline`. An error says why this is not (or not reachably) GCE.
pub async fn probe(
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, String> {
    let get = |path: &str| {
        let path = format!("/computeMetadata/v1/{path}");
        async move {
            let response =
                http::request(endpoint, "GET", &path, &[(FLAVOR_HEADER, FLAVOR)], deadline).await;
            match response {
                Ok(response) if response.header(FLAVOR_HEADER) != Some(FLAVOR) => Err(format!(
                    "{path}: answer without `{FLAVOR_HEADER}: {FLAVOR}`"
                )),
                Ok(response) if response.is_success() => Ok(response.body),
                Ok(response) => Err(format!("{path}: HTTP {}", response.status)),
                Err(error) => Err(format!("{path}: {error}")),
            }
        }
    };
    let (instance_id, name, machine_type, zone, project_id, generation) = tokio::join!(
        get("instance/id"),
        get("instance/name"),
        get("instance/machine-type"),
        get("instance/zone"),
        get("project/project-id"),
        get(&format!("instance/attributes/{GENERATION_ATTRIBUTE}")),
    );

    let mut attributes = BTreeMap::new();
    insert_value(&mut attributes, keys::HOST_ID, Some(instance_id?));
    if !attributes.contains_key(keys::HOST_ID) {
        return Err("the metadata server gave an empty instance id".to_string());
    }
    attributes.insert("cloud.provider".to_string(), "gcp".to_string());
    attributes.insert(
        "cloud.platform".to_string(),
        "gcp_compute_engine".to_string(),
    );
    insert_value(&mut attributes, keys::HOST_NAME, name.ok());
    insert_value(
        &mut attributes,
        "host.type",
        machine_type.ok().as_deref().map(last_segment),
    );
    let zone = zone.ok().as_deref().map(last_segment);
    insert_value(
        &mut attributes,
        keys::REGION,
        zone.as_deref().and_then(region_of_zone),
    );
    insert_value(&mut attributes, keys::ZONE, zone);
    insert_value(&mut attributes, "cloud.account.id", project_id.ok());
    insert_value(&mut attributes, keys::GENERATION, generation.ok());
    Ok(attributes)
}

/// `projects/123/zones/us-central1-a` → `us-central1-a`.
fn last_segment(path: &str) -> String {
    let path = path.trim();
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// `us-central1-a` → `us-central1`.
fn region_of_zone(zone: &str) -> Option<String> {
    zone.rsplit_once('-').map(|(region, _)| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_machine_type_are_cut_to_their_names() {
        assert_eq!(
            last_segment("projects/123/zones/us-central1-a"),
            "us-central1-a"
        );
        assert_eq!(
            last_segment("projects/123/machineTypes/e2-medium\n"),
            "e2-medium"
        );
        assert_eq!(last_segment("plain"), "plain");
        assert_eq!(
            region_of_zone("europe-west4-b").as_deref(),
            Some("europe-west4")
        );
        assert_eq!(region_of_zone("nozone"), None);
    }
}
