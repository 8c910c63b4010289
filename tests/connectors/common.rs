//! What the connector end-to-end tests share: fleet-v1 input, job configs
//! with checkpoints, a stop in the middle, and output comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use iotflow_core::context::JobContext;
use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_pipelines::run::RunReport;
use iotflow_runtime::ClusterConfig;
use iotflow_runtime::checkpoint::CheckpointConfig;
use iotflow_sim::FleetConfig;
use iotflow_testing::golden::read_parts;

pub(crate) const KINDS: [&str; 4] = ["windows", "alerts", "rejects", "late"];

/// A fleet-v1 input of `lines` lines (with the generator's bad lines, late
/// readings and anomalies), in a file, and the output of the pipeline
/// reading that file on one worker: what every connector run must match.
pub(crate) struct Fixture {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) lines: Vec<String>,
    pub(crate) reference: PathBuf,
    pub(crate) reference_report: RunReport,
}

pub(crate) fn fixture(lines: u64) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("fleet.ndjson");
    let fleet = FleetConfig {
        lines,
        seed: 11,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&fleet, &input, |_| {}).expect("generate");
    let text = std::fs::read_to_string(&input).expect("read input");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let reference = tmp.path().join("reference");
    let files = InputSpec::Files {
        paths: vec![input.display().to_string()],
        format: None,
    };
    let cfg = job(files, &reference, 1, None);
    let reference_report = iotflow_pipelines::run::run(&cfg, None).expect("reference run");
    Fixture {
        tmp,
        lines,
        reference,
        reference_report,
    }
}

/// A job reading `input`, writing CSV outputs to `out`, checkpointing
/// every 40 ms to `ck` when given.
pub(crate) fn job(input: InputSpec, out: &Path, workers: usize, ck: Option<&Path>) -> JobConfig {
    JobConfig {
        input,
        output: OutputSpec::all(out, Format::Csv),
        cluster: ClusterConfig::local(workers),
        checkpoint: ck.map(|dir| CheckpointConfig {
            dir: dir.display().to_string(),
            interval: Duration::from_millis(40),
            keep: 2,
        }),
        ..JobConfig::default()
    }
}

/// Runs `cfg` and stops it (like Ctrl-C) once it has read `after` records;
/// returns the report. Panics if the job ended before it could be stopped.
pub(crate) fn run_stopped_after(cfg: &JobConfig, after: u64) -> RunReport {
    let mut hook = |ctx: &JobContext| {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while ctx.progress.lines.load(Ordering::Relaxed) < after && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            ctx.cancel();
        });
    };
    let report = iotflow_pipelines::run::run(cfg, Some(&mut hook)).expect("stopped run");
    assert!(
        report.interrupted,
        "the job ended before it was stopped: {:?}",
        report.tally
    );
    report
}

/// Every output row by kind, sorted, without where a record was read
/// (`source`, `offset`: a file path and byte offset in one run, a
/// partition and message offset in another).
pub(crate) fn outputs(out: &Path) -> BTreeMap<&'static str, Vec<Vec<String>>> {
    KINDS
        .iter()
        .map(|k| {
            let dir = out.join(k);
            let mut rows = if dir.exists() {
                let (header, rows) = read_parts(&dir).expect("read parts");
                let keep: Vec<usize> = (0..header.len())
                    .filter(|&i| header[i] != "source" && header[i] != "offset")
                    .collect();
                rows.into_iter()
                    .map(|r| keep.iter().filter_map(|&i| r.get(i).cloned()).collect())
                    .collect()
            } else {
                Vec::new()
            };
            rows.sort();
            (*k, rows)
        })
        .collect()
}

/// Asserts that two output directories hold the same rows of every kind.
pub(crate) fn same_outputs(got: &Path, want: &Path, case: &str) {
    let (g, w) = (outputs(got), outputs(want));
    for k in KINDS {
        let (g, w) = (&g[k], &w[k]);
        if g != w {
            let first = g.iter().zip(w.iter()).position(|(a, b)| a != b);
            panic!(
                "{case}: {k} differ: {} rows vs {} in the file run; first difference at {first:?}: {:?} vs {:?}",
                g.len(),
                w.len(),
                first.and_then(|i| g.get(i)),
                first.and_then(|i| w.get(i)),
            );
        }
    }
}

/// Asserts the counts of a finished multi-partition run: every produced
/// record read exactly once and accounted for, and the committed outputs
/// hold as many rejects and late readings as the counts say.
pub(crate) fn assert_conserved(report: &RunReport, out: &Path, produced: u64, case: &str) {
    let t = &report.tally;
    assert!(!report.interrupted, "{case}: run interrupted");
    assert_eq!(t.lines, produced, "{case}: records read != produced");
    t.check_conservation(true)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let o = outputs(out);
    assert_eq!(
        o["rejects"].len() as u64,
        t.rejected_total(),
        "{case}: rejects in the dead-letter output"
    );
    assert_eq!(o["late"].len() as u64, t.late, "{case}: late output rows");
    assert!(!o["windows"].is_empty(), "{case}: no windows");
}

/// Reject reasons in the dead-letter output directory, with counts.
pub(crate) fn reject_reasons(out: &Path) -> BTreeMap<String, u64> {
    let dir = out.join("rejects");
    let (header, rows) = read_parts(&dir).expect("read rejects");
    let col = header
        .iter()
        .position(|h| h == "reason")
        .expect("rejects have a reason column");
    let mut by = BTreeMap::new();
    for r in rows {
        *by.entry(r[col].clone()).or_default() += 1;
    }
    by
}
