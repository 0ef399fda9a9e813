//! The demo gateway and the keys tool as processes, as people run them:
//! their binaries beside the test's own (`cargo test` builds the examples).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// `target/…/examples/NAME`, beside this test's own binary.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let binary = path.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the whole suite with `cargo test` (it builds the examples)",
        binary.display()
    );
    binary
}

/// A running demo gateway, its address, and the lines it prints.
pub struct Gateway {
    pub child: Child,
    pub address: SocketAddr,
    /// Where it serves its metrics, when asked to.
    pub metrics: Option<SocketAddr>,
    lines: Receiver<String>,
}

impl Gateway {
    /// Starts it through `sh -c "<prefix> exec gateway --addr 127.0.0.1:0 <args>"`.
    pub fn start(prefix: &str, args: &str) -> Self {
        let script = format!(
            "{prefix} exec {} --addr 127.0.0.1:0 {args}",
            example_binary("gateway").display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let address = loop {
            let line = lines
                .next()
                .expect("the gateway printed its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("metrics on http://") {
                metrics = Some(rest.trim_end_matches("/metrics").parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("tollgate demo gateway on http://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep reading its output so that it never blocks on a full pipe,
        // and hand the lines over.
        let (send, receive) = channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Self {
            child,
            address,
            metrics,
            lines: receive,
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The next line it prints containing `needle` (waiting at most 20 s).
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the gateway never printed `{needle}`"),
            }
        }
    }

    /// Waits (at most 20 s) for the process to end; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the gateway did not exit");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
