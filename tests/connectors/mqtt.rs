//! MQTT (Mosquitto of `.ci/services.sh`) → fleet pipeline → committed
//! outputs at QoS 1: messages acknowledged only once a checkpoint holds
//! them, so a job stopped in the middle and restarted reads each exactly
//! once.

use iotflow_mqtt::{MqttSourceConfig, testing};
use iotflow_pipelines::config::{InputSpec, JobConfig};

use crate::common::{fixture, job, run_stopped_after, same_outputs};

/// The persistent session is made by a first run that reads nothing (the
/// broker then queues every message for it while no job runs); the job
/// proper is stopped at a third and resumed to the end (it ends after 2 s
/// without messages). One client keeps the publisher's order, so the
/// output is the file run's.
#[test]
fn stopped_and_resumed_reads_every_message_exactly_once() {
    let Some(url) = testing::env(testing::URL_VAR) else {
        return;
    };
    let f = fixture(20_000);
    let topic = testing::unique("e2e");
    let source = MqttSourceConfig {
        url: url.clone(),
        topics: vec![format!("{topic}/+/readings")],
        client_id: testing::unique("e2e-job"),
        stop_after_idle_ms: Some(2_000),
        ..MqttSourceConfig::default()
    };
    let out = f.tmp.path().join("out");
    let ck = f.tmp.path().join("ck");
    // Subscribe (no checkpoints: a run that ends its input completes).
    let primer = JobConfig {
        checkpoint: None,
        ..job(
            InputSpec::Mqtt(MqttSourceConfig {
                stop_after_idle_ms: Some(300),
                ..source.clone()
            }),
            &f.tmp.path().join("primer"),
            1,
            None,
        )
    };
    let r = iotflow_pipelines::run::run(&primer, None).expect("primer run");
    assert_eq!(r.tally.lines, 0);

    testing::publish_lines(&url, &format!("{topic}/fleet/readings"), &f.lines, 1).expect("publish");
    let n = f.lines.len() as u64;
    let cfg = job(InputSpec::Mqtt(source), &out, 1, Some(&ck));
    run_stopped_after(&cfg, n / 3);
    let done = iotflow_pipelines::run::run(&cfg, None).expect("resumed run");
    assert_eq!(done.tally.lines, n, "every message exactly once");
    assert_eq!(
        done.tally, f.reference_report.tally,
        "counts as in the file run"
    );
    same_outputs(&out, &f.reference, "mqtt, stopped at 1/3");
}
