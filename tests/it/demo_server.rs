//! The demo gateway as a process, as people run (and copy) it: it survives
//! accept errors, closes connections whose headers never finish, and stops
//! gracefully on SIGTERM. Needs the example built (`cargo test` builds it).

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::demo::Gateway;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVER_KEY: &str = "sk_test_7Cz69XhdGkpRZb469doi8nLL3zz1R3iC0fwOad";

/// The status of the one response on `stream` (`None`: closed first).
async fn status(stream: &mut TcpStream) -> Option<u16> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&buffer)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

async fn health(address: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    status(&mut stream).await
}

#[tokio::test]
async fn sigterm_lets_the_upload_in_flight_finish_then_exits_zero() {
    let mut gateway = Gateway::start("", "--shutdown-timeout 10");
    let mut stream = TcpStream::connect(gateway.address).await.unwrap();
    let body = br#"{"event":"signup","user":"u_1"}"#;
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {SERVER_KEY}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    // The request is in the handler, reading its body.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted…
    assert_eq!(health(gateway.address).await, None);
    // …but the upload in flight completes.
    stream.write_all(&body[10..]).await.unwrap();
    assert_eq!(status(&mut stream).await, Some(202));
    drop(stream);
    assert_eq!(gateway.wait(), Some(0));
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_at_the_header_timeout() {
    let gateway = Gateway::start("", "--header-timeout 0.5");
    let mut stream = TcpStream::connect(gateway.address).await.unwrap();
    stream
        .write_all(b"POST /v1/track HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
        .await
        .expect("closed before the test's own 10 s limit");
    // Closed (possibly after a 408 answer), never left open.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            assert!(String::from_utf8_lossy(&byte[..n]).starts_with("HTTP/1.1 408"));
            let mut rest = [0u8; 1024];
            assert!(matches!(stream.read(&mut rest).await, Ok(0) | Err(_)));
        }
    }
    // The server itself is fine.
    assert_eq!(health(gateway.address).await, Some(200));
}

#[tokio::test]
async fn accept_errors_do_not_stop_the_server() {
    // So few file descriptors that 64 waiting connections exhaust them.
    let gateway = Gateway::start("ulimit -n 40;", "");
    assert_eq!(health(gateway.address).await, Some(200));
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(gateway.address).await.unwrap());
    }
    // Give it time to run into the limit on accept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    // Once they are gone, it serves again.
    let mut answered = None;
    for _ in 0..50 {
        answered = health(gateway.address).await;
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(200));
}

/// The curl lines near the top of the README, pointed at `address`.
fn readme_demo_lines(address: SocketAddr) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("With the gateway running, paste:")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's demo block");
    block
        .lines()
        .filter(|line| line.starts_with("curl"))
        .map(|line| {
            let command = line.split("   # ").next().unwrap();
            command.replace("127.0.0.1:8080", &address.to_string())
        })
        .collect()
}

fn bash(command: &str) -> String {
    let output = std::process::Command::new("bash")
        .args(["-c", command])
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{command}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_readmes_curl_lines_show_what_they_promise() {
    let gateway = Gateway::start("", "");
    let lines = readme_demo_lines(gateway.address);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let admitted = bash(&lines[0]);
    assert!(admitted.starts_with("HTTP/1.1 202"), "{admitted}");
    let refused = bash(&lines[1]);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("\"missing_api_key\""), "{refused}");
    // 25 requests from one curl: 20 admitted, then the quota (20 a minute)
    // cannot have refilled, however slow the machine.
    let statuses = bash(&lines[2]);
    let expected = format!("{}{}\n", "200 ".repeat(20), "429 ".repeat(5));
    assert_eq!(statuses, expected);
}
