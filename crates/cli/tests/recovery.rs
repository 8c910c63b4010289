//! Crash recovery end to end (issue 3): SIGKILL `iotflow run` at random
//! moments, rerun the same command, and the output must be exactly the
//! output of one uninterrupted run — no row lost, none written twice —
//! also when the worker count changes between runs and when the newest
//! checkpoint is corrupt.
//!
//! Every test compares against one reference run (no checkpoint flags) of a
//! shared 2 M-line fleet-v1 input (enough readings per series for z-score
//! alerts). The input and the reference live under `CARGO_TARGET_TMPDIR`,
//! keyed by the binary's build, and are made once under a file lock, so
//! nextest's one-process-per-test shares them too.
//!
//! Kill moments come from a seeded RNG: `IOTFLOW_RECOVERY_SEED=N` replays a
//! failing test's schedule (the seed is printed; timing still varies).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow::array::{Array, Float32Array, Float64Array};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Lines of the shared input: ≥ 30 readings per series (≈ 40 k series) so
/// that the z-score detector emits alerts.
const LINES: u64 = 2_000_000;
/// Generator seed of the shared input.
const INPUT_SEED: u64 = 7;
/// Worker threads of the reference run and of the checkpointed runs.
const WORKERS: usize = 2;
/// Checkpoint interval of the checkpointed runs.
const INTERVAL: &str = "200ms";
/// The kinds of output, each a directory of part files.
const KINDS: [&str; 4] = ["windows", "alerts", "rejects", "late"];
/// Summary counts that a recovered run must report exactly as the reference.
const COUNTS: [&str; 7] = [
    "lines",
    "valid",
    "rejected",
    "rejected_by_reason",
    "late",
    "windows",
    "alerts",
];
/// Rows must be equal to the bit; a failure message lists rows whose float
/// cells differ by at most this (relative) apart, as a hint that only
/// float summation order changed.
const FLOAT_TOLERANCE: f64 = 1e-12;
/// How long any single wait may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(180);

fn iotflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotflow"))
}

/// The RNG seed: `IOTFLOW_RECOVERY_SEED` or a fixed default per test.
fn seed(test: &str, default: u64) -> u64 {
    let seed = std::env::var("IOTFLOW_RECOVERY_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default);
    eprintln!("{test}: seed {seed} (IOTFLOW_RECOVERY_SEED={seed} to replay)");
    seed
}

/// A test's scratch directory: removed when the test passes, kept (and
/// its path printed) when it fails, with every run's stdout and stderr.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().expect("scratch dir"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!(
                "kept for inspection: {} (logs/run-*.stderr, out/, ck/)",
                self.0.path().display()
            );
        }
    }
}

/// `text` without ANSI colour sequences (the CLI's log lines have them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a run's log says about recovery, for the progress lines: the
/// messages about restoring, corrupt or incomplete checkpoints.
fn recovery_notes(stderr: &str) -> String {
    let notes: Vec<String> = strip_ansi(stderr)
        .lines()
        .filter(|l| {
            [
                "restoring from",
                "corrupt",
                "incomplete",
                "already complete",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        // "<time>  INFO <target>: <message>" → "<message>"
        .map(|l| l.split_once(": ").map_or(l, |(_, m)| m).trim().to_owned())
        .collect();
    if notes.is_empty() {
        "started from scratch".into()
    } else {
        notes.join("; ")
    }
}

/// One `iotflow run` of the shared input: the command line and where its
/// stdout and stderr go (files, so that a killed child never blocks on a
/// full pipe and its logs survive for the failure message).
struct Job {
    input: PathBuf,
    out: PathBuf,
    checkpoints: Option<PathBuf>,
    interval: &'static str,
    workers: usize,
    logs: PathBuf,
}

impl Job {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "-i".into(),
            self.input.display().to_string(),
            "-o".into(),
            self.out.display().to_string(),
            "-w".into(),
            self.workers.to_string(),
            "--format".into(),
            "parquet".into(),
            "--summary".into(),
            "json".into(),
            // Recovery decisions ("restoring from checkpoint N", corrupt or
            // incomplete checkpoints) in the run's stderr file.
            "--log".into(),
            "info".into(),
        ];
        if let Some(ck) = &self.checkpoints {
            a.extend([
                "--checkpoint-dir".into(),
                ck.display().to_string(),
                "--checkpoint-interval".into(),
                self.interval.into(),
            ]);
        }
        a
    }

    /// The command line, for messages.
    fn line(&self) -> String {
        format!("iotflow {}", self.args().join(" "))
    }

    /// Starts run number `n` of this job.
    fn spawn(&self, n: usize) -> Running {
        fs::create_dir_all(&self.logs).expect("log dir");
        let stdout = self.logs.join(format!("run-{n:03}.stdout"));
        let stderr = self.logs.join(format!("run-{n:03}.stderr"));
        let child = iotflow()
            .args(self.args())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn iotflow");
        Running {
            child,
            n,
            line: self.line(),
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// Runs the job once to the end; panics unless it exits 0.
    fn run_to_end(&self, n: usize) -> Finished {
        self.spawn(n).wait().success()
    }
}

struct Running {
    child: Child,
    n: usize,
    line: String,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

/// How a wait ended.
enum Waited {
    /// The condition became true while the child was still running.
    Ready,
    /// The child exited first.
    Exited(Finished),
}

/// A run that has exited.
struct Finished {
    n: usize,
    line: String,
    status: ExitStatus,
    seconds: f64,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// Whether our SIGKILL ended it (rather than it finishing by itself).
    fn was_killed(&self) -> bool {
        self.status.signal() == Some(9)
    }

    /// Panics with the run's stderr unless it exited 0; returns itself.
    fn success(self) -> Finished {
        assert!(
            self.status.success(),
            "run {} failed ({}) after {:.2}s: {}\n--- stderr (tail) ---\n{}",
            self.n,
            self.status,
            self.seconds,
            self.line,
            tail(&self.stderr, 40)
        );
        self
    }

    /// The JSON summary: the last line of stdout.
    fn summary(&self) -> Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "run {}: last stdout line is not JSON ({e}): {last:?}\n--- stderr (tail) ---\n{}",
                self.n,
                tail(&self.stderr, 40)
            )
        })
    }
}

impl Running {
    fn finished(&self, status: ExitStatus) -> Finished {
        Finished {
            n: self.n,
            line: self.line.clone(),
            status,
            seconds: self.started.elapsed().as_secs_f64(),
            stdout: fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }

    /// Waits for the child to exit.
    fn wait(mut self) -> Finished {
        let status = self.child.wait().expect("wait for iotflow");
        self.finished(status)
    }

    /// Polls `ready` every 10 ms until it holds or the child exits.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Waited {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Waited::Exited(self.finished(status));
            }
            if ready() {
                return Waited::Ready;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "run {}: still waiting for {what} after {PATIENCE:?}: {}",
                    self.n, self.line
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs the child (`Child::kill` is SIGKILL on Unix) and reaps it.
    /// `was_killed()` on the result tells whether the kill hit a running
    /// process or the child had already exited by itself.
    fn kill(mut self) -> Finished {
        // Fails only when the child was already reaped, which `wait_until`
        // would have reported as an exit.
        if let Err(e) = self.child.kill() {
            eprintln!("run {}: kill: {e}", self.n);
        }
        let status = self.child.wait().expect("wait for killed iotflow");
        self.finished(status)
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a checkpoint directory holds its manifest (`MANIFEST`,
/// `MANIFEST.json`, …), written last: the checkpoint is complete.
fn has_manifest(ckpt: &Path) -> bool {
    fs::read_dir(ckpt).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.file_name().to_string_lossy().starts_with("MANIFEST")
                && e.file_type().is_ok_and(|t| t.is_file())
        })
    })
}

/// Complete checkpoints in `dir`: `ckpt-<id>` directories holding a
/// manifest, oldest first.
fn complete_checkpoints(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("ckpt-")?;
            let path = e.path();
            if !has_manifest(&path) {
                return None;
            }
            Some((id.parse().unwrap_or(u64::MAX), name, path))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, p)| p).collect()
}

fn newest_checkpoint(dir: &Path) -> Option<PathBuf> {
    complete_checkpoints(dir).pop()
}

/// Every regular file under `dir`, recursively (directories that vanish
/// while a run is going are skipped).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// --- Output rows -----------------------------------------------------------

/// Where a cell's value sits in [`Row::text`], and whether it is a float.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
    float: bool,
}

/// One output row as canonical text (`name=value, …`; floats in Rust's
/// shortest round-trip form, strings quoted), used for exact multiset
/// comparison, with the spans of its cells. Two allocations per row: the
/// outputs have ~800 k rows, read in an unoptimised test binary.
#[derive(Clone, Debug)]
struct Row {
    text: String,
    cells: Vec<Span>,
}

impl Row {
    fn cell(&self, i: usize) -> &str {
        let s = self.cells[i];
        &self.text[s.start as usize..s.end as usize]
    }

    fn float(&self, i: usize) -> Option<f64> {
        if self.cells[i].float {
            self.cell(i).parse().ok()
        } else {
            None
        }
    }
}

/// All rows of one kind of output, merged over its part files.
#[derive(Debug, Default)]
struct Rows {
    columns: Vec<String>,
    rows: Vec<Row>,
    /// Files in the directory that are not complete Parquet files.
    bad_files: Vec<String>,
}

impl Rows {
    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Row `i` of a batch as a [`Row`].
fn row(names: &[String], columns: &[Column<'_>], i: usize) -> Row {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(160);
    let mut cells = Vec::with_capacity(columns.len());
    for (k, (name, c)) in names.iter().zip(columns).enumerate() {
        if k > 0 {
            text.push_str(", ");
        }
        text.push_str(name);
        text.push('=');
        let start = text.len() as u32;
        let mut float = false;
        let written = match c {
            _ if c.array().is_null(i) => write!(text, "null"),
            Column::F64(a) => {
                float = true;
                write!(text, "{:?}", a.value(i))
            }
            Column::F32(a) => {
                float = true;
                write!(text, "{:?}", f64::from(a.value(i)))
            }
            Column::Str(_, f) => write!(text, "\"{}\"", f.value(i)),
            Column::Other(_, f) => write!(text, "{}", f.value(i)),
        };
        written.expect("format a cell");
        cells.push(Span {
            start,
            end: text.len() as u32,
            float,
        });
    }
    Row { text, cells }
}

/// A column of a record batch, typed for reading cells.
enum Column<'a> {
    F64(&'a Float64Array),
    F32(&'a Float32Array),
    Str(&'a dyn Array, ArrayFormatter<'a>),
    Other(&'a dyn Array, ArrayFormatter<'a>),
}

impl Column<'_> {
    fn array(&self) -> &dyn Array {
        match self {
            Column::F64(a) => *a,
            Column::F32(a) => *a,
            Column::Str(a, _) | Column::Other(a, _) => *a,
        }
    }
}

/// Reads every regular file in `OUT/kind/` as Parquet (each must be a
/// complete Parquet file: staging must not live there) into sorted rows.
fn read_rows(out: &Path, kind: &str) -> Rows {
    let dir = out.join(kind);
    let mut rows = Rows::default();
    let Ok(entries) = fs::read_dir(&dir) else {
        return rows;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let options = FormatOptions::default().with_null("null");
    for path in paths {
        let file = File::open(&path).expect("open part file");
        let reader = match ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()) {
            Ok(reader) => reader,
            Err(e) => {
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                rows.bad_files.push(format!(
                    "{kind}: {} ({size} bytes) is not a complete Parquet file: {e}",
                    path.display()
                ));
                continue;
            }
        };
        for batch in reader {
            let batch = batch.unwrap_or_else(|e| panic!("{}: bad batch: {e}", path.display()));
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            if rows.columns.is_empty() {
                rows.columns = names.clone();
            }
            assert_eq!(rows.columns, names, "{}: other columns", path.display());
            let columns: Vec<Column<'_>> = batch
                .columns()
                .iter()
                .map(|a| {
                    let a: &dyn Array = a.as_ref();
                    let fmt =
                        || ArrayFormatter::try_new(a, &options).expect("a displayable column");
                    if let Some(f) = a.as_any().downcast_ref::<Float64Array>() {
                        Column::F64(f)
                    } else if let Some(f) = a.as_any().downcast_ref::<Float32Array>() {
                        Column::F32(f)
                    } else if a.data_type().is_string()
                        || matches!(a.data_type(), DataType::Dictionary(_, v) if v.is_string())
                    {
                        Column::Str(a, fmt())
                    } else {
                        Column::Other(a, fmt())
                    }
                })
                .collect();
            rows.rows
                .extend((0..batch.num_rows()).map(|i| row(&names, &columns, i)));
        }
    }
    rows.rows.sort_unstable_by(|a, b| a.text.cmp(&b.text));
    rows
}

/// The reference output, read once per process.
fn reference_rows() -> &'static BTreeMap<&'static str, Rows> {
    static ROWS: OnceLock<BTreeMap<&'static str, Rows>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let reference = &fixture().reference;
        KINDS
            .iter()
            .map(|k| {
                let rows = read_rows(reference, k);
                assert!(rows.bad_files.is_empty(), "reference: {:?}", rows.bad_files);
                (*k, rows)
            })
            .collect()
    })
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= FLOAT_TOLERANCE * a.abs().max(b.abs())
}

/// Rows equal except for float cells within [`FLOAT_TOLERANCE`].
fn nearly_equal(a: &Row, b: &Row) -> bool {
    a.cells.len() == b.cells.len()
        && (0..a.cells.len()).all(|i| match (a.float(i), b.float(i)) {
            (Some(x), Some(y)) => close(x, y),
            _ => a.cell(i) == b.cell(i),
        })
}

/// The non-float cells of a row: rows that differ only in float bits share it.
fn loose_key(row: &Row) -> String {
    (0..row.cells.len())
        .map(|i| if row.cells[i].float { "~" } else { row.cell(i) })
        .collect::<Vec<_>>()
        .join("|")
}

/// Compares two sorted row lists as multisets, exactly (window sums are
/// exact, so results are bit-identical on any worker count and across
/// restarts); `Err` is a readable diff. Rows that differ only in float
/// cells within [`FLOAT_TOLERANCE`] are still a difference, listed apart
/// as a hint (`~`).
fn compare_rows(kind: &str, want: &Rows, got: &Rows) -> Result<(), String> {
    // Multiset difference of the exact texts (both sorted).
    let (mut only_want, mut only_got) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < want.rows.len() || j < got.rows.len() {
        match (want.rows.get(i), got.rows.get(j)) {
            (Some(a), Some(b)) if a.text == b.text => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.text < b.text => {
                only_want.push(a);
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                only_got.push(b);
                j += 1;
            }
            (Some(a), None) => {
                only_want.push(a);
                i += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    if only_want.is_empty() && only_got.is_empty() {
        return Ok(());
    }
    // Pair what is left by non-float cells: such pairs differ only in floats.
    let mut pool: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &only_got {
        pool.entry(loose_key(r)).or_default().push(r);
    }
    let mut float_only = Vec::new();
    let mut missing = Vec::new();
    for r in only_want {
        let candidates = pool.entry(loose_key(r)).or_default();
        match candidates.iter().position(|c| nearly_equal(r, c)) {
            Some(k) => float_only.push((r, candidates.swap_remove(k))),
            None => missing.push(r),
        }
    }
    let mut extra: Vec<&Row> = pool.into_values().flatten().collect();
    extra.sort_by(|a, b| a.text.cmp(&b.text));
    let mut msg = format!(
        "{kind}: {} rows in the reference, {} in the output; {} reference rows missing, {} extra rows in the output",
        want.rows.len(),
        got.rows.len(),
        missing.len(),
        extra.len()
    );
    // Extra copies of a reference row are duplicates (written twice).
    let dups = extra
        .iter()
        .filter(|r| want.rows.binary_search_by(|w| w.text.cmp(&r.text)).is_ok())
        .count();
    if dups > 0 {
        msg.push_str(&format!(
            " ({dups} of the extra rows duplicate a reference row)"
        ));
    }
    if !float_only.is_empty() {
        msg.push_str(&format!(
            ", {} rows differ only in float bits (within {FLOAT_TOLERANCE:e})",
            float_only.len()
        ));
    }
    msg.push_str(
        "; first differences (- reference only, + output only, ~ floats differ: reference / output):",
    );
    for r in missing.iter().take(8) {
        msg.push_str(&format!("\n  - {}", r.text));
    }
    for r in extra.iter().take(8) {
        msg.push_str(&format!("\n  + {}", r.text));
    }
    for (a, b) in float_only.iter().take(4) {
        msg.push_str(&format!("\n  ~ {}\n    {}", a.text, b.text));
    }
    Err(msg)
}

/// Windows with the same key (device, metric, start), which is written at
/// most once. The key is the text's first three cells, so in sorted rows
/// equal keys are neighbours.
fn duplicate_windows(windows: &Rows) -> Option<String> {
    let key = ["device_id", "metric", "window_start_ms"].map(|c| windows.column(c));
    if windows.rows.is_empty() {
        return None;
    }
    if key != [Some(0), Some(1), Some(2)] {
        return Some(format!("windows: unexpected columns {:?}", windows.columns));
    }
    fn prefix(r: &Row) -> &str {
        &r.text[..r.cells[2].end as usize]
    }
    let dups: Vec<String> = windows
        .rows
        .windows(2)
        .filter(|p| prefix(&p[0]) == prefix(&p[1]))
        .take(5)
        .map(|p| format!("\n  {}\n  {}", p[0].text, p[1].text))
        .collect();
    (!dups.is_empty()).then(|| {
        format!(
            "windows: duplicate window keys (device, metric, start), e.g.:{}",
            dups.concat()
        )
    })
}

/// Asserts that `out` holds exactly the reference rows for every kind,
/// no window key twice, and that `summary` reports the reference counts,
/// conserved, and matching the rows on disk.
fn assert_matches_reference(what: &str, out: &Path, summary: &Value) {
    let reference = reference_rows();
    let mut problems = Vec::new();
    let mut got_counts = BTreeMap::new();
    for kind in KINDS {
        let got = read_rows(out, kind);
        got_counts.insert(kind, got.rows.len() as u64);
        problems.extend(got.bad_files.iter().cloned());
        if let Err(e) = compare_rows(kind, &reference[kind], &got) {
            problems.push(e);
        }
        if kind == "windows" {
            problems.extend(duplicate_windows(&got));
        }
    }
    let want = &fixture().summary;
    for key in COUNTS {
        if want.get(key).is_some() && summary.get(key) != want.get(key) {
            problems.push(format!(
                "summary {key}: {} (reference {})",
                summary.get(key).unwrap_or(&Value::Null),
                want[key]
            ));
        }
    }
    let n = |k: &str| summary.get(k).and_then(Value::as_u64);
    match (n("lines"), n("valid"), n("rejected")) {
        (Some(l), Some(v), Some(r)) if l == v + r => {}
        other => problems.push(format!(
            "summary: lines != valid + rejected: {other:?} in {summary}"
        )),
    }
    if let (Some(v), Some(w), Some(l)) = (n("valid"), n("windowed_readings"), n("late"))
        && v != w + l
    {
        problems.push(format!(
            "summary: valid {v} != windowed_readings {w} + late {l}"
        ));
    }
    for (kind, key) in [
        ("windows", "windows"),
        ("alerts", "alerts"),
        ("rejects", "rejected"),
        ("late", "late"),
    ] {
        if n(key) != Some(got_counts[kind]) {
            problems.push(format!(
                "summary {key} = {:?} but {} rows in {kind}/",
                n(key),
                got_counts[kind]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: output differs from the uninterrupted reference run ({}):\n{}",
        fixture().reference.display(),
        problems.join("\n")
    );
}

// --- The shared input and reference ----------------------------------------

struct Fixture {
    input: PathBuf,
    reference: PathBuf,
    summary: Value,
    /// Wall time of the uninterrupted reference run.
    seconds: f64,
}

/// The shared input and its reference run, made once per build of the
/// binary (a new binary may write different output) under a file lock.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let bin = Path::new(env!("CARGO_BIN_EXE_iotflow"));
        let meta = fs::metadata(bin).expect("iotflow binary");
        let built = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join(format!("recovery-{LINES}-{built:x}-{:x}", meta.len()));
        fs::create_dir_all(root).expect("target tmp dir");
        let lock = File::create(root.join("recovery.lock")).expect("lock file");
        lock.lock().expect("lock the recovery fixture");
        let input = dir.join("fleet.ndjson");
        let reference = dir.join("ref");
        let ready = dir.join("READY");
        if !ready.exists() {
            // Fixtures of older builds are stale: remove them.
            for entry in fs::read_dir(root).expect("target tmp dir").flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("recovery-") && entry.path() != dir {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("fixture dir");
            let generated = iotflow()
                .args(["generate", "--lines", &LINES.to_string()])
                .args(["--seed", &INPUT_SEED.to_string(), "--out"])
                .arg(&input)
                .output()
                .expect("spawn iotflow generate");
            assert!(
                generated.status.success(),
                "iotflow generate failed: {}",
                String::from_utf8_lossy(&generated.stderr)
            );
            let job = Job {
                input: input.clone(),
                out: reference.clone(),
                checkpoints: None,
                interval: INTERVAL,
                workers: WORKERS,
                logs: dir.join("logs"),
            };
            let done = job.run_to_end(0);
            let summary = done.summary();
            fs::write(dir.join("summary.json"), summary.to_string()).expect("write summary");
            fs::write(dir.join("seconds"), done.seconds.to_string()).expect("write seconds");
            fs::write(&ready, "").expect("write READY");
        }
        drop(lock);
        let summary: Value = serde_json::from_str(
            &fs::read_to_string(dir.join("summary.json")).expect("reference summary"),
        )
        .expect("reference summary JSON");
        let seconds: f64 = fs::read_to_string(dir.join("seconds"))
            .expect("reference seconds")
            .trim()
            .parse()
            .expect("reference seconds number");
        eprintln!(
            "reference: {} in {seconds:.2}s: {summary}",
            reference.display()
        );
        assert_eq!(summary["lines"], LINES, "reference summary {summary}");
        Fixture {
            input,
            reference,
            summary,
            seconds,
        }
    })
}

/// A checkpointed job of the shared input in a fresh directory.
fn checkpointed_job(dir: &Path, workers: usize) -> Job {
    Job {
        input: fixture().input.clone(),
        out: dir.join("out"),
        checkpoints: Some(dir.join("ck")),
        interval: INTERVAL,
        workers,
        logs: dir.join("logs"),
    }
}

fn checkpoint_names(dir: &Path) -> String {
    complete_checkpoints(dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `job` until a complete checkpoint newer than `after` exists (and at
/// least `at_least` complete ones), then SIGKILLs it. Panics when the run
/// ends by itself first: the input is then too small for the test.
fn kill_after_new_checkpoint(job: &Job, n: usize, at_least: usize) -> Finished {
    let ck = job.checkpoints.clone().expect("a checkpointed job");
    let before = newest_checkpoint(&ck);
    let mut running = job.spawn(n);
    let waited = running.wait_until("a new complete checkpoint", || {
        let all = complete_checkpoints(&ck);
        all.len() >= at_least && all.last() != before.as_ref()
    });
    if let Waited::Exited(done) = waited {
        let why = if done.status.success() {
            "the input is too small for this test"
        } else {
            "it failed"
        };
        panic!(
            "run {n} ended ({}) before writing a new checkpoint (newest before: {before:?}): \
             {why}: {}\n--- stderr (tail) ---\n{}",
            done.status,
            done.line,
            tail(&done.stderr, 20)
        );
    }
    let done = running.kill();
    assert!(
        done.was_killed(),
        "run {n} finished ({}) before it could be killed: the input is too small",
        done.status
    );
    eprintln!(
        "run {n} (-w {}) killed after {:.2}s; checkpoints: {} ({})",
        job.workers,
        done.seconds,
        checkpoint_names(&ck),
        recovery_notes(&done.stderr)
    );
    done
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// SIGKILL at random moments (uniform between 0.3 s and the reference run's
/// duration), rerunning the same command each time, until at least 5 kills
/// have hit a running process; then let it finish. A run that finishes
/// before its kill completes the job (its output is checked too) and the
/// next kill starts a fresh job, so the kills keep landing mid-run.
#[test]
fn kill_and_restart_gives_the_uninterrupted_output() {
    const KILLS: usize = 5;
    const MAX_RUNS: usize = 60;
    let fx = fixture();
    let mut rng = SmallRng::seed_from_u64(seed("kill_and_restart", 0x1_0f10_0003));
    let tmp = Scratch::new();
    let max_delay = fx.seconds.max(0.6);
    let (mut kills, mut runs, mut round) = (0, 0, 0);
    let mut job = checkpointed_job(&tmp.path().join("round-0"), WORKERS);
    let last = loop {
        runs += 1;
        assert!(
            runs <= MAX_RUNS,
            "{MAX_RUNS} runs without {KILLS} kills mid-run and a completed job ({kills} kills so far)"
        );
        let mut running = job.spawn(runs);
        if kills >= KILLS {
            let done = running.wait().success();
            eprintln!(
                "run {runs}: finished in {:.2}s after {kills} kills ({})",
                done.seconds,
                recovery_notes(&done.stderr)
            );
            break done;
        }
        let delay = Duration::from_secs_f64(rng.random_range(0.3..max_delay));
        let started = Instant::now();
        let done = match running.wait_until("the kill moment", || started.elapsed() >= delay) {
            Waited::Exited(done) => done,
            Waited::Ready => running.kill(),
        };
        if done.was_killed() {
            kills += 1;
            eprintln!(
                "run {runs}: killed after {:.2}s (kill {kills}); checkpoints: {} ({})",
                done.seconds,
                checkpoint_names(job.checkpoints.as_deref().expect("checkpoints")),
                recovery_notes(&done.stderr)
            );
            continue;
        }
        // It finished by itself before the kill: the job is complete.
        let done = done.success();
        eprintln!(
            "run {runs}: completed the job in {:.2}s before its kill at {delay:?} ({}); checking it and starting a new job",
            done.seconds,
            recovery_notes(&done.stderr)
        );
        assert_matches_reference(
            &format!("round {round} (seed-driven kills, completed by run {runs})"),
            &job.out,
            &done.summary(),
        );
        round += 1;
        job = checkpointed_job(&tmp.path().join(format!("round-{round}")), WORKERS);
    };
    assert_matches_reference(
        &format!("after {kills} kills in {runs} runs"),
        &job.out,
        &last.summary(),
    );

    // Rerunning a completed job changes nothing and reports the same totals.
    runs += 1;
    let again = job.run_to_end(runs);
    assert_matches_reference("rerun after completion", &job.out, &again.summary());
}

/// Checkpoint with 2 workers, kill; resume with 1 worker, kill after it has
/// checkpointed; resume with 2 workers to the end.
#[test]
fn rescale_two_to_one_and_back() {
    fixture();
    let tmp = Scratch::new();
    let two = checkpointed_job(tmp.path(), 2);
    let one = checkpointed_job(tmp.path(), 1);
    kill_after_new_checkpoint(&two, 1, 2);
    kill_after_new_checkpoint(&one, 2, 1);
    let done = two.run_to_end(3);
    eprintln!(
        "run 3 (-w 2) finished in {:.2}s ({})",
        done.seconds,
        recovery_notes(&done.stderr)
    );
    let summary = done.summary();
    assert_matches_reference("rescaled 2 → 1 → 2", &two.out, &summary);
    assert_eq!(summary["workers"], 2, "{summary}");
}

/// Kill after two complete checkpoints, truncate a state part of the newest
/// one to half its size; the rerun must say so (`corrupt`), fall back to the
/// previous checkpoint and still produce the reference output.
#[test]
fn corrupt_newest_checkpoint_falls_back() {
    fixture();
    let tmp = Scratch::new();
    let job = checkpointed_job(tmp.path(), WORKERS);
    let ck = job.checkpoints.clone().expect("checkpoints");
    kill_after_new_checkpoint(&job, 1, 2);
    let newest = newest_checkpoint(&ck).expect("a complete checkpoint");
    let part = files_under(&newest)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap_or_else(|| panic!("no .bin part in {}", newest.display()));
    let len = fs::metadata(&part).expect("part size").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .expect("open part")
        .set_len(len / 2)
        .expect("truncate part");
    eprintln!(
        "truncated {} from {len} to {} bytes",
        part.display(),
        len / 2
    );
    let done = job.run_to_end(2);
    eprintln!(
        "run 2 finished in {:.2}s ({})",
        done.seconds,
        recovery_notes(&done.stderr)
    );
    let log = strip_ansi(&done.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.to_lowercase().contains("corrupt")),
        "the rerun logged no warning about the corrupt checkpoint {}:\n{}",
        newest.display(),
        tail(&log, 40)
    );
    let summary = done.summary();
    // The summary says which checkpoint the run restored (when it says).
    let newest_id: Option<u64> = newest
        .file_name()
        .and_then(|n| n.to_string_lossy().strip_prefix("ckpt-")?.parse().ok());
    if let (Some(from), Some(newest_id)) = (
        summary
            .pointer("/checkpoints/restored_from")
            .and_then(Value::as_u64),
        newest_id,
    ) {
        assert!(
            from < newest_id,
            "restored from checkpoint {from}, not from one before the corrupt {newest_id}"
        );
    }
    assert_matches_reference(
        "after falling back from a corrupt checkpoint",
        &job.out,
        &summary,
    );
}

/// Two crashes in a row from the same checkpoint: kill right after
/// checkpoint 1, then kill the resumed run before it can complete a
/// checkpoint of its own (500 ms interval; killed as soon as it has created
/// a file under the output directory, at most 0.4 s in), then run to the
/// end. Whatever the second run wrote must neither replace nor add to what
/// checkpoint 1 published.
#[test]
fn two_crashes_before_the_next_checkpoint() {
    fixture();
    let tmp = Scratch::new();
    let job = Job {
        interval: "500ms",
        ..checkpointed_job(tmp.path(), WORKERS)
    };
    let ck = job.checkpoints.clone().expect("checkpoints");
    kill_after_new_checkpoint(&job, 1, 1);
    let published = checkpoint_names(&ck);
    let files_before = files_under(&job.out);

    let mut second = job.spawn(2);
    let started = Instant::now();
    let limit = Duration::from_millis(400);
    let done = match second.wait_until("output files or the kill moment", || {
        started.elapsed() >= limit
            || files_under(&job.out)
                .iter()
                .any(|f| !files_before.contains(f))
    }) {
        Waited::Exited(done) => done.success(),
        Waited::Ready => second.kill(),
    };
    let now = checkpoint_names(&ck);
    let new_files: Vec<String> = files_under(&job.out)
        .into_iter()
        .filter(|f| !files_before.contains(f))
        .filter_map(|f| {
            f.strip_prefix(&job.out)
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect();
    eprintln!(
        "run 2 {} after {:.2}s; checkpoints before: {published}, after: {now}; new files: {new_files:?} ({})",
        if done.was_killed() { "killed" } else { "ended" },
        done.seconds,
        recovery_notes(&done.stderr)
    );
    if now != published || !done.was_killed() {
        eprintln!("note: run 2 completed a checkpoint or the job; the scenario was not hit");
    }

    let done = job.run_to_end(3);
    eprintln!(
        "run 3 finished in {:.2}s ({})",
        done.seconds,
        recovery_notes(&done.stderr)
    );
    assert_matches_reference(
        "after two crashes before the next checkpoint",
        &job.out,
        &done.summary(),
    );
}
