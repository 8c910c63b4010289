//! Kafka (tansu broker of `.ci/services.sh`) → fleet pipeline → committed
//! outputs, stopped and restarted in the middle.

use iotflow_kafka::testing::{self, Keying};
use iotflow_kafka::{KafkaSourceConfig, StartFrom};
use iotflow_pipelines::config::InputSpec;

use crate::common::{
    assert_conserved, fixture, job, reject_reasons, run_stopped_after, same_outputs,
};

fn input(brokers: &str, topic: &str, group: &str) -> InputSpec {
    InputSpec::Kafka(KafkaSourceConfig {
        group_id: Some(group.to_owned()),
        start: StartFrom::Earliest,
        stop_at_end: true,
        ..KafkaSourceConfig::new(brokers, &[topic])
    })
}

/// One partition read by one worker sees the file's order, so the output
/// must be the file run's, row for row, although the job was stopped in
/// the middle and resumed from its checkpoint; the group's committed
/// offset ends at the end of the partition.
#[test]
fn one_partition_stopped_and_resumed_gives_the_file_output() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let f = fixture(30_000);
    let topic = testing::unique_topic("e2e-one");
    testing::create_topic(&brokers, &topic, 1).expect("create topic");
    let n =
        testing::produce_lines(&brokers, &topic, &f.lines, Keying::RoundRobin).expect("produce");
    assert_eq!(n, f.lines.len() as u64);

    let out = f.tmp.path().join("kafka-out");
    let ck = f.tmp.path().join("kafka-ck");
    let cfg = job(input(&brokers, &topic, &topic), &out, 1, Some(&ck));
    let first = run_stopped_after(&cfg, n / 3);
    assert!(first.tally.lines < n, "stopped before the end");
    let second = iotflow_pipelines::run::run(&cfg, None).expect("resumed run");
    assert!(!second.interrupted);
    assert_eq!(second.tally.lines, n, "every message read exactly once");
    assert_eq!(
        second.tally, f.reference_report.tally,
        "counts as in the file run"
    );
    same_outputs(&out, &f.reference, "kafka, 1 partition, stopped at 1/3");

    let committed =
        testing::committed_offsets(&brokers, &topic, &topic, 1).expect("committed offsets");
    assert_eq!(
        committed,
        vec![Some(n as i64)],
        "the group's committed offset"
    );
}

/// Four partitions on two workers, stopped twice: every message is read
/// exactly once and accounted for.
#[test]
fn four_partitions_two_workers_stopped_twice_conserve_every_record() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let f = fixture(40_000);
    let topic = testing::unique_topic("e2e-four");
    testing::create_topic(&brokers, &topic, 4).expect("create topic");
    let n = testing::produce_lines(&brokers, &topic, &f.lines, Keying::ByDevice).expect("produce");

    let out = f.tmp.path().join("out");
    let ck = f.tmp.path().join("ck");
    let cfg = job(input(&brokers, &topic, &topic), &out, 2, Some(&ck));
    run_stopped_after(&cfg, n / 4);
    // Resume on one worker, stop again, finish on two.
    let one = iotflow_pipelines::config::JobConfig {
        cluster: iotflow_runtime::ClusterConfig::local(1),
        ..cfg.clone()
    };
    run_stopped_after(&one, n / 2);
    let last = iotflow_pipelines::run::run(&cfg, None).expect("resumed run");
    assert_conserved(&last, &out, n, "kafka, 4 partitions");
    // Readings per device were produced to one partition each, in order:
    // the bad lines are the file's.
    assert_eq!(
        last.tally.rejected_total(),
        f.reference_report.tally.rejected_total()
    );
}

/// Bad payloads (not JSON, empty, not an object, a bad value) go to the
/// dead-letter output with their reason; nothing is dropped.
#[test]
fn bad_payloads_go_to_the_dead_letter_output_with_reasons() {
    let Some(brokers) = testing::brokers_from_env() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let topic = testing::unique_topic("e2e-bad");
    testing::create_topic(&brokers, &topic, 2).expect("create topic");
    let lines = [
        r#"{"device_id":"d1","ts":1000,"metric":"temp","value":21.5}"#,
        "{not json",
        "",
        "[1,2,3]",
        r#"{"device_id":"d2","ts":1000,"metric":"temp","value":"hot"}"#,
        "{\"device_id\":\"d3\",\n\"ts\":1000,\"metric\":\"temp\",\"value\":20.0}",
        r#"{"device_id":"d4","ts":2000,"metric":"temp","value":22.0}"#,
    ];
    let n = testing::produce_lines(&brokers, &topic, &lines, Keying::RoundRobin).expect("produce");
    let out = tmp.path().join("out");
    let cfg = job(input(&brokers, &topic, &topic), &out, 2, None);
    let report = iotflow_pipelines::run::run(&cfg, None).expect("run");
    assert_eq!(report.tally.lines, n, "the empty message is a record too");
    assert_eq!(
        report.tally.valid, 3,
        "d1, d3 (newline inside the JSON) and d4"
    );
    let reasons = reject_reasons(&out);
    assert_eq!(reasons.get("invalid_json"), Some(&2), "{reasons:?}");
    assert_eq!(reasons.get("not_an_object"), Some(&1), "{reasons:?}");
    assert_eq!(reasons.get("wrong_type"), Some(&1), "{reasons:?}");
    assert_eq!(reasons.values().sum::<u64>(), 4);
}
