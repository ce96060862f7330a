//! `/api/v1/tail` streams live lines: a stream opened before lines are sent receives the
//! matching ones, shaped exactly like search hits, and nothing else; a bad query or a
//! pipe stage is a 400 that says where; a reader that stops reading is told how many
//! lines it missed while ingest goes on; shutting the server down ends open streams
//! instead of waiting out the drain.

use std::time::Duration;

use epitaph_proto::keys;
use epitaph_tests::api::{EventStream, SseItem, StreamWait};
use epitaph_tests::otlp::{export_request, log_record, resource};
use epitaph_tests::{Hit, OtlpClient, Server, eventually, unique_token};

/// How long a test waits for one item of a stream before calling it lost. The server
/// hands a line to tails right after its fsync, so this is only a bound against hangs.
const ITEM_TIMEOUT: Duration = Duration::from_secs(20);

fn export(client: &OtlpClient, service: &str, bodies: &[String]) {
    let records = bodies.iter().map(|body| log_record(body)).collect();
    client
        .export(
            export_request(Some(resource(&[(keys::SERVICE_NAME, service)])), records),
            None,
        )
        .expect("export accepted");
}

/// Opens a tail and waits for its opening comment, after which the subscription exists.
fn open_tail(server: &Server, query: &str) -> EventStream {
    let stream = server
        .api()
        .open_events("/api/v1/tail", &[("q", query)])
        .unwrap_or_else(|answer| panic!("tail refused: {answer:?}"));
    match stream.next_within(ITEM_TIMEOUT) {
        StreamWait::Item(SseItem::Comment(text)) if text == "tailing" => stream,
        other => panic!("expected the opening `: tailing` comment, got {other:?}"),
    }
}

/// The hits the stream delivers until (and including) the one whose body is `last`.
fn hits_until(stream: &EventStream, last: &str, server: &Server) -> Vec<Hit> {
    let mut hits = Vec::new();
    loop {
        match stream.next_within(ITEM_TIMEOUT) {
            StreamWait::Item(SseItem::Event { name, data }) => {
                assert_eq!(name, "", "unexpected event {name}: {data}");
                let hit: Hit = serde_json::from_str(&data)
                    .unwrap_or_else(|error| panic!("tailed line is not a hit ({error}): {data}"));
                let done = hit.body == last;
                hits.push(hit);
                if done {
                    return hits;
                }
            }
            StreamWait::Item(SseItem::Comment(_)) => {}
            other => panic!(
                "stream gave {other:?} before {last:?}; got so far {hits:?}\n{}",
                server.stderr_report()
            ),
        }
    }
}

#[test]
fn tail_streams_matching_lines_sent_after_it_opened_shaped_like_search_hits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--commit-interval", "200ms"]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("tail");
    let line = |text: &str| format!("{marker} {text}");

    export(&client, "web", &[line("before the tail opened")]);
    let stream = open_tail(&server, &format!("{marker} service:web -level:debug"));

    export(
        &client,
        "web",
        &[line("first"), "unrelated line".to_string(), line("second")],
    );
    // Another service, in a batch of its own: excluded by `service:web`.
    export(&client, "api", &[line("from api")]);
    let mut debug_record = log_record(&line("debug noise"));
    debug_record.severity_number = 5;
    client
        .export(
            export_request(
                Some(resource(&[(keys::SERVICE_NAME, "web")])),
                vec![debug_record],
            ),
            None,
        )
        .expect("export accepted");
    // Batches are delivered in the order they became durable: once the sentinel is
    // here, every line before it has been judged.
    export(&client, "web", &[line("sentinel")]);

    let hits = hits_until(&stream, &line("sentinel"), &server);
    let bodies: Vec<&str> = hits.iter().map(|hit| hit.body.as_str()).collect();
    assert_eq!(
        bodies,
        [line("first"), line("second"), line("sentinel")],
        "only matching lines sent after the tail opened, in order"
    );

    // A tailed line is exactly the hit a search returns for it once indexed.
    let searched = eventually(Duration::from_secs(10), || {
        server.search(&format!("{marker} first")).into_iter().next()
    })
    .expect("the first line becomes searchable");
    assert_eq!(hits[0], searched);
}

#[test]
fn bad_queries_and_pipe_stages_are_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);

    let refusal = |query: &str| match server.api().open_events("/api/v1/tail", &[("q", query)]) {
        Ok(_) => panic!("tail of {query:?} was accepted"),
        Err(answer) => answer,
    };

    let answer = refusal("service:web AND (level:error");
    assert_eq!(answer.status, 400, "{answer:?}");
    let body = answer.json();
    assert!(body["position"]["start"].is_u64(), "{body}");
    assert!(body["expected"].is_array(), "{body}");

    let answer = refusal("level:error | stats count() by service");
    assert_eq!(answer.status, 400, "{answer:?}");
    let body = answer.json();
    // The stage, after `level:error | `.
    assert!(body["position"]["start"].as_u64().unwrap() >= 12, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/v1/aggregate"),
        "{body}"
    );

    let answer = server
        .api()
        .open_events("/api/v1/tail", &[("q", "x"), ("since", "1h")])
        .err()
        .expect("an unknown parameter is refused");
    assert_eq!(answer.status, 400, "{answer:?}");
}

#[test]
fn shutdown_ends_open_tails_instead_of_waiting_out_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let stream = open_tail(&server, "*");

    let status = server.sigterm();
    assert!(status.success(), "server exit: {status:?}");
    loop {
        match stream.next_within(ITEM_TIMEOUT) {
            StreamWait::Ended => break,
            StreamWait::Item(_) => continue,
            StreamWait::Nothing => panic!("the stream stayed open after the server exited"),
        }
    }
    let report = server.stderr_report();
    assert!(
        !report.contains("HTTP connections did not drain in time"),
        "an open tail held the HTTP drain:\n{report}"
    );
}

#[test]
fn a_reader_that_stalls_is_told_how_many_lines_it_missed_and_ingest_goes_on() {
    use std::io::{BufRead, BufReader, Write};

    // Far more than the server queues for one client (20 000 lines) plus what the
    // socket buffers hold (about 13 000 such lines here).
    const BATCHES: usize = 60;
    const LINES_PER_BATCH: usize = 1_000;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let client = OtlpClient::connect(&server.grpc_url());
    let marker = unique_token("stall");

    // A client that opens the stream, then stops reading: the socket buffers fill, the
    // server's queue for it fills, and everything after that is dropped for it.
    let mut socket = std::net::TcpStream::connect(server.http_url().trim_start_matches("http://"))
        .expect("connecting to the HTTP API");
    write!(
        socket,
        "GET /api/v1/tail?q={marker} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    socket
        .set_read_timeout(Some(ITEM_TIMEOUT))
        .expect("setting a read timeout");
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    while line.trim_end() != ": tailing" {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .expect("reading the stream's start");
        assert!(read > 0, "the stream ended before it opened");
    }

    // Every export is acknowledged while the reader sleeps.
    for batch in 0..BATCHES {
        let bodies: Vec<String> = (0..LINES_PER_BATCH)
            .map(|index| format!("{marker} batch {batch} line {index}"))
            .collect();
        export(&client, "web", &bodies);
    }
    // Reading again: the first delivery says how many lines were dropped meanwhile. Then
    // markers follow, one at a time, each sent only after the lines before it were read
    // or reported skipped; a marker that is itself dropped (the queue may still be full
    // when it arrives) is reported only with a later delivery, so another marker goes
    // out whenever none has shown up for a while. At the delivery of marker k, every line
    // sent before it is accounted for, delivered or skipped.
    const MARKER_PATIENCE: Duration = Duration::from_secs(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("setting a read timeout");
    let mut delivered = 0usize;
    let mut skipped = 0usize;
    let mut event_name = String::new();
    let mut markers_sent = 0usize;
    let mut last_marker_at: Option<std::time::Instant> = None;
    line.clear();
    let marker_index = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no marker came through within 90 s: {delivered} lines delivered, {skipped} skipped, {markers_sent} markers sent"
        );
        let due = match last_marker_at {
            None => skipped > 0,
            Some(at) => at.elapsed() >= MARKER_PATIENCE,
        };
        if due {
            export(&client, "web", &[format!("{marker} marker {markers_sent}")]);
            markers_sent += 1;
            last_marker_at = Some(std::time::Instant::now());
        }
        match reader.read_line(&mut line) {
            Ok(0) => panic!("the stream ended early"),
            Ok(_) => {}
            // A partial line stays in `line` and is completed by the next read.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(error) => panic!("reading the stream: {error}"),
        }
        let text = std::mem::take(&mut line);
        let text = text.trim_end();
        if let Some(name) = text.strip_prefix("event: ") {
            event_name = name.to_string();
            continue;
        }
        let Some(data) = text.strip_prefix("data: ") else {
            continue;
        };
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        if std::mem::take(&mut event_name) == "skipped" {
            skipped += data["skipped_lines"].as_u64().unwrap() as usize;
            continue;
        }
        delivered += 1;
        let body = data["body"].as_str().unwrap_or_default();
        if let Some(index) = body.strip_prefix(&format!("{marker} marker ")) {
            break index.parse::<usize>().unwrap();
        }
        // Lines keep flowing: the marker in flight is not late yet.
        if last_marker_at.is_some() {
            last_marker_at = Some(std::time::Instant::now());
        }
    };
    assert!(
        skipped > 0,
        "nothing was skipped; {delivered} lines delivered"
    );
    assert_eq!(
        delivered + skipped,
        BATCHES * LINES_PER_BATCH + marker_index + 1,
        "at marker {marker_index}, every line before it is delivered or counted as skipped"
    );
    // And every line was stored.
    let stored = eventually(Duration::from_secs(20), || {
        let count = server.get("/api/v1/stats", &[]).json()["documents"].as_u64()?;
        (count as usize == BATCHES * LINES_PER_BATCH + markers_sent).then_some(count)
    });
    assert!(stored.is_some(), "not every line was stored");
}
