//! `epitaph-agent install` into a staging root, as an image builder runs it.
//!
//! What is written is read back with the agent's own loaders (`Config::from_toml_str`,
//! `IdentityFile::read`), so a test passes only if the agent would boot from it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use epitaph_agent::config::Config;
use epitaph_agent::identity::IdentityFile;
use epitaph_agent::identity::metadata::MetadataMode;
use epitaph_agent::install::{InstallOptions, install};

fn options(root: &Path) -> InstallOptions {
    let mut options = InstallOptions::new(
        "http://logs.internal:4317",
        "web",
        "web-golden",
        "2026.11.26-3f2a",
        root,
    );
    options.no_copy_binary = true;
    options
}

fn read(root: &Path, absolute: &str) -> String {
    let path = root.join(absolute.trim_start_matches('/'));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn unit_lines(root: &Path) -> Vec<String> {
    read(root, "/etc/systemd/system/epitaph-agent.service")
        .lines()
        .map(str::to_string)
        .collect()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_writes_config_identity_and_unit_and_enables_it() {
    let root = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let token_source = build.path().join("token");
    std::fs::write(&token_source, "s3cret-token\n").unwrap();
    let mut options = options(root.path());
    options.image_id = Some("ami-0abc".to_string());
    options.token_file = Some(token_source);
    options.files = vec![
        "/var/log/nginx/*.log".to_string(),
        "/var/log/app/*.log".to_string(),
    ];
    options.stop_after = vec!["nginx".to_string(), "app.service".to_string()];
    options.metadata = Some(MetadataMode::Ec2);

    let report = install(&options).unwrap();

    // agent.toml, read as the agent reads it.
    let config = Config::from_toml_str(&read(root.path(), "/etc/epitaph/agent.toml")).unwrap();
    assert_eq!(config.server, "http://logs.internal:4317");
    assert_eq!(config.files, options.files);
    assert_eq!(config.state_dir, PathBuf::from("/var/lib/epitaph-agent"));
    assert_eq!(
        config.identity_file,
        PathBuf::from("/etc/epitaph/identity.toml")
    );
    assert_eq!(config.token_file, Some(PathBuf::from("/etc/epitaph/token")));
    assert_eq!(config.shutdown_deadline, std::time::Duration::from_secs(10));
    assert_eq!(config.metadata, MetadataMode::Ec2);
    config.validate().unwrap();

    // identity.toml, read as the agent reads it.
    let identity = IdentityFile::read(&root.path().join("etc/epitaph/identity.toml")).unwrap();
    assert_eq!(identity.service, "web");
    assert_eq!(identity.image_name, "web-golden");
    assert_eq!(identity.image_version, "2026.11.26-3f2a");
    assert_eq!(identity.image_id.as_deref(), Some("ami-0abc"));

    // The token, private to root.
    let token_path = root.path().join("etc/epitaph/token");
    assert_eq!(
        std::fs::read_to_string(&token_path).unwrap().trim(),
        "s3cret-token"
    );
    assert_eq!(mode_of(&token_path), 0o600);

    // The unit.
    let unit = unit_lines(root.path());
    let has = |line: &str| unit.iter().any(|l| l == line);
    assert!(
        has("ExecStart=/usr/local/bin/epitaph-agent --config /etc/epitaph/agent.toml"),
        "{unit:#?}"
    );
    assert!(has("After=network-online.target"), "{unit:#?}");
    assert!(has("Wants=network-online.target"), "{unit:#?}");
    assert!(has("Before=nginx.service app.service"), "{unit:#?}");
    assert!(has("KillSignal=SIGTERM"), "{unit:#?}");
    assert!(has("TimeoutStopSec=15s"), "{unit:#?}");
    assert!(has("Restart=always"), "{unit:#?}");
    assert!(has("WantedBy=multi-user.target"), "{unit:#?}");
    // Ordered after the watched services would make systemd stop the agent first.
    assert!(
        !unit
            .iter()
            .any(|l| l.starts_with("After=") && l.contains("nginx")),
        "{unit:#?}"
    );

    // Enabled the way `systemctl enable` does it.
    let link = root
        .path()
        .join("etc/systemd/system/multi-user.target.wants/epitaph-agent.service");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("/etc/systemd/system/epitaph-agent.service")
    );
    assert!(report.written.contains(&link));
    assert!(
        report.warnings.iter().all(|w| !w.contains("machine-id")),
        "{report:#?}"
    );
}

#[test]
fn the_shutdown_deadline_sets_the_stop_timeout() {
    let root = tempfile::tempdir().unwrap();
    let mut options = options(root.path());
    options.shutdown_deadline = std::time::Duration::from_secs(25);
    install(&options).unwrap();
    let config = Config::from_toml_str(&read(root.path(), "/etc/epitaph/agent.toml")).unwrap();
    assert_eq!(config.shutdown_deadline, std::time::Duration::from_secs(25));
    assert!(unit_lines(root.path()).contains(&"TimeoutStopSec=30s".to_string()));
}

#[test]
fn rerunning_install_replaces_everything_and_keeps_nothing_stale() {
    let root = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let token_source = build.path().join("token");
    std::fs::write(&token_source, "old-token").unwrap();
    let mut first = options(root.path());
    first.token_file = Some(token_source);
    first.stop_after = vec!["old-app".to_string()];
    first.image_id = Some("ami-old".to_string());
    install(&first).unwrap();

    let mut second = options(root.path());
    second.image_version = "2026.12.01-9e8d".to_string();
    second.stop_after = vec!["new-app".to_string()];
    let report = install(&second).unwrap();

    let token_path = root.path().join("etc/epitaph/token");
    assert!(
        !token_path.exists(),
        "the old token must not stay in the image"
    );
    assert!(report.removed.contains(&token_path), "{report:#?}");
    let config = Config::from_toml_str(&read(root.path(), "/etc/epitaph/agent.toml")).unwrap();
    assert_eq!(config.token_file, None);
    let identity = IdentityFile::read(&root.path().join("etc/epitaph/identity.toml")).unwrap();
    assert_eq!(identity.image_version, "2026.12.01-9e8d");
    assert_eq!(identity.image_id, None);
    let unit = unit_lines(root.path());
    assert!(
        unit.contains(&"Before=new-app.service".to_string()),
        "{unit:#?}"
    );
    assert!(!unit.iter().any(|l| l.contains("old-app")), "{unit:#?}");

    // No temporary files left behind anywhere.
    let mut leftovers = Vec::new();
    let mut pending = vec![root.path().to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if entry.file_name().to_string_lossy().contains("tmp") {
                leftovers.push(entry.path());
            }
        }
    }
    assert!(leftovers.is_empty(), "{leftovers:#?}");
}

#[test]
fn a_machine_id_in_the_image_is_warned_about() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let machine_id = root.path().join("etc/machine-id");

    std::fs::write(&machine_id, "3d1219c7c4c5404aaa1f6d2a48adfda4\n").unwrap();
    let report = install(&options(root.path())).unwrap();
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("machine-id"))
        .unwrap_or_else(|| panic!("no machine-id warning: {report:#?}"));
    assert!(
        warning.contains("truncate -s 0 /etc/machine-id"),
        "{warning}"
    );
    assert!(warning.contains("host.id"), "{warning}");

    for harmless in ["", "uninitialized\n"] {
        std::fs::write(&machine_id, harmless).unwrap();
        let report = install(&options(root.path())).unwrap();
        assert!(
            report.warnings.iter().all(|w| !w.contains("machine-id")),
            "{harmless:?}: {report:#?}"
        );
    }
}

/// A change that makes the options invalid.
type BadChange = Box<dyn Fn(&mut InstallOptions)>;

#[test]
fn bad_input_is_refused_with_the_flag_named_and_nothing_written() {
    let root = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, BadChange)> = vec![
        ("--service", Box::new(|o| o.service = "  ".to_string())),
        (
            "--image-version",
            Box::new(|o| o.image_version = String::new()),
        ),
        ("--image-name", Box::new(|o| o.image_name = String::new())),
        (
            "no port",
            Box::new(|o| o.server = "http://logs.internal".to_string()),
        ),
        (
            "no scheme",
            Box::new(|o| o.server = "logs.internal:4317".to_string()),
        ),
        (
            "scheme `grpc`",
            Box::new(|o| o.server = "grpc://logs:4317".to_string()),
        ),
        (
            "only a host and port",
            Box::new(|o| o.server = "http://logs:4317/v1/logs".to_string()),
        ),
        // The agent itself cannot do TLS yet; an image must not ship one that won't start.
        (
            "TLS",
            Box::new(|o| o.server = "https://logs:4317".to_string()),
        ),
        (
            "absolute",
            Box::new(|o| o.files = vec!["logs/*.log".to_string()]),
        ),
        (
            "not a valid glob",
            Box::new(|o| o.files = vec!["/var/log/[".to_string()]),
        ),
        (
            "--token-file",
            Box::new(|o| o.token_file = Some(PathBuf::from("/nonexistent/token"))),
        ),
        (
            "--stop-after",
            Box::new(|o| o.stop_after = vec!["my app".to_string()]),
        ),
        (
            "--shutdown-deadline",
            Box::new(|o| o.shutdown_deadline = std::time::Duration::ZERO),
        ),
    ];
    for (expected, change) in cases {
        let mut options = options(root.path());
        change(&mut options);
        let error = format!("{:#}", install(&options).unwrap_err());
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
    }
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "a refused install must write nothing"
    );
}

fn run_cli(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_epitaph-agent"))
        .args(arguments)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn the_cli_installs_copies_its_own_binary_and_warns_on_stderr() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/machine-id"), "abc\n").unwrap();
    let root_arg = root.path().to_str().unwrap();
    let output = run_cli(&[
        "install",
        "--server",
        "http://logs.internal:4317",
        "--service",
        "web",
        "--image-name",
        "web-golden",
        "--image-version",
        "2026.11.26-3f2a",
        "--files",
        "/var/log/app/*.log",
        "/var/log/nginx/*.log",
        "--stop-after",
        "nginx",
        "--stop-after",
        "app",
        "--root",
        root_arg,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("truncate -s 0 /etc/machine-id"),
        "{stderr}"
    );
    assert!(stdout.contains("agent.toml"), "{stdout}");

    let installed = root.path().join("usr/local/bin/epitaph-agent");
    assert_eq!(mode_of(&installed), 0o755);
    assert_eq!(
        std::fs::metadata(&installed).unwrap().len(),
        std::fs::metadata(env!("CARGO_BIN_EXE_epitaph-agent"))
            .unwrap()
            .len()
    );
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("epitaph-agent"));

    let config = Config::from_toml_str(&read(root.path(), "/etc/epitaph/agent.toml")).unwrap();
    assert_eq!(
        config.files,
        vec!["/var/log/app/*.log", "/var/log/nginx/*.log"]
    );
    assert!(unit_lines(root.path()).contains(&"Before=nginx.service app.service".to_string()));
}

#[test]
fn the_cli_refuses_bad_input_with_a_clear_message() {
    let root = tempfile::tempdir().unwrap();
    let output = run_cli(&[
        "install",
        "--server",
        "http://logs.internal",
        "--service",
        "web",
        "--image-name",
        "web-golden",
        "--image-version",
        "1",
        "--no-copy-binary",
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--server") && stderr.contains("no port"),
        "{stderr}"
    );

    // A required flag missing is clap's error, naming the flag.
    let output = run_cli(&["install", "--server", "http://logs:4317"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--service"));
}

#[test]
fn the_flag_only_invocation_still_runs_the_agent() {
    // Not a subcommand: `--config FILE` runs the agent, which here stops at its missing
    // identity file — proof that the flags were parsed as before.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.toml");
    std::fs::write(
        &config_path,
        format!(
            "identity_file = {:?}\nstate_dir = {:?}\nmetadata = \"none\"\n",
            dir.path().join("missing-identity.toml"),
            dir.path().join("state")
        ),
    )
    .unwrap();
    let output = run_cli(&["--config", config_path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing-identity.toml"), "{stderr}");

    // Run flags and the subcommand do not mix.
    let output = run_cli(&["--config", config_path.to_str().unwrap(), "install"]);
    assert!(!output.status.success());
}

#[test]
fn systemd_accepts_the_unit() {
    // `systemd-analyze verify` knows every directive and its syntax; the string checks
    // above do not. It also insists that ExecStart's binary exists on this machine, so
    // the unit is verified with ExecStart pointing at the binary under test.
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed on this machine");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let mut options = options(root.path());
    options.stop_after = vec!["app".to_string()];
    install(&options).unwrap();
    let unit = read(root.path(), "/etc/systemd/system/epitaph-agent.service").replace(
        "/usr/local/bin/epitaph-agent",
        env!("CARGO_BIN_EXE_epitaph-agent"),
    );
    let unit_path = root.path().join("epitaph-agent.service");
    std::fs::write(&unit_path, unit).unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(&unit_path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    // Units the test machine lacks (app.service, sysinit.target in a container) are not
    // the unit's fault; everything else systemd says is.
    let complaints: Vec<&str> = report
        .lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !line.contains("not found") && !line.contains("No such file"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze verify:\n{report}");
}

fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}
