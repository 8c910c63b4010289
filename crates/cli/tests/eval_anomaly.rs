//! `iotflow eval-anomaly` end to end: reports, the scores file, bad input.

use std::path::Path;
use std::process::{Command, Output};

use iotflow_sim::labelled::{LabelledConfig, LabelledSeries};

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotflow"))
        .arg("eval-anomaly")
        .args(args)
        .output()
        .expect("spawn iotflow")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "iotflow failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn labelled_csv(dir: &Path, seed: u64) -> (std::path::PathBuf, LabelledSeries) {
    let s = LabelledSeries::generate(&LabelledConfig {
        seed,
        ..LabelledConfig::default()
    })
    .expect("series");
    let path = dir.join(format!("series-{seed}.csv"));
    let mut buf = Vec::new();
    s.write_csv(&mut buf).expect("csv");
    std::fs::write(&path, buf).expect("write");
    (path, s)
}

fn read_scores(path: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(path).expect("scores file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().expect("score"),
            )
        })
        .collect()
}

#[test]
fn auto_on_a_generated_series_reports_metrics_and_writes_causal_scores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (csv, series) = labelled_csv(dir.path(), 3);
    let scores = dir.path().join("scores.csv");
    let out = ok(&eval(&[
        "--input",
        csv.to_str().expect("utf8"),
        "--json",
        "--scores-out",
        scores.to_str().expect("utf8"),
    ]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json report");
    let m = &report["metrics"];
    assert_eq!(report["detector"], "auto");
    assert_eq!(m["windows"], 10);
    assert!(m["recall"].as_f64().expect("recall") >= 0.9, "{m}");
    assert!(m["precision"].as_f64().expect("precision") >= 0.5, "{m}");
    assert_eq!(m["per_window"].as_array().expect("windows").len(), 10);

    let rows = read_scores(&scores);
    assert_eq!(rows.len(), series.values.len());
    for (i, (t, v, s)) in rows.iter().enumerate() {
        assert_eq!(t, &series.ts[i].to_string());
        assert_eq!(v.parse::<f64>().expect("value"), series.values[i]);
        assert!((0.0..=1.0).contains(s), "row {i}: {s}");
    }
    // Causal: the first 2000 rows alone score the same, bit for bit.
    let text = std::fs::read_to_string(&csv).expect("csv");
    let prefix: Vec<&str> = text.lines().take(2001).collect();
    let short = dir.path().join("prefix.csv");
    std::fs::write(&short, prefix.join("\n")).expect("write");
    let short_scores = dir.path().join("prefix-scores.csv");
    ok(&eval(&[
        "-i",
        short.to_str().expect("utf8"),
        "--scores-out",
        short_scores.to_str().expect("utf8"),
    ]));
    assert_eq!(read_scores(&short_scores), rows[..2000].to_vec());
}

#[test]
fn text_report_no_labels_other_timestamps_and_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ISO-8601 and "YYYY-MM-DD HH:MM:SS" timestamps, no label column.
    let mut text = String::from("time,value\n");
    for i in 0..200 {
        let v = if i == 150 {
            50.0
        } else {
            10.0 + f64::from(i % 7) * 0.1
        };
        if i % 2 == 0 {
            text.push_str(&format!("2024-05-01T00:{:02}:{:02}Z,{v}\n", i / 60, i % 60));
        } else {
            text.push_str(&format!("2024-05-01 00:{:02}:{:02},{v}\n", i / 60, i % 60));
        }
    }
    let csv = dir.path().join("nolabel.csv");
    std::fs::write(&csv, text).expect("write");
    let out = ok(&eval(&[
        "-i",
        csv.to_str().expect("utf8"),
        "-d",
        "mad",
        "--set",
        "window=32",
    ]));
    assert!(out.contains("detector mad: 200 rows, 1 flagged"), "{out}");
    assert!(out.contains("no label column"), "{out}");
    // A labelled file in text form.
    let (csv, _) = labelled_csv(dir.path(), 1);
    let out = ok(&eval(&[
        "-i",
        csv.to_str().expect("utf8"),
        "-d",
        "flatline",
    ]));
    assert!(out.contains("windows 10"), "{out}");
    assert!(out.contains("precision 1.000"), "{out}");
}

#[test]
fn list_and_errors() {
    let out = ok(&eval(&["--list"]));
    for name in [
        "auto",
        "zscore",
        "mad",
        "cusum",
        "holt_winters",
        "flatline",
        "rate",
        "rcf",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing from {out}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,value,label\n1700000000,1.0,0\n1700000001,oops,0\n",
    )
    .expect("write");
    let cases: [(&[&str], &str); 4] = [
        (
            &["-i", bad.to_str().expect("utf8")],
            "line 3: value \"oops\" is not a number",
        ),
        (
            &["-i", bad.to_str().expect("utf8"), "-d", "nope"],
            "unknown detector",
        ),
        (
            &[
                "-i",
                bad.to_str().expect("utf8"),
                "-d",
                "mad",
                "--set",
                "windoww=3",
            ],
            "windoww",
        ),
        (&["-i", "/nonexistent/x.csv"], "/nonexistent/x.csv"),
    ];
    for (args, want) in cases {
        let out = eval(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
