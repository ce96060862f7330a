//! Identity at boot against fake metadata services on loopback.
//!
//! The fakes behave like the real services in the ways the agent depends on: the EC2 one
//! answers `GET`s only with a token obtained by `PUT /latest/api/token` (401 otherwise,
//! as IMDSv2 with v1 disabled does), the GCP one only requests that carry
//! `Metadata-Flavor: Google` (403 otherwise) and marks its answers with the same header.
//! Every test points `metadata_endpoint` at `127.0.0.1`; nothing here ever contacts the
//! real link-local address or any non-loopback one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use epitaph_agent::config::Config;
use epitaph_agent::identity::metadata::{MetadataMode, http};
use epitaph_agent::identity::{HostFacts, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// "Not delayed by more than one second": the budget plus room for a loaded test machine.
const START_DELAY_LIMIT: Duration = Duration::from_millis(1400);

const IMDS_TOKEN: &str = "AQAEAFake-imds-token==";

/// One request a fake saw.
#[derive(Debug, Clone)]
struct SeenRequest {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    status: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// IMDSv2: token flow, then `GET`s with the token.
    Ec2,
    /// GCE: `Metadata-Flavor: Google` both ways.
    Gcp,
    /// Answers like GCE but without the `Metadata-Flavor` response header.
    GcpImpostor,
}

/// A fake metadata service serving `routes` (path → body) on 127.0.0.1.
struct FakeMetadata {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl FakeMetadata {
    async fn start(flavor: Flavor, routes: &[(&str, &str)]) -> FakeMetadata {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let routes: Arc<HashMap<String, String>> = Arc::new(
            routes
                .iter()
                .map(|(path, body)| (path.to_string(), body.to_string()))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    serve_one(stream, flavor, &routes, &recorder).await;
                });
            }
        });
        FakeMetadata { address, seen }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_one(
    mut stream: TcpStream,
    flavor: Flavor,
    routes: &HashMap<String, String>,
    recorder: &Mutex<Vec<SeenRequest>>,
) {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 1024];
    let (method, path, headers) = loop {
        let Ok(read) = stream.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        raw.extend_from_slice(&chunk[..read]);
        let mut header_slots = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut header_slots);
        if let Ok(httparse::Status::Complete(_)) = request.parse(&raw) {
            let headers: HashMap<String, String> = request
                .headers
                .iter()
                .map(|header| {
                    (
                        header.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(header.value).to_string(),
                    )
                })
                .collect();
            break (
                request.method.unwrap().to_string(),
                request.path.unwrap().to_string(),
                headers,
            );
        }
    };

    let header = |name: &str| headers.get(name).map(String::as_str);
    let (status, body) = match flavor {
        Flavor::Ec2 if method == "PUT" && path == "/latest/api/token" => {
            match header("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(_) => (200, IMDS_TOKEN.to_string()),
                None => (400, "missing ttl".to_string()),
            }
        }
        Flavor::Ec2 if header("x-aws-ec2-metadata-token") != Some(IMDS_TOKEN) => {
            (401, String::new())
        }
        Flavor::Gcp | Flavor::GcpImpostor if header("metadata-flavor") != Some("Google") => {
            (403, "Missing Metadata-Flavor:Google header.".to_string())
        }
        _ if method != "GET" => (405, String::new()),
        _ => match routes.get(&path) {
            Some(body) => (200, body.clone()),
            None => (404, "<html>not found</html>".to_string()),
        },
    };
    recorder.lock().unwrap().push(SeenRequest {
        method,
        path,
        headers,
        status,
    });
    let flavor_header = match flavor {
        Flavor::Gcp => "Metadata-Flavor: Google\r\n",
        _ => "",
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{flavor_header}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn ec2_routes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/latest/meta-data/instance-id", "i-0fake123"),
        (
            "/latest/meta-data/local-hostname",
            "ip-10-1-2-3.eu-west-1.compute.internal",
        ),
        ("/latest/meta-data/instance-type", "m7g.large"),
        ("/latest/meta-data/placement/region", "eu-west-1"),
        (
            "/latest/meta-data/placement/availability-zone",
            "eu-west-1b",
        ),
        (
            "/latest/dynamic/instance-identity/document",
            r#"{"accountId":"123456789012","imageId":"ami-0fromimds","instanceId":"i-0fake123","region":"eu-west-1"}"#,
        ),
        ("/latest/meta-data/tags/instance/epitaph:generation", "43"),
    ]
}

fn gcp_routes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/computeMetadata/v1/instance/id", "4520031799277581759"),
        ("/computeMetadata/v1/instance/name", "web-7xq2"),
        (
            "/computeMetadata/v1/instance/machine-type",
            "projects/1234/machineTypes/e2-medium",
        ),
        (
            "/computeMetadata/v1/instance/zone",
            "projects/1234/zones/europe-west4-b",
        ),
        ("/computeMetadata/v1/project/project-id", "acme-prod"),
        (
            "/computeMetadata/v1/instance/attributes/deployment-generation",
            "blue-12",
        ),
    ]
}

/// A directory with a baked identity file and a config pointing at `endpoint`.
struct Image {
    dir: tempfile::TempDir,
}

impl Image {
    fn new() -> Image {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("identity.toml"),
            "service = \"web\"\nimage_name = \"web-golden\"\nimage_version = \"2026.11.26-3f2a\"\n",
        )
        .unwrap();
        Image { dir }
    }

    fn instance_file(&self) -> PathBuf {
        self.dir.path().join("instance.env")
    }

    fn config(&self, metadata: MetadataMode, endpoint: &str) -> Config {
        Config {
            identity_file: self.dir.path().join("identity.toml"),
            instance_identity_file: self.instance_file(),
            metadata,
            metadata_endpoint: endpoint.to_string(),
            state_dir: self.dir.path().join("state"),
            ..Config::default()
        }
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A host whose firmware names no cloud, with a machine id and kernel hostname.
fn plain_host() -> HostFacts {
    HostFacts {
        hostname: Some("kernel-hostname".to_string()),
        machine_id: Some("0123456789abcdef0123456789abcdef".to_string()),
        firmware_cloud: None,
    }
}

async fn resolve(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Identity {
    Identity::resolve_at_boot_on(config, env, plain_host())
        .await
        .unwrap()
}

fn attributes(identity: &Identity) -> BTreeMap<&str, &str> {
    identity
        .attributes()
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

#[tokio::test]
async fn ec2_identity_comes_through_the_imdsv2_token_flow() {
    let fake = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let image = Image::new();
    let identity = resolve(&image.config(MetadataMode::Ec2, &fake.endpoint()), &no_env).await;

    let attributes = attributes(&identity);
    assert_eq!(attributes["host.id"], "i-0fake123");
    assert_eq!(
        attributes["host.name"],
        "ip-10-1-2-3.eu-west-1.compute.internal"
    );
    assert_eq!(attributes["host.type"], "m7g.large");
    assert_eq!(attributes["cloud.provider"], "aws");
    assert_eq!(attributes["cloud.platform"], "aws_ec2");
    assert_eq!(attributes["cloud.region"], "eu-west-1");
    assert_eq!(attributes["cloud.availability_zone"], "eu-west-1b");
    assert_eq!(attributes["cloud.account.id"], "123456789012");
    // The baked identity file names no image id, so the AMI fills it in.
    assert_eq!(attributes["host.image.id"], "ami-0fromimds");
    assert_eq!(attributes["deployment.generation"], "43");
    assert_eq!(attributes["service.name"], "web");
    assert_eq!(attributes["host.image.version"], "2026.11.26-3f2a");

    let seen = fake.seen();
    let token_requests: Vec<_> = seen.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(token_requests.len(), 1, "{seen:#?}");
    assert_eq!(token_requests[0].path, "/latest/api/token");
    let refused: Vec<_> = seen.iter().filter(|r| r.status == 401).collect();
    assert!(refused.is_empty(), "GETs without the token: {refused:#?}");
    assert!(
        seen.iter().filter(|r| r.method == "GET").all(|r| r
            .headers
            .get("x-aws-ec2-metadata-token")
            .map(String::as_str)
            == Some(IMDS_TOKEN)),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn the_fake_imds_refuses_gets_without_the_token() {
    // Guards the test above: were the fake lenient, a client that skipped the token flow
    // would pass it.
    let fake = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let endpoint = http::Endpoint::parse(&fake.endpoint()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let response = http::request(
        &endpoint,
        "GET",
        "/latest/meta-data/instance-id",
        &[],
        deadline,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn ec2_generation_falls_back_to_the_deployment_generation_tag() {
    let mut routes = ec2_routes();
    routes.retain(|(path, _)| !path.ends_with("epitaph:generation"));
    routes.push(("/latest/meta-data/tags/instance/deployment.generation", "7"));
    let fake = FakeMetadata::start(Flavor::Ec2, &routes).await;
    let image = Image::new();
    let identity = resolve(&image.config(MetadataMode::Ec2, &fake.endpoint()), &no_env).await;
    assert_eq!(identity.get("deployment.generation"), Some("7"));
}

#[tokio::test]
async fn gcp_identity_is_read_with_the_metadata_flavor_header() {
    let fake = FakeMetadata::start(Flavor::Gcp, &gcp_routes()).await;
    let image = Image::new();
    let identity = resolve(&image.config(MetadataMode::Gcp, &fake.endpoint()), &no_env).await;

    let attributes = attributes(&identity);
    assert_eq!(attributes["host.id"], "4520031799277581759");
    assert_eq!(attributes["host.name"], "web-7xq2");
    assert_eq!(attributes["host.type"], "e2-medium");
    assert_eq!(attributes["cloud.provider"], "gcp");
    assert_eq!(attributes["cloud.platform"], "gcp_compute_engine");
    assert_eq!(attributes["cloud.availability_zone"], "europe-west4-b");
    assert_eq!(attributes["cloud.region"], "europe-west4");
    assert_eq!(attributes["cloud.account.id"], "acme-prod");
    assert_eq!(attributes["deployment.generation"], "blue-12");

    let seen = fake.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|r| r.status != 403
            && r.headers.get("metadata-flavor").map(String::as_str) == Some("Google")),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn an_answer_without_the_google_flavor_header_is_not_believed() {
    let impostor = FakeMetadata::start(Flavor::GcpImpostor, &gcp_routes()).await;
    let image = Image::new();
    let identity = resolve(
        &image.config(MetadataMode::Gcp, &impostor.endpoint()),
        &no_env,
    )
    .await;
    assert_eq!(
        identity.get("host.id"),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(identity.get("cloud.provider"), None);
    assert!(!impostor.seen().is_empty(), "the impostor was asked");
}

#[tokio::test]
async fn auto_mode_finds_whichever_cloud_answers() {
    let image = Image::new();
    let ec2 = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let identity = resolve(&image.config(MetadataMode::Auto, &ec2.endpoint()), &no_env).await;
    assert_eq!(identity.get("cloud.provider"), Some("aws"));
    assert_eq!(identity.get("host.id"), Some("i-0fake123"));

    let gcp = FakeMetadata::start(Flavor::Gcp, &gcp_routes()).await;
    let identity = resolve(&image.config(MetadataMode::Auto, &gcp.endpoint()), &no_env).await;
    assert_eq!(identity.get("cloud.provider"), Some("gcp"));
    assert_eq!(identity.get("host.id"), Some("4520031799277581759"));
}

#[tokio::test]
async fn metadata_none_asks_nothing() {
    let fake = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let image = Image::new();
    let identity = resolve(&image.config(MetadataMode::None, &fake.endpoint()), &no_env).await;
    assert_eq!(
        identity.get("host.id"),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert!(fake.seen().is_empty(), "{:#?}", fake.seen());
}

#[tokio::test]
async fn precedence_is_env_then_instance_file_then_metadata_then_machine() {
    let fake = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let image = Image::new();
    // Metadata gives host.id, host.name, region, zone and generation 43.
    // The instance file overrides host.name, region and generation.
    std::fs::write(
        image.instance_file(),
        "# written by user-data\nhost.name=from-user-data\ncloud.region=\"us-east-2\"\ndeployment.generation=44\n",
    )
    .unwrap();
    // The environment overrides the generation again.
    let env = |key: &str| {
        (key == "OTEL_RESOURCE_ATTRIBUTES").then(|| "deployment.generation=45".to_string())
    };
    let config = image.config(MetadataMode::Ec2, &fake.endpoint());

    let identity = resolve(&config, &env).await;
    assert_eq!(
        identity.get("deployment.generation"),
        Some("45"),
        "env wins"
    );
    assert_eq!(identity.get("host.name"), Some("from-user-data"));
    assert_eq!(identity.get("cloud.region"), Some("us-east-2"));
    assert_eq!(
        identity.get("host.id"),
        Some("i-0fake123"),
        "metadata over machine-id"
    );
    assert_eq!(identity.get("cloud.availability_zone"), Some("eu-west-1b"));

    // Without the environment, the instance file's generation stands.
    let identity = resolve(&config, &no_env).await;
    assert_eq!(identity.get("deployment.generation"), Some("44"));

    // Without the metadata service, the machine's own facts are the fallback.
    std::fs::remove_file(image.instance_file()).unwrap();
    let identity = resolve(&image.config(MetadataMode::None, &fake.endpoint()), &no_env).await;
    assert_eq!(
        identity.get("host.id"),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(identity.get("host.name"), Some("kernel-hostname"));
    assert_eq!(identity.get("deployment.generation"), None);
}

/// A loopback port that accepts connections and never says a word.
async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (address, task)
}

/// A loopback port that refuses connections (bound, then released).
fn refusing_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

async fn timed_resolve(config: &Config) -> (Identity, Duration) {
    let started = Instant::now();
    let identity = resolve(config, &no_env).await;
    (identity, started.elapsed())
}

#[tokio::test]
async fn a_silent_metadata_service_delays_start_by_at_most_a_second() {
    let (address, _task) = silent_listener().await;
    let image = Image::new();
    for mode in [MetadataMode::Auto, MetadataMode::Ec2, MetadataMode::Gcp] {
        let config = image.config(mode, &format!("http://{address}"));
        let (identity, elapsed) = timed_resolve(&config).await;
        assert!(
            elapsed < START_DELAY_LIMIT,
            "{mode:?}: identity took {elapsed:?}"
        );
        assert_eq!(
            identity.get("host.id"),
            Some("0123456789abcdef0123456789abcdef"),
            "{mode:?}: falls back to the machine id"
        );
    }
}

#[tokio::test]
async fn a_refused_metadata_connection_does_not_delay_start() {
    let address = refusing_port();
    let image = Image::new();
    for mode in [MetadataMode::Auto, MetadataMode::Ec2, MetadataMode::Gcp] {
        let config = image.config(mode, &format!("http://{address}"));
        let (identity, elapsed) = timed_resolve(&config).await;
        assert!(
            elapsed < START_DELAY_LIMIT,
            "{mode:?}: identity took {elapsed:?}"
        );
        assert_eq!(
            identity.get("host.name"),
            Some("kernel-hostname"),
            "{mode:?}: falls back to the hostname"
        );
    }
}

#[tokio::test]
async fn a_malformed_metadata_endpoint_is_a_configuration_error() {
    let image = Image::new();
    let config = image.config(MetadataMode::Auto, "https://169.254.169.254/latest");
    let error = Identity::resolve_at_boot_on(&config, &no_env, plain_host())
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("metadata_endpoint"),
        "{error:#}"
    );
}

/// The real binary: `--config` resolves identity from the metadata service at start.
#[tokio::test]
async fn the_agent_binary_reads_its_identity_at_boot() {
    let fake = FakeMetadata::start(Flavor::Ec2, &ec2_routes()).await;
    let image = Image::new();
    let config_path = image.dir.path().join("agent.toml");
    let unused_server = refusing_port();
    std::fs::write(
        &config_path,
        format!(
            "server = \"http://{unused_server}\"\nstate_dir = {state:?}\nidentity_file = {identity:?}\ninstance_identity_file = {instance:?}\nfiles = []\nmetadata = \"ec2\"\nmetadata_endpoint = \"{endpoint}\"\n",
            state = image.dir.path().join("state"),
            identity = image.dir.path().join("identity.toml"),
            instance = image.instance_file(),
            endpoint = fake.endpoint(),
        ),
    )
    .unwrap();
    let stderr_path = image.dir.path().join("agent.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_epitaph-agent"))
        .arg("--config")
        .arg(&config_path)
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_SERVICE_NAME")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let stderr = loop {
        let stderr = read_lossy(&stderr_path);
        if stderr.contains("epitaph-agent started") || started.elapsed() > Duration::from_secs(20) {
            break stderr;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited with {status}:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let resolved = stderr
        .lines()
        .find(|line| line.contains("identity resolved"))
        .unwrap_or_else(|| panic!("no `identity resolved` line:\n{stderr}"));
    assert!(
        resolved.contains("host_id=\"i-0fake123\"") || resolved.contains("host_id=i-0fake123"),
        "{resolved}"
    );
    assert!(resolved.contains("43"), "{resolved}");
    assert!(stderr.contains("epitaph-agent started"), "{stderr}");
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).to_string()
}
