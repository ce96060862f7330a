//! A real `epitaph-agent`, configured the way an image build would configure it.
//!
//! [`Agent::start`] writes the agent's TOML config and the baked identity file into a
//! temp dir of its own, sets the per-instance identity through `OTEL_RESOURCE_ATTRIBUTES`
//! and spawns the binary. The state directory belongs to the test (it is part of
//! [`AgentConfig`]), so a restarted agent finds its offsets, spool and sequence again.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Serialize;

use crate::binaries::binaries;
use crate::process::{ManagedChild, clean_command};

/// The identity file baked into the golden image.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub service: String,
    pub image_name: String,
    pub image_version: String,
    pub image_id: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl Identity {
    /// An identity for `service` with image fields derived from it.
    pub fn for_service(service: &str, image_version: &str) -> Identity {
        Identity {
            service: service.to_string(),
            image_name: format!("{service}-golden"),
            image_version: image_version.to_string(),
            image_id: format!("ami-{service}"),
            attributes: Default::default(),
        }
    }
}

/// What varies per instance, passed through `OTEL_RESOURCE_ATTRIBUTES`.
#[derive(Debug, Clone)]
pub struct InstanceIdentity {
    pub host_id: String,
    pub host_name: String,
    pub generation: String,
}

impl InstanceIdentity {
    /// `host.id=...,host.name=...,deployment.generation=...`
    pub fn to_resource_attributes(&self) -> String {
        format!(
            "host.id={},host.name={},deployment.generation={}",
            self.host_id, self.host_name, self.generation
        )
    }
}

/// The agent's configuration file, field for field.
#[derive(Debug, Clone, Serialize)]
pub struct AgentConfigFile {
    pub server: String,
    pub state_dir: PathBuf,
    pub identity_file: PathBuf,
    pub files: Vec<String>,
    pub read_from_beginning: bool,
    pub poll_interval: String,
    pub batch_max_records: u32,
    pub batch_timeout: String,
    pub heartbeat_interval: String,
    pub shutdown_deadline: String,
    /// Always `none`: tests never ask a cloud metadata service, whatever the machine's
    /// firmware claims.
    pub metadata: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_receiver: Option<OtlpReceiverSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journald: Option<JournaldSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolSection>,
}

/// The `[spool]` table.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolSection {
    pub max_bytes: u64,
    /// `block` or `drop_oldest`.
    pub when_full: String,
}

/// The `[metrics]` table: host metrics.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSection {
    pub enabled: bool,
    pub interval: String,
}

/// The `[otlp_receiver]` table.
#[derive(Debug, Clone, Serialize)]
pub struct OtlpReceiverSection {
    pub enabled: bool,
    pub listen: String,
}

/// The `[journald]` table.
#[derive(Debug, Clone, Serialize)]
pub struct JournaldSection {
    pub enabled: bool,
    pub units: Vec<String>,
    /// The `journalctl` to run (tests put a fake one here).
    pub journalctl: PathBuf,
}

/// Everything an agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub server: String,
    pub state_dir: PathBuf,
    pub files: Vec<String>,
    pub read_from_beginning: bool,
    pub poll_interval: String,
    pub batch_max_records: u32,
    pub batch_timeout: String,
    pub heartbeat_interval: String,
    pub shutdown_deadline: String,
    pub identity: Identity,
    pub instance: InstanceIdentity,
    /// `ip:port` of the agent's local OTLP receiver; none: the receiver is off.
    pub otlp_receiver_listen: Option<String>,
    /// The journal source; none: off.
    pub journald: Option<JournaldSection>,
    /// Host metrics every this often (`"1s"`); none: the agent's default.
    pub metrics_interval: Option<String>,
    /// Spool limits; none: the agent's defaults.
    pub spool: Option<SpoolSection>,
}

impl AgentConfig {
    /// A config with the contract's defaults, except quicker polling and batching so that
    /// tests do not wait for timers, and `read_from_beginning = true` so that lines written
    /// before the agent opened a file are shipped.
    pub fn new(
        server_grpc_url: &str,
        state_dir: &Path,
        files: &[&Path],
        identity: Identity,
        instance: InstanceIdentity,
    ) -> AgentConfig {
        AgentConfig {
            server: server_grpc_url.to_string(),
            state_dir: state_dir.to_path_buf(),
            files: files
                .iter()
                .map(|path| path.display().to_string())
                .collect(),
            read_from_beginning: true,
            poll_interval: "50ms".to_string(),
            batch_max_records: 2000,
            batch_timeout: "100ms".to_string(),
            heartbeat_interval: "10s".to_string(),
            shutdown_deadline: "10s".to_string(),
            identity,
            instance,
            otlp_receiver_listen: None,
            journald: None,
            metrics_interval: None,
            spool: None,
        }
    }
}

/// A running (or stopped) `epitaph-agent`.
pub struct Agent {
    // Declared first so it is dropped (killed) before `dir` is removed.
    process: Option<ManagedChild>,
    config: AgentConfig,
    config_path: PathBuf,
    starts: u32,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Writes the config and identity files and spawns the agent.
    pub fn start(config: AgentConfig) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("epitaph-agent")
            .tempdir()
            .expect("creating a temp dir for the agent");
        let identity_path = dir.path().join("identity.toml");
        let identity_text = toml::to_string(&config.identity).expect("identity serialises");
        std::fs::write(&identity_path, identity_text).expect("writing identity.toml");
        let file = AgentConfigFile {
            server: config.server.clone(),
            state_dir: config.state_dir.clone(),
            identity_file: identity_path,
            files: config.files.clone(),
            read_from_beginning: config.read_from_beginning,
            poll_interval: config.poll_interval.clone(),
            batch_max_records: config.batch_max_records,
            batch_timeout: config.batch_timeout.clone(),
            heartbeat_interval: config.heartbeat_interval.clone(),
            shutdown_deadline: config.shutdown_deadline.clone(),
            metadata: "none".to_string(),
            otlp_receiver: config
                .otlp_receiver_listen
                .clone()
                .map(|listen| OtlpReceiverSection {
                    enabled: true,
                    listen,
                }),
            journald: config.journald.clone(),
            metrics: config
                .metrics_interval
                .clone()
                .map(|interval| MetricsSection {
                    enabled: true,
                    interval,
                }),
            spool: config.spool.clone(),
        };
        let config_path = dir.path().join("agent.toml");
        std::fs::write(
            &config_path,
            toml::to_string(&file).expect("config serialises"),
        )
        .expect("writing agent.toml");
        let mut agent = Agent {
            process: None,
            config,
            config_path,
            starts: 0,
            dir,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut command = clean_command(&binaries().agent);
        command
            .arg("--config")
            .arg(&self.config_path)
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                self.config.instance.to_resource_attributes(),
            )
            .env(
                "RUST_LOG",
                std::env::var("EPITAPH_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null());
        let stderr_path = self.dir.path().join("agent.stderr");
        self.process = Some(ManagedChild::spawn(
            "epitaph-agent",
            &mut command,
            &stderr_path,
        ));
    }

    /// Starts the agent again with the same config and state directory.
    pub fn restart(&mut self) {
        if let Some(process) = self.process.as_mut() {
            assert!(
                !process.is_running(),
                "restart() needs a stopped agent; kill it first"
            );
        }
        self.process = None;
        self.spawn();
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| process.is_running())
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill9(&mut self) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the agent was started")
            .kill9()
    }

    /// `SIGTERM`, then wait at most `timeout` for the exit (the test fails past it).
    pub fn sigterm_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the agent was started")
            .sigterm_and_wait(timeout)
    }

    pub fn stderr_report(&self) -> String {
        match &self.process {
            Some(process) => process.stderr_report(),
            None => String::from("(agent never started)"),
        }
    }
}
