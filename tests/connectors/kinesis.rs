//! Kinesis (moto, and kinesalite for resharding) → fleet pipeline →
//! committed outputs, stopped and restarted in the middle; a shard split
//! while the job is down loses nothing.

use iotflow_kinesis::testing;
use iotflow_pipelines::config::{InputSpec, JobConfig};
use iotflow_runtime::ClusterConfig;

use crate::common::{assert_conserved, fixture, job, run_stopped_after, same_outputs};

fn url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipped: set {var} (see .ci/services.sh)");
            None
        }
    }
}

/// One shard on one worker keeps the file's order: the output of a run
/// stopped at a third and resumed is the file run's, row for row.
#[test]
fn one_shard_stopped_and_resumed_gives_the_file_output() {
    let Some(url) = url("IOTFLOW_TEST_KINESIS_URL") else {
        return;
    };
    let f = fixture(20_000);
    let stream = testing::unique_name("e2e-one");
    testing::create_stream(&url, &stream, 1).expect("create stream");
    testing::put_lines(&url, &stream, &f.lines).expect("put records");
    let n = f.lines.len() as u64;

    let out = f.tmp.path().join("out");
    let ck = f.tmp.path().join("ck");
    let input = InputSpec::Kinesis(testing::source_config(&url, &stream));
    let cfg = job(input, &out, 1, Some(&ck));
    run_stopped_after(&cfg, n / 3);
    let done = iotflow_pipelines::run::run(&cfg, None).expect("resumed run");
    assert!(!done.interrupted);
    assert_eq!(
        done.tally, f.reference_report.tally,
        "counts as in the file run"
    );
    same_outputs(&out, &f.reference, "kinesis, 1 shard, stopped at 1/3");
    testing::delete_stream(&url, &stream).ok();
}

/// Two shards on two workers; the job is stopped, shard 0 is split while
/// it is down and more records go to the children, and the resumed job
/// (on one worker, then two) reads every record exactly once: parents to
/// their end, then the children.
#[test]
fn a_shard_split_while_the_job_is_down_loses_nothing() {
    let Some(url) = url("IOTFLOW_TEST_KINESALITE_URL") else {
        return;
    };
    let f = fixture(20_000);
    let (first, second) = f.lines.split_at(f.lines.len() / 2);
    let stream = testing::unique_name("e2e-split");
    testing::create_stream(&url, &stream, 2).expect("create stream");
    testing::put_lines(&url, &stream, first).expect("put first half");

    let out = f.tmp.path().join("out");
    let ck = f.tmp.path().join("ck");
    let input = InputSpec::Kinesis(testing::source_config(&url, &stream));
    let cfg = job(input, &out, 2, Some(&ck));
    run_stopped_after(&cfg, first.len() as u64 / 2);

    let shards = testing::list_shards(&url, &stream).expect("list shards");
    let children = testing::split_shard(&url, &stream, &shards[0].id).expect("split");
    assert_eq!(children.len(), 2);
    testing::put_lines(&url, &stream, second).expect("put second half");

    let one = JobConfig {
        cluster: ClusterConfig::local(1),
        ..cfg.clone()
    };
    run_stopped_after(&one, first.len() as u64 + second.len() as u64 / 3);
    let done = iotflow_pipelines::run::run(&cfg, None).expect("resumed run");
    let n = f.lines.len() as u64;
    assert_conserved(&done, &out, n, "kinesis split");
    assert_eq!(
        done.tally.rejected_total(),
        f.reference_report.tally.rejected_total(),
        "the file's bad lines, each once"
    );
}
