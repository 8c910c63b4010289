//! fleet-v1 against the plain-Python reference (`tests/reference/`): the same
//! windows and alerts with 1 worker, 2 workers and 2 processes.
//!
//! Skipped (with a message) when `python3` is not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_runtime::ClusterConfig;
use iotflow_sim::FleetConfig;
use iotflow_testing::compare::close;
use iotflow_testing::golden::read_parts;

type WindowKey = (String, String, u64, u64);
/// count, min, max, mean
type WindowVal = (u64, f64, f64, f64);
/// (device, metric, ts) → (value, z)
type Alerts = BTreeMap<(String, String, u64), (f64, f64)>;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reference")
        .join(name)
}

fn python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn py(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3 {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs py_fleet.py on `input`: its windows and alerts.
fn reference(input: &Path, dir: &Path) -> (BTreeMap<WindowKey, WindowVal>, Alerts) {
    let (win, alerts) = (dir.join("ref-windows.csv"), dir.join("ref-alerts.csv"));
    let s = |p: &Path| p.to_string_lossy().into_owned();
    py(&[
        &s(&script("py_fleet.py")),
        "--input",
        &s(input),
        "--out",
        &s(&win),
        "--alerts-out",
        &s(&alerts),
    ]);
    let mut windows = BTreeMap::new();
    for row in read_rows(&win) {
        windows.insert(window_key(&row), window_val(&row));
    }
    let mut alert_map = Alerts::new();
    for row in read_rows(&alerts) {
        // line,device,metric,ts,value,z
        alert_map.insert(
            (row[1].clone(), row[2].clone(), num(&row[3])),
            (num(&row[4]), num(&row[5])),
        );
    }
    (windows, alert_map)
}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .expect("reference csv");
    r.records()
        .map(|rec| rec.expect("csv row").iter().map(str::to_owned).collect())
        .collect()
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn window_key(row: &[String]) -> WindowKey {
    (row[0].clone(), row[1].clone(), num(&row[2]), num(&row[3]))
}

fn window_val(row: &[String]) -> WindowVal {
    (num(&row[4]), num(&row[5]), num(&row[6]), num(&row[7]))
}

/// Our windows and alerts from CSV outputs in `out`.
fn ours(out: &Path) -> (BTreeMap<WindowKey, WindowVal>, Alerts) {
    let (header, rows) = read_parts(&out.join("windows")).expect("windows");
    assert_eq!(
        header[..8],
        [
            "device_id",
            "metric",
            "window_start_ms",
            "window_end_ms",
            "count",
            "min",
            "max",
            "mean"
        ]
    );
    let mut windows = BTreeMap::new();
    for row in &rows {
        assert!(
            windows.insert(window_key(row), window_val(row)).is_none(),
            "duplicate window {row:?}"
        );
    }
    let (header, rows) = read_parts(&out.join("alerts")).expect("alerts");
    assert_eq!(header[..5], ["device_id", "metric", "ts", "value", "score"]);
    let alerts = rows
        .iter()
        .map(|r| {
            (
                (r[0].clone(), r[1].clone(), num(&r[2])),
                (num(&r[3]), num(&r[4])),
            )
        })
        .collect();
    (windows, alerts)
}

fn compare(
    what: &str,
    got: &(BTreeMap<WindowKey, WindowVal>, Alerts),
    want: &(BTreeMap<WindowKey, WindowVal>, Alerts),
) {
    let (gw, ga) = got;
    let (ww, wa) = want;
    let missing: Vec<_> = ww.keys().filter(|k| !gw.contains_key(*k)).take(3).collect();
    let extra: Vec<_> = gw.keys().filter(|k| !ww.contains_key(*k)).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: windows missing {missing:?}, extra {extra:?}"
    );
    for (k, w) in ww {
        let g = &gw[k];
        assert!(
            (g.0, g.1, g.2) == (w.0, w.1, w.2) && close(g.3, w.3, 1e-12),
            "{what}: window {k:?}: ours {g:?}, reference {w:?}"
        );
    }
    assert_eq!(
        ga.keys().collect::<Vec<_>>(),
        wa.keys().collect::<Vec<_>>(),
        "{what}: alert set"
    );
    for (k, w) in wa {
        let g = &ga[k];
        assert!(
            g.0 == w.0 && close(g.1, w.1, 1e-9),
            "{what}: alert {k:?}: ours {g:?}, reference {w:?}"
        );
    }
}

fn job(input: &Path, out: &Path, cluster: ClusterConfig) -> JobConfig {
    JobConfig {
        input: InputSpec::Files {
            paths: vec![input.to_string_lossy().into_owned()],
            format: None,
        },
        output: OutputSpec::all(out, Format::Csv),
        cluster,
        split_bytes: 1 << 20,
        ..JobConfig::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs `input` with 1 worker, 2 workers and 2 processes of 1 worker (two
/// threads of this process forming a timely cluster over TCP) and compares
/// each with the reference. Returns the alert count.
fn run_all(input: &Path, dir: &Path) -> usize {
    let want = reference(input, dir);
    for workers in [1, 2] {
        let out = dir.join(format!("out-w{workers}"));
        let report =
            iotflow_pipelines::run::run(&job(input, &out, ClusterConfig::local(workers)), None)
                .expect("run");
        assert_eq!(report.tally.windows as usize, want.0.len());
        assert_eq!(report.tally.alerts as usize, want.1.len());
        compare(&format!("{} workers", workers), &ours(&out), &want);
    }
    let out = dir.join("out-p2");
    let addresses = vec![
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let runs: Vec<_> = (0..2)
        .map(|process| {
            let cluster = ClusterConfig {
                workers: 1,
                processes: 2,
                process,
                addresses: addresses.clone(),
            };
            let job = job(input, &out, cluster);
            std::thread::spawn(move || iotflow_pipelines::run::run(&job, None))
        })
        .collect();
    let reports: Vec<_> = runs
        .into_iter()
        .map(|h| h.join().expect("process thread").expect("run"))
        .collect();
    assert_eq!(
        reports[0].tally.windows as usize,
        want.0.len(),
        "process 0 reports the cluster total"
    );
    compare("2 processes", &ours(&out), &want);
    want.1.len()
}

#[test]
fn fleet_v1_100k_lines_match_python_reference() {
    if !python() {
        println!("skipped: python3 not found");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("fleet.ndjson");
    let s = input.to_string_lossy().into_owned();
    py(&[
        &script("gen_fleet.py").to_string_lossy(),
        "--lines",
        "100000",
        "--seed",
        "42",
        "--out",
        &s,
    ]);
    run_all(&input, tmp.path());
}

#[test]
fn alerts_match_python_reference_on_a_small_fleet() {
    // fleet-v1 gives each key a reading every 4 s, so 100k lines of 10,000
    // devices never warm up a series; 60 devices do, and their spikes alert.
    if !python() {
        println!("skipped: python3 not found");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("fleet.ndjson");
    let cfg = FleetConfig {
        lines: 30_000,
        seed: 42,
        devices: 60,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&cfg, &input, |_| {}).expect("generate");
    assert!(run_all(&input, tmp.path()) > 0, "expected alerts");
}
