//! A real `epitaph-server` on loopback ports.
//!
//! The server is started with `--grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0` (unless
//! the test passes its own address) and announces the ports it got on stdout, in one line
//! `listening grpc=127.0.0.1:PORT http=127.0.0.1:PORT`. [`Server::start`] waits for that
//! line, then for `/readyz`, so a returned server has finished WAL recovery.
//!
//! A server can be killed (`kill -9` or `SIGTERM`) and restarted on the same data
//! directory; the ports change on restart unless fixed by the test, so tests read
//! [`Server::grpc_url`] and [`Server::http_url`] again after a restart.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::api::{ApiClient, Hit, HttpAnswer, Instance};
use crate::binaries::binaries;
use crate::poll::eventually;
use crate::process::{ManagedChild, clean_command};

/// How long a server may take to print its `listening` line and then to become ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped, between a kill and a restart) `epitaph-server`.
pub struct Server {
    // Declared before `logs` so that it is dropped (killed, stderr printed) before the
    // directory holding its stderr file is removed.
    process: Option<ManagedChild>,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    api: ApiClient,
    starts: u32,
    logs: tempfile::TempDir,
}

impl Server {
    /// Starts a server on `data_dir` (created if missing) with `extra_args` appended to
    /// the loopback addresses; waits until it listens and is ready.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Server {
        let logs = tempfile::Builder::new()
            .prefix("epitaph-server-logs")
            .tempdir()
            .expect("creating a temp dir for server logs");
        let unbound: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
        let mut server = Server {
            process: None,
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            grpc_addr: unbound,
            http_addr: unbound,
            api: ApiClient::new("http://127.0.0.1:0"),
            starts: 0,
            logs,
        };
        server.spawn_and_wait_ready();
        server
    }

    /// Starts the server again on the same data directory and arguments, after
    /// [`Server::kill9`] or [`Server::sigterm`]. Ports change unless the test fixed them.
    pub fn restart(&mut self) {
        if let Some(process) = self.process.as_mut() {
            assert!(
                !process.is_running(),
                "restart() needs a stopped server; kill it first"
            );
        }
        self.process = None;
        self.spawn_and_wait_ready();
    }

    fn spawn_and_wait_ready(&mut self) {
        self.starts += 1;
        let stderr_path = self.stderr_path();
        let mut command = clean_command(&binaries().server);
        command.arg("--data-dir").arg(&self.data_dir);
        if !self
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--grpc-addr"))
        {
            command.args(["--grpc-addr", "127.0.0.1:0"]);
        }
        if !self
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--http-addr"))
        {
            command.args(["--http-addr", "127.0.0.1:0"]);
        }
        command.args(&self.extra_args);
        command.env(
            "RUST_LOG",
            std::env::var("EPITAPH_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        command.stdout(Stdio::piped());
        let mut process = ManagedChild::spawn("epitaph-server", &mut command, &stderr_path);
        let stdout = process.take_stdout().expect("stdout was piped");

        // A helper thread reads stdout: it hands over the `listening` line and then keeps
        // draining, so that a server printing more can never block on a full pipe.
        let (line_sender, line_receiver) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut announced = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !announced && line.starts_with("listening ") {
                    announced = true;
                    let _ = line_sender.send(line);
                }
            }
        });
        let started = Instant::now();
        let line = match line_receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let status = process.try_exit_status();
                let report = process.stderr_report();
                panic!(
                    "epitaph-server (start #{}) printed no `listening` line within {:?} \
                     (exit status: {status:?})\n{report}",
                    self.starts,
                    started.elapsed(),
                );
            }
        };
        let (grpc_addr, http_addr) = parse_listening_line(&line)
            .unwrap_or_else(|error| panic!("{error}\n{}", process.stderr_report()));
        self.grpc_addr = grpc_addr;
        self.http_addr = http_addr;
        self.api = ApiClient::new(&self.http_url());
        self.process = Some(process);
        self.wait_ready();
    }

    /// Waits until `/readyz` answers 200 (WAL recovery done).
    pub fn wait_ready(&mut self) {
        let api = self.api.clone();
        let mut last = String::from("no answer yet");
        let ready = eventually(STARTUP_TIMEOUT, || match api.try_get("/readyz", &[]) {
            Ok(answer) if answer.status == 200 => Some(()),
            Ok(answer) => {
                last = format!("{} {}", answer.status, answer.body);
                None
            }
            Err(error) => {
                last = error;
                None
            }
        });
        if ready.is_none() {
            panic!(
                "epitaph-server (start #{}) was not ready within {STARTUP_TIMEOUT:?}; last /readyz: {last}\n{}",
                self.starts,
                self.stderr_report()
            );
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.logs.path().join("server.stderr")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// `http://127.0.0.1:PORT` of the OTLP/gRPC listener.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:PORT` of the HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The newest (up to 10 000) hits of a query.
    pub fn search(&self, query: &str) -> Vec<Hit> {
        self.api.search(query)
    }

    /// Every hit of a query, following cursors.
    pub fn search_all(&self, query: &str) -> Vec<Hit> {
        self.api.search_all(query)
    }

    pub fn instances(&self) -> Vec<Instance> {
        self.api.instances()
    }

    /// A raw `GET` against the HTTP API.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> HttpAnswer {
        self.api.get(path, params)
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| process.is_running())
    }

    /// `kill -9`: the server gets no chance to flush or close anything.
    pub fn kill9(&mut self) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the server was started")
            .kill9()
    }

    /// `SIGTERM` and wait (at most 30 s) for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.sigterm_within(Duration::from_secs(30))
    }

    /// `SIGTERM` and wait at most `timeout` for the exit; the test fails past it.
    pub fn sigterm_within(&mut self, timeout: Duration) -> ExitStatus {
        self.process
            .as_mut()
            .expect("the server was started")
            .sigterm_and_wait(timeout)
    }

    /// The tail of the server's stderr (all starts), for failure messages.
    pub fn stderr_report(&self) -> String {
        match &self.process {
            Some(process) => process.stderr_report(),
            None => crate::process::tail_of_file(&self.stderr_path(), 60),
        }
    }
}

/// Parses `listening grpc=127.0.0.1:PORT http=127.0.0.1:PORT`.
fn parse_listening_line(line: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let mut grpc = None;
    let mut http = None;
    for word in line.split_whitespace().skip(1) {
        if let Some(address) = word.strip_prefix("grpc=") {
            grpc = address.parse::<SocketAddr>().ok();
        } else if let Some(address) = word.strip_prefix("http=") {
            http = address.parse::<SocketAddr>().ok();
        }
    }
    match (grpc, http) {
        (Some(grpc), Some(http)) => Ok((grpc, http)),
        _ => Err(format!(
            "cannot read addresses from the server's line {line:?}; expected \
             `listening grpc=127.0.0.1:PORT http=127.0.0.1:PORT`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed() {
        let (grpc, http) =
            parse_listening_line("listening grpc=127.0.0.1:4317 http=127.0.0.1:7080").unwrap();
        assert_eq!(grpc.port(), 4317);
        assert_eq!(http.port(), 7080);
        assert!(parse_listening_line("listening grpc=127.0.0.1:4317").is_err());
    }
}
