//! Golden cases: small hand-written registries and readings with the
//! expected output written by hand (see tests/golden/README.md).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Action, Output, run};
use iotflow_enrich::{EnrichConfig, UnknownDevice};
use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading, Timestamp};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    doc: String,
    #[serde(default)]
    unknown_device: UnknownDevice,
    input: String,
    expected: String,
    tally: Option<Counts>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    enriched: u64,
    rejected: u64,
    passed_through: u64,
    inactive: u64,
    late: u64,
    updates: u64,
    late_updates: u64,
}

fn num(tok: Option<&str>, line: &str) -> u64 {
    tok.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad line: {line}"))
}

/// `type/status/firmware` → a description.
fn description(device: &str, s: &str) -> Option<Arc<DeviceInfo>> {
    if s == "-" {
        return None;
    }
    let mut parts = s.split('/');
    let kind = parts.next().unwrap_or_default();
    let mut info = DeviceInfo::new(device, "golden", kind);
    info.status = parts
        .next()
        .and_then(|st| st.parse().ok())
        .unwrap_or_else(|| panic!("bad status in {s}"));
    info.firmware = parts.next().map(Into::into);
    Some(Arc::new(info))
}

fn parse(input: &str) -> Vec<Action> {
    let mut script = Vec::new();
    for line in input.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut t = line.split_whitespace();
        match t.next() {
            Some("u") => {
                let stamp = num(t.next(), line);
                let at = num(t.next(), line);
                let seq = num(t.next(), line);
                let device = t.next().unwrap_or_else(|| panic!("bad line: {line}"));
                let info = description(device, t.next().unwrap_or("-"));
                let u = DeviceUpdate {
                    at,
                    seq,
                    device: DeviceId::new(device),
                    info,
                };
                script.push(Action::Update(stamp, u));
            }
            Some("a") => script.push(Action::AdvanceUpdates(num(t.next(), line))),
            Some("r") => {
                let stamp = num(t.next(), line);
                let device = t.next().unwrap_or_else(|| panic!("bad line: {line}"));
                let ts = num(t.next(), line);
                let value = num(t.next(), line) as f64;
                script.push(Action::Reading(
                    stamp,
                    Reading::new(device, ts, "temp", value),
                ));
            }
            _ => panic!("bad line: {line}"),
        }
        script.push(Action::Step);
    }
    script
}

fn render(o: &Output) -> Vec<String> {
    let head = |t: Timestamp, r: &Reading| format!("{t} {} {} {}", r.device, r.ts, r.value);
    let mut out: Vec<String> = o
        .enriched
        .iter()
        .map(|(t, e)| {
            let what = e.info.as_ref().map_or("unknown".to_owned(), |i| {
                format!(
                    "{}/{}/{}",
                    i.device_type,
                    i.status,
                    i.firmware.as_deref().unwrap_or("-")
                )
            });
            format!("{} -> {what}", head(*t, &e.reading))
        })
        .chain(o.rejects.iter().map(|(t, rej)| {
            let r: Reading = serde_json::from_slice(&rej.raw).expect("raw reading");
            assert_eq!(rej.reason.code(), "unknown_device");
            format!("{} -> rejected", head(*t, &r))
        }))
        .collect();
    out.sort();
    out
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "golden files missing: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let case: Case =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!case.doc.trim().is_empty());
        let script = parse(&case.input);
        let config = EnrichConfig::default().with_unknown_device(case.unknown_device);
        let mut want: Vec<String> = case
            .expected
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        want.sort();
        for workers in [1, 2] {
            let out = run(&script, workers, &config, 0, None, None);
            let name = format!("{} on {workers} workers", path.display());
            assert_eq!(render(&out), want, "{name}");
            if let Some(counts) = &case.tally {
                let t = &out.tally;
                let got = Counts {
                    enriched: t.enriched,
                    rejected: t.rejected,
                    passed_through: t.passed_through,
                    inactive: t.inactive,
                    late: t.late,
                    updates: t.updates,
                    late_updates: t.late_updates,
                };
                assert_eq!(&got, counts, "{name}");
            }
        }
    }
}
