//! EC2's instance metadata service, IMDSv2 only.
//!
//! IMDSv2 first asks for a session token with a `PUT` (which a misconfigured proxy or a
//! server-side request forgery cannot easily make), then sends the token with every `GET`.
//! Instances launched with IMDSv1 disabled, the default for current AMIs, answer nothing
//! else. The token is asked for a short life: the agent uses it only at start.
//!
//! | attribute | from |
//! |---|---|
//! | `host.id` | `meta-data/instance-id` (required: without it this is not EC2) |
//! | `host.name` | `meta-data/local-hostname` |
//! | `host.type` | `meta-data/instance-type` |
//! | `cloud.region`, `cloud.availability_zone` | `meta-data/placement/region`, `…/availability-zone` |
//! | `cloud.account.id`, `host.image.id` | `accountId`, `imageId` of `dynamic/instance-identity/document` (the image id only fills in when the identity file has none) |
//! | `deployment.generation` | instance tag `epitaph:generation`, else `deployment.generation` (needs "instance metadata tags" enabled on the instance or launch template) |

use std::collections::BTreeMap;

use epitaph_proto::keys;
use tokio::time::Instant;

use super::http::{self, Endpoint};
use super::{insert_value, success_body};

const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// The token is used for a second at start; a minute leaves room for a slow boot.
const TOKEN_TTL_SECONDS: &str = "60";

/// The instance tags that may carry the deployment generation, most specific first.
pub const GENERATION_TAGS: [&str; 2] = ["epitaph:generation", "deployment.generation"];

/// Asks the service at `endpoint` everything it knows about this instance, giving up at
/// `deadline`. An error says why this is not (or not reachably) EC2.
pub async fn probe(
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, String> {
    let token_response = http::request(
        endpoint,
        "PUT",
        TOKEN_PATH,
        &[(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS)],
        deadline,
    )
    .await
    .map_err(|error| format!("IMDSv2 token: {error}"))?;
    if !token_response.is_success() {
        return Err(format!(
            "IMDSv2 token request answered HTTP {}",
            token_response.status
        ));
    }
    let token = token_response.body.trim().to_string();
    if token.is_empty() || token.contains(['\r', '\n']) {
        return Err("IMDSv2 token request answered no usable token".to_string());
    }

    let with_token = [(TOKEN_HEADER, token.as_str())];
    let get = |path: String| {
        let with_token = &with_token;
        async move { success_body(http::request(endpoint, "GET", &path, with_token, deadline).await) }
    };
    let meta = |name: &str| get(format!("/latest/meta-data/{name}"));
    let tag = |name: &str| get(format!("/latest/meta-data/tags/instance/{name}"));
    let (
        instance_id,
        local_hostname,
        instance_type,
        region,
        zone,
        identity_document,
        epitaph_generation_tag,
        deployment_generation_tag,
    ) = tokio::join!(
        meta("instance-id"),
        meta("local-hostname"),
        meta("instance-type"),
        meta("placement/region"),
        meta("placement/availability-zone"),
        get("/latest/dynamic/instance-identity/document".to_string()),
        tag(GENERATION_TAGS[0]),
        tag(GENERATION_TAGS[1]),
    );

    let mut attributes = BTreeMap::new();
    insert_value(&mut attributes, keys::HOST_ID, instance_id);
    if !attributes.contains_key(keys::HOST_ID) {
        return Err("IMDSv2 gave a token but no instance-id".to_string());
    }
    attributes.insert("cloud.provider".to_string(), "aws".to_string());
    attributes.insert("cloud.platform".to_string(), "aws_ec2".to_string());
    insert_value(&mut attributes, keys::HOST_NAME, local_hostname);
    insert_value(&mut attributes, "host.type", instance_type);
    insert_value(&mut attributes, keys::REGION, region);
    insert_value(&mut attributes, keys::ZONE, zone);
    let document = identity_document.as_deref().map(IdentityDocument::parse);
    let document = document.unwrap_or_default();
    insert_value(&mut attributes, "cloud.account.id", document.account_id);
    insert_value(&mut attributes, keys::IMAGE_ID, document.image_id);
    insert_value(
        &mut attributes,
        keys::GENERATION,
        epitaph_generation_tag.or(deployment_generation_tag),
    );
    Ok(attributes)
}

/// The parts of the instance identity document (JSON) not served as plain paths.
#[derive(Debug, Default, PartialEq, Eq)]
struct IdentityDocument {
    account_id: Option<String>,
    image_id: Option<String>,
}

impl IdentityDocument {
    /// Whatever of it parses; a malformed document gives nothing.
    fn parse(text: &str) -> IdentityDocument {
        let Ok(document) = serde_json::from_str::<serde_json::Value>(text) else {
            return IdentityDocument::default();
        };
        let field = |name: &str| document.get(name)?.as_str().map(str::to_string);
        IdentityDocument {
            account_id: field("accountId"),
            image_id: field("imageId"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_and_image_come_from_the_identity_document() {
        let document = IdentityDocument::parse(
            r#"{"accountId":"123456789012","imageId":"ami-0abc","instanceId":"i-0abc"}"#,
        );
        assert_eq!(document.account_id.as_deref(), Some("123456789012"));
        assert_eq!(document.image_id.as_deref(), Some("ami-0abc"));
        assert_eq!(
            IdentityDocument::parse("not json"),
            IdentityDocument::default()
        );
        assert_eq!(
            IdentityDocument::parse(r#"{"accountId":12}"#).account_id,
            None
        );
    }
}
