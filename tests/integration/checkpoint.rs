//! Checkpoints and recovery, in process: a job stopped at random moments
//! (cancellation takes a last checkpoint and commits nothing after it) and
//! resumed, on 1 or 2 workers and switching between them, writes exactly the
//! output of an uninterrupted run, with the same counts. A corrupt newest
//! checkpoint falls back to the previous one. The crash path (SIGKILL of the
//! real binary) is tested in crates/cli/tests/recovery.rs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use iotflow_core::context::JobContext;
use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};
use iotflow_pipelines::run::RunReport;
use iotflow_runtime::ClusterConfig;
use iotflow_runtime::checkpoint::CheckpointConfig;
use iotflow_sim::FleetConfig;
use iotflow_testing::golden::read_parts;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KINDS: [&str; 4] = ["windows", "alerts", "rejects", "late"];

fn job(input: &Path, out: &Path, workers: usize, ck: Option<&Path>) -> JobConfig {
    job_at(input, out, workers, ck.map(|p| p.display().to_string()))
}

fn job_at(input: &Path, out: &Path, workers: usize, ck: Option<String>) -> JobConfig {
    JobConfig {
        input: InputSpec::Files {
            paths: vec![input.display().to_string()],
            format: None,
        },
        output: OutputSpec::all(out, Format::Csv),
        cluster: ClusterConfig::local(workers),
        // Several splits per worker, so positions of finished, running and
        // unstarted splits are all in the checkpoints.
        split_bytes: 2 << 20,
        checkpoint: ck.map(|dir| CheckpointConfig {
            dir,
            interval: Duration::from_millis(40),
            keep: 2,
        }),
        ..JobConfig::default()
    }
}

/// Every output row by kind, sorted.
fn outputs(out: &Path) -> BTreeMap<&'static str, Vec<Vec<String>>> {
    KINDS
        .iter()
        .map(|k| {
            let dir = out.join(k);
            let mut rows = if dir.exists() {
                read_parts(&dir).expect("read parts").1
            } else {
                Vec::new()
            };
            rows.sort();
            (*k, rows)
        })
        .collect()
}

fn same_outputs(got: &Path, want: &Path, case: &str) {
    let (g, w) = (outputs(got), outputs(want));
    for k in KINDS {
        let (g, w) = (&g[k], &w[k]);
        if g != w {
            let first = g.iter().zip(w.iter()).position(|(a, b)| a != b);
            panic!(
                "{case}: {k} differ: {} rows vs {} uninterrupted; first difference at {first:?}: {:?} vs {:?}",
                g.len(),
                w.len(),
                first.and_then(|i| g.get(i)),
                first.and_then(|i| w.get(i)),
            );
        }
    }
}

/// Runs `cfg`, cancelling it after `after` (like Ctrl-C).
fn run_cancelled_after(cfg: &JobConfig, after: Duration) -> RunReport {
    let mut hook = |ctx: &JobContext| {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            ctx.cancel();
        });
    };
    iotflow_pipelines::run::run(cfg, Some(&mut hook)).expect("run")
}

/// A progress hook that cancels the job once `path` exists.
fn stop_once(path: std::path::PathBuf) -> impl FnMut(&JobContext) {
    move |ctx: &JobContext| {
        let (ctx, path) = (ctx.clone(), path.clone());
        std::thread::spawn(move || {
            while !path.exists() {
                std::thread::sleep(Duration::from_millis(2));
            }
            ctx.cancel();
        });
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    input: std::path::PathBuf,
    reference: std::path::PathBuf,
    reference_report: RunReport,
}

fn fixture(lines: u64) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("fleet.ndjson");
    let cfg = FleetConfig {
        lines,
        seed: 7,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&cfg, &input, |_| {}).expect("generate");
    let reference = tmp.path().join("reference");
    let reference_report =
        iotflow_pipelines::run::run(&job(&input, &reference, 1, None), None).expect("reference");
    Fixture {
        _tmp: tmp,
        input,
        reference,
        reference_report,
    }
}

/// Stops and resumes the job once per entry of `workers` (the worker count
/// of each attempt), at random moments, then runs it to the end. Returns
/// how many stopped attempts had resumed from a checkpoint.
fn stop_and_resume(f: &Fixture, workers: &[usize], seed: u64) -> usize {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, ck) = (tmp.path().join("out"), tmp.path().join("ck"));
    let mut rng = SmallRng::seed_from_u64(seed);
    // Long enough to stop most attempts mid-run; the uninterrupted run took this.
    let span = f.reference_report.seconds.max(0.05);
    let mut resumed = 0;
    for (attempt, &w) in workers.iter().enumerate() {
        // Each attempt does part of the remaining work.
        let after = Duration::from_secs_f64(rng.random_range(0.0..span * 0.35));
        let r = run_cancelled_after(&job(&f.input, &out, w, Some(&ck)), after);
        eprintln!(
            "attempt {attempt}: {w} workers, stopped after {after:?}: interrupted {}, checkpoints {:?}",
            r.interrupted, r.checkpoints
        );
        if r.already_complete || !r.interrupted {
            break;
        }
        if r.checkpoints
            .as_ref()
            .and_then(|c| c.restored_from)
            .is_some()
        {
            resumed += 1;
        }
    }
    let last = *workers.last().unwrap_or(&1);
    let r = iotflow_pipelines::run::run(&job(&f.input, &out, last, Some(&ck)), None).expect("run");
    let case = format!("workers {workers:?}, seed {seed}");
    assert!(!r.interrupted, "{case}");
    let (t, want) = (&r.tally, &f.reference_report.tally);
    assert_eq!(t, want, "{case}: counts");
    t.check_conservation(true).expect("conserved");
    same_outputs(&out, &f.reference, &case);
    eprintln!("{case}: {resumed} stopped attempts had resumed from a checkpoint");
    resumed
}

#[test]
fn stopped_and_resumed_equals_uninterrupted() {
    let f = fixture(150_000);
    let mut resumed = 0;
    for (seed, workers) in [
        (1, vec![1, 1, 1, 1]),
        (2, vec![2, 2, 2, 2]),
        (3, vec![2, 1, 2, 1]),
        (4, vec![1, 2, 1, 2]),
    ] {
        resumed += stop_and_resume(&f, &workers, seed);
    }
    // Not a timing assertion on results: it checks the test exercised
    // resuming at all (12 stops in total; most land mid-run).
    assert!(resumed >= 3, "only {resumed} stopped attempts had resumed");
}

#[test]
fn a_resumed_run_starts_from_its_checkpoint_and_a_finished_one_reruns_nothing() {
    let f = fixture(150_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, ck) = (tmp.path().join("out"), tmp.path().join("ck"));
    // Stop as soon as the first checkpoint exists.
    let cfg = job(&f.input, &out, 2, Some(&ck));
    let mut hook = stop_once(ck.join("ckpt-0000000001/MANIFEST.json"));
    let first = iotflow_pipelines::run::run(&cfg, Some(&mut hook)).expect("run");
    let stats = first.checkpoints.clone().expect("stats");
    if first.interrupted {
        assert!(stats.completed >= 1, "{stats:?}");
        let second = iotflow_pipelines::run::run(&cfg, None).expect("resume");
        let from = second.checkpoints.as_ref().and_then(|c| c.restored_from);
        assert!(from.is_some_and(|id| id >= 1), "{:?}", second.checkpoints);
        assert!(
            second.tally.lines == f.reference_report.tally.lines,
            "{:?}",
            second.tally
        );
    }
    same_outputs(&out, &f.reference, "resumed");
    let again = iotflow_pipelines::run::run(&cfg, None).expect("rerun");
    assert!(again.already_complete);
    assert_eq!(again.tally, f.reference_report.tally);
    same_outputs(&out, &f.reference, "rerun after completion");
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let f = fixture(150_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, ck) = (tmp.path().join("out"), tmp.path().join("ck"));
    let cfg = job(&f.input, &out, 2, Some(&ck));
    // Stop once two checkpoints exist.
    let mut hook = stop_once(ck.join("ckpt-0000000002/MANIFEST.json"));
    // If the job ends before it is stopped, its newest checkpoint is the
    // final one: corrupting it must fall back just the same.
    iotflow_pipelines::run::run(&cfg, Some(&mut hook)).expect("run");
    // Truncate a state part of the newest checkpoint.
    let mut dirs: Vec<_> = std::fs::read_dir(&ck)
        .expect("ck dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("MANIFEST.json").exists())
        .collect();
    dirs.sort();
    let newest = dirs.last().expect("a checkpoint");
    let newest_id: u64 = newest
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("ckpt-"))
        .and_then(|n| n.parse().ok())
        .expect("id");
    let part = std::fs::read_dir(newest)
        .expect("newest")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .expect("a part");
    let len = std::fs::metadata(&part).expect("part").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    let second = iotflow_pipelines::run::run(&cfg, None).expect("resume");
    let from = second
        .checkpoints
        .as_ref()
        .and_then(|c| c.restored_from)
        .expect("restored");
    assert!(
        from < newest_id,
        "restored {from}, corrupt newest {newest_id}"
    );
    assert_eq!(second.tally, f.reference_report.tally);
    same_outputs(&out, &f.reference, "after corrupt checkpoint");
}

/// The same code path with checkpoints in S3 (the moto server started by
/// `.ci/services.sh`, which sets `IOTFLOW_TEST_S3_URL`).
#[test]
fn checkpoints_in_s3_resume_the_same_way() {
    let Ok(url) = std::env::var("IOTFLOW_TEST_S3_URL") else {
        eprintln!("skipped: IOTFLOW_TEST_S3_URL not set (run .ci/services.sh start)");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let location = format!(
        "{}/job-{}-{nanos}",
        url.trim_end_matches('/'),
        std::process::id()
    );
    let f = fixture(150_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let cfg = job_at(&f.input, &out, 2, Some(location.clone()));
    let store = iotflow_runtime::store::CheckpointStore::open(&location).expect("open S3 store");
    // Stop once the first checkpoint is in S3.
    let mut hook = |ctx: &JobContext| {
        let ctx = ctx.clone();
        let location = location.clone();
        std::thread::spawn(move || {
            let Ok(store) = iotflow_runtime::store::CheckpointStore::open(&location) else {
                return;
            };
            while store
                .get("ckpt-0000000001/MANIFEST.json")
                .ok()
                .flatten()
                .is_none()
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            ctx.cancel();
        });
    };
    let first =
        iotflow_pipelines::run::run(&cfg, Some(&mut hook)).expect("run with S3 checkpoints");
    assert!(first.checkpoints.as_ref().is_some_and(|c| c.completed >= 1));
    let objects = store.list("").expect("list");
    assert!(
        objects.iter().any(|o| o.ends_with("MANIFEST.json")),
        "{objects:?}"
    );
    let second = iotflow_pipelines::run::run(&cfg, None).expect("resume from S3");
    if first.interrupted {
        assert!(
            second
                .checkpoints
                .as_ref()
                .and_then(|c| c.restored_from)
                .is_some(),
            "{:?}",
            second.checkpoints
        );
    }
    assert_eq!(second.tally, f.reference_report.tally);
    same_outputs(&out, &f.reference, "S3 checkpoints");
    store.delete_prefix("").expect("clean up");
}

/// Sliding and session windows keep their state through checkpoints too:
/// stopped and resumed on 2 → 1 → 2 workers, the output is the
/// uninterrupted run's.
#[test]
fn sliding_and_session_windows_resume_exactly() {
    use iotflow_pipelines::config::{WindowConfig, WindowKind};
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("fleet.ndjson");
    let fleet = FleetConfig {
        lines: 60_000,
        seed: 11,
        ..FleetConfig::default()
    };
    iotflow_sim::write_file(&fleet, &input, |_| {}).expect("generate");
    for (name, window) in [
        (
            "sliding",
            WindowConfig {
                kind: WindowKind::Sliding,
                size_ms: 30_000,
                slide_ms: Some(10_000),
                ..WindowConfig::default()
            },
        ),
        (
            "session",
            WindowConfig {
                kind: WindowKind::Session,
                gap_ms: Some(15_000),
                ..WindowConfig::default()
            },
        ),
    ] {
        let with = |out: &Path, workers, ck: Option<&Path>| JobConfig {
            window: window.clone(),
            ..job(&input, out, workers, ck)
        };
        let reference = tmp.path().join(format!("{name}-ref"));
        let want =
            iotflow_pipelines::run::run(&with(&reference, 1, None), None).expect("reference");
        want.tally.check_conservation(true).expect("conserved");
        let (out, ck) = (tmp.path().join(name), tmp.path().join(format!("{name}-ck")));
        let mut rng = SmallRng::seed_from_u64(5);
        for workers in [2, 1, 2] {
            let after =
                Duration::from_secs_f64(rng.random_range(0.0..want.seconds.max(0.05) * 0.4));
            run_cancelled_after(&with(&out, workers, Some(&ck)), after);
        }
        let got = iotflow_pipelines::run::run(&with(&out, 2, Some(&ck)), None).expect("resume");
        assert_eq!(got.tally, want.tally, "{name}: counts");
        same_outputs(&out, &reference, name);
    }
}
