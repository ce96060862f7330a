//! The harness of Epitaph's end-to-end tests.
//!
//! Every test in `tests/tests/*.rs` starts the real `epitaph-server` and `epitaph-agent`
//! binaries on loopback ports the OS picks, talks to them the way a user or a foreign
//! OpenTelemetry client would (OTLP/gRPC, the HTTP JSON API, log files on disk) and
//! asserts on what such a user would see.
//!
//! The harness is synchronous on purpose: processes, files and HTTP calls are plain
//! blocking code, and the few gRPC calls run on a private tokio runtime inside
//! [`otlp::OtlpClient`]. Processes are spawned from the test's own thread, which
//! matters because every child is armed with `PR_SET_PDEATHSIG` (see [`process`]): if
//! the test process dies, even by `SIGKILL`, its servers and agents die with it.
//!
//! ```no_run
//! use epitaph_tests::{Server, eventually};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let server = Server::start(&dir.path().join("data"), &[]);
//! let hits = eventually(Duration::from_secs(5), || {
//!     let hits = server.search("hello");
//!     (!hits.is_empty()).then_some(hits)
//! });
//! ```

pub mod agent;
pub mod api;
pub mod binaries;
pub mod lines;
pub mod otlp;
pub mod poll;
pub mod process;
pub mod python;
pub mod server;

pub use agent::{Agent, AgentConfig, Identity};
pub use api::{Hit, Instance, SearchResponse};
pub use lines::{LineWriter, assert_bodies_exactly_once, wait_for_bodies_exactly_once};
pub use otlp::OtlpClient;
pub use poll::eventually;
pub use server::Server;

/// A token unique to one test run, made of lowercase letters and digits only, so that
/// tantivy's default tokenizer keeps it whole and a query for it matches nothing else.
pub fn unique_token(prefix: &str) -> String {
    debug_assert!(prefix.chars().all(|c| c.is_ascii_lowercase()));
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// A loopback port that was free a moment ago. Used only where a port must stay the same
/// across server restarts (the agent is configured with it once); there is a small window
/// in which another process could take it, which a test on this machine will not hit.
pub fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener
        .local_addr()
        .expect("reading the bound address")
        .port()
}
