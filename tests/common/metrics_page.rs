//! The metrics page (`--metrics-listen`) as tests read it: the port it
//! listens on, plain HTTP/1.0 requests, and its samples.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{wait_for_listening_port, REPLY_TIMEOUT};

/// The port process `pid` listens on besides `known`, once it does.
pub fn other_port(pid: u32, known: &[u16]) -> u16 {
    wait_for_listening_port(pid, Duration::from_secs(30), |p| !known.contains(&p))
        .unwrap_or_else(|| panic!("process {pid} listens on no port besides {known:?}"))
}

/// One HTTP/1.0 request: the status code and the body.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect over HTTP");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("read timeout");
    let request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// The metrics page.
pub fn page(port: u16) -> String {
    let (status, body) = http(port, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// Each sample of a page: `name{labels}` to its value.
pub fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample line");
            let value = value.parse().unwrap_or_else(|_| panic!("value of {l}"));
            (key.to_string(), value)
        })
        .collect()
}
