//! A foreign client: the OpenTelemetry Python SDK ships logs to the server, and its
//! resource attributes become Epitaph's identity fields.

use std::process::Stdio;
use std::time::Duration;

use epitaph_tests::process::{ManagedChild, clean_command};
use epitaph_tests::python::{script, venv_python};
use epitaph_tests::{Server, eventually, unique_token};

#[test]
fn python_otel_sdk_logs_are_searchable_by_resource() {
    // First, since it may take a while on a fresh machine (pip install).
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    let service = unique_token("py");
    let image_version = "2026.12.01-9be1";
    let generation = "12";
    let host_id = unique_token("i");
    let marker = unique_token("m");

    let mut command = clean_command(&python);
    command
        .arg(script("send_logs.py"))
        .args([
            server.grpc_url().as_str(),
            &service,
            image_version,
            generation,
            &host_id,
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
        "send_logs.py failed with {status}\n{}",
        sender.stderr_report()
    );

    let query = format!("service:{service} AND version:{image_version}");
    let mut last = Vec::new();
    let hits = eventually(Duration::from_secs(5), || {
        last = server.search(&query);
        (last.len() >= 2).then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!("{query:?} did not return the 2 records within 5 s; last: {last:#?}")
    });
    assert_eq!(hits.len(), 2, "{hits:#?}");

    let info = hits
        .iter()
        .find(|hit| hit.body.contains("hello"))
        .expect("the INFO record");
    let error = hits
        .iter()
        .find(|hit| hit.body.contains("failure"))
        .expect("the ERROR record");
    assert_eq!(info.body, format!("python sdk says hello {marker}"));
    assert_eq!(error.body, format!("python sdk reports a failure {marker}"));
    assert_eq!(info.level, "info", "{info:?}");
    assert_eq!(error.level, "error", "{error:?}");
    for hit in &hits {
        assert_eq!(hit.service, service, "{hit:?}");
        assert_eq!(hit.version, image_version, "{hit:?}");
        assert_eq!(hit.generation, generation, "{hit:?}");
        assert_eq!(hit.instance, host_id, "{hit:?}");
        assert_eq!(hit.scope, "epitaph-tests.send_logs", "{hit:?}");
        assert_eq!(
            attribute(hit, "test.kind"),
            Some("python-sdk"),
            "record attributes of {hit:?}"
        );
    }
    // Newest first: the ERROR record was emitted after the INFO one.
    assert!(
        hits[0].timestamp_nanos >= hits[1].timestamp_nanos,
        "{hits:#?}"
    );
}

/// A record attribute of a hit, whether the server renders dotted keys flat
/// (`{"test.kind": ..}`) or nested (`{"test": {"kind": ..}}`).
fn attribute<'hit>(hit: &'hit epitaph_tests::Hit, dotted_key: &str) -> Option<&'hit str> {
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
