//! The instance file: per-instance identity that the instance's user-data writes at boot.
//!
//! Not every platform has a metadata service the agent understands, and not every value
//! is in one (a blue/green colour, a rollout revision chosen by the deployer). So the
//! launch template's user-data may write a small file — by default
//! `/run/epitaph/instance.env`, on tmpfs so that it can never outlive the boot it
//! describes — that the agent reads at start:
//!
//! ```text
//! # written by cloud-init write_files
//! deployment.generation=43
//! deployment.environment.name = "prod"
//! OTEL_RESOURCE_ATTRIBUTES=host.name=web-7,cloud.region=eu-west-1
//! ```
//!
//! One `key=value` per line with OpenTelemetry attribute names; blank lines and `#`
//! comments are skipped; surrounding whitespace and one pair of matching quotes around a
//! value are removed; `export ` before a line is ignored, so the same file can serve as a
//! shell or systemd environment file. `OTEL_RESOURCE_ATTRIBUTES=` lines are read as the
//! environment variable is (comma-separated, percent-decoded) and `OTEL_SERVICE_NAME=` sets
//! `service.name`. Later lines win over earlier ones.
//!
//! A line that cannot be used is skipped with a warning naming the file and line, and the
//! rest of the file still counts: half an identity is better than none at boot. Keys
//! without a lowercase letter (`PATH`, `AWS_REGION`) are environment variables that
//! happen to share the file, not attributes, and are skipped with a warning too.

use std::io::ErrorKind;
use std::path::Path;

use epitaph_proto::keys;
use tracing::{debug, warn};

use super::parse_otel_resource_attributes;

/// The default place for the instance file.
pub const DEFAULT_INSTANCE_IDENTITY_FILE: &str = "/run/epitaph/instance.env";

/// What an instance file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFile {
    /// Attributes in file order; later entries override earlier ones.
    pub attributes: Vec<(String, String)>,
    /// One message per skipped line (`line N: why`).
    pub problems: Vec<String>,
}

/// Reads the instance file at `path`. A missing file is normal (nothing wrote one) and
/// gives nothing; an unreadable one gives nothing with a warning.
pub fn read(path: &Path) -> Vec<(String, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            debug!(path = %path.display(), "no instance identity file");
            return Vec::new();
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the instance identity file, ignoring it");
            return Vec::new();
        }
    };
    let parsed = parse(&text);
    for problem in &parsed.problems {
        warn!(path = %path.display(), %problem, "skipping a line of the instance identity file");
    }
    parsed.attributes
}

/// Parses the text of an instance file (see the module documentation).
pub fn parse(text: &str) -> InstanceFile {
    let mut file = InstanceFile::default();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            file.problems
                .push(format!("line {line_number}: no `=` (expected key=value)"));
            continue;
        };
        let key = key.trim();
        let value = unquote(value.trim());
        if key.is_empty() || key.contains(char::is_whitespace) {
            file.problems.push(format!(
                "line {line_number}: `{key}` is not an attribute name"
            ));
            continue;
        }
        match key {
            "OTEL_RESOURCE_ATTRIBUTES" => match parse_otel_resource_attributes(value) {
                Ok(pairs) => file.attributes.extend(pairs),
                Err(reason) => file.problems.push(format!(
                    "line {line_number}: OTEL_RESOURCE_ATTRIBUTES ignored as a whole: {reason}"
                )),
            },
            "OTEL_SERVICE_NAME" if !value.is_empty() => file
                .attributes
                .push((keys::SERVICE_NAME.to_string(), value.to_string())),
            _ if !key.chars().any(|c| c.is_ascii_lowercase()) => {
                file.problems.push(format!(
                    "line {line_number}: `{key}` looks like an environment variable, not an attribute name such as deployment.generation"
                ));
            }
            // An empty value means "not known here": the layers below may know it.
            _ if value.is_empty() => {}
            _ => file.attributes.push((key.to_string(), value.to_string())),
        }
    }
    file
}

/// Removes one pair of matching surrounding quotes.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn key_value_lines_comments_and_quotes() {
        let parsed = parse(
            "# user-data\n\n deployment.generation = 43 \nexport host.name=\"web-7\"\ncloud.region='eu-west-1'\n",
        );
        assert_eq!(parsed.problems, Vec::<String>::new());
        assert_eq!(
            parsed.attributes,
            pairs(&[
                ("deployment.generation", "43"),
                ("host.name", "web-7"),
                ("cloud.region", "eu-west-1"),
            ])
        );
    }

    #[test]
    fn otel_forms_are_read_like_the_environment() {
        let parsed = parse(
            "OTEL_RESOURCE_ATTRIBUTES=\"deployment.generation=7,note=a%2Cb\"\nOTEL_SERVICE_NAME=api\n",
        );
        assert_eq!(
            parsed.attributes,
            pairs(&[
                ("deployment.generation", "7"),
                ("note", "a,b"),
                ("service.name", "api"),
            ])
        );
    }

    #[test]
    fn bad_lines_are_skipped_and_named_the_rest_counts() {
        let parsed = parse(
            "garbage\nAWS_REGION=eu-west-1\nOTEL_RESOURCE_ATTRIBUTES=a=%zz\nbad key=1\nhost.id=i-1\nempty=\n",
        );
        assert_eq!(parsed.attributes, pairs(&[("host.id", "i-1")]));
        assert_eq!(parsed.problems.len(), 4, "{:?}", parsed.problems);
        assert!(parsed.problems[0].starts_with("line 1:"));
        assert!(parsed.problems[1].contains("AWS_REGION"));
        assert!(parsed.problems[2].starts_with("line 3:"));
        assert!(parsed.problems[3].starts_with("line 4:"));
    }

    #[test]
    fn a_missing_file_gives_nothing() {
        assert!(read(Path::new("/nonexistent/epitaph/instance.env")).is_empty());
    }
}
