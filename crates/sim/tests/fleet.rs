//! Properties of generated fleet-v1 files: exact counts, formats, ranges,
//! time order, malformed kinds, determinism and the on-disk layout.

use std::collections::HashMap;

use iotflow_sim::{
    Error, FleetConfig, FleetGenerator, FleetMeta, LineKind, MalformedKind, anomalies_path,
    meta_path, write_file,
};
use serde::Deserialize;

const START: u64 = 1_700_000_000_000;

/// A valid line: exactly these five fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    device_id: String,
    ts: u64,
    metric: String,
    value: f64,
    unit: String,
}

fn cfg(lines: u64, seed: u64) -> FleetConfig {
    FleetConfig {
        lines,
        seed,
        ..FleetConfig::default()
    }
}

/// All lines (each without its `\n`) and their kinds.
fn generate(cfg: &FleetConfig) -> (Vec<u8>, Vec<Vec<u8>>, Vec<LineKind>) {
    let mut fleet = FleetGenerator::new(cfg);
    let mut all = Vec::new();
    let mut kinds = Vec::new();
    while let Some(kind) = fleet.next_line(&mut all) {
        kinds.push(kind);
    }
    assert!(fleet.next_line(&mut all).is_none(), "stays done");
    let lines: Vec<Vec<u8>> = all
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            assert_eq!(l.last(), Some(&b'\n'));
            l[..l.len() - 1].to_vec()
        })
        .collect();
    assert_eq!(lines.len(), kinds.len());
    (all, lines, kinds)
}

/// Physical range and decimals of a metric.
fn spec(metric: &str) -> Option<(f64, f64, usize, &'static str)> {
    match metric {
        "temp" => Some((-50.0, 150.0, 2, "C")),
        "humidity" => Some((0.0, 100.0, 2, "%")),
        "pressure" => Some((800.0, 1200.0, 2, "hPa")),
        "vibration" => Some((0.0, 50.0, 4, "g")),
        _ => None,
    }
}

const METRICS: [&str; 4] = ["temp", "humidity", "pressure", "vibration"];

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, _, _) = generate(&cfg(30_000, 42));
    let (b, _, _) = generate(&cfg(30_000, 42));
    let (c, _, _) = generate(&cfg(30_000, 43));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), b.len());
}

#[test]
fn fill_writes_the_same_bytes_as_next_line() {
    let config = cfg(25_000, 9);
    let (expected, _, _) = generate(&config);
    let mut fleet = FleetGenerator::new(&config);
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut lines = 0;
    loop {
        chunk.clear();
        let n = fleet.fill(&mut chunk, 4096);
        if n == 0 {
            break;
        }
        assert!(chunk.len() >= 4096 || fleet.meta().lines == 25_000);
        assert!(chunk.ends_with(b"\n"));
        assert_eq!(chunk.iter().filter(|&&b| b == b'\n').count(), n);
        lines += n;
        out.extend_from_slice(&chunk);
    }
    assert_eq!(lines, 25_000);
    assert_eq!(out, expected);
    // A buffer already full gets nothing.
    let mut fleet = FleetGenerator::new(&config);
    let mut full = vec![b'x'; 10];
    assert_eq!(fleet.fill(&mut full, 10), 0);
    assert_eq!(full.len(), 10);
}

/// Pins the byte stream: fleet-v1 figures are only comparable while this
/// holds. Change it only together with a note that fleet-v1 changed.
#[test]
fn golden_stream() {
    let (all, lines, _) = generate(&cfg(50_000, 42));
    assert_eq!(
        String::from_utf8_lossy(&lines[0]),
        GOLDEN_FIRST_LINE,
        "first line changed"
    );
    assert_eq!(fnv1a(&all), GOLDEN_FNV, "byte stream changed");
}
const GOLDEN_FIRST_LINE: &str =
    r#"{"device_id":"d-00000","ts":1700000001640,"metric":"temp","value":25.37,"unit":"C"}"#;
const GOLDEN_FNV: u64 = 0x8a29_41fa_2423_2fc3;

#[test]
fn exact_special_counts() {
    // (lines, malformed, spikes) as Python's round(n*0.001), round(n*0.0005).
    let cases = [
        (0, 0, 0),
        (1, 0, 0),
        (7, 0, 0),
        (1000, 1, 0),
        (1500, 2, 1),
        (3000, 3, 2),
        (12_345, 12, 6),
        (200_000, 200, 100),
    ];
    for (n, bad, spikes) in cases {
        let (_, lines, kinds) = generate(&cfg(n, 1));
        assert_eq!(lines.len() as u64, n);
        let mut fleet = FleetGenerator::new(&cfg(n, 1));
        let anomalies = fleet.anomaly_lines();
        while fleet.next_line(&mut Vec::new()).is_some() {}
        let meta = fleet.meta();
        assert_eq!(
            (meta.lines, meta.malformed, meta.spikes, meta.valid),
            (n, bad, spikes, n - bad),
            "n = {n}"
        );
        let got_bad = kinds.iter().filter(|k| !k.is_valid()).count() as u64;
        assert_eq!(got_bad, bad, "n = {n}");
        let spike_lines: Vec<u64> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == LineKind::Spike)
            .map(|(i, _)| i as u64 + 1)
            .collect();
        assert_eq!(spike_lines, anomalies, "n = {n}");
        assert_eq!(spike_lines.len() as u64, spikes);
        for kind in MalformedKind::ALL {
            // Kinds cycle in pick order.
            let expected = bad / 8 + u64::from((kind as u64) < bad % 8);
            let got = kinds
                .iter()
                .filter(|k| **k == LineKind::Malformed(kind))
                .count();
            assert_eq!(got as u64, expected, "n = {n}, {kind}");
            assert_eq!(meta.malformed_of(kind), expected);
        }
        assert_eq!(meta.malformed_by_kind.len(), 8);
    }
}

#[test]
fn meta_counts_so_far() {
    let mut fleet = FleetGenerator::new(&cfg(10_000, 3));
    assert_eq!(fleet.meta().lines, 0);
    let mut buf = Vec::new();
    for _ in 0..1234 {
        fleet.next_line(&mut buf);
    }
    let meta = fleet.meta();
    assert_eq!(meta.lines, 1234);
    assert_eq!(meta.valid + meta.malformed, 1234);
    assert_eq!(meta.seed, 3);
}

#[test]
fn valid_lines_have_the_five_fields_in_range() {
    for devices in [10_000, 7] {
        let config = FleetConfig {
            devices,
            ..cfg(60_000, 5)
        };
        let (_, lines, kinds) = generate(&config);
        for (i, (raw, kind)) in lines.iter().zip(&kinds).enumerate() {
            if !kind.is_valid() {
                continue;
            }
            let text = std::str::from_utf8(raw).expect("utf-8");
            let line: Line = serde_json::from_str(text).expect(text);
            let i = i as u64;
            let d = i % u64::from(devices);
            let sec = i / u64::from(devices);
            assert_eq!(line.device_id, format!("d-{d:05}"));
            assert_eq!(line.metric, METRICS[((sec + d) % 4) as usize], "{text}");
            let (lo, hi, decimals, unit) = spec(&line.metric).expect("known metric");
            assert_eq!(line.unit, unit);
            assert!(
                line.value.is_finite() && (lo..=hi).contains(&line.value),
                "{text}"
            );
            let frac = text
                .split("\"value\":")
                .nth(1)
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.split('.').nth(1))
                .expect("decimal point");
            assert_eq!(frac.len(), decimals, "{text}");
            let nominal = START + 2000 + sec * 1000 + d * 1000 / u64::from(devices);
            assert!(line.ts >= START, "{text}");
            assert!(line.ts <= nominal && line.ts > nominal - 2000, "{text}");
        }
    }
}

#[test]
fn device_ids_grow_past_five_digits() {
    let config = FleetConfig {
        devices: 100_001,
        ..cfg(100_001, 1)
    };
    let (_, lines, _) = generate(&config);
    let last = String::from_utf8_lossy(&lines[100_000]);
    assert!(last.starts_with(r#"{"device_id":"d-100000","#), "{last}");
    assert!(String::from_utf8_lossy(&lines[3]).starts_with(r#"{"device_id":"d-00003","#));
}

#[test]
fn disorder_is_bounded_by_two_seconds() {
    for devices in [10_000, 3] {
        let config = FleetConfig {
            devices,
            ..cfg(100_000, 11)
        };
        let (_, lines, kinds) = generate(&config);
        let mut max_ts = 0u64;
        let mut min_ts = u64::MAX;
        for (raw, kind) in lines.iter().zip(&kinds) {
            if !kind.is_valid() {
                continue;
            }
            let line: Line = serde_json::from_slice(raw).expect("valid line");
            assert!(
                line.ts > max_ts.saturating_sub(2000),
                "ts {} after max {max_ts}",
                line.ts
            );
            max_ts = max_ts.max(line.ts);
            min_ts = min_ts.min(line.ts);
        }
        assert!(min_ts >= START);
        let seconds = 100_000 / u64::from(devices);
        assert!(max_ts < START + 2000 + seconds * 1000);
    }
}

#[test]
fn each_key_reports_every_four_seconds() {
    let devices = 50u32;
    let config = FleetConfig {
        devices,
        ..cfg(40_000, 2)
    };
    let (_, lines, kinds) = generate(&config);
    // key -> (line index, ts) of its previous valid reading
    let mut last: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let mut per_key = HashMap::<(String, String), u32>::new();
    let period = 4 * u64::from(devices);
    for (i, (raw, kind)) in lines.iter().zip(&kinds).enumerate() {
        if !kind.is_valid() {
            continue;
        }
        let line: Line = serde_json::from_slice(raw).expect("valid line");
        let key = (line.device_id, line.metric);
        *per_key.entry(key.clone()).or_default() += 1;
        let i = i as u64;
        if let Some((prev_i, prev_ts)) = last.insert(key, (i, line.ts)) {
            assert_eq!((i - prev_i) % period, 0, "line {i}");
            let k = (i - prev_i) / period;
            let expected = k as i64 * 4000;
            let dt = line.ts as i64 - prev_ts as i64;
            assert!(
                (dt - expected).abs() < 2000,
                "line {i}: dt {dt}, expected ~{expected}"
            );
        }
    }
    // 40,000 lines / 50 devices = 800 s: 200 readings per key.
    assert_eq!(per_key.len(), 200);
    assert!(per_key.values().all(|&n| (198..=200).contains(&n)));
}

#[test]
fn spikes_are_eight_sigma_outliers_and_noise_stays_within_three() {
    let devices = 10u32;
    let config = FleetConfig {
        devices,
        ..cfg(40_000, 8)
    };
    let (_, lines, kinds) = generate(&config);
    let sigma = |m: &str| match m {
        "temp" => 0.3,
        "humidity" => 1.5,
        "pressure" => 0.8,
        _ => 0.05,
    };
    let parsed: Vec<Option<Line>> = lines
        .iter()
        .zip(&kinds)
        .map(|(raw, k)| {
            k.is_valid()
                .then(|| serde_json::from_slice(raw).expect("valid"))
        })
        .collect();
    let mut sums: HashMap<(&str, &str), (f64, f64)> = HashMap::new();
    for (line, kind) in parsed.iter().zip(&kinds) {
        if let (Some(l), LineKind::Valid) = (line, kind) {
            let e = sums.entry((&l.device_id, &l.metric)).or_default();
            e.0 += l.value;
            e.1 += 1.0;
        }
    }
    let mut spikes = 0;
    for (line, kind) in parsed.iter().zip(&kinds) {
        let Some(l) = line else { continue };
        let (sum, n) = sums[&(l.device_id.as_str(), l.metric.as_str())];
        let z = (l.value - sum / n) / sigma(&l.metric);
        if *kind == LineKind::Spike {
            spikes += 1;
            assert!(z.abs() > 7.5 && z.abs() < 8.5, "spike z = {z}");
        } else {
            assert!(z.abs() < 3.5, "noise z = {z}");
        }
    }
    assert_eq!(spikes, 20);
}

#[test]
fn malformed_lines_are_malformed_as_intended() {
    let (_, lines, kinds) = generate(&cfg(400_000, 21));
    let mut seen = HashMap::new();
    for (raw, kind) in lines.iter().zip(&kinds) {
        let LineKind::Malformed(kind) = *kind else {
            continue;
        };
        *seen.entry(kind).or_insert(0) += 1;
        let text = std::str::from_utf8(raw).expect("utf-8");
        let parsed = serde_json::from_str::<serde_json::Value>(text);
        let object = parsed.as_ref().ok().and_then(|v| v.as_object());
        assert!(
            serde_json::from_str::<Line>(text).is_err()
                || kind == MalformedKind::OutOfRange
                || kind == MalformedKind::UnknownMetric,
            "{kind}: {text}"
        );
        match kind {
            MalformedKind::Truncated => {
                assert!(parsed.is_err(), "{text}");
                assert!(text.starts_with('{') && !text.ends_with('}'), "{text}");
            }
            MalformedKind::MissingField => {
                let o = object.expect(text);
                assert_eq!(o.len(), 4, "{text}");
                let missing = ["device_id", "ts", "metric", "value"]
                    .iter()
                    .filter(|f| !o.contains_key(**f))
                    .count();
                assert_eq!(missing, 1, "{text}");
                assert!(o.contains_key("unit"));
            }
            MalformedKind::NanLiteral => {
                assert!(parsed.is_err());
                assert!(text.contains(r#""value":NaN,"#), "{text}");
            }
            MalformedKind::NanString => {
                assert_eq!(object.expect(text)["value"], "NaN");
            }
            MalformedKind::StringValue => {
                assert_eq!(object.expect(text)["value"], "n/a");
            }
            MalformedKind::OutOfRange => {
                let o = object.expect(text);
                let metric = o["metric"].as_str().expect("metric");
                let (lo, hi, _, _) = spec(metric).expect("known metric");
                let v = o["value"].as_f64().expect("number");
                assert!(!(lo..=hi).contains(&v), "{text}");
            }
            MalformedKind::OverflowInf => {
                assert!(text.contains(r#""value":1e999,"#), "{text}");
                assert_eq!("1e999".parse::<f64>(), Ok(f64::INFINITY));
                // serde_json refuses it outright; other parsers give +inf.
                assert!(parsed.is_err());
            }
            MalformedKind::UnknownMetric => {
                let o = object.expect(text);
                assert_eq!(o["metric"], "rpm");
                assert!(o["value"].is_f64());
            }
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.values().all(|&n| n == 50));
}

#[test]
fn write_file_writes_data_meta_and_anomalies() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fleet.ndjson");
    let config = cfg(123_456, 42);
    let mut calls = Vec::new();
    let meta = write_file(&config, &path, |n| calls.push(n))?;

    let (expected, _, _) = generate(&config);
    assert_eq!(std::fs::read(&path)?, expected);
    assert!(calls.len() > 1 && calls.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(calls.last(), Some(&123_456));

    assert_eq!(meta_path(&path), dir.path().join("fleet.ndjson.meta.json"));
    let text = std::fs::read_to_string(meta_path(&path))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(json["lines"], 123_456);
    assert_eq!(json["seed"], 42);
    assert_eq!(json["malformed"], 123);
    assert_eq!(json["spikes"], 62);
    assert_eq!(json["valid"], 123_456 - 123);
    assert_eq!(json["malformed_by_kind"]["truncated"], 16);
    assert_eq!(json["malformed_by_kind"]["unknown_metric"], 15);
    assert!(text.starts_with("{\n \"lines\": 123456,\n"), "{text}");
    let back: FleetMeta = serde_json::from_str(&text)?;
    assert_eq!(back, meta);

    let anomalies: Vec<u64> = std::fs::read_to_string(anomalies_path(&path))?
        .lines()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    assert_eq!(anomalies, FleetGenerator::new(&config).anomaly_lines());
    assert_eq!(anomalies.len(), 62);
    Ok(())
}

#[test]
fn write_file_reports_bad_paths_and_configs() {
    let missing = std::path::Path::new("/nonexistent-dir/for/iotflow/fleet.ndjson");
    match write_file(&cfg(10, 1), missing, |_| {}) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let zero = FleetConfig {
        devices: 0,
        ..cfg(10, 1)
    };
    assert!(matches!(
        write_file(&zero, missing, |_| {}),
        Err(Error::Config(_))
    ));
}

#[test]
fn config_defaults_and_validation() -> Result<(), Box<dyn std::error::Error>> {
    let d = FleetConfig::default();
    assert_eq!(
        (d.lines, d.seed, d.devices, d.start_ms),
        (1_000_000, 42, 10_000, START)
    );
    let json = serde_json::to_string(&d)?;
    assert_eq!(serde_json::from_str::<FleetConfig>(&json)?, d);
    assert!(serde_json::from_str::<FleetConfig>(r#"{"line": 5}"#).is_err());
    d.validate()?;
    let overflow = FleetConfig {
        start_ms: u64::MAX - 10,
        ..d
    };
    assert!(overflow.validate().is_err());
    assert!(FleetConfig { devices: 0, ..d }.validate().is_err());
    Ok(())
}

#[test]
#[should_panic(expected = "devices must be at least 1")]
fn new_panics_on_zero_devices() {
    let _ = FleetGenerator::new(&FleetConfig {
        devices: 0,
        ..cfg(1, 1)
    });
}

#[test]
fn start_ms_shifts_time() {
    let config = FleetConfig {
        start_ms: 0,
        ..cfg(20_000, 4)
    };
    let (_, lines, kinds) = generate(&config);
    let max = lines
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| k.is_valid())
        .map(|(raw, _)| serde_json::from_slice::<Line>(raw).expect("valid").ts)
        .max();
    // 2 s of lines: nominal times up to 2000 + 1000 + 999.
    assert!(max.is_some_and(|ts| ts <= 3999));
}

/// Generation speed, one core: `cargo test --release -p iotflow-sim --test
/// fleet -- --ignored --nocapture throughput`.
#[test]
#[ignore = "timing; run in release"]
fn throughput() {
    let config = cfg(5_000_000, 42);
    let start = std::time::Instant::now();
    let mut fleet = FleetGenerator::new(&config);
    let setup = start.elapsed();
    let mut chunk = Vec::with_capacity(1 << 20);
    let (mut lines, mut bytes) = (0, 0);
    loop {
        chunk.clear();
        let n = fleet.fill(&mut chunk, 1 << 20);
        if n == 0 {
            break;
        }
        lines += n;
        bytes += chunk.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{lines} lines, {bytes} bytes in {secs:.3} s (setup {setup:?}): {:.2} M lines/s, {:.0} MB/s",
        lines as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
}
