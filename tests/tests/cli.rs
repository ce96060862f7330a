//! The `epitaph` command line, run as a user would run it, against a real server: search
//! in each output format and with a time range, a refused query shown with a caret and a
//! non-zero exit, an unreachable server, instances by state, a live tail, stats and
//! versions.

use std::io::{BufRead, BufReader, Read};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use epitaph_proto::keys;
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::agent::InstanceIdentity;
use epitaph_tests::binaries::binaries;
use epitaph_tests::lines::append_lines;
use epitaph_tests::otlp::{export_request, log_record, resource, unix_nanos};
use epitaph_tests::process::{ManagedChild, clean_command};
use epitaph_tests::{
    Agent, AgentConfig, Hit, Identity, OtlpClient, Server, eventually, free_loopback_port,
    unique_token,
};

/// A bound against a hung command; every command here answers in well under a second.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run of `epitaph` printed and how it exited.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn assert_success(&self) -> &Run {
        assert!(
            self.status.success(),
            "epitaph failed ({:?}):\n{}",
            self.status,
            self.stderr
        );
        self
    }
}

/// Runs `epitaph --server URL ARGS...` with stdout piped (so not a terminal) and waits.
fn epitaph(server_url: &str, args: &[&str]) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let stderr_path = logs.path().join("stderr");
    let mut command = clean_command(&binaries().cli);
    command
        .arg("--server")
        .arg(server_url)
        .args(args)
        .stdout(Stdio::piped());
    let mut child = ManagedChild::spawn("epitaph", &mut command, &stderr_path);
    let mut stdout_pipe = child.take_stdout().expect("stdout was piped");
    let reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        let _ = stdout_pipe.read_to_string(&mut stdout);
        stdout
    });
    let Some(status) = child.wait_timeout(COMMAND_TIMEOUT) else {
        child.kill9();
        panic!("epitaph {args:?} did not finish within {COMMAND_TIMEOUT:?}");
    };
    Run {
        status,
        stdout: reader.join().unwrap(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

fn record(body: &str, severity: i32, minutes_ago: u64) -> LogRecord {
    let mut record = log_record(body);
    record.severity_number = severity;
    record.severity_text = String::new();
    record.time_unix_nano = unix_nanos(SystemTime::now() - Duration::from_secs(60 * minutes_ago));
    record
}

fn export(client: &OtlpClient, service: &str, version: &str, records: Vec<LogRecord>) {
    let identity = [
        (keys::SERVICE_NAME, service),
        (keys::IMAGE_VERSION, version),
    ];
    client
        .export(export_request(Some(resource(&identity)), records), None)
        .expect("export accepted");
}

fn wait_searchable(server: &Server, query: &str, count: usize) {
    eventually(Duration::from_secs(10), || {
        (server.search(query).len() == count).then_some(())
    })
    .unwrap_or_else(|| panic!("{query:?} did not reach {count} hits"));
}

#[test]
fn search_prints_table_json_and_raw_and_honours_since_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--commit-interval", "200ms"]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("cli");
    let service = unique_token("web");
    let line = |text: &str| format!("{marker} {text}");
    export(
        &client,
        &service,
        "1.0",
        vec![
            record(&line("two hours ago"), 9, 120),
            record(&line("connection refused"), 17, 3),
            record(&line("request\tserved"), 9, 2),
            record(&line("cache warm"), 5, 1),
        ],
    );
    wait_searchable(&server, &marker, 4);
    let url = server.http_url();

    // JSON lines: every hit in the search API's shape, newest first, within --since.
    let run = epitaph(
        &url,
        &["--output", "json", "search", &marker, "--since", "1h"],
    );
    run.assert_success();
    let hits: Vec<Hit> = run
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let bodies: Vec<&str> = hits.iter().map(|hit| hit.body.as_str()).collect();
    let newest_three = [
        line("cache warm"),
        line("request\tserved"),
        line("connection refused"),
    ];
    assert_eq!(bodies, newest_three);
    assert!(hits.iter().all(|hit| hit.service == service));

    // Without --output and with stdout not a terminal, the output is JSON lines too.
    let run = epitaph(&url, &["search", &marker, "--since", "1h", "--limit", "2"]);
    run.assert_success();
    let default_bodies: Vec<String> = run
        .lines()
        .iter()
        .map(|line| serde_json::from_str::<Hit>(line).unwrap().body)
        .collect();
    assert_eq!(default_bodies, newest_three[..2]);

    // Raw: bodies only, and the whole history without --since.
    let run = epitaph(&url, &["--output", "raw", "search", &marker]);
    run.assert_success();
    let mut everything = newest_three.to_vec();
    everything.push(line("two hours ago"));
    assert_eq!(run.lines(), everything);

    // Table: a header, one row per hit, the body column aligned, tabs escaped.
    let run = epitaph(
        &url,
        &["--output", "table", "search", &marker, "--since", "1h"],
    );
    run.assert_success();
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with("TIME") && lines[0].ends_with("BODY"),
        "{}",
        lines[0]
    );
    let body_column = lines[0].find("BODY").unwrap();
    let expected_rows = [
        ("debug", line("cache warm")),
        ("info", line("request\\tserved")),
        ("error", line("connection refused")),
    ];
    for (row, (level, body)) in lines[1..].iter().zip(expected_rows) {
        assert_eq!(&row[body_column..], body, "{}", run.stdout);
        assert!(row.contains(&service) && row.contains(level), "{row}");
    }
}

#[test]
fn a_refused_query_exits_non_zero_with_a_caret_under_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let query = "service:web AND (level:error";
    let api_error = server.get("/api/v1/search", &[("q", query)]).json();
    let start = api_error["position"]["start"].as_u64().unwrap() as usize;

    let run = epitaph(&server.http_url(), &["search", query]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let stderr: Vec<&str> = run.stderr.lines().collect();
    assert!(
        stderr[0].starts_with("error: ")
            && stderr[0].contains(api_error["error"].as_str().unwrap()),
        "{}",
        run.stderr
    );
    assert_eq!(stderr[1], format!("  {query}"), "{}", run.stderr);
    let caret = stderr[2].find('^').expect("a caret line");
    assert_eq!(caret - 2, start, "{}", run.stderr);

    // A pipe stage in a search is refused the same way.
    let run = epitaph(&server.http_url(), &["search", "x | stats count()"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains('^'), "{}", run.stderr);
}

#[test]
fn an_unreachable_server_is_an_error_that_says_so() {
    let port = free_loopback_port();
    let run = epitaph(&format!("http://127.0.0.1:{port}"), &["search", "x"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the Epitaph server"),
        "{}",
        run.stderr
    );
    // A bad command line is usage, exit 2.
    let run = epitaph("http://127.0.0.1:1", &["instances", "--state", "asleep"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
}

#[test]
fn instances_are_listed_and_filtered_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let log_path = dir.path().join("app.log");
    let marker = unique_token("inst");
    append_lines(&log_path, &[format!("{marker} hello")]);
    let instance = InstanceIdentity {
        host_id: unique_token("i"),
        host_name: "cli-1".to_string(),
        generation: "4".to_string(),
    };
    let mut agent = Agent::start(AgentConfig::new(
        &server.grpc_url(),
        &dir.path().join("agent-state"),
        &[&log_path],
        Identity::for_service(&unique_token("svc"), "2026.11.26-cli"),
        instance.clone(),
    ));
    wait_searchable(&server, &marker, 1);
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "agent exit {status:?}");
    eventually(Duration::from_secs(10), || {
        server
            .instances()
            .iter()
            .any(|i| i.instance == instance.host_id && i.state == "terminated")
            .then_some(())
    })
    .expect("the instance is terminated");
    let url = server.http_url();

    let run = epitaph(&url, &["--output", "json", "instances"]);
    run.assert_success();
    let listed: Vec<serde_json::Value> = run
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{}", run.stdout);
    assert_eq!(listed[0]["instance"], instance.host_id.as_str());
    assert_eq!(listed[0]["generation"], "4");
    assert_eq!(listed[0]["record_complete"], true);

    let run = epitaph(
        &url,
        &["--output", "raw", "instances", "--state", "terminated"],
    );
    run.assert_success();
    assert_eq!(run.lines(), [instance.host_id.as_str()]);
    let run = epitaph(&url, &["--output", "raw", "instances", "--state", "lost"]);
    run.assert_success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let run = epitaph(&url, &["--output", "table", "instances"]);
    run.assert_success();
    let lines = run.lines();
    assert!(lines[0].starts_with("STATE"), "{}", run.stdout);
    assert!(
        lines[1].starts_with("terminated") && lines[1].contains(&instance.host_id),
        "{}",
        run.stdout
    );
}

#[test]
fn tail_prints_lines_as_they_arrive_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("tail");
    let line = |text: &str| format!("{marker} {text}");

    let mut command = clean_command(&binaries().cli);
    command
        .args(["--server", &server.http_url(), "--output", "raw", "tail"])
        .arg(format!("{marker} service:web"))
        .stdout(Stdio::piped());
    let mut tail = ManagedChild::spawn("epitaph tail", &mut command, &dir.path().join("stderr"));
    let stdout = tail.take_stdout().expect("stdout was piped");
    let (sender, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    // The tail prints nothing until a line arrives, so probe until one does: from then on
    // the subscription exists and every later line must show up.
    let mut probes = 0;
    loop {
        assert!(probes < 60, "no probe line reached the tail");
        probes += 1;
        export(
            &client,
            "web",
            "1",
            vec![log_record(&line(&format!("probe {probes}")))],
        );
        if let Ok(first) = lines.recv_timeout(Duration::from_millis(500)) {
            assert!(first.starts_with(&line("probe")), "{first}");
            break;
        }
    }
    export(
        &client,
        "web",
        "1",
        vec![log_record(&line("first")), log_record("not for this tail")],
    );
    export(
        &client,
        "api",
        "1",
        vec![log_record(&line("other service"))],
    );
    export(&client, "web", "1", vec![log_record(&line("second"))]);

    let mut seen = Vec::new();
    while seen.last() != Some(&line("second")) {
        let next = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the tail stopped short; saw {seen:?}"));
        if !next.starts_with(&line("probe")) {
            seen.push(next);
        }
    }
    assert_eq!(seen, [line("first"), line("second")]);
    assert!(tail.is_running(), "the tail exited on its own");
    tail.kill9();
}

#[test]
fn stats_and_versions_print_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--commit-interval", "200ms"]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("stats");
    let service = unique_token("svc");
    export(
        &client,
        &service,
        "1.0",
        vec![
            record(&format!("{marker} a"), 17, 10),
            record(&format!("{marker} b"), 9, 10),
        ],
    );
    export(
        &client,
        &service,
        "2.0",
        vec![
            record(&format!("{marker} c"), 17, 1),
            record(&format!("{marker} d"), 17, 1),
            record(&format!("{marker} e"), 9, 1),
        ],
    );
    wait_searchable(&server, &marker, 5);
    let url = server.http_url();

    let query = format!("{marker} | stats count() as lines by version, level");
    let run = epitaph(&url, &["--output", "json", "stats", &query]);
    run.assert_success();
    let mut rows: Vec<(String, String, u64)> = run
        .lines()
        .iter()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                row["version"].as_str().unwrap().to_string(),
                row["level"].as_str().unwrap().to_string(),
                row["lines"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    let expected = [
        ("1.0", "error", 1),
        ("1.0", "info", 1),
        ("2.0", "error", 2),
        ("2.0", "info", 1),
    ]
    .map(|(version, level, lines)| (version.to_string(), level.to_string(), lines));
    assert_eq!(rows, expected);

    let run = epitaph(
        &url,
        &["--output", "table", "stats", &query, "--since", "5m"],
    );
    run.assert_success();
    let lines = run.lines();
    assert_eq!(
        lines.len(),
        3,
        "only version 2.0 in the last 5 minutes: {}",
        run.stdout
    );
    assert!(
        lines[0].starts_with("version") && lines[0].ends_with("lines"),
        "{}",
        run.stdout
    );

    // Versions, newest first; the table marks which is latest.
    let run = epitaph(&url, &["--output", "raw", "versions", &service]);
    run.assert_success();
    assert_eq!(run.lines(), ["2.0", "1.0"]);
    let run = epitaph(&url, &["--output", "json", "versions", &service]);
    run.assert_success();
    let versions: Vec<serde_json::Value> = run
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(versions[0]["alias"], "latest");
    assert_eq!(versions[0]["lines"], 3);
    assert_eq!(versions[1]["alias"], "previous");
    assert_eq!(versions[1]["lines"], 2);
    assert_eq!(versions[1]["service"], service.as_str());

    let run = epitaph(&url, &["versions", &unique_token("nosuch")]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("knows no versions"), "{}", run.stderr);
}
