//! `iotflow serve` end to end: a real process answering real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request; returns the status line and the body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[test]
fn serves_the_registry_api_with_a_token_from_the_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let token = "a-test-token-of-enough-length";
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotflow"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env("IOTFLOW_API_TOKEN", token)
        .env_remove("IOTFLOW_REGISTRY")
        .stderr(Stdio::piped())
        .spawn()
        .expect("iotflow serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let child = Killed(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve prints its address")
            .expect("utf-8");
        if let Some(rest) = line.split_once("http://").map(|(_, r)| r) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };

    let (status, _) = request(&addr, "GET", "/healthz", None, "");
    assert!(status.contains("200"), "{status}");
    let (status, body) = request(&addr, "GET", "/devices", None, "");
    assert!(status.contains("401"), "{status}");
    assert!(body.contains("\"code\""), "{body}");
    let (status, body) = request(
        &addr,
        "POST",
        "/tenants",
        Some(token),
        r#"{"id":"acme","name":"Acme"}"#,
    );
    assert!(status.contains("201"), "{status} {body}");
    let (status, body) = request(
        &addr,
        "POST",
        "/devices",
        Some(token),
        r#"{"tenant_id":"acme","name":"Pump","type":"pump","id":"p-1"}"#,
    );
    assert!(status.contains("201"), "{status} {body}");
    let (status, body) = request(&addr, "GET", "/devices/p-1", Some(token), "");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"p-1\""), "{body}");
    let (status, body) = request(&addr, "GET", "/openapi.json", None, "");
    assert!(
        status.contains("200") && body.contains("\"openapi\""),
        "{status}"
    );
    drop(child);

    // The registry the server wrote is the one `iotflow devices` reads.
    let out = Command::new(env!("CARGO_BIN_EXE_iotflow"))
        .args(["devices", "get", "p-1", "--data-dir"])
        .arg(tmp.path())
        .output()
        .expect("iotflow devices runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pump"));
}

#[test]
fn refuses_to_serve_without_a_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_iotflow"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("IOTFLOW_API_TOKEN")
        .output()
        .expect("iotflow runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API token"));
}
