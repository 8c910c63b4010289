//! Several files that each cover the same period (one per device group):
//! read one after the other, the later files' readings are late behind the
//! earlier ones; with `interleave_files`, each file has its own watermark,
//! the source holds the least, and the output equals that of the same
//! readings in one file — with 1 and 2 workers.

use std::io::Write;
use std::path::Path;

use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_runtime::ClusterConfig;
use iotflow_sim::FleetConfig;
use iotflow_testing::golden::read_parts;

fn job(paths: Vec<String>, out: &Path, workers: usize, interleave: bool) -> JobConfig {
    JobConfig {
        input: InputSpec::Files {
            paths,
            format: None,
        },
        output: OutputSpec::all(out, Format::Csv),
        cluster: ClusterConfig::local(workers),
        interleave_files: interleave,
        ..JobConfig::default()
    }
}

fn windows(out: &Path) -> Vec<Vec<String>> {
    let mut rows = read_parts(&out.join("windows")).expect("windows").1;
    rows.sort();
    rows
}

#[test]
fn files_covering_the_same_period_need_a_watermark_each() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = tmp.path().join("fleet.ndjson");
    // 30 devices: 80 000 lines span about an hour of event time.
    let fleet = FleetConfig {
        lines: 80_000,
        seed: 3,
        devices: 30,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&fleet, &one, |_| {}).expect("generate");
    // Split by device into 3 files, each spanning the whole period.
    let text = std::fs::read_to_string(&one).expect("read");
    let paths: Vec<String> = (0..3)
        .map(|i| {
            tmp.path()
                .join(format!("part-{i}.ndjson"))
                .display()
                .to_string()
        })
        .collect();
    let mut files: Vec<std::fs::File> = paths
        .iter()
        .map(|p| std::fs::File::create(p).expect("create"))
        .collect();
    for (n, line) in text.lines().enumerate() {
        // Device ids end in digits; lines without one (malformed) round-robin.
        let digit = line
            .split("\"device_id\":\"d-")
            .nth(1)
            .and_then(|rest| rest.chars().take_while(char::is_ascii_digit).last())
            .and_then(|c| c.to_digit(10))
            .map_or(n % 3, |d| d as usize % 3);
        writeln!(files[digit], "{line}").expect("write");
    }
    drop(files);

    let reference = tmp.path().join("reference");
    let want = iotflow_pipelines::run::run(
        &job(vec![one.display().to_string()], &reference, 1, false),
        None,
    )
    .expect("one file");
    assert_eq!(want.tally.late, 0);

    let sequential = tmp.path().join("sequential");
    let seq = iotflow_pipelines::run::run(&job(paths.clone(), &sequential, 1, false), None)
        .expect("sequential");
    assert!(
        seq.tally.late > want.tally.valid / 3,
        "read in order, the later files are late: {:?}",
        seq.tally
    );

    for workers in [1, 2] {
        let out = tmp.path().join(format!("interleaved-{workers}"));
        let got = iotflow_pipelines::run::run(&job(paths.clone(), &out, workers, true), None)
            .expect("interleaved");
        assert_eq!(got.tally, want.tally, "{workers} workers");
        assert_eq!(windows(&out), windows(&reference), "{workers} workers");
    }
}
