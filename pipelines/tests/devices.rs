//! The fleet job with `[devices]`: readings enriched from a real (SQLite)
//! registry, unknown devices rejected with their reason, presence events
//! and fleet counts written, every reading accounted for.

use std::collections::BTreeMap;
use std::path::Path;

use iotflow_devices::{DeviceStatus, NewDevice, Registry};
use iotflow_pipelines::config::{DevicesConfig, InputSpec, JobConfig, OutputSpec};
use iotflow_pipelines::run::run;
use iotflow_runtime::ClusterConfig;

const T0: u64 = 1_700_000_000_000;

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let text = std::fs::read_to_string(e.path()).expect("readable part file");
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an NDJSON row")),
        );
    }
    out
}

/// d-1 and d-2 (acme) send for 60 s; d-2 stops at 20 s; x-9 is not
/// registered; d-3 is registered but never sends.
fn write_input(path: &Path) {
    let mut text = String::new();
    for s in 0..60u64 {
        for (dev, until) in [("d-1", 60), ("d-2", 20), ("x-9", 60)] {
            if s < until {
                text.push_str(&format!(
                    "{{\"device_id\":\"{dev}\",\"ts\":{},\"metric\":\"temp\",\"value\":{}}}\n",
                    T0 + s * 1000,
                    20 + s % 3
                ));
            }
        }
    }
    std::fs::write(path, text).expect("input written");
}

async fn provision(dir: &Path) {
    let reg = Registry::open_in(dir).await.expect("registry");
    reg.create_tenant("acme", "Acme").await.expect("tenant");
    for id in ["d-1", "d-2", "d-3"] {
        reg.register_device(
            NewDevice::new("acme", id, "thermo")
                .with_id(id)
                .with_firmware_version("1.0"),
        )
        .await
        .expect("device");
    }
    reg.set_status("d-3", DeviceStatus::Suspended)
        .await
        .expect("status");
    reg.close().await;
}

fn job(tmp: &Path, workers: usize) -> JobConfig {
    let input = tmp.join("in.ndjson");
    write_input(&input);
    let mut devices = DevicesConfig {
        data_dir: Some(tmp.join("registry")),
        ..DevicesConfig::default()
    };
    devices.presence.offline_after_ms = 10_000;
    JobConfig {
        input: InputSpec::Files {
            paths: vec![input.display().to_string()],
            format: None,
        },
        output: OutputSpec {
            dir: tmp.join(format!("out-{workers}")),
            ..OutputSpec::default()
        },
        cluster: ClusterConfig::local(workers),
        devices: Some(devices),
        ..JobConfig::default()
    }
}

#[test]
fn readings_are_enriched_unknown_devices_rejected_and_presence_tracked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(provision(&tmp.path().join("registry")));

    for workers in [1, 2] {
        let cfg = job(tmp.path(), workers);
        let report = run(&cfg, None).expect("the job runs");
        let t = &report.tally;
        assert_eq!(t.lines, 140);
        assert_eq!(t.valid, 140);
        assert_eq!(t.rejected.get("unknown_device"), Some(&60), "{t:?}");
        assert_eq!(t.rejected_downstream, 60);
        t.check_conservation(true)
            .expect("every reading accounted for");
        assert_eq!(t.windowed, 80, "only registered devices reach the windows");

        let out = &cfg.output.dir;
        let rejects = lines(&out.join("rejects"));
        assert_eq!(rejects.len(), 60);
        assert!(rejects.iter().all(|r| r["reason"] == "unknown_device"
            && r["raw"].as_str().is_some_and(|raw| raw.contains("x-9"))));

        // d-2 goes offline 10 s after its last reading at 19 s, while d-1
        // still sends; both go offline at the end of input.
        let mut events: Vec<(String, u64, String)> = lines(&out.join("presence"))
            .iter()
            .map(|e| {
                (
                    e["device_id"].as_str().expect("id").to_owned(),
                    e["at"].as_u64().expect("at") - T0,
                    e["event"].as_str().expect("event").to_owned(),
                )
            })
            .collect();
        events.sort();
        assert_eq!(
            events,
            [
                ("d-1".into(), 0, "online".into()),
                ("d-1".into(), 69_000, "offline".into()),
                ("d-2".into(), 0, "online".into()),
                ("d-2".into(), 29_000, "offline".into()),
            ]
        );

        // The latest count of each row of the fleet views.
        let mut latest: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for row in lines(&out.join("fleet")) {
            let key = (
                row["view"].as_str().expect("view").to_owned(),
                row["key"].as_str().expect("key").to_owned(),
            );
            let at = row["at"].as_u64().expect("at");
            let count = row["count"].as_u64().expect("count");
            let e = latest.entry(key).or_insert((at, count));
            if at >= e.0 {
                *e = (at, count);
            }
        }
        let count = |view: &str, key: &str| latest.get(&(view.into(), key.into())).map(|v| v.1);
        assert_eq!(count("tenant", "acme"), Some(3));
        assert_eq!(count("status", "active"), Some(2));
        assert_eq!(count("status", "suspended"), Some(1));
        assert_eq!(count("firmware", "1.0"), Some(3));
        assert_eq!(count("presence", "offline"), Some(2));
        assert_eq!(count("presence", "online"), Some(0));
        assert_eq!(count("presence", "unknown"), Some(1), "d-3 never sent");
    }
}
