//! Count conservation over the whole pipeline on generated fleet-v1 files:
//! every line is a valid reading or a reject with the generator's reason,
//! and every valid reading is windowed or late.

use std::path::Path;

use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_runtime::ClusterConfig;
use iotflow_sim::{FleetConfig, FleetMeta, MalformedKind};
use iotflow_testing::golden::read_parts;

/// The reject reason the pipeline must give each malformed kind.
fn reason(kind: MalformedKind) -> &'static str {
    match kind {
        MalformedKind::Truncated => "invalid_json",
        MalformedKind::MissingField => "missing_field",
        MalformedKind::NanLiteral => "nan_literal",
        MalformedKind::NanString => "nan_string",
        MalformedKind::StringValue => "wrong_type",
        MalformedKind::OutOfRange => "out_of_range",
        MalformedKind::OverflowInf => "non_finite",
        MalformedKind::UnknownMetric => "unknown_metric",
    }
}

fn generate(dir: &Path, cfg: &FleetConfig) -> (String, FleetMeta) {
    let path = dir.join("fleet.ndjson");
    let meta = iotflow_sim::write_file(cfg, &path, |_| {}).expect("generate");
    (path.to_string_lossy().into_owned(), meta)
}

fn rows(dir: &Path) -> usize {
    read_parts(dir).expect("read outputs").1.len()
}

fn check(cfg: &FleetConfig, workers: usize, split_bytes: u64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, meta) = generate(tmp.path(), cfg);
    let out = tmp.path().join("out");
    let job = JobConfig {
        input: InputSpec::Files {
            paths: vec![path],
            format: None,
        },
        output: OutputSpec::all(&out, Format::Csv),
        cluster: ClusterConfig::local(workers),
        split_bytes,
        ..JobConfig::default()
    };
    let t = iotflow_pipelines::run::run(&job, None).expect("run").tally;
    let case = format!("{cfg:?} workers {workers}");
    assert_eq!(t.lines, meta.lines, "{case}: lines");
    assert_eq!(t.valid, meta.valid, "{case}: valid");
    let mut want = std::collections::BTreeMap::new();
    for kind in MalformedKind::ALL {
        let n = meta.malformed_of(kind);
        if n > 0 {
            *want.entry(reason(kind).to_owned()).or_insert(0) += n;
        }
    }
    assert_eq!(t.rejected, want, "{case}: rejects by reason");
    // fleet-v1's disorder is below the 2 s watermark delay: nothing is late.
    assert_eq!(t.late, 0, "{case}: late");
    t.check_conservation(true)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(
        rows(&out.join("windows")) as u64,
        t.windows,
        "{case}: window rows"
    );
    assert_eq!(
        rows(&out.join("rejects")) as u64,
        t.rejected_total(),
        "{case}: reject rows"
    );
    assert_eq!(
        rows(&out.join("alerts")) as u64,
        t.alerts,
        "{case}: alert rows"
    );
    assert_eq!(rows(&out.join("late")), 0, "{case}: late rows");
    assert!(t.alerts > 0, "{case}: spikes after warm-up must alert");
}

#[test]
fn every_line_is_accounted_for_with_one_worker() {
    check(
        &FleetConfig {
            lines: 24_000,
            seed: 7,
            devices: 40,
            ..FleetConfig::default()
        },
        1,
        1 << 20,
    );
}

#[test]
fn every_line_is_accounted_for_with_two_workers_and_small_splits() {
    // Small splits: several per worker, and records straddling split edges.
    check(
        &FleetConfig {
            lines: 24_000,
            seed: 8,
            devices: 40,
            ..FleetConfig::default()
        },
        2,
        64 * 1024,
    );
}
