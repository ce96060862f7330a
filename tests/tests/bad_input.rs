//! Bad input from the network gets a clear error, never a crash or a hang, and the
//! server goes on serving well-behaved clients afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use epitaph_proto::common::v1::{AnyValue, any_value};
use epitaph_proto::logs::v1::LogRecord;
use epitaph_tests::otlp::{CompressionEncoding, bodies_request, export_request, unix_nanos};
use epitaph_tests::{OtlpClient, Server, eventually, unique_token};
use prost::Message;
use tonic::Code;

/// A well-behaved client still gets its logs stored and found, and the server is healthy.
/// Anything sent before this is committed once this is searchable, so a following
/// "not stored" check is meaningful.
fn assert_still_serves_a_good_client(server: &mut Server) {
    assert!(
        server.is_running(),
        "the server died\n{}",
        server.stderr_report()
    );
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("good");
    let request = bodies_request("good-client", &[format!("a well-formed record {marker}")]);
    if let Err(status) = client.export(request, None) {
        panic!(
            "a good client's export failed afterwards: {status:?}\n{}",
            server.stderr_report()
        );
    }
    eventually(Duration::from_secs(5), || {
        (server.search(&marker).len() == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("a good client's record was not searchable within 5 s"));
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

fn assert_not_stored(server: &Server, marker: &str) {
    let hits = server.search(marker);
    assert!(
        hits.is_empty(),
        "a rejected request was stored anyway: {hits:#?}"
    );
}

/// Connects, sends `bytes`, reads whatever comes back for a moment, closes.
fn send_raw_tcp(server: &Server, bytes: &[u8]) {
    let mut stream = TcpStream::connect_timeout(&server.grpc_addr(), Duration::from_secs(5))
        .expect("connecting to the gRPC port");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may close on the first bad byte, making later writes fail: that is fine.
    let _ = stream.write_all(bytes);
    let mut answer = [0u8; 4096];
    let _ = stream.read(&mut answer);
}

#[test]
fn raw_garbage_on_the_grpc_port_does_not_hurt_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);

    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send_raw_tcp(&server, &noise);
    // A valid HTTP/2 preface followed by frames that are nonsense.
    let mut bad_frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bad_frames.extend_from_slice(&[0xff; 9]);
    bad_frames.extend_from_slice(&noise[..1024]);
    send_raw_tcp(&server, &bad_frames);
    // Plain HTTP/1.1 to a gRPC port.
    send_raw_tcp(&server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    // A connection that stops halfway through the preface and stays open must not block
    // anyone else while it idles.
    let mut idle = TcpStream::connect_timeout(&server.grpc_addr(), Duration::from_secs(5)).unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n").unwrap();

    assert_still_serves_a_good_client(&mut server);
    drop(idle);
}

#[test]
fn silent_peer_does_not_keep_the_server_from_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    // An HTTP/2 client that says hello and then never reads or writes again, like an agent
    // whose host vanished from the network.
    let mut silent =
        TcpStream::connect_timeout(&server.grpc_addr(), Duration::from_secs(5)).unwrap();
    let empty_settings_frame = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    silent.write_all(&empty_settings_frame).unwrap();
    assert_still_serves_a_good_client(&mut server);

    // Acked data is in the fsynced WAL, so a graceful stop may give up on such a peer; it
    // must not wait for it forever (an operator's stop would hang until a SIGKILL).
    let started = std::time::Instant::now();
    let status = server.sigterm_within(Duration::from_secs(15));
    eprintln!(
        "server exited {status} {:?} after SIGTERM",
        started.elapsed()
    );
    assert!(
        status.success(),
        "the server exited with {status} after SIGTERM"
    );
    drop(silent);
}

#[test]
fn export_over_max_request_bytes_is_rejected_with_an_error_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", "1048576"],
    );
    let marker = unique_token("big");
    // About 1.3 MB of protobuf: over the 1 MiB limit.
    let padding = "x".repeat(1000);
    let bodies: Vec<String> = (0..1300)
        .map(|n| format!("{marker} {n} {padding}"))
        .collect();
    let request = bodies_request("big-client", &bodies);
    assert!(request.encoded_len() > 1_048_576);

    let client = OtlpClient::connect(&server.grpc_url());
    let status = client
        .export(request, None)
        .expect_err("an over-large export was accepted");
    eprintln!("over-large export answered: {status:?}");
    assert_size_rejection(&status);

    assert_still_serves_a_good_client(&mut server);
    assert_not_stored(&server, &marker);
}

#[test]
fn gzip_export_over_max_request_bytes_once_inflated_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--max-request-bytes", "1048576"],
    );
    let marker = unique_token("bomb");
    // 4 MB of repetitive records inflate from a few kilobytes of gzip: the limit must
    // apply to what the server would hold in memory, not to the bytes on the wire.
    let padding = "y".repeat(1000);
    let bodies: Vec<String> = (0..4000).map(|_| format!("{marker} {padding}")).collect();
    let request = bodies_request("bomb-client", &bodies);
    assert!(request.encoded_len() > 4_000_000);

    let client =
        OtlpClient::connect(&server.grpc_url()).with_compression(CompressionEncoding::Gzip);
    let status = client
        .export(request, None)
        .expect_err("an over-large gzip export was accepted");
    eprintln!("over-large gzip export answered: {status:?}");
    assert_size_rejection(&status);

    assert_still_serves_a_good_client(&mut server);
    assert_not_stored(&server, &marker);
}

/// A size rejection names itself: RESOURCE_EXHAUSTED or OUT_OF_RANGE (what tonic's own
/// limit answers) or INVALID_ARGUMENT, with a message — not a dropped connection
/// (UNAVAILABLE / UNKNOWN), which a client would retry forever.
fn assert_size_rejection(status: &tonic::Status) {
    assert!(
        matches!(
            status.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "expected RESOURCE_EXHAUSTED, OUT_OF_RANGE or INVALID_ARGUMENT, got {status:?}"
    );
    assert!(
        !status.message().is_empty(),
        "the rejection says nothing: {status:?}"
    );
}

#[test]
fn invalid_utf8_in_a_string_field_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let marker = unique_token("utf");
    let request = bodies_request("utf8-client", &[format!("{marker} X")]);
    let mut bytes = request.encode_to_vec();
    // Turn the `X` after the marker into 0xFF, a byte that never occurs in UTF-8.
    let needle = format!("{marker} X");
    let position = bytes
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
        .expect("the body is in the encoded request");
    bytes[position + needle.len() - 1] = 0xFF;

    let client = OtlpClient::connect(&server.grpc_url());
    let status = client
        .export_raw(bytes, None)
        .expect_err("a body with invalid UTF-8 was accepted");
    eprintln!("invalid UTF-8 answered: {status:?}");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().to_lowercase().contains("utf"),
        "the message does not say the problem is UTF-8: {status:?}"
    );

    assert_still_serves_a_good_client(&mut server);
    assert_not_stored(&server, &marker);
}

#[test]
fn record_without_timestamp_or_resource_is_stored_under_empty_identity_at_now() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let marker = unique_token("bare");
    let record = LogRecord {
        time_unix_nano: 0,
        observed_time_unix_nano: 0,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!(
                "a bare record {marker}"
            ))),
        }),
        ..Default::default()
    };
    let mut request = export_request(None, vec![record]);
    request.resource_logs[0].scope_logs[0].scope = None;

    let client = OtlpClient::connect(&server.grpc_url());
    let sent_after = unix_nanos(SystemTime::now());
    client
        .export(request, None)
        .expect("a bare record is valid OTLP and must be accepted");
    let acked_before = unix_nanos(SystemTime::now());

    let mut last = Vec::new();
    let hit = eventually(Duration::from_secs(5), || {
        last = server.search(&marker);
        last.first().cloned()
    })
    .unwrap_or_else(|| panic!("the bare record was not searchable within 5 s"));
    assert_eq!(last.len(), 1, "{last:#?}");
    assert_eq!(hit.body, format!("a bare record {marker}"));
    for (field, value) in [
        ("service", &hit.service),
        ("image", &hit.image),
        ("version", &hit.version),
        ("image_id", &hit.image_id),
        ("generation", &hit.generation),
        ("instance", &hit.instance),
        ("host", &hit.host),
    ] {
        assert_eq!(value, "", "{field} of a record without resource: {hit:?}");
    }
    // No timestamp: filed at the time the server received it.
    let slack = 5_000_000_000i64;
    let earliest = sent_after as i64 - slack;
    let latest = acked_before as i64 + slack;
    assert!(
        (earliest..=latest).contains(&hit.timestamp_nanos),
        "timestamp {} ({}) is not near the time of sending ({sent_after}..{acked_before})",
        hit.timestamp_nanos,
        hit.timestamp
    );

    assert_still_serves_a_good_client(&mut server);
}

#[test]
fn malformed_batch_header_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let marker = unique_token("hdr");
    let client = OtlpClient::connect(&server.grpc_url());
    let malformed = [
        "no-slash-at-all",
        "agent-1/",
        "/17",
        "agent-1/zero",
        "agent-1/0",
        "agent-1/-3",
        "agent-1/1.5",
        "agent 1/4",
        "agent-1/99999999999999999999999",
    ];
    for value in malformed {
        let request = bodies_request(
            "header-client",
            &[format!("{marker} sent with header {value:?}")],
        );
        match client.export(request, Some(value)) {
            Ok(response) => panic!("epitaph-batch: {value:?} was accepted: {response:?}"),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::InvalidArgument,
                    "epitaph-batch: {value:?} answered {status:?}"
                );
                assert!(
                    !status.message().is_empty(),
                    "epitaph-batch: {value:?}: empty message"
                );
            }
        }
    }
    // A well-formed header is accepted.
    let request = bodies_request(
        "header-client",
        &[format!("well-formed header {}", unique_token("ok"))],
    );
    client
        .export(request, Some(&format!("{}/1", unique_token("agent"))))
        .expect("a well-formed epitaph-batch header is accepted");

    assert_still_serves_a_good_client(&mut server);
    assert_not_stored(&server, &marker);
}

/// Query parameters, and a word the error message must contain to say what is wrong.
type BadSearchCase = (
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

#[test]
fn bad_search_parameters_get_400_with_an_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let cases: [BadSearchCase; 7] = [
        (&[("q", "*"), ("limit", "abc")], Some("limit")),
        (&[("q", "*"), ("limit", "-5")], Some("limit")),
        (&[("q", "*"), ("start", "yesterday")], Some("start")),
        (&[("q", "*"), ("end", "2026-13-45T99:00:00Z")], Some("end")),
        (&[("q", "service:(web AND")], None),
        (&[("q", "nosuchfield:value")], None),
        (&[("q", "*"), ("cursor", "not a cursor!")], Some("cursor")),
    ];
    for (params, must_mention) in cases {
        let answer = server.get("/api/v1/search", params);
        assert_eq!(
            answer.status, 400,
            "GET /api/v1/search {params:?} answered {}: {}",
            answer.status, answer.body
        );
        let json = answer.json();
        let message = json
            .get("error")
            .and_then(|error| error.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "400 for {params:?} without an `error` string: {}",
                    answer.body
                )
            });
        assert!(!message.is_empty(), "empty error message for {params:?}");
        if let Some(word) = must_mention {
            assert!(
                message.to_lowercase().contains(word),
                "the error for {params:?} does not name `{word}`: {message:?}"
            );
        }
    }
    // Well-formed parameters of every kind are accepted.
    let now_millis = (unix_nanos(SystemTime::now()) / 1_000_000).to_string();
    let good = server.get(
        "/api/v1/search",
        &[
            ("q", "level:error"),
            ("limit", "5"),
            ("start", "2020-01-01T00:00:00Z"),
            ("end", &now_millis),
        ],
    );
    assert_eq!(
        good.status, 200,
        "well-formed search answered {}: {}",
        good.status, good.body
    );

    assert_still_serves_a_good_client(&mut server);
}
