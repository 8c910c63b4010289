//! Running an operator under test on in-memory input with N workers.
//!
//! ```
//! use iotflow_core::event_time::EventTimeConfig;
//! use iotflow_testing::harness::{Harness, WindowUnderTest};
//! use iotflow_window::TumblingConfig;
//!
//! let line = |ts: u64, v: f64| format!(r#"{{"device_id":"d-1","ts":{ts},"metric":"temp","value":{v}}}"#);
//! let inputs = vec![vec![line(1_000, 1.0), line(12_000, 2.0)], vec![line(3_000, 3.0), "garbage".into()]];
//! let window = TumblingConfig::new(std::time::Duration::from_secs(10));
//! let out = Harness::new(EventTimeConfig::default().with_lateness(window.lateness()))
//!     .run(inputs, WindowUnderTest(window));
//! assert_eq!(out.windows.len(), 2);
//! assert_eq!(out.rejects.len(), 1);
//! assert_eq!(out.tally.lines, 4);
//! ```

use std::sync::{Arc, Mutex};

use iotflow_anomaly::{Ewma, Score};
use iotflow_core::codec::InputFormat;
use iotflow_core::context::JobContext;
use iotflow_core::event_time::{EventTimeConfig, event_time_source};
use iotflow_core::sink::{SinkHandle, VecSink, WriteTo};
use iotflow_core::source::MemorySource;
use iotflow_core::tally::Tally;
use iotflow_core::validate::Rules;
use iotflow_runtime::ClusterConfig;
use iotflow_types::{Alert, LateReading, Reading, Reject, SeriesKey, Timestamp, WindowResult};
use iotflow_window::{Tumbling, TumblingConfig};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concat;

/// How long a harness run may take before it counts as hung.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The streams an operator under test hands back for collection; absent
/// streams are simply not collected.
#[derive(Debug)]
pub struct Outputs<'scope> {
    /// Window results.
    pub windows: Option<StreamVec<'scope, Timestamp, WindowResult<SeriesKey>>>,
    /// Alerts.
    pub alerts: Option<StreamVec<'scope, Timestamp, Alert>>,
    /// Readings the operator itself found late (the source's late readings
    /// are collected separately).
    pub late: Option<StreamVec<'scope, Timestamp, LateReading>>,
    /// The operator's tallies.
    pub tally: Option<StreamVec<'scope, Timestamp, Tally>>,
}

/// An operator (or a chain of them) applied to the source's on-time readings.
pub trait UnderTest: Send + Sync + 'static {
    /// Builds the operator on `readings`.
    fn build<'scope>(&self, readings: StreamVec<'scope, Timestamp, Reading>) -> Outputs<'scope>;
}

/// [`Tumbling::tumbling_by`] per (device, metric) with a configuration.
#[derive(Clone, Debug)]
pub struct WindowUnderTest(pub TumblingConfig);

impl UnderTest for WindowUnderTest {
    fn build<'scope>(&self, readings: StreamVec<'scope, Timestamp, Reading>) -> Outputs<'scope> {
        let w = readings.tumbling_by("tumbling", &self.0, SeriesKey::of);
        Outputs {
            windows: Some(w.windows),
            alerts: None,
            late: Some(w.late),
            tally: Some(w.tally),
        }
    }
}

/// [`Score::score`] with an EWMA detector.
#[derive(Clone, Copy, Debug)]
pub struct EwmaUnderTest(pub Ewma);

impl UnderTest for EwmaUnderTest {
    fn build<'scope>(&self, readings: StreamVec<'scope, Timestamp, Reading>) -> Outputs<'scope> {
        let z = readings.score("zscore", self.0);
        Outputs {
            windows: None,
            alerts: Some(z.alerts),
            late: None,
            tally: Some(z.tally),
        }
    }
}

/// Nothing: only the source's outputs are collected (codec and watermark
/// tests).
#[derive(Clone, Copy, Debug)]
pub struct SourceOnly;

impl UnderTest for SourceOnly {
    fn build<'scope>(&self, _readings: StreamVec<'scope, Timestamp, Reading>) -> Outputs<'scope> {
        Outputs {
            windows: None,
            alerts: None,
            late: None,
            tally: None,
        }
    }
}

/// Everything a run produced, over all workers, in no particular order.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Window results.
    pub windows: Vec<WindowResult<SeriesKey>>,
    /// Alerts.
    pub alerts: Vec<Alert>,
    /// Readings the event-time source found late.
    pub source_late: Vec<LateReading>,
    /// Readings the operator found late.
    pub operator_late: Vec<LateReading>,
    /// Rejected records.
    pub rejects: Vec<Reject>,
    /// The sum of every tally (source and operator).
    pub tally: Tally,
}

impl Collected {
    /// All late readings (source and operator).
    pub fn late_count(&self) -> usize {
        self.source_late.len() + self.operator_late.len()
    }
}

/// Runs dataflows of `event_time_source → operator under test` on in-memory
/// input, one input list per worker.
#[derive(Clone, Debug)]
pub struct Harness {
    event_time: EventTimeConfig,
    rules: Rules,
    format: InputFormat,
    per_chunk: usize,
}

impl Harness {
    /// A harness with this event-time configuration, fleet-v1 rules, NDJSON
    /// input and 7 lines per chunk (small, so watermarks move mid-input).
    pub fn new(event_time: EventTimeConfig) -> Self {
        Harness {
            event_time,
            rules: Rules::fleet_default(),
            format: InputFormat::Ndjson,
            per_chunk: 7,
        }
    }

    /// Uses these validation rules.
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Decodes input in this format.
    pub fn with_format(mut self, format: InputFormat) -> Self {
        self.format = format;
        self
    }

    /// Puts `n` lines in each chunk of the memory source.
    pub fn with_lines_per_chunk(mut self, n: usize) -> Self {
        self.per_chunk = n.max(1);
        self
    }

    /// Runs with `inputs.len()` workers, worker `w` reading `inputs[w]`.
    ///
    /// # Panics
    ///
    /// When the dataflow fails (a test failure).
    pub fn run<S, U>(&self, inputs: Vec<Vec<S>>, under_test: U) -> Collected
    where
        S: AsRef<[u8]> + Send + Sync + 'static,
        U: UnderTest,
    {
        let chunks = self.per_chunk;
        let sources = inputs
            .into_iter()
            .enumerate()
            .map(|(w, lines)| {
                Mutex::new(Some(MemorySource::from_lines(
                    &format!("worker-{w}"),
                    &lines,
                    chunks,
                )))
            })
            .collect::<Vec<_>>();
        self.run_sources(sources, under_test)
    }

    /// Runs with one worker per source (each taken once).
    ///
    /// # Panics
    ///
    /// When the dataflow fails (a test failure).
    pub fn run_sources<U: UnderTest>(
        &self,
        sources: Vec<Mutex<Option<MemorySource>>>,
        under_test: U,
    ) -> Collected {
        let workers = sources.len().max(1);
        let sources = Arc::new(sources);
        let sinks = Sinks::default();
        let job_sinks = sinks.clone();
        let cfg = self.clone();
        let ctx = JobContext::new();
        let job_ctx = ctx.clone();
        let results = iotflow_runtime::execute(&ClusterConfig::local(workers), move |worker| {
            let index = worker.index();
            let source = sources
                .get(index)
                .and_then(|s| s.lock().ok().and_then(|mut s| s.take()))
                .unwrap_or_default();
            let handles = worker.dataflow::<Timestamp, _, _>(|scope| {
                let decoder = cfg.format.decoder();
                let src = event_time_source(
                    scope,
                    "source",
                    Box::new(source),
                    decoder,
                    cfg.rules.clone(),
                    cfg.event_time.clone(),
                    job_ctx.clone(),
                );
                let out = under_test.build(src.readings);
                job_sinks.attach(src.late, src.rejects, src.tally, out, &job_ctx)
            });
            // A deadline turns a dataflow that never finishes into a failure
            // instead of a hung test run.
            let deadline = std::time::Instant::now() + DEADLINE;
            while worker.step_or_park(Some(std::time::Duration::from_millis(20))) {
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "worker {index}: dataflow did not finish within {DEADLINE:?}"
                    ));
                }
            }
            for h in handles {
                if let Err(e) = h.join() {
                    return Err(e.to_string());
                }
            }
            Ok(())
        });
        match results {
            Ok(rs) => {
                for r in rs {
                    if let Err(e) = r {
                        panic!("sink failed: {e}");
                    }
                }
            }
            Err(e) => panic!("dataflow failed: {e}"),
        }
        let failures = ctx.failures();
        assert!(failures.is_empty(), "job failures: {failures:?}");
        sinks.take()
    }
}

/// Shared vectors the sinks of every worker append to.
#[derive(Clone, Default)]
struct Sinks {
    windows: Arc<Mutex<Vec<WindowResult<SeriesKey>>>>,
    alerts: Arc<Mutex<Vec<Alert>>>,
    source_late: Arc<Mutex<Vec<LateReading>>>,
    operator_late: Arc<Mutex<Vec<LateReading>>>,
    rejects: Arc<Mutex<Vec<Reject>>>,
    tally: Arc<Mutex<Vec<Tally>>>,
}

impl Sinks {
    fn attach<'scope>(
        &self,
        source_late: StreamVec<'scope, Timestamp, LateReading>,
        rejects: StreamVec<'scope, Timestamp, Reject>,
        source_tally: StreamVec<'scope, Timestamp, Tally>,
        out: Outputs<'scope>,
        ctx: &JobContext,
    ) -> Vec<SinkHandle> {
        let mut handles = vec![
            source_late.write_to(
                "source-late",
                VecSink::new(self.source_late.clone()),
                ctx.clone(),
            ),
            rejects.write_to("rejects", VecSink::new(self.rejects.clone()), ctx.clone()),
        ];
        let tally = match out.tally {
            Some(t) => source_tally.concat(t),
            None => source_tally,
        };
        handles.push(tally.write_to("tally", VecSink::new(self.tally.clone()), ctx.clone()));
        if let Some(w) = out.windows {
            handles.push(w.write_to("windows", VecSink::new(self.windows.clone()), ctx.clone()));
        }
        if let Some(a) = out.alerts {
            handles.push(a.write_to("alerts", VecSink::new(self.alerts.clone()), ctx.clone()));
        }
        if let Some(l) = out.late {
            handles.push(l.write_to(
                "operator-late",
                VecSink::new(self.operator_late.clone()),
                ctx.clone(),
            ));
        }
        handles
    }

    fn take(&self) -> Collected {
        fn take<D>(v: &Mutex<Vec<D>>) -> Vec<D> {
            v.lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }
        let mut tally = Tally::default();
        for t in take(&self.tally) {
            tally.merge(&t);
        }
        Collected {
            windows: take(&self.windows),
            alerts: take(&self.alerts),
            source_late: take(&self.source_late),
            operator_late: take(&self.operator_late),
            rejects: take(&self.rejects),
            tally,
        }
    }
}

/// Deals `lines` round-robin to `workers` lists, keeping each list in input
/// order (line `i` goes to worker `i % workers`).
pub fn deal<T: Clone>(lines: &[T], workers: usize) -> Vec<Vec<T>> {
    let workers = workers.max(1);
    let mut out = vec![Vec::new(); workers];
    for (i, l) in lines.iter().enumerate() {
        out[i % workers].push(l.clone());
    }
    out
}
