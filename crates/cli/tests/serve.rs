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

/// `iotflow serve --job`: readings posted to `/ingest/batch` go through the
/// job's pipeline; Ctrl-C (SIGINT) lets the pipeline read every accepted
/// reading and stops the job through a checkpoint; the next start resumes
/// it, and over both runs every accepted reading is counted exactly once
/// (bad ones in the dead-letter output with their reason). A request that
/// does not fit the queue gets 503 with Retry-After and is not counted.
#[test]
fn serve_job_ingests_over_http_across_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let ck = tmp.path().join("ck");
    let job = tmp.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[input]\nkind = \"http\"\n\n[output]\ndir = {:?}\nwindows = \"csv\"\nalerts = \"csv\"\nrejects = \"csv\"\nlate = \"csv\"\n\n[cluster]\nworkers = 2\n\n[checkpoint]\ndir = {:?}\ninterval = \"50ms\"\n",
            out.display().to_string(),
            ck.display().to_string()
        ),
    )
    .expect("job file");
    let server = tmp.path().join("server.toml");
    std::fs::write(
        &server,
        "[[tokens]]\nname = \"ops\"\ntoken = \"a-test-token-of-enough-length\"\nscope = \"admin\"\n\n[ingest]\nauth = \"none\"\nqueue_capacity = 400\n",
    )
    .expect("server file");

    // 250 readings a run: 248 valid, one with an unknown metric, one not JSON
    // inside a JSON array is refused at the door, so the bad one is a value.
    let batch = |run: u64| -> String {
        let mut lines: Vec<String> = (0..248u64)
            .map(|i| {
                format!(
                    r#"{{"device_id":"d-{:03}","ts":{},"metric":"temp","value":{}.5}}"#,
                    i % 20,
                    1_700_000_000_000 + run * 1_000_000 + i * 100,
                    20 + i % 5
                )
            })
            .collect();
        lines.push(format!(
            r#"{{"device_id":"d-001","ts":{},"metric":"colour","value":1.0}}"#,
            1_700_000_000_000 + run * 1_000_000
        ));
        lines.push(format!(
            r#"{{"device_id":"d-002","ts":{},"metric":"temp","value":"hot"}}"#,
            1_700_000_000_000 + run * 1_000_000
        ));
        lines.join("\n")
    };

    let mut summaries = Vec::new();
    for run in 0..2u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iotflow"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .arg("--config")
            .arg(&server)
            .arg("--job")
            .arg(&job)
            .env_remove("IOTFLOW_API_TOKEN")
            .env_remove("IOTFLOW_REGISTRY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iotflow serve --job starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut stdout = child.stdout.take().expect("stdout");
        let pid = child.id();
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
        let (status, body) = post_ndjson(&addr, "/ingest/batch", &batch(run));
        assert!(status.contains("202"), "{status} {body}");
        assert!(body.contains("\"accepted\":250"), "{body}");
        if run == 0 {
            // More than the room left (400 - what the pipeline has not
            // read yet, at most 250): refused whole, never half taken.
            let big: String = (0..399)
                .map(|i| {
                    format!(
                        "{{\"device_id\":\"x\",\"ts\":{},\"metric\":\"temp\",\"value\":1.0}}\n",
                        1_700_000_500_000u64 + i
                    )
                })
                .collect();
            let (status, body) = post_ndjson(&addr, "/ingest/batch", &big);
            if status.contains("503") {
                assert!(body.contains("queue_full"), "{body}");
            } else {
                // The pipeline had already drained the queue: then the
                // request fits and counts. Keep the test exact either way.
                assert!(status.contains("202"), "{status} {body}");
                summaries.push(399);
            }
        }
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let mut text = String::new();
        stdout.read_to_string(&mut text).expect("stdout");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        drop(child);
        let lines_read = text
            .lines()
            .find_map(|l| l.strip_prefix("lines"))
            .map(|n| n.trim().replace(',', ""))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no summary: {text}\n{}", rest.join("\n")));
        summaries.push(lines_read);
    }
    // The second run's summary holds both runs (restored from the
    // checkpoint): 250 + 250, plus the big batch if it was accepted.
    let extra: u64 = if summaries.len() == 3 { 399 } else { 0 };
    assert_eq!(
        *summaries.last().expect("two runs"),
        500 + extra,
        "{summaries:?}"
    );
    let rejects = std::fs::read_dir(out.join("rejects"))
        .expect("rejects dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .expect("read")
                .lines()
                .skip(1)
                .filter(|l| !l.is_empty())
                .count()
        })
        .sum::<usize>();
    assert_eq!(rejects, 4, "two bad readings per run, each once");
}

fn post_ndjson(addr: &str, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}
