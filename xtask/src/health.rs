//! Waiting on members: a tiny HTTP/1.1 GET of `/health` with deadlines, no HTTP client crate.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Whether the member behind `client_url` (http://host:port) answers `/health` with healthy.
pub fn is_healthy(client_url: &str) -> bool {
    get(client_url, "/health")
        .map(|body| body.contains("\"health\":\"true\""))
        .unwrap_or(false)
}

/// The body of `GET path`, if the server answered within a second.
pub fn get(client_url: &str, path: &str) -> Option<String> {
    let host_port = client_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let addr = host_port.to_socket_addrs().ok()?.next()?;
    let timeout = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Polls until `ready()` or the deadline passes.
pub fn wait_until(deadline: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}
