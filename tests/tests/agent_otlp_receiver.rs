//! The agent's local OTLP receiver: an application that logs through an OpenTelemetry
//! SDK ships through the agent, and its records carry the instance's identity — the
//! agent's service, image version, generation and host, whatever the application
//! claimed — with the durability of file lines.

use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::agent::{InstanceIdentity, SpoolSection};
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::process::{ManagedChild, clean_command};
use epitaph_tests::python::{script, venv_python};
use epitaph_tests::{
    Agent, AgentConfig, Hit, Identity, OtlpClient, Server, eventually, free_loopback_port,
    unique_token, wait_for_bodies_exactly_once,
};
use tonic::Code;

const IMAGE_VERSION: &str = "2026.11.26-3f2a";
const GENERATION: &str = "7";

/// An agent tailing no file, with its receiver on a free loopback port.
fn agent_with_receiver(server_grpc_url: &str, dir: &std::path::Path) -> (AgentConfig, String) {
    let listen = format!("127.0.0.1:{}", free_loopback_port());
    let mut config = AgentConfig::new(
        server_grpc_url,
        &dir.join("agent-state"),
        &[&dir.join("no-such-dir").join("*.log")],
        Identity::for_service(&unique_token("svc"), IMAGE_VERSION),
        InstanceIdentity {
            host_id: unique_token("i"),
            host_name: "web-1".to_string(),
            generation: GENERATION.to_string(),
        },
    );
    config.otlp_receiver_listen = Some(listen.clone());
    (config, listen)
}

/// Waits until the receiver accepts connections (it starts listening a moment after the
/// agent process does).
fn wait_for_receiver(agent: &mut Agent, listen: &str) {
    let address = listen.parse().unwrap();
    eventually(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&address, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent's receiver did not listen on {listen} within 10 s\n{}",
            agent.stderr_report()
        )
    });
}

fn assert_carries_agent_identity(hit: &Hit, config: &AgentConfig) {
    assert_eq!(hit.service, config.identity.service, "{hit:?}");
    assert_eq!(hit.version, IMAGE_VERSION, "{hit:?}");
    assert_eq!(hit.generation, GENERATION, "{hit:?}");
    assert_eq!(hit.instance, config.instance.host_id, "{hit:?}");
    assert_eq!(hit.host, config.instance.host_name, "{hit:?}");
}

fn attribute<'hit>(hit: &'hit Hit, dotted_key: &str) -> Option<&'hit str> {
    if let Some(value) = hit.attributes.get(dotted_key) {
        return value.as_str();
    }
    let mut parts = dotted_key.split('.');
    let mut value = hit.attributes.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    value.as_str()
}

#[test]
fn python_sdk_logs_through_the_agent_carry_the_instance_identity() {
    // First, since it may take a while on a fresh machine (pip install).
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (config, listen) = agent_with_receiver(&server.grpc_url(), dir.path());
    let mut agent = Agent::start(config.clone());
    wait_for_receiver(&mut agent, &listen);

    // The application claims an identity of its own; the agent's must win.
    let marker = unique_token("m");
    let mut command = clean_command(&python);
    command
        .arg(script("send_logs.py"))
        .args([
            format!("http://{listen}").as_str(),
            "unknown_service:python",
            "app-guessed-version",
            "app-guessed-generation",
            "app-guessed-host",
            &marker,
        ])
        .stdout(Stdio::null());
    let stderr_path = dir.path().join("send_logs.stderr");
    let mut sender = ManagedChild::spawn("send_logs.py", &mut command, &stderr_path);
    let status = sender
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "send_logs.py did not finish within 30 s\n{}",
                sender.stderr_report()
            )
        });
    assert!(
        status.success(),
        "send_logs.py failed with {status} (its exports were not all acknowledged by the agent)\n{}\nagent:\n{}",
        sender.stderr_report(),
        agent.stderr_report()
    );

    let mut last = Vec::new();
    let hits = eventually(Duration::from_secs(10), || {
        last = server.search(&marker);
        (last.len() >= 2).then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "the app's 2 records were not searchable within 10 s; last: {last:#?}\nagent:\n{}",
            agent.stderr_report()
        )
    });
    assert_eq!(hits.len(), 2, "{hits:#?}");
    let info = hits.iter().find(|hit| hit.body.contains("hello")).unwrap();
    let error = hits
        .iter()
        .find(|hit| hit.body.contains("failure"))
        .unwrap();
    assert_eq!(info.body, format!("python sdk says hello {marker}"));
    assert_eq!(info.level, "info", "{info:?}");
    assert_eq!(error.level, "error", "{error:?}");
    for hit in &hits {
        assert_carries_agent_identity(hit, &config);
        // The application's record attributes, its other resource attributes and its
        // scope are kept.
        assert_eq!(attribute(hit, "test.kind"), Some("python-sdk"), "{hit:?}");
        assert_eq!(
            attribute(hit, "telemetry.sdk.language"),
            Some("python"),
            "{hit:?}"
        );
        assert_eq!(
            attribute(hit, "otel.scope.name"),
            Some("epitaph-tests.send_logs"),
            "{hit:?}"
        );
    }
    // The application's claims are nowhere to be found.
    for claim in [
        "app-guessed-version",
        "app-guessed-generation",
        "app-guessed-host",
    ] {
        assert!(server.search(claim).is_empty(), "{claim} was stored");
    }

    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
}

#[test]
fn bad_requests_get_invalid_argument_and_the_receiver_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (config, listen) = agent_with_receiver(&server.grpc_url(), dir.path());
    let mut agent = Agent::start(config.clone());
    wait_for_receiver(&mut agent, &listen);
    let client = OtlpClient::connect(&format!("http://{listen}"));

    // resource_logs { resource { attributes { key: <not UTF-8> } } }
    let not_utf8 = vec![0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
    // resource_logs of length 200 with 3 bytes behind it.
    let truncated = vec![0x0a, 0xc8, 0x01, 0x01, 0x02, 0x03];
    for bytes in [not_utf8, truncated] {
        let status = client.export_raw(bytes, None).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let bad_marker = unique_token("bad");
    let bad_trace = LogRecord {
        trace_id: vec![1, 2, 3],
        ..log_record(&format!("bad trace id {bad_marker}"))
    };
    let status = client
        .export(export_request(None, vec![bad_trace]), None)
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // A request without records is answered at once and stores nothing.
    let empty = client
        .export(export_request(Some(resource(&[])), Vec::new()), None)
        .unwrap();
    assert_eq!(empty.partial_success, None);

    assert!(
        agent.is_running(),
        "the agent died\n{}",
        agent.stderr_report()
    );
    let good_marker = unique_token("good");
    client
        .export(
            export_request(
                Some(resource(&[("service.name", "app")])),
                vec![log_record(&format!("well formed {good_marker}"))],
            ),
            None,
        )
        .unwrap_or_else(|status| panic!("{status:?}\n{}", agent.stderr_report()));
    let hits = eventually(Duration::from_secs(10), || {
        let hits = server.search(&good_marker);
        (!hits.is_empty()).then_some(hits)
    })
    .expect("the good record was not searchable within 10 s");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_carries_agent_identity(&hits[0], &config);
    assert!(server.search(&bad_marker).is_empty());
}

#[test]
fn an_acknowledged_export_survives_kill9_of_the_agent_while_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet: the agent can only spool.
    let server_addr = format!("127.0.0.1:{}", free_loopback_port());
    let (config, listen) = agent_with_receiver(&format!("http://{server_addr}"), dir.path());
    let mut agent = Agent::start(config.clone());
    wait_for_receiver(&mut agent, &listen);

    let marker = unique_token("spooled");
    let bodies: Vec<String> = (0..50).map(|i| format!("record {i} {marker}")).collect();
    let client = OtlpClient::connect(&format!("http://{listen}"));
    for chunk in bodies.chunks(10) {
        let records = chunk.iter().map(|body| log_record(body)).collect();
        client
            .export(
                export_request(Some(resource(&[("service.name", "app")])), records),
                None,
            )
            .unwrap_or_else(|status| panic!("{status:?}\n{}", agent.stderr_report()));
    }
    // Acknowledged means spooled: a crash now must not lose a record.
    agent.kill9();

    let mut server = Server::start(&dir.path().join("data"), &["--grpc-addr", &server_addr]);
    agent.restart();
    let stored = eventually(Duration::from_secs(20), || {
        let hits = server.search_all(&marker);
        (hits.len() >= bodies.len()).then_some(hits)
    })
    .unwrap_or_else(|| {
        panic!(
            "the acknowledged records were not all delivered within 20 s\n{}",
            agent.stderr_report()
        )
    });
    let mut stored_bodies: Vec<String> = stored.iter().map(|hit| hit.body.clone()).collect();
    stored_bodies.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(stored_bodies, expected, "lost or doubled records");
    for hit in &stored {
        assert_carries_agent_identity(hit, &config);
    }
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
    let _ = server.sigterm();
}

#[test]
fn a_full_spool_refuses_exports_for_a_retry_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet, so batches stay in the (tiny) spool.
    let server_addr = format!("127.0.0.1:{}", free_loopback_port());
    let (mut config, listen) = agent_with_receiver(&format!("http://{server_addr}"), dir.path());
    config.spool = Some(SpoolSection {
        max_bytes: 16 * 1024,
        when_full: "block".to_string(),
    });
    let mut agent = Agent::start(config.clone());
    wait_for_receiver(&mut agent, &listen);
    let client = OtlpClient::connect(&format!("http://{listen}"));

    let marker = unique_token("full");
    let mut acknowledged = Vec::new();
    let mut refusals = 0;
    for export in 0..40 {
        // Random hex compresses poorly, so a few exports fill 16 KiB of spool.
        let bodies: Vec<String> = (0..100)
            .map(|i| {
                let noise: String = (0..4).map(|_| unique_token("x")).collect();
                format!("export {export} record {i} {marker} {noise}")
            })
            .collect();
        let records = bodies.iter().map(|body| log_record(body)).collect();
        match client.export(
            export_request(Some(resource(&[("service.name", "app")])), records),
            None,
        ) {
            Ok(_) => acknowledged.extend(bodies),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("spool"), "{status:?}");
                refusals += 1;
                if refusals == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(refusals, 3, "the full spool never refused an export");
    assert!(
        !acknowledged.is_empty(),
        "not even the first export was taken"
    );

    // Once the server is there, every acknowledged record arrives once, and none of
    // the refused ones (the application still has those, to retry).
    let server = Server::start(&dir.path().join("data"), &["--grpc-addr", &server_addr]);
    wait_for_bodies_exactly_once(
        &server,
        &marker,
        &acknowledged,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    );
    // And the receiver takes exports again.
    let again = unique_token("again");
    eventually(Duration::from_secs(10), || {
        client
            .export(
                export_request(None, vec![log_record(&format!("room again {again}"))]),
                None,
            )
            .ok()
    })
    .unwrap_or_else(|| panic!("exports still refused\n{}", agent.stderr_report()));
    let status = agent.sigterm_and_wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", agent.stderr_report());
}
