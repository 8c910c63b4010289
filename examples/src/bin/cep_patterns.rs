//! Complex event processing: four IoT rules over one simulated hour.
//!
//! ```text
//! cargo run -p iotflow-examples --bin cep_patterns [WORKERS]
//! ```
//!
//! * **overheating** (in code, an iterative condition): three rising
//!   temperatures within a minute, then a vibration spike.
//! * **reboot loop** (TOML): at least 3 boots within 10 minutes; skip past
//!   the last event, so one loop raises one alert.
//! * **missing heartbeat** (TOML): a heartbeat not followed by another within
//!   60 s. It fires when the event-time frontier passes the deadline, while
//!   the device stays silent.
//! * **door open too long** (TOML): a door opened and not closed within 5
//!   minutes.
//!
//! The readings are embedded: a small fleet with one scripted incident per
//! rule, sent in event-time order with up to 2 s of disorder, the input time
//! following the watermark as an event-time source would.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use iotflow::timely::container::CapacityContainerBuilder;
use iotflow::timely::dataflow::InputHandle;
use iotflow::timely::dataflow::operators::{Concatenate, Input, Inspect, Probe};
use iotflow::types::{Alert, Reading};
use iotflow_cep::{Cep, Match, Pattern, PatternConfig, Skip};

const REBOOT_LOOP: &str = r#"
within_ms = 600000
skip = "past_last_event"
[[stages]]
name = "boot"
where = { metric = "boot" }
quantifier = { at_least = 3 }
"#;

const MISSING_HEARTBEAT: &str = r#"
within_ms = 60000
[[stages]]
name = "beat"
where = { metric = "heartbeat" }
[[stages]]
name = "silence"
not = "followed_by"
where = { metric = "heartbeat" }
"#;

const DOOR_OPEN_TOO_LONG: &str = r#"
within_ms = 300000
[[stages]]
name = "open"
where = { all = [{ metric = "door" }, { value_eq = 1.0 }] }
[[stages]]
name = "closed"
not = "followed_by"
where = { all = [{ metric = "door" }, { value_eq = 0.0 }] }
"#;

fn overheating() -> Result<Pattern<Reading>> {
    Ok(Pattern::begin("rise")
        .filter_with(|r: &Reading, p| {
            r.metric.as_str() == "temp" && p.last("rise").is_none_or(|l| r.value > l.value)
        })
        .times(3)
        .followed_by("spike")
        .filter(|r| r.metric.as_str() == "vibration" && r.value > 2.0)
        .within_ms(60_000)
        .skip(Skip::PastLastEvent)
        .build()?)
}

/// One hour of a 20-device fleet: temperatures and vibration every 5 s,
/// heartbeats every 20 s, plus one scripted incident per rule.
fn readings() -> Vec<Reading> {
    let mut out = Vec::new();
    for s in (0..3_600_000u64).step_by(5_000) {
        for d in 0..20u64 {
            let dev = format!("d-{d:02}");
            let ts = s + d * 100;
            // Flat temperature, except d-03 heating up at 10 min.
            let temp = if d == 3 && (600_000..620_000).contains(&s) {
                60.0 + (s - 600_000) as f64 / 5_000.0
            } else {
                40.0 + ((s / 5_000 + d) % 2) as f64 * 0.5
            };
            out.push(Reading::new(&dev, ts, "temp", temp));
            let vib = if d == 3 && s == 620_000 { 3.5 } else { 0.2 };
            out.push(Reading::new(&dev, ts + 1, "vibration", vib));
            // d-07 goes silent from 30 min to 35 min.
            let silent = d == 7 && (1_800_000..2_100_000).contains(&s);
            if s % 20_000 == 0 && !silent {
                out.push(Reading::new(&dev, ts + 2, "heartbeat", 1.0));
            }
        }
    }
    // d-11 reboots four times within 6 minutes.
    for (i, at) in [1_000_000u64, 1_120_000, 1_240_000, 1_360_000]
        .iter()
        .enumerate()
    {
        out.push(Reading::new("d-11", at + 7 + i as u64, "boot", 1.0));
    }
    // door-A is opened and closed; door-B stays open.
    out.push(Reading::new("door-A", 200_000, "door", 1.0));
    out.push(Reading::new("door-A", 260_000, "door", 0.0));
    out.push(Reading::new("door-B", 900_000, "door", 1.0));
    out.push(Reading::new("door-B", 1_500_000, "door", 0.0));
    out.sort_by_key(|r| r.ts);
    // Up to 2 s of disorder: swap neighbours that are close in time.
    for i in (1..out.len()).step_by(7) {
        if out[i].ts - out[i - 1].ts < 2_000 {
            out.swap(i, i - 1);
        }
    }
    out
}

/// The alert of a match: stamped at its last event, or for an absence at
/// its deadline (first event + `within`).
fn alert(
    rule: &'static str,
    absence_within: Option<u64>,
) -> impl Fn(&iotflow::types::DeviceId, &Match<Reading>) -> Alert + Clone {
    move |device, m| {
        let last = m.events().last().cloned();
        Alert {
            device: device.clone(),
            metric: last.as_ref().map(|r| r.metric.clone()).unwrap_or_default(),
            ts: absence_within.map_or(m.end, |w| m.start + w),
            value: last.map_or(0.0, |r| r.value),
            score: m.len() as f64,
            detector: rule.into(),
        }
    }
}

fn main() -> Result<()> {
    let workers: usize = std::env::args()
        .nth(1)
        .map(|w| w.parse())
        .transpose()?
        .unwrap_or(2);
    // Patterns are checked before the job starts: a bad rule fails here.
    let toml = |t: &str| -> Result<Pattern<Reading>> { Ok(PatternConfig::from_toml(t)?.build()?) };
    let patterns = Arc::new(vec![
        ("overheating", overheating()?, None),
        ("reboot-loop", toml(REBOOT_LOOP)?, None),
        ("missing-heartbeat", toml(MISSING_HEARTBEAT)?, Some(60_000)),
        (
            "door-open-too-long",
            toml(DOOR_OPEN_TOO_LONG)?,
            Some(300_000),
        ),
    ]);
    let readings = Arc::new(readings());
    let last_ts = readings.iter().map(|r| r.ts).max().unwrap_or(0);
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = alerts.clone();
    iotflow::timely::execute(iotflow::timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let sink = sink.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let readings = scope.input_from(&mut input);
            let streams: Vec<_> = patterns
                .iter()
                .map(|(rule, p, absence)| {
                    let select = alert(rule, *absence);
                    readings
                        .clone()
                        .match_pattern(rule, p, |r: &Reading| r.device.clone(), select, None)
                        .expect("nothing to restore")
                        .matches
                })
                .collect();
            scope
                .concatenate(streams)
                .inspect(move |a: &Alert| sink.lock().expect("alerts").push(a.clone()))
                .probe()
                .0
        });
        if worker.index() == 0 {
            let mut max_ts = 0u64;
            for (i, r) in readings.iter().enumerate() {
                let watermark = max_ts.saturating_sub(2_000);
                if watermark > *input.time() {
                    input.advance_to(watermark);
                }
                max_ts = max_ts.max(r.ts);
                input.send(r.clone());
                if i % 1_000 == 0 {
                    worker.step_while(|| probe.less_than(input.time()));
                }
            }
        }
        drop(input);
        while worker.step() {}
    })
    .map_err(|e| anyhow::anyhow!("timely: {e}"))?;
    let mut alerts = alerts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    alerts.sort_by(|a, b| (a.ts, &a.device).cmp(&(b.ts, &b.device)));
    // When the input ends all event time passes, so every device's last
    // heartbeat goes unanswered: those absences are real but uninteresting.
    let (live, at_end): (Vec<Alert>, Vec<Alert>) =
        alerts.into_iter().partition(|a| a.ts <= last_ts);
    for a in &live {
        println!(
            "{:>20}  {:>6}  at {:>7} ms  ({} events matched)",
            a.detector, a.device, a.ts, a.score
        );
    }
    println!(
        "{} alerts while the stream ran; {} more when it ended (last heartbeats)",
        live.len(),
        at_end.len()
    );
    Ok(())
}
