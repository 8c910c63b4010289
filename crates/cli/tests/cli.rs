//! The `iotflow` binary end to end: real processes, exit codes, messages.

use std::path::Path;
use std::process::{Command, Output};

fn iotflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotflow"))
}

/// `iotflow run -i INPUT -o OUTPUT EXTRA…` with stdout and stderr captured.
fn run(input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut c = iotflow();
    c.arg("run")
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(extra);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "iotflow failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn summary(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}): {last}"))
}

/// All window rows of a run, sorted (part files merged).
fn window_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir.join("windows")).expect("windows dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read part");
        rows.extend(text.lines().skip(1).map(str::to_owned));
    }
    rows.sort();
    rows
}

/// The uninterrupted reference: 1 worker, CSV outputs; its summary.
fn one_worker_csv(input: &Path, out: &Path) -> serde_json::Value {
    summary(&ok(run(
        input,
        out,
        &["-w", "1", "--format", "csv", "--summary", "json"],
    )
    .output()
    .expect("spawn")))
}

/// Summary counts two runs of one job must agree on.
fn same_counts(a: &serde_json::Value, b: &serde_json::Value) {
    for key in [
        "lines",
        "valid",
        "rejected",
        "rejected_by_reason",
        "late",
        "windows",
        "alerts",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
}

/// Process `p` of a 2-process cluster at `addrs`, CSV output, JSON summary.
fn cluster_member(input: &Path, output: &Path, addrs: &str, p: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "-w",
        "1",
        "--format",
        "csv",
        "--summary",
        "json",
        "-n",
        "2",
        "-p",
        p,
        "--addresses",
        addrs,
    ];
    args.extend_from_slice(extra);
    run(input, output, &args)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn generate(dir: &Path, lines: u64) -> std::path::PathBuf {
    let input = dir.join("fleet.ndjson");
    ok(iotflow()
        .args([
            "generate",
            "--lines",
            &lines.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(&input)
        .output()
        .expect("spawn"));
    input
}

#[test]
fn two_processes_on_localhost_match_one_process() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = generate(tmp.path(), 60_000);
    let one = tmp.path().join("one");
    let s1 = one_worker_csv(&input, &one);

    let two = tmp.path().join("two");
    let addrs = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let spawn = |p: &str| {
        cluster_member(&input, &two, &addrs, p, &[])
            .spawn()
            .expect("spawn")
    };
    let p1 = spawn("1");
    let p0 = spawn("0");
    let s2 = summary(&ok(p0.wait_with_output().expect("process 0")));
    ok(p1.wait_with_output().expect("process 1"));

    same_counts(&s1, &s2);
    assert_eq!(s2["processes"], 2);
    assert_eq!(s1["lines"], 60_000);
    assert_eq!(s1["rejected"], 60);
    assert_eq!(window_rows(&one), window_rows(&two));
}

#[test]
fn summary_json_has_the_documented_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = generate(tmp.path(), 5_000);
    let out = tmp.path().join("out");
    let s = summary(&ok(run(
        &input,
        &out,
        &[
            "-w",
            "2",
            "--summary",
            "json",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    )
    .output()
    .expect("spawn")));
    for key in [
        "lines",
        "valid",
        "rejected",
        "rejected_by_reason",
        "late",
        "windows",
        "alerts",
        "seconds",
        "lines_per_s",
        "workers",
        "processes",
        "peak_rss_bytes",
    ] {
        assert!(s.get(key).is_some(), "missing {key} in {s}");
    }
    assert_eq!(s["workers"], 2);
    // Parquet windows by default, NDJSON for the rest.
    assert!(tmp.path().join("out/windows/part-00000.parquet").exists());
    assert!(tmp.path().join("out/rejects/part-00001.ndjson").exists());
}

#[test]
fn missing_input_fails_with_the_path_and_a_nonzero_exit() {
    let out = iotflow()
        .args(["run", "-i", "/nonexistent/in.ndjson", "-o", "/tmp/x"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/in.ndjson") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn bad_flags_fail_with_usage() {
    let out = iotflow()
        .args(["run", "--workers", "lots"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'lots'"));
    let out = iotflow()
        .args(["run", "-i", "x", "-o", "y", "-n", "2"])
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 processes need 2 addresses"));
}

#[test]
fn rerun_with_fewer_workers_leaves_no_stale_parts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = generate(tmp.path(), 2_000);
    let out = tmp.path().join("out");
    for w in ["2", "1"] {
        ok(run(&input, &out, &["-w", w, "--format", "csv"])
            .output()
            .expect("spawn"));
    }
    assert!(!out.join("windows/part-00001.csv").exists());
}

#[test]
fn ctrl_c_stops_cleanly_with_valid_files_and_conserved_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = generate(tmp.path(), 3_000_000);
    let out = tmp.path().join("out");
    let child = run(&input, &out, &["-w", "2", "--summary", "json"])
        .spawn()
        .expect("spawn");
    // Let it get going, then press Ctrl-C.
    let started = std::time::Instant::now();
    while !out.join("windows").exists() && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let done = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&done.stdout);
    let s = summary(&stdout);
    let lines = s["lines"].as_u64().unwrap_or(0);
    eprintln!("summary after Ctrl-C: {s}");
    if s["interrupted"] == true {
        assert_eq!(done.status.code(), Some(130));
        assert!(lines < 3_000_000, "{s}");
    } else {
        // The machine was fast enough to finish first; still a clean run.
        assert!(done.status.success());
        assert_eq!(lines, 3_000_000);
    }
    // Counts conserved, and every Parquet file is complete and readable.
    let rejected = s["rejected"].as_u64().unwrap_or(0);
    let valid = s["valid"].as_u64().unwrap_or(0);
    assert_eq!(lines, valid + rejected, "{s}");
    assert_eq!(
        valid,
        s["windowed_readings"].as_u64().unwrap_or(0) + s["late"].as_u64().unwrap_or(0)
    );
    let mut rows = 0;
    for entry in std::fs::read_dir(out.join("windows")).expect("windows") {
        let file = std::fs::File::open(entry.expect("entry").path()).expect("open");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("valid parquet footer")
            .build()
            .expect("reader");
        for batch in reader {
            rows += batch.expect("batch").num_rows() as u64;
        }
    }
    assert_eq!(rows, s["windows"].as_u64().unwrap_or(u64::MAX));
}

#[test]
fn a_killed_cluster_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = generate(tmp.path(), 400_000);
    let one = tmp.path().join("one");
    let s1 = one_worker_csv(&input, &one);

    let two = tmp.path().join("two");
    let ck = tmp.path().join("ck");
    let ck_arg = ck.display().to_string();
    let addrs = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let checkpoints = [
        "--checkpoint-dir",
        &ck_arg,
        "--checkpoint-interval",
        "100ms",
    ];
    let spawn = |p: &str| {
        cluster_member(&input, &two, &addrs, p, &checkpoints)
            .spawn()
            .expect("spawn")
    };
    // First attempt: both processes are killed once a checkpoint exists.
    let mut p1 = spawn("1");
    let mut p0 = spawn("0");
    let first = ck.join("ckpt-0000000001").join("MANIFEST.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = p0.kill();
    let _ = p1.kill();
    let killed_running = p0.wait().map(|s| !s.success()).unwrap_or(false);
    let _ = p1.wait();
    // Second attempt: the same commands resume and finish.
    let p1 = spawn("1");
    let p0 = spawn("0");
    let s2 = summary(&ok(p0.wait_with_output().expect("process 0")));
    ok(p1.wait_with_output().expect("process 1"));
    if killed_running {
        assert!(
            s2["checkpoints"]["restored_from"].is_u64(),
            "{}",
            s2["checkpoints"]
        );
    }
    same_counts(&s1, &s2);
    let (a, b) = (window_rows(&one), window_rows(&two));
    if a != b {
        let only_a: Vec<_> = a
            .iter()
            .filter(|r| b.binary_search(r).is_err())
            .take(5)
            .collect();
        let only_b: Vec<_> = b
            .iter()
            .filter(|r| a.binary_search(r).is_err())
            .take(5)
            .collect();
        panic!(
            "window rows differ: {} vs {}; only uninterrupted: {only_a:?}; only resumed: {only_b:?}",
            a.len(),
            b.len()
        );
    }
}

/// A job with allowed lateness reports its window updates, in the text
/// summary and in JSON (the golden case `allowed-lateness`, run as a user
/// would, with its job file).
#[test]
fn window_updates_are_reported() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/allowed-lateness");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = case.join("input.ndjson");
    let config = case.join("job.toml");
    let config = config.to_str().expect("utf-8 path");
    let json = summary(&ok(run(
        &input,
        &dir.path().join("json"),
        &["--config", config, "--format", "csv", "--summary", "json"],
    )
    .output()
    .expect("spawn")));
    assert_eq!(json["windows"], 3, "{json}");
    assert_eq!(json["window_updates"], 3, "{json}");
    assert_eq!(json["window_partials"], 0, "{json}");
    assert_eq!(json["late"], 1, "{json}");
    let text = ok(run(&input, &dir.path().join("text"), &["--config", config])
        .output()
        .expect("spawn"));
    assert!(text.contains("updates"), "{text}");
}
