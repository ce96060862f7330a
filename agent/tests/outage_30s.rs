//! The case exactly: the server down for 30 s while lines keep coming, then up:
//! all delivered once. Alone in its file (about 40 s) so the rest of the suite stays
//! quick to run on its own.

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_for_30s_while_lines_keep_coming_then_up_delivers_all_once() {
    common::server_outage_while_lines_keep_coming(Duration::from_secs(30)).await;
}
