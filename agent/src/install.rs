//! `epitaph-agent install`: puts the agent into a golden image while the image is built.
//!
//! An image builder (Packer, a Dockerfile, a chroot script) runs this once, inside the
//! machine being imaged or against a staging root (`--root`). It writes, under the root:
//!
//! | path | what |
//! |---|---|
//! | `etc/epitaph/agent.toml` | the configuration: server, files, state and identity paths |
//! | `etc/epitaph/identity.toml` | what the image is: service, image name, version and id |
//! | `etc/epitaph/token` | the bearer token, mode 0600 (only with `--token-file`) |
//! | `etc/systemd/system/epitaph-agent.service` | the unit (see [`systemd`] for its ordering) |
//! | `etc/systemd/system/multi-user.target.wants/epitaph-agent.service` | the symlink `systemctl enable` would make |
//! | `usr/local/bin/epitaph-agent` | this very binary (unless `--no-copy-binary`) |
//!
//! Design points:
//!
//! - **Nothing is written until everything is checked.** Every input is validated first,
//!   and the configuration is parsed back with the agent's own loader and validated as
//!   the agent would at boot, so an image never ships an agent that refuses to start.
//! - **No running systemd needed.** Enabling is the symlink `systemctl enable` makes, so
//!   it works in a chroot or a container build.
//! - **Idempotent.** Each file is replaced atomically (temp file, fsync, rename); a
//!   re-run with different flags leaves nothing of the previous one behind (a token from
//!   an earlier run is deleted when the new run has none).
//! - **Clones must not share a host id.** A non-empty `etc/machine-id` in the image gives
//!   every instance the same `host.id` wherever no metadata service names the host, so
//!   `install` warns and says how to clear it.

pub mod systemd;

use std::fs::{self, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::config::Config;
use crate::identity::IdentityFile;
use crate::identity::metadata::MetadataMode;
use crate::identity::metadata::http::split_host_port as split_host_port_of_url;

/// Where the binary lives in the image (the unit's `ExecStart`).
pub const BINARY_PATH: &str = "/usr/local/bin/epitaph-agent";
pub const CONFIG_PATH: &str = "/etc/epitaph/agent.toml";
pub const IDENTITY_PATH: &str = "/etc/epitaph/identity.toml";
pub const TOKEN_PATH: &str = "/etc/epitaph/token";
pub const STATE_DIR: &str = "/var/lib/epitaph-agent";
pub const UNIT_PATH: &str = "/etc/systemd/system/epitaph-agent.service";
pub const WANTS_LINK_PATH: &str =
    "/etc/systemd/system/multi-user.target.wants/epitaph-agent.service";
const MACHINE_ID_PATH: &str = "/etc/machine-id";

/// The flags of `epitaph-agent install`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallOptions {
    /// The Epitaph server the instances ship to, e.g. http://logs.internal:4317.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The fleet or application (`service.name`).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The golden image's name (`host.image.name`).
    #[arg(long, value_name = "NAME")]
    pub image_name: String,
    /// The golden image's version (`host.image.version`), e.g. 2026.11.26-3f2a.
    #[arg(long, value_name = "VERSION")]
    pub image_version: String,
    /// The image's id (`host.image.id`), e.g. an AMI id, when the builder knows it.
    #[arg(long, value_name = "ID")]
    pub image_id: Option<String>,
    /// A file holding the bearer token; copied into the image as /etc/epitaph/token (0600).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Absolute globs of the log files to tail (repeatable); default /var/log/app/*.log.
    #[arg(long, value_name = "GLOB", num_args = 1..)]
    pub files: Vec<String>,
    /// A systemd unit whose logs the agent tails (repeatable): the agent is ordered
    /// `Before=` it, so that at shutdown it stops after it and catches its last lines.
    #[arg(long = "stop-after", value_name = "UNIT")]
    pub stop_after: Vec<String>,
    /// How long a shutdown may take to flush; the unit's TimeoutStopSec is this plus 5 s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_deadline: Duration,
    /// Pin the cloud metadata service to ask at boot (default: auto).
    #[arg(long, value_enum, value_name = "MODE")]
    pub metadata: Option<MetadataMode>,
    /// The root of the image being built (a staging directory, or / inside the builder).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Do not copy this binary to /usr/local/bin/epitaph-agent (it is put there otherwise).
    #[arg(long)]
    pub no_copy_binary: bool,
}

impl InstallOptions {
    /// The required flags, everything else at its default (for embedding and tests).
    pub fn new(
        server: &str,
        service: &str,
        image_name: &str,
        image_version: &str,
        root: &Path,
    ) -> InstallOptions {
        InstallOptions {
            server: server.to_string(),
            service: service.to_string(),
            image_name: image_name.to_string(),
            image_version: image_version.to_string(),
            image_id: None,
            token_file: None,
            files: Vec::new(),
            stop_after: Vec::new(),
            shutdown_deadline: Config::default().shutdown_deadline,
            metadata: None,
            root: root.to_path_buf(),
            no_copy_binary: false,
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Files and links written (paths under the root).
    pub written: Vec<PathBuf>,
    /// Leftovers of an earlier install that were deleted.
    pub removed: Vec<PathBuf>,
    /// Things the operator should fix in the image, one sentence each.
    pub warnings: Vec<String>,
}

/// `agent.toml` as `install` writes it: only what differs per image, the rest defaults.
#[derive(Debug, Serialize)]
struct InstalledConfig {
    server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
    state_dir: String,
    identity_file: String,
    files: Vec<String>,
    shutdown_deadline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataMode>,
}

/// Everything `install` will write, checked and rendered before anything is written.
#[derive(Debug)]
struct InstallPlan {
    config_toml: String,
    identity_toml: String,
    token: Option<String>,
    unit: String,
    binary_source: Option<PathBuf>,
}

/// Installs the agent under `options.root`; see the module documentation.
pub fn install(options: &InstallOptions) -> anyhow::Result<InstallReport> {
    let plan = plan(options)?;
    let root = options.root.as_path();
    if !root.is_dir() {
        bail!("--root {}: not a directory", root.display());
    }
    let mut report = InstallReport::default();

    write_atomically(
        &under(root, CONFIG_PATH),
        plan.config_toml.as_bytes(),
        0o644,
    )?;
    report.written.push(under(root, CONFIG_PATH));
    write_atomically(
        &under(root, IDENTITY_PATH),
        plan.identity_toml.as_bytes(),
        0o644,
    )?;
    report.written.push(under(root, IDENTITY_PATH));
    let token_path = under(root, TOKEN_PATH);
    match &plan.token {
        Some(token) => {
            write_atomically(&token_path, format!("{token}\n").as_bytes(), 0o600)?;
            report.written.push(token_path);
        }
        None => {
            if remove_if_present(&token_path)? {
                report.removed.push(token_path);
            }
        }
    }
    write_atomically(&under(root, UNIT_PATH), plan.unit.as_bytes(), 0o644)?;
    report.written.push(under(root, UNIT_PATH));
    // The link points at the unit's path inside the image, as `systemctl enable` makes it;
    // seen from the build host it may dangle, which is fine.
    replace_symlink(&under(root, WANTS_LINK_PATH), Path::new(UNIT_PATH))?;
    report.written.push(under(root, WANTS_LINK_PATH));

    let binary_target = under(root, BINARY_PATH);
    let copied = match &plan.binary_source {
        Some(source) => copy_binary(source, &binary_target)?,
        None => false,
    };
    if copied {
        report.written.push(binary_target.clone());
    }
    if plan.binary_source.is_none() && !binary_target.exists() {
        report.warnings.push(format!(
            "{} does not exist yet: the unit runs {BINARY_PATH}, so put the binary there before the image is sealed",
            binary_target.display()
        ));
    }

    report.warnings.extend(machine_id_warning(root));
    if options.stop_after.is_empty() {
        report.warnings.push(
            "no --stop-after units: at shutdown systemd may stop the agent before the services whose logs it tails, and their last lines can be missed".to_string(),
        );
    }
    Ok(report)
}

/// Validates the options and renders every file; writes nothing.
fn plan(options: &InstallOptions) -> anyhow::Result<InstallPlan> {
    let service = required_text("--service", &options.service)?;
    let image_name = required_text("--image-name", &options.image_name)?;
    let image_version = required_text("--image-version", &options.image_version)?;
    let image_id = match &options.image_id {
        Some(image_id) => Some(required_text("--image-id", image_id)?),
        None => None,
    };
    check_server_url(&options.server)?;
    let files = match options.files.is_empty() {
        true => Config::default().files,
        false => options.files.clone(),
    };
    for pattern in &files {
        if !pattern.starts_with('/') {
            bail!("--files `{pattern}`: must be an absolute path (the agent runs from /)");
        }
    }
    let mut stop_after = Vec::new();
    for raw in &options.stop_after {
        let name = systemd::unit_name(raw)?;
        if !stop_after.contains(&name) {
            stop_after.push(name);
        }
    }
    if options.shutdown_deadline.is_zero() {
        bail!("--shutdown-deadline must be greater than zero");
    }
    let token = match &options.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };

    let config_toml = render_config(options, &files, token.is_some())?;
    // Read back exactly as the agent will at boot: an image must not ship an agent that
    // refuses to start.
    let mut config = Config::from_toml_str(&config_toml)
        .context("the generated agent.toml does not parse (a bug in install)")?;
    config.bearer_token = token.clone();
    config
        .validate()
        .context("the agent would refuse this configuration")?;

    let identity = IdentityFile {
        service,
        image_name,
        image_version,
        image_id,
        attributes: Default::default(),
    };
    let identity_toml = format!(
        "# Written by `epitaph-agent install`: what this image is.\n{}",
        toml::to_string(&identity).context("rendering identity.toml")?
    );
    let unit = systemd::render_unit(
        BINARY_PATH,
        CONFIG_PATH,
        &stop_after,
        options.shutdown_deadline,
    );
    let binary_source = match options.no_copy_binary {
        true => None,
        false => Some(std::env::current_exe().context(
            "finding this program's own file to copy into the image (or pass --no-copy-binary)",
        )?),
    };
    Ok(InstallPlan {
        config_toml,
        identity_toml,
        token,
        unit,
        binary_source,
    })
}

fn render_config(
    options: &InstallOptions,
    files: &[String],
    has_token: bool,
) -> anyhow::Result<String> {
    let installed = InstalledConfig {
        server: options.server.trim().to_string(),
        token_file: has_token.then(|| TOKEN_PATH.to_string()),
        state_dir: STATE_DIR.to_string(),
        identity_file: IDENTITY_PATH.to_string(),
        files: files.to_vec(),
        shutdown_deadline: humantime::format_duration(options.shutdown_deadline).to_string(),
        metadata: options.metadata,
    };
    Ok(format!(
        "# Written by `epitaph-agent install`; running it again replaces this file.\n\
         # Every other setting has its default (see the agent's README).\n{}",
        toml::to_string(&installed).context("rendering agent.toml")?
    ))
}

/// A trimmed, non-empty, single-line value for `flag`.
fn required_text(flag: &str, value: &str) -> anyhow::Result<String> {
    let value = value.trim();
    if value.is_empty() {
        bail!("{flag} must not be empty");
    }
    if value.chars().any(char::is_control) {
        bail!(
            "{flag} `{}` contains a control character",
            value.escape_debug()
        );
    }
    Ok(value.to_string())
}

/// `http://host:port` or `https://host:port`, optionally with a trailing `/`.
fn check_server_url(url: &str) -> anyhow::Result<()> {
    let url = url.trim();
    let expected = "expected http://host:port or https://host:port, e.g. http://logs.internal:4317";
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("--server `{url}`: no scheme; {expected}");
    };
    if scheme != "http" && scheme != "https" {
        bail!("--server `{url}`: scheme `{scheme}` is not http or https; {expected}");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        bail!("--server `{url}`: only a host and port may follow the scheme; {expected}");
    }
    match split_host_port_of_url(authority) {
        Some((host, Some(port))) if !host.is_empty() && port != 0 => Ok(()),
        Some((_, None)) => bail!("--server `{url}`: no port; {expected}"),
        _ => bail!("--server `{url}`: malformed host or port; {expected}"),
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = fs::read_to_string(path)
        .with_context(|| format!("--token-file {}: cannot read it", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        bail!("--token-file {}: the file is empty", path.display());
    }
    Ok(token.to_string())
}

/// A warning when the image carries a machine id that every clone would share.
fn machine_id_warning(root: &Path) -> Option<String> {
    let path = under(root, MACHINE_ID_PATH);
    let machine_id = fs::read_to_string(&path).ok()?;
    let machine_id = machine_id.trim();
    // systemd's "uninitialized" marker means "generate one at first boot", as empty does.
    if machine_id.is_empty() || machine_id == "uninitialized" {
        return None;
    }
    Some(format!(
        "{} is not empty ({machine_id}): every instance cloned from this image would report the same host.id wherever no metadata service names the host. Make `truncate -s 0 /etc/machine-id` the last step of the image build (systemd then makes a fresh one at each instance's first boot); do not delete the file",
        path.display()
    ))
}

/// `absolute` (a path inside the image) under `root`.
fn under(root: &Path, absolute: &str) -> PathBuf {
    debug_assert!(absolute.starts_with('/'));
    root.join(absolute.trim_start_matches('/'))
}

/// The name of a temporary sibling of `path`, in the same directory so that the final
/// rename is atomic.
fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.epitaph-install-tmp"))
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    // Invariant: every path written is `under(root, "/...")`, which has a parent.
    let parent = path
        .parent()
        .expect("install paths have a parent directory");
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))
}

/// Replaces `path` with `contents` (mode `mode`) so that a reader sees the old file or the
/// new one, never half of one.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    create_parent(path)?;
    let temporary = temporary_sibling(path);
    remove_if_present(&temporary)?;
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        // The umask may have narrowed `mode` (never widened it); set it exactly.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Copies the binary at `source` to `target` (mode 0755) unless they are the same file;
/// returns whether it copied.
fn copy_binary(source: &Path, target: &Path) -> anyhow::Result<bool> {
    if let (Ok(source_meta), Ok(target_meta)) = (fs::metadata(source), fs::metadata(target))
        && (source_meta.dev(), source_meta.ino()) == (target_meta.dev(), target_meta.ino())
    {
        return Ok(false);
    }
    create_parent(target)?;
    let temporary = temporary_sibling(target);
    remove_if_present(&temporary)?;
    let copy = || -> std::io::Result<()> {
        fs::copy(source, &temporary)?;
        fs::set_permissions(&temporary, Permissions::from_mode(0o755))?;
        fs::File::open(&temporary)?.sync_all()?;
        // A rename, not a write in place: a running copy of the old binary keeps its
        // inode instead of failing with "text file busy".
        fs::rename(&temporary, target)
    };
    copy().with_context(|| {
        format!(
            "copying {} to {} (or pass --no-copy-binary)",
            source.display(),
            target.display()
        )
    })?;
    Ok(true)
}

/// Points `link` at `target`, replacing whatever file or link was there.
fn replace_symlink(link: &Path, target: &Path) -> anyhow::Result<()> {
    create_parent(link)?;
    let temporary = temporary_sibling(link);
    remove_if_present(&temporary)?;
    let replace = || -> std::io::Result<()> {
        std::os::unix::fs::symlink(target, &temporary)?;
        fs::rename(&temporary, link)
    };
    replace().with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// Deletes the file or link at `path`; returns whether there was one.
fn remove_if_present(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_must_be_http_or_https_host_and_port() {
        for good in [
            "http://logs.internal:4317",
            "https://logs.internal:4317/",
            "http://10.0.0.5:4317",
            "http://[fd00::5]:4317",
        ] {
            check_server_url(good).unwrap_or_else(|error| panic!("{good}: {error:#}"));
        }
        for (bad, why) in [
            ("logs.internal:4317", "no scheme"),
            ("ftp://logs:21", "scheme `ftp`"),
            ("http://logs.internal", "no port"),
            ("http://logs.internal:4317/v1/logs", "only a host and port"),
            ("http://:4317", "malformed"),
            ("http://logs:0", "malformed"),
            ("http://logs:99999", "malformed"),
        ] {
            let error = format!("{:#}", check_server_url(bad).unwrap_err());
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn text_values_are_trimmed_and_must_not_be_empty() {
        assert_eq!(required_text("--service", " web ").unwrap(), "web");
        assert!(required_text("--service", "  ").is_err());
        assert!(required_text("--service", "we\nb").is_err());
    }
}
