//! The systemd unit that runs the agent in the image, and how it is ordered.
//!
//! The one subtle part is shutdown order. systemd stops units in the reverse of their
//! start order: a unit with `After=app.service` is stopped *before* `app.service`
//! (systemd.unit(5), "Before=, After="). The agent must stop *after* the services it
//! watches, or their last lines — often the interesting ones — are written after the
//! agent has read its files to the end and said goodbye. So the agent is ordered
//! `Before=` each watched unit: it starts first and stops last. Ordering is all it is —
//! `Before=` neither pulls the watched units in nor waits for the agent to be ready, so
//! the application's start is not delayed (the agent is `Type=simple`).
//!
//! On the other side the agent is `After=network-online.target`, so it stops before the
//! network is taken down and can still ship what it flushes at shutdown.

use std::time::Duration;

use anyhow::bail;

/// The unit's name.
pub const UNIT_NAME: &str = "epitaph-agent.service";

/// Time systemd gives a stopping agent beyond its own shutdown deadline, before SIGKILL:
/// the deadline covers the flush, this covers the goodbye and the process's exit.
pub const STOP_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// The unit-type suffixes systemd knows; a name without one is taken as a `.service`.
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".target",
    ".mount",
    ".path",
    ".timer",
    ".scope",
    ".slice",
    ".device",
    ".swap",
    ".automount",
];

/// Checks a unit name given with `--stop-after` and completes it with `.service` when it
/// has no type suffix (as `systemctl` does; unit files need the full name).
pub fn unit_name(raw: &str) -> anyhow::Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        bail!("--stop-after: a unit name must not be empty");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        bail!(
            "--stop-after `{name}`: `{bad}` cannot appear in a systemd unit name (letters, digits and :-_.\\@ can)"
        );
    }
    let name = match UNIT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        true => name.to_string(),
        false => format!("{name}.service"),
    };
    if name == UNIT_NAME {
        bail!("--stop-after `{raw}`: the agent cannot be ordered against itself");
    }
    Ok(name)
}

/// The unit file's text.
pub fn render_unit(
    binary_path: &str,
    config_path: &str,
    stop_after: &[String],
    shutdown_deadline: Duration,
) -> String {
    let mut unit = String::new();
    unit.push_str("# Written by `epitaph-agent install`; running it again replaces this file.\n");
    unit.push_str("[Unit]\n");
    unit.push_str("Description=Epitaph agent: ships this instance's logs to the Epitaph server\n");
    unit.push_str("Wants=network-online.target\n");
    unit.push_str("After=network-online.target\n");
    if !stop_after.is_empty() {
        unit.push_str(
            "# Started before the services it watches so that, as systemd stops units in\n\
             # reverse start order, it stops after them and captures their last lines.\n",
        );
        unit.push_str(&format!("Before={}\n", stop_after.join(" ")));
    }
    // Never give up restarting: an instance whose agent stopped for good is an instance
    // whose death goes unrecorded.
    unit.push_str("StartLimitIntervalSec=0\n");
    unit.push_str("\n[Service]\n");
    unit.push_str("Type=simple\n");
    unit.push_str(&format!("ExecStart={binary_path} --config {config_path}\n"));
    unit.push_str("Restart=always\n");
    unit.push_str("RestartSec=2s\n");
    unit.push_str("KillSignal=SIGTERM\n");
    unit.push_str(&format!(
        "TimeoutStopSec={}\n",
        systemd_timespan(shutdown_deadline + STOP_TIMEOUT_MARGIN)
    ));
    unit.push_str("\n[Install]\n");
    unit.push_str("WantedBy=multi-user.target\n");
    unit
}

/// A systemd time span: whole seconds as `15s`, anything finer in milliseconds.
fn systemd_timespan(duration: Duration) -> String {
    match duration.subsec_millis() {
        0 => format!("{}s", duration.as_secs()),
        _ => format!("{}ms", duration.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_checked_and_completed() {
        assert_eq!(unit_name("nginx").unwrap(), "nginx.service");
        assert_eq!(unit_name(" app.service ").unwrap(), "app.service");
        assert_eq!(unit_name("app@blue.service").unwrap(), "app@blue.service");
        assert_eq!(unit_name("docker.socket").unwrap(), "docker.socket");
        assert!(unit_name("").is_err());
        assert!(unit_name("my app").is_err());
        assert!(unit_name("../etc/passwd").is_err());
        assert!(unit_name("epitaph-agent").is_err());
    }

    #[test]
    fn stop_timeout_is_the_deadline_plus_the_margin() {
        assert_eq!(systemd_timespan(Duration::from_secs(15)), "15s");
        assert_eq!(systemd_timespan(Duration::from_millis(7500)), "7500ms");
        let unit = render_unit("/bin/a", "/etc/a.toml", &[], Duration::from_millis(2500));
        assert!(unit.contains("\nTimeoutStopSec=7500ms\n"), "{unit}");
        assert!(!unit.contains("Before="), "{unit}");
    }
}
