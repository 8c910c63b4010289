//! The source inside a dataflow: `event_time_source` on two timely workers
//! over a two-shard moto stream (`IOTFLOW_TEST_KINESIS_URL`) decodes every
//! record once, and bad payloads (blank, not JSON) become rejects.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use iotflow_core::codec::JsonDecoder;
use iotflow_core::context::JobContext;
use iotflow_core::event_time::{EventTimeConfig, event_time_source};
use iotflow_core::validate::Rules;
use iotflow_kinesis::KinesisSource;
use iotflow_kinesis::testing;
use iotflow_types::Reading;
use timely::dataflow::operators::Inspect;

#[test]
fn two_workers_decode_every_record_once_and_reject_bad_payloads() {
    let Some(url) = server("IOTFLOW_TEST_KINESIS_URL") else {
        return;
    };
    let stream = testing::unique_name("pipeline");
    testing::create_stream(&url, &stream, 2).expect("create");
    let sent = readings(0, 400, 10);
    testing::put_lines(&url, &stream, &sent).expect("put");
    testing::put_lines(&url, &stream, &["  ", "not json"]).expect("put bad");

    let config = testing::source_config(&url, &stream);
    let ok = Arc::new(Mutex::new(Vec::<String>::new()));
    let rejects = Arc::new(Mutex::new(0usize));
    let late = Arc::new(Mutex::new(0usize));
    let (ok2, rej2, late2) = (ok.clone(), rejects.clone(), late.clone());
    timely::execute(timely::Config::process(2), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let source = KinesisSource::new(config.clone(), index, peers, Vec::new()).expect("source");
        let (ok, rej, late) = (ok2.clone(), rej2.clone(), late2.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            let s = event_time_source(
                scope,
                "kinesis",
                Box::new(source),
                Box::new(JsonDecoder::new()),
                Rules::fleet_default(),
                EventTimeConfig::default().with_max_disorder(Duration::from_millis(1_000)),
                JobContext::new(),
            );
            s.readings.inspect(move |r: &Reading| {
                let line = format!(
                    r#"{{"device_id":"{}","ts":{},"metric":"temp","value":{}}}"#,
                    r.device, r.ts, r.value
                );
                ok.lock().expect("lock").push(line);
            });
            s.rejects.inspect(move |_| *rej.lock().expect("lock") += 1);
            s.late.inspect(move |_| *late.lock().expect("lock") += 1);
        });
    })
    .expect("timely ran");

    let got = ok.lock().expect("lock").clone();
    assert_eq!(
        *late.lock().expect("lock"),
        0,
        "per-shard watermarks: nothing late"
    );
    assert_exactly(&got, &sent);
    assert_eq!(
        *rejects.lock().expect("lock"),
        2,
        "blank and non-JSON payloads rejected"
    );
    testing::delete_stream(&url, &stream).expect("delete");
}
