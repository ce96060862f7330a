//! The `epitaph-batch` header makes a replayed batch a no-op, also across a server crash.

use std::time::Duration;

use epitaph_tests::otlp::bodies_request;
use epitaph_tests::{OtlpClient, Server, assert_bodies_exactly_once, eventually, unique_token};

fn bodies(marker: &str, batch: u64, count: usize) -> Vec<String> {
    (1..=count)
        .map(|n| format!("{marker} batch {batch} record {n}"))
        .collect()
}

/// Waits until the `barrier` body is searchable. The server stores in WAL order, so after
/// that every batch acked earlier, duplicates included, is searchable too.
fn wait_for_barrier(server: &Server, barrier: &str) {
    eventually(Duration::from_secs(5), || {
        (!server.search(barrier).is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("barrier record {barrier:?} not searchable within 5 s"));
}

#[test]
fn replayed_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let agent_id = unique_token("agent");
    let marker = unique_token("m");
    let service = unique_token("svc");
    let header = |sequence: u64| format!("{agent_id}/{sequence}");
    let batch = |sequence: u64| bodies_request(&service, &bodies(&marker, sequence, 3));

    let client = OtlpClient::connect(&server.grpc_url());
    // Batch 1 twice: a retry after a lost ack.
    client.export(batch(1), Some(&header(1))).expect("batch 1");
    client
        .export(batch(1), Some(&header(1)))
        .expect("batch 1 replayed is acknowledged");
    // Out of order: 3 before 2, then 3 again (above the watermark, remembered as a gap).
    client.export(batch(3), Some(&header(3))).expect("batch 3");
    client.export(batch(2), Some(&header(2))).expect("batch 2");
    client
        .export(batch(3), Some(&header(3)))
        .expect("batch 3 replayed is acknowledged");
    let barrier = unique_token("barrier");
    client
        .export(
            bodies_request(&service, std::slice::from_ref(&barrier)),
            None,
        )
        .expect("barrier");
    wait_for_barrier(&server, &barrier);
    let mut expected: Vec<String> = (1..=3)
        .flat_map(|sequence| bodies(&marker, sequence, 3))
        .collect();
    assert_bodies_exactly_once(&server, &marker, &expected);

    // The server crashes; what it acknowledged, and what it knows it holds, survive.
    server.kill9();
    server.restart();
    let client = OtlpClient::connect(&server.grpc_url());
    for sequence in [1, 2, 3] {
        client
            .export(batch(sequence), Some(&header(sequence)))
            .unwrap_or_else(|status| panic!("batch {sequence} replayed after restart: {status:?}"));
    }
    // A new batch from the same agent still gets in, and a batch far above the watermark too.
    client.export(batch(4), Some(&header(4))).expect("batch 4");
    client.export(batch(9), Some(&header(9))).expect("batch 9");
    client
        .export(batch(9), Some(&header(9)))
        .expect("batch 9 replayed");
    expected.extend(bodies(&marker, 4, 3));
    expected.extend(bodies(&marker, 9, 3));
    let barrier = unique_token("barrier");
    client
        .export(
            bodies_request(&service, std::slice::from_ref(&barrier)),
            None,
        )
        .expect("barrier after restart");
    wait_for_barrier(&server, &barrier);
    assert_bodies_exactly_once(&server, &marker, &expected);

    // And once more after a graceful restart, with the gap between 4 and 9 still open.
    server.sigterm();
    server.restart();
    let client = OtlpClient::connect(&server.grpc_url());
    client
        .export(batch(9), Some(&header(9)))
        .expect("batch 9 replayed after second restart");
    client
        .export(batch(4), Some(&header(4)))
        .expect("batch 4 replayed after second restart");
    let barrier = unique_token("barrier");
    client
        .export(
            bodies_request(&service, std::slice::from_ref(&barrier)),
            None,
        )
        .expect("barrier after second restart");
    wait_for_barrier(&server, &barrier);
    assert_bodies_exactly_once(&server, &marker, &expected);
}
