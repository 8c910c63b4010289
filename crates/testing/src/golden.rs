//! Golden cases: whole-pipeline runs checked against expected files.
//!
//! A case is a directory `tests/golden/<case>/` with
//!
//! * the input, `input.ndjson` or `input.csv`;
//! * optionally `job.toml`, a [`JobConfig`] whose input paths are relative to
//!   the case directory (without one, the default fleet-v1 job on the input
//!   file); its `[output]` is replaced by CSV files in a temporary directory;
//! * `expected/`: `windows.csv`, `alerts.csv`, `late.csv` and `rejects.csv`
//!   (rows sorted, per-worker part files merged, the source column reduced to
//!   the file name) and `tally.json` (the run's [`Tally`]).
//!
//! [`GoldenCase::check`] runs the case and compares; with the environment
//! variable `IOTFLOW_BLESS=1` it rewrites `expected/` instead, so a change in
//! behaviour shows up as a reviewable diff of those files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iotflow_core::tally::Tally;
use iotflow_file::sink::Format;
use iotflow_pipelines::config::{InputSpec, JobConfig, OutputSpec};

/// The normalized files a case compares, in order.
pub const FILES: [&str; 5] = [
    "windows.csv",
    "alerts.csv",
    "late.csv",
    "rejects.csv",
    "tally.json",
];

/// One golden case directory.
#[derive(Clone, Debug)]
pub struct GoldenCase {
    dir: PathBuf,
}

impl GoldenCase {
    /// The case in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        GoldenCase { dir: dir.into() }
    }

    /// The case's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The job of this case, writing CSV outputs under `out`.
    pub fn job(&self, out: &Path) -> Result<JobConfig, String> {
        let toml_path = self.dir.join("job.toml");
        let mut job = if toml_path.exists() {
            JobConfig::from_file(&toml_path).map_err(|e| e.to_string())?
        } else {
            let input = ["input.ndjson", "input.csv"]
                .into_iter()
                .find(|f| self.dir.join(f).exists())
                .ok_or_else(|| {
                    format!(
                        "{}: no job.toml and no input.ndjson/input.csv",
                        self.dir.display()
                    )
                })?;
            JobConfig {
                input: InputSpec::Files {
                    paths: vec![input.into()],
                    format: None,
                },
                ..JobConfig::default()
            }
        };
        if let InputSpec::Files { paths, .. } = &mut job.input {
            for p in paths.iter_mut() {
                if Path::new(p).is_relative() {
                    *p = self.dir.join(&*p).to_string_lossy().into_owned();
                }
            }
        }
        job.output = OutputSpec::all(out, Format::Csv);
        Ok(job)
    }

    /// Runs the case and returns its normalized outputs by file name.
    pub fn run(&self) -> Result<BTreeMap<&'static str, String>, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let job = self.job(tmp.path())?;
        let report = iotflow_pipelines::run::run(&job, None)
            .map_err(|e| format!("{}: run failed: {e}", self.name()))?;
        normalize(tmp.path(), &report.tally)
    }

    /// Runs the case and compares with `expected/`, or rewrites `expected/`
    /// when `IOTFLOW_BLESS=1`.
    pub fn check(&self) -> Result<(), String> {
        let got = self.run()?;
        let expected = self.dir.join("expected");
        if std::env::var("IOTFLOW_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(&expected).map_err(|e| e.to_string())?;
            for (name, text) in &got {
                std::fs::write(expected.join(name), text).map_err(|e| format!("{name}: {e}"))?;
            }
            return Ok(());
        }
        let mut problems = Vec::new();
        for (name, text) in &got {
            let path = expected.join(name);
            match std::fs::read_to_string(&path) {
                Ok(want) if want == *text => {}
                Ok(want) => problems.push(format!("{name}: {}", first_difference(&want, text))),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "golden case {} differs (rerun with IOTFLOW_BLESS=1 to accept):\n{}",
                self.name(),
                problems.join("\n")
            ))
        }
    }

    fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// The first line where `want` and `got` differ.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<_>, Vec<_>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            return format!(
                "line {}: expected {:?}, got {:?} ({} vs {} lines)",
                i + 1,
                a.copied().unwrap_or("<end>"),
                b.copied().unwrap_or("<end>"),
                w.len(),
                g.len()
            );
        }
    }
    "trailing newline differs".into()
}

/// Normalizes the CSV outputs under `out` and the tally into comparable
/// texts: one file per kind, rows sorted, the `source` column of rejects
/// reduced to a file name.
pub fn normalize(out: &Path, tally: &Tally) -> Result<BTreeMap<&'static str, String>, String> {
    let mut files = BTreeMap::new();
    for (kind, name) in [
        ("windows", "windows.csv"),
        ("alerts", "alerts.csv"),
        ("late", "late.csv"),
        ("rejects", "rejects.csv"),
    ] {
        let (header, mut rows) = read_parts(&out.join(kind))?;
        if kind == "rejects" {
            for row in &mut rows {
                if let Some(src) = row.first_mut() {
                    *src = Path::new(src.as_str())
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
                }
            }
        }
        rows.sort_by(|a, b| cmp_rows(a, b));
        files.insert(name, write_csv(&header, &rows)?);
    }
    let mut json = serde_json::to_string_pretty(tally).map_err(|e| e.to_string())?;
    json.push('\n');
    files.insert("tally.json", json);
    Ok(files)
}

/// Orders rows field by field, numerically where both fields are integers
/// (so offsets and window starts sort as numbers).
fn cmp_rows(a: &[String], b: &[String]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Reads every `part-*.csv` in `dir`: the common header and all rows.
pub fn read_parts(dir: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    parts.sort();
    let mut header = Vec::new();
    let mut rows = Vec::new();
    for p in parts {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let h: Vec<String> = r
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(str::to_owned)
            .collect();
        if header.is_empty() {
            header = h;
        } else if header != h {
            return Err(format!(
                "{}: header {h:?} differs from {header:?}",
                p.display()
            ));
        }
        for rec in r.records() {
            let rec = rec.map_err(|e| format!("{}: {e}", p.display()))?;
            rows.push(rec.iter().map(str::to_owned).collect());
        }
    }
    Ok((header, rows))
}

fn write_csv(header: &[String], rows: &[Vec<String>]) -> Result<String, String> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    w.write_record(header).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(r).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}
