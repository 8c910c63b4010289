//! Golden cases under `tests/golden/<case>/` (see `iotflow_testing::golden`).
//! `IOTFLOW_BLESS=1 cargo test -p iotflow-tests golden` rewrites `expected/`.

use std::path::{Path, PathBuf};

use iotflow_testing::golden::GoldenCase;

const CASES: [&str; 9] = [
    "allowed-lateness",
    "clock-skew",
    "count-windows",
    "csv-input",
    "fleet-small",
    "late-and-disorder",
    "rejects-zoo",
    "sessions-small",
    "sliding-small",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn check(name: &str) {
    GoldenCase::new(root().join(name))
        .check()
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_case_directory_is_tested() {
    let mut dirs: Vec<String> = std::fs::read_dir(root())
        .expect("golden dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, CASES, "add a #[test] for every golden case");
}

#[test]
fn clock_skew() {
    check("clock-skew");
}

#[test]
fn csv_input() {
    check("csv-input");
}

#[test]
fn fleet_small() {
    check("fleet-small");
}

#[test]
fn late_and_disorder() {
    check("late-and-disorder");
}

#[test]
fn rejects_zoo() {
    check("rejects-zoo");
}

#[test]
fn sliding_small() {
    check("sliding-small");
}

#[test]
fn sessions_small() {
    check("sessions-small");
}

#[test]
fn allowed_lateness() {
    check("allowed-lateness");
}

#[test]
fn count_windows() {
    check("count-windows");
}
