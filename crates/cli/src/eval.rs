//! `iotflow eval-anomaly`: replay a labelled CSV series through a detector
//! and report event-level precision, recall, F1 and time to detect.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use iotflow_anomaly::eval::{Metrics, evaluate, read_series};
use iotflow_anomaly::{DETECTORS, DetectorConfig, replay};

/// Replay a CSV series (timestamp, value[, label]) through a detector.
///
/// Rows are scored in file order, each against the rows before it only
/// (causal). Timestamps may be epoch seconds or ms, ISO-8601, or
/// `YYYY-MM-DD HH:MM:SS` (UTC); a header line is optional, and so is the
/// label column (0/1).
///
/// With labels, the report counts anomaly windows (maximal runs of rows
/// labelled 1). A window is detected when a row inside it, or within
/// --tolerance rows after it, is flagged; time to detect = timestamp of
/// that first flagged row − the window's first timestamp. A flagged event
/// (a maximal run of flagged rows) touching no window (with tolerance) is
/// a false alarm. recall = detected / windows; precision = detected /
/// (detected + false alarms); F1 = 2PR / (P + R). Row-level precision and
/// recall are reported beside them.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub(crate) struct EvalArgs {
    /// The CSV file.
    #[arg(long, short = 'i', required_unless_present = "list")]
    input: Option<PathBuf>,
    /// Detector name (see --list). `auto`: max of robust MAD z-score, CUSUM
    /// and flatline, flagged when any flags — the default for a series of
    /// unknown behaviour.
    #[arg(long, short = 'd', default_value = "auto")]
    detector: String,
    /// Detector parameter as TOML, e.g. `window=128` or
    /// `threshold={mode="adaptive"}`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Rows after a window in which a flag still counts as detecting it.
    #[arg(long, default_value_t = 5)]
    tolerance: usize,
    /// Also write `timestamp,value,anomaly_score` (score in [0, 1]) per
    /// input row to FILE.
    #[arg(long, value_name = "FILE")]
    scores_out: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// List the detectors and exit.
    #[arg(long)]
    list: bool,
}

/// The detector config from its name and `--set` overrides.
fn detector_config(name: &str, set: &[String]) -> Result<DetectorConfig> {
    // Fails early with the list of known names.
    let base = DetectorConfig::named(name)?;
    if set.is_empty() {
        return Ok(base);
    }
    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(name.to_owned()));
    for kv in set {
        let parsed: toml::Table = toml::from_str(kv)
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE with a TOML value"))?;
        table.extend(parsed);
    }
    let cfg: DetectorConfig = table
        .try_into()
        .with_context(|| format!("detector {name} with {}", set.join(" ")))?;
    Ok(cfg)
}

pub(crate) fn eval_anomaly(a: EvalArgs) -> Result<bool> {
    if a.list {
        for (name, what) in DETECTORS {
            println!("{name:<13} {what}");
        }
        return Ok(false);
    }
    let Some(input) = &a.input else {
        bail!("--input FILE is required");
    };
    let detector = detector_config(&a.detector, &a.set)?.build()?;
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let series = read_series(&text).with_context(|| format!("{}", input.display()))?;
    let ts: Vec<u64> = series.ts.iter().map(|t| (*t).max(0) as u64).collect();
    let scores = replay(
        &detector,
        ts.iter().copied().zip(series.values.iter().copied()),
    );
    if let Some(path) = &a.scores_out {
        write_scores(path, &series.raw, &scores)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let flags: Vec<bool> = scores.iter().map(|s| s.flag).collect();
    let metrics = series
        .labels
        .as_ref()
        .map(|labels| evaluate(&series.ts, labels, &flags, a.tolerance));
    if a.json {
        let report = serde_json::json!({
            "detector": a.detector,
            "rows": scores.len(),
            "flagged_rows": flags.iter().filter(|f| **f).count(),
            "tolerance": a.tolerance,
            "metrics": metrics,
        });
        println!("{report}");
    } else {
        print_text(&a.detector, &flags, metrics.as_ref(), a.tolerance);
    }
    Ok(false)
}

fn write_scores(
    path: &PathBuf,
    raw: &[(String, String)],
    scores: &[iotflow_anomaly::Verdict],
) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "timestamp,value,anomaly_score")?;
    for ((t, v), s) in raw.iter().zip(scores) {
        // `{}` prints the shortest decimal that reads back to the same f64.
        writeln!(w, "{t},{v},{}", s.score)?;
    }
    w.flush()
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn print_text(detector: &str, flags: &[bool], m: Option<&Metrics>, tolerance: usize) {
    let flagged = flags.iter().filter(|f| **f).count();
    println!(
        "detector {detector}: {} rows, {flagged} flagged",
        flags.len()
    );
    let Some(m) = m else {
        println!("no label column: nothing to evaluate");
        return;
    };
    println!(
        "windows {}  detected {}  false alarms {}  (tolerance {tolerance} rows)",
        m.windows, m.detected, m.false_alarms
    );
    println!(
        "precision {}  recall {}  F1 {:.3}  row precision {}  row recall {}",
        fmt_opt(m.precision),
        fmt_opt(m.recall),
        m.f1,
        fmt_opt(m.row_precision),
        fmt_opt(m.row_recall)
    );
    if let Some(t) = m.mean_time_to_detect_ms {
        println!("mean time to detect {:.3} s", t / 1000.0);
    }
    for w in &m.per_window {
        let ttd = w.time_to_detect_ms.map_or_else(
            || "missed".to_owned(),
            |t| format!("{:.3} s", t as f64 / 1000.0),
        );
        println!(
            "  window rows {}..={} from ts {}: {ttd}",
            w.start_row, w.end_row, w.start_ts
        );
    }
}
