//! The agent's configuration: one TOML file, then the environment, then flags.
//!
//! Every field has a default, so an empty file (or no file at all) is a valid
//! configuration; unknown fields are rejected, because a misspelt `batch_timout` that is
//! silently ignored is worse than a refusal to start. Precedence, lowest first:
//! built-in default, TOML file, environment (`EPITAPH_SERVER`, `EPITAPH_STATE_DIR`,
//! `EPITAPH_IDENTITY_FILE`, `EPITAPH_TOKEN`), command-line flags (applied by `main`).
//!
//! The environment is read through a lookup function rather than `std::env` directly so
//! that tests can supply their own without touching the process environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::identity::instance_file::DEFAULT_INSTANCE_IDENTITY_FILE;
use crate::identity::metadata::{DEFAULT_METADATA_ENDPOINT, MetadataMode};

/// Looks up an environment variable; `std::env::var` in production, a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the real process environment; non-UTF-8 values count as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The agent's configuration, as read from `--config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to send OTLP and lifecycle calls (`http://host:port`).
    pub server: String,
    /// A file holding the bearer token; `EPITAPH_TOKEN` (the token itself) wins over it.
    pub token_file: Option<PathBuf>,
    /// Where the agent keeps its id, its spool and its read positions.
    pub state_dir: PathBuf,
    /// The identity file baked into the golden image.
    pub identity_file: PathBuf,
    /// Glob patterns of the log files to tail, re-expanded on every poll.
    pub files: Vec<String>,
    /// Read files that already existed at the agent's first start from their beginning
    /// instead of their end.
    pub read_from_beginning: bool,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    /// A partial batch is sealed and sent once its oldest record is this old.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Used until the server's `HelloResponse` asks for another interval.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a SIGTERM/SIGINT shutdown may take before the agent gives up flushing.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    pub max_inflight_batches: usize,
    /// The resolved bearer token (from `EPITAPH_TOKEN` or `token_file`); never in TOML.
    #[serde(skip)]
    pub bearer_token: Option<String>,
    /// `key=value` identity lines that the instance's user-data may write at boot; they
    /// override the cloud metadata service and are overridden by the environment.
    pub instance_identity_file: PathBuf,
    /// Which cloud metadata service to ask at start: `auto`, `ec2`, `gcp` or `none`.
    pub metadata: MetadataMode,
    /// Where the metadata service listens (`http://host[:port]`); tests use a fake.
    pub metadata_endpoint: String,
    /// A regular expression (regex-lite syntax) that a line matches when it *starts* a
    /// multiline event; other lines are joined to the current event. None: one record
    /// per line.
    pub multiline_start: Option<String>,
    /// The largest multiline event; a longer one is split (never dropped).
    pub multiline_max_bytes: usize,
    /// An open multiline event is sent once no continuation came for this long.
    #[serde(with = "humantime_serde")]
    pub multiline_timeout: Duration,
    /// `auto`: JSON objects and logfmt lines become fields; `none`: lines are plain text.
    pub parse: crate::parse::ParseMode,
    /// The `[spool]` table: how big the spool may grow and what happens when it is full.
    pub spool: crate::spool::SpoolConfig,
    /// The `[metrics]` table: host metrics, how often, which filesystems.
    pub metrics: crate::hostmetrics::MetricsConfig,
    /// The `[otlp_receiver]` table: a local OTLP/gRPC receiver for applications.
    pub otlp_receiver: crate::receiver::OtlpReceiverConfig,
    /// The `[journald]` table: the systemd journal as a source.
    pub journald: crate::sources::journald::JournaldConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: "http://127.0.0.1:4317".to_string(),
            token_file: None,
            state_dir: PathBuf::from("/var/lib/epitaph-agent"),
            identity_file: PathBuf::from("/etc/epitaph/identity.toml"),
            files: vec!["/var/log/app/*.log".to_string()],
            read_from_beginning: false,
            poll_interval: Duration::from_millis(200),
            batch_max_records: 2000,
            batch_max_bytes: 1024 * 1024,
            batch_timeout: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(10),
            max_inflight_batches: 4,
            bearer_token: None,
            instance_identity_file: PathBuf::from(DEFAULT_INSTANCE_IDENTITY_FILE),
            metadata: MetadataMode::Auto,
            metadata_endpoint: DEFAULT_METADATA_ENDPOINT.to_string(),
            multiline_start: None,
            multiline_max_bytes: 256 * 1024,
            multiline_timeout: Duration::from_secs(1),
            parse: crate::parse::ParseMode::Auto,
            spool: crate::spool::SpoolConfig::default(),
            metrics: crate::hostmetrics::MetricsConfig::default(),
            otlp_receiver: crate::receiver::OtlpReceiverConfig::default(),
            journald: crate::sources::journald::JournaldConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document; the error names the offending field or line.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        Ok(config)
    }

    /// Reads the file at `path` (or starts from the defaults when there is none), applies
    /// the environment and resolves the bearer token. Flags are applied by the caller,
    /// which must then call [`Config::validate`].
    pub fn load(path: Option<&Path>, env: EnvLookup<'_>) -> anyhow::Result<Config> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Config::from_toml_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(env);
        config.bearer_token = config.resolve_bearer_token(env)?;
        Ok(config)
    }

    /// Environment overrides for the settings that differ per instance or per deployment.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) {
        if let Some(server) = non_empty(env("EPITAPH_SERVER")) {
            self.server = server;
        }
        if let Some(state_dir) = non_empty(env("EPITAPH_STATE_DIR")) {
            self.state_dir = PathBuf::from(state_dir);
        }
        if let Some(identity_file) = non_empty(env("EPITAPH_IDENTITY_FILE")) {
            self.identity_file = PathBuf::from(identity_file);
        }
    }

    /// `EPITAPH_TOKEN` if set, else the trimmed contents of `token_file`, else none. A
    /// configured token file that cannot be read is an error: starting without the token
    /// would only trade a clear message now for `UNAUTHENTICATED` later.
    fn resolve_bearer_token(&self, env: EnvLookup<'_>) -> anyhow::Result<Option<String>> {
        if let Some(token) = non_empty(env("EPITAPH_TOKEN")) {
            return Ok(Some(token.trim().to_string()));
        }
        let Some(token_file) = &self.token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading token file {}", token_file.display()))?;
        let token = token.trim();
        if token.is_empty() {
            bail!("token file {} is empty", token_file.display());
        }
        Ok(Some(token.to_string()))
    }

    /// Rejects values the agent cannot work with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let scheme = self.server.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("http") => {}
            Some("https") => {
                bail!(
                    "server `{}`: TLS is not supported by this agent build yet",
                    self.server
                )
            }
            _ => bail!("server `{}` must be an http:// URL", self.server),
        }
        tonic::transport::Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("server `{}` is not a valid URL", self.server))?;
        if let Some(token) = &self.bearer_token {
            tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(format!(
                "Bearer {token}"
            ))
            .context("the bearer token has characters that cannot go in a gRPC header")?;
        }
        for pattern in &self.files {
            glob::Pattern::new(pattern)
                .with_context(|| format!("files: `{pattern}` is not a valid glob"))?;
        }
        let positive_durations = [
            ("poll_interval", self.poll_interval),
            ("batch_timeout", self.batch_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
        ];
        for (name, value) in positive_durations {
            if value.is_zero() {
                bail!("{name} must be greater than zero");
            }
        }
        if self.batch_max_records == 0 {
            bail!("batch_max_records must be at least 1");
        }
        if self.batch_max_bytes < 1024 {
            bail!("batch_max_bytes must be at least 1024");
        }
        if self.max_inflight_batches == 0 {
            bail!("max_inflight_batches must be at least 1");
        }
        crate::sources::multiline::MultilineRule::from_config(self)?;
        if self.multiline_max_bytes < 1024 {
            bail!("multiline_max_bytes must be at least 1024");
        }
        if self.multiline_timeout.is_zero() {
            bail!("multiline_timeout must be greater than zero");
        }
        self.metrics.validate()?;
        self.otlp_receiver.validate()?;
        self.journald.validate()?;
        if self.spool.max_bytes < crate::spool::MIN_SPOOL_MAX_BYTES {
            bail!(
                "spool.max_bytes must be at least {}",
                crate::spool::MIN_SPOOL_MAX_BYTES
            );
        }
        Ok(())
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
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

    #[test]
    fn the_documented_example_parses() {
        let config = Config::from_toml_str(
            r#"
            server = "http://127.0.0.1:4317"
            token_file = "/etc/epitaph/token"
            state_dir = "/var/lib/epitaph-agent"
            identity_file = "/etc/epitaph/identity.toml"
            files = ["/var/log/app/*.log"]
            read_from_beginning = false
            poll_interval = "200ms"
            batch_max_records = 2000
            batch_max_bytes = 1048576
            batch_timeout = "200ms"
            heartbeat_interval = "10s"
            shutdown_deadline = "10s"
            max_inflight_batches = 4
            "#,
        )
        .unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(200));
        assert_eq!(config.shutdown_deadline, Duration::from_secs(10));
        assert_eq!(config.token_file, Some(PathBuf::from("/etc/epitaph/token")));
        config.validate().unwrap();
    }

    #[test]
    fn empty_config_uses_defaults() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.server, "http://127.0.0.1:4317");
        assert_eq!(config.batch_max_records, 2000);
        assert_eq!(config.max_inflight_batches, 4);
        config.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let error = Config::from_toml_str("batch_timout = \"1s\"").unwrap_err();
        assert!(format!("{error:#}").contains("batch_timout"), "{error:#}");
    }

    #[test]
    fn bad_durations_are_rejected() {
        assert!(Config::from_toml_str("poll_interval = \"soon\"").is_err());
        assert!(Config::from_toml_str("poll_interval = 200").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "server = \"http://10.0.0.1:4317\"\nstate_dir = \"/a\"\n",
        )
        .unwrap();
        let env = env_of(&[
            ("EPITAPH_SERVER", "http://10.0.0.2:4317"),
            ("EPITAPH_STATE_DIR", "/b"),
            ("EPITAPH_IDENTITY_FILE", "/c/identity.toml"),
            ("EPITAPH_TOKEN", "s3cret"),
        ]);
        let config = Config::load(Some(&path), &env).unwrap();
        assert_eq!(config.server, "http://10.0.0.2:4317");
        assert_eq!(config.state_dir, PathBuf::from("/b"));
        assert_eq!(config.identity_file, PathBuf::from("/c/identity.toml"));
        assert_eq!(config.bearer_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn token_is_read_from_token_file_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "abc123\n").unwrap();
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, format!("token_file = {:?}\n", token_path)).unwrap();
        let config = Config::load(Some(&config_path), &env_of(&[])).unwrap();
        assert_eq!(config.bearer_token.as_deref(), Some("abc123"));

        std::fs::remove_file(&token_path).unwrap();
        let error = Config::load(Some(&config_path), &env_of(&[])).unwrap_err();
        assert!(format!("{error:#}").contains("token"), "{error:#}");
    }

    #[test]
    fn invalid_values_are_rejected_with_the_field_name() {
        let config = Config {
            max_inflight_batches: 0,
            ..Config::default()
        };
        assert!(format!("{:#}", config.validate().unwrap_err()).contains("max_inflight_batches"));
        let config = Config {
            server: "127.0.0.1:4317".to_string(),
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn multiline_parse_and_spool_settings_parse_and_validate() {
        let config = Config::from_toml_str(
            r#"
            multiline_start = '^\d{4}-\d{2}-\d{2}'
            multiline_max_bytes = 65536
            multiline_timeout = "500ms"
            parse = "none"
            [spool]
            max_bytes = 1048576
            when_full = "drop_oldest"
            "#,
        )
        .unwrap();
        assert_eq!(config.multiline_max_bytes, 65536);
        assert_eq!(config.multiline_timeout, Duration::from_millis(500));
        assert_eq!(config.parse, crate::parse::ParseMode::None);
        assert_eq!(config.spool.max_bytes, 1048576);
        assert_eq!(config.spool.when_full, crate::spool::WhenFull::DropOldest);
        config.validate().unwrap();

        let defaults = Config::default();
        assert_eq!(defaults.spool.max_bytes, 256 * 1024 * 1024);
        assert_eq!(defaults.spool.when_full, crate::spool::WhenFull::Block);
        assert_eq!(defaults.multiline_timeout, Duration::from_secs(1));
        assert_eq!(defaults.parse, crate::parse::ParseMode::Auto);

        let bad_pattern = Config {
            multiline_start: Some("(unclosed".to_string()),
            ..Config::default()
        };
        let error = format!("{:#}", bad_pattern.validate().unwrap_err());
        assert!(error.contains("multiline_start"), "{error}");
        assert!(Config::from_toml_str("[spool]\nwhen_full = \"sometimes\"").is_err());
        assert!(Config::from_toml_str("[spool]\nmax_byte = 1").is_err());
        let tiny = Config {
            spool: crate::spool::SpoolConfig {
                max_bytes: 10,
                ..Default::default()
            },
            ..Config::default()
        };
        assert!(format!("{:#}", tiny.validate().unwrap_err()).contains("spool.max_bytes"));
    }
}
