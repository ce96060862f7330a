//! The server is down for a while as lines keep coming, then up: all delivered once.
//! (A 30 s outage, as the issue states it, is `outage_30s.rs`; this one is quick.)

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_for_3s_while_lines_keep_coming_then_up_delivers_all_once() {
    common::server_outage_while_lines_keep_coming(Duration::from_secs(3)).await;
}
