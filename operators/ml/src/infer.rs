//! The inference operator.
//!
//! Records are featurized as they arrive; those with a feature vector wait
//! in a micro-batch that runs when it holds the model's `max_batch` rows,
//! or when the input frontier passes any record in it (so a record waits
//! at most until the watermark moves past it). Each output is stamped at
//! its record's own timely time, so when a record ran, and with which
//! neighbours, changes neither its time nor (for a model whose rows are
//! independent, as feed-forward networks are) its outputs.

use iotflow_core::held::Held;
use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use iotflow_core::checkpoint::input_frontier;

use crate::error::{Error, Result};
use crate::features::{Features, RejectReason};
use crate::model::Model;

/// A record with its model outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inferred<D> {
    /// The record.
    pub record: D,
    /// The model's [`width`](Model::width) outputs for it.
    pub outputs: Vec<f32>,
}

impl<D> Inferred<D> {
    /// The first output: the score of a model with one output value.
    pub fn score(&self) -> Option<f32> {
        self.outputs.first().copied()
    }

    /// The index of the largest output (the first on ties; NaN ranks above
    /// every number): the class of a model whose outputs are per-class
    /// scores.
    pub fn class(&self) -> Option<usize> {
        self.outputs
            .iter()
            .enumerate()
            .rev()
            .max_by(|(_, a), (_, b)| a.total_cmp(b))
            .map(|(i, _)| i)
    }
}

/// A record the model did not score, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejected<D> {
    /// The record.
    pub record: D,
    /// Why it has no outputs.
    pub reason: RejectReason,
}

/// The outputs of [`Infer::infer`].
#[derive(Debug)]
pub struct InferStreams<'scope, D> {
    /// Records with their outputs, at their input times.
    pub inferred: StreamVec<'scope, Timestamp, Inferred<D>>,
    /// Records without outputs, at their input times.
    pub rejected: StreamVec<'scope, Timestamp, Rejected<D>>,
}

/// Model inference on a stream of records.
pub trait Infer<'scope, D> {
    /// Runs `model` on the feature vectors `features` builds from each
    /// record, in micro-batches of up to the model's `max_batch` rows.
    ///
    /// Records are scored on the worker that holds them: key-partitioned
    /// inputs (window results, shingles) spread the work already. Fails
    /// when `features` cannot apply to the records or builds vectors of
    /// another length than the model takes.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use iotflow_ml::{FeatureSpec, Infer, Model, WindowColumn};
    /// use iotflow_types::{Stats, WindowResult};
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// // y = 2·mean − max: one ONNX Gemm node.
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/linear.onnx");
    /// let model = Model::from_path(path, 2)?;
    /// let spec = FeatureSpec::window([WindowColumn::Mean, WindowColumn::Max]);
    /// let rx = timely::example(move |scope| {
    ///     let mut stats = Stats::default();
    ///     [1.0, 2.0, 6.0].iter().for_each(|v| stats.add(*v));
    ///     let empty = WindowResult { key: "d-2", start: 0, end: 10_000, stats: Stats::default(), kind: Default::default() };
    ///     let full = WindowResult { key: "d-1", stats, ..empty.clone() };
    ///     let streams = vec![full, empty].to_stream(scope).infer("score", &model, spec).expect("fits");
    ///     (streams.inferred.capture(), streams.rejected.capture())
    /// });
    /// let (inferred, rejected) = rx;
    /// let inferred: Vec<_> = inferred.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(inferred[0].score(), Some(0.0)); // 2·3 − 6
    /// let rejected: Vec<_> = rejected.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(rejected[0].reason.code(), "missing_feature");
    /// # Ok(()) }
    /// ```
    fn infer<F: Features<D>>(
        self,
        name: &str,
        model: &Model,
        features: F,
    ) -> Result<InferStreams<'scope, D>>;
}

impl<'scope, D: Clone + 'static> Infer<'scope, D> for StreamVec<'scope, Timestamp, D> {
    fn infer<F: Features<D>>(
        self,
        name: &str,
        model: &Model,
        features: F,
    ) -> Result<InferStreams<'scope, D>> {
        features
            .check()
            .map_err(|e| Error::Config(format!("{name}: {e}")))?;
        let width = features.width();
        if width != model.features() {
            return Err(Error::Shape(format!(
                "{name}: the features have {width} values; the model takes {}",
                model.features()
            )));
        }
        let model = model.clone();
        let scope = self.scope();
        let mut builder = OperatorBuilder::new(name.to_owned(), scope);
        let mut input = builder.new_input(self, Pipeline);
        let (inferred_out, inferred) = builder.new_output();
        let (rejected_out, rejected) = builder.new_output();
        let mut inferred_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<Inferred<D>>>>::from(inferred_out);
        let mut rejected_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<Rejected<D>>>>::from(rejected_out);
        builder.build(move |caps| {
            let mut caps = Held::new(caps);
            let mut batch = Batch::new(model);
            let mut row = vec![0.0f32; width];
            let mut rejects: Vec<(Timestamp, Rejected<D>)> = Vec::new();
            let mut done: Vec<(Timestamp, Inferred<D>)> = Vec::new();
            move |frontiers| {
                let Some(held) = caps.get() else { return };
                input.for_each(|cap, data| {
                    let Some(t) = cap.least().copied() else {
                        return;
                    };
                    for record in data.drain(..) {
                        match featurize(&features, &record, &mut row) {
                            Ok(()) => batch.push(t, record, &row),
                            Err(reason) => rejects.push((t, Rejected { record, reason })),
                        }
                    }
                });
                let frontier = input_frontier(frontiers);
                batch.run_full(&mut done, &mut rejects);
                if batch.passed(frontier) {
                    batch.run_all(&mut done, &mut rejects);
                }
                give(&mut inferred_out, &held[0], &mut done);
                give(&mut rejected_out, &held[1], &mut rejects);
                caps.follow(frontier);
            }
        });
        Ok(InferStreams { inferred, rejected })
    }
}

/// The record's features in `row`, every one a finite `f32`.
fn featurize<D, F: Features<D>>(
    features: &F,
    record: &D,
    row: &mut [f32],
) -> Result<(), RejectReason> {
    features.extract(record, row)?;
    match row.iter().position(|v| !v.is_finite()) {
        Some(column) => Err(RejectReason::NonFiniteFeature {
            column,
            value: f64::from(row[column]),
        }),
        None => Ok(()),
    }
}

/// Gives `(time, record)` pairs, one session per run of equal times.
fn give<R: Clone + 'static>(
    out: &mut OutputBuilder<Timestamp, CapacityContainerBuilder<Vec<R>>>,
    held: &Capability<Timestamp>,
    items: &mut Vec<(Timestamp, R)>,
) {
    if items.is_empty() {
        return;
    }
    let mut out = out.activate();
    let mut it = items.drain(..).peekable();
    while let Some((t, first)) = it.next() {
        let cap = held.delayed(&t);
        let mut session = out.session(&cap);
        session.give(first);
        while let Some((_, r)) = it.next_if(|(u, _)| *u == t) {
            session.give(r);
        }
    }
}

/// One worker's pending micro-batch.
struct Batch<D> {
    model: Model,
    times: Vec<Timestamp>,
    records: Vec<D>,
    rows: Vec<f32>,
}

impl<D> Batch<D> {
    fn new(model: Model) -> Self {
        Batch {
            model,
            times: Vec::new(),
            records: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, t: Timestamp, record: D, row: &[f32]) {
        self.times.push(t);
        self.records.push(record);
        self.rows.extend_from_slice(row);
    }

    /// Whether the frontier has passed a pending record (`None`: the input
    /// ended).
    fn passed(&self, frontier: Option<Timestamp>) -> bool {
        let least = self.times.iter().min();
        match (least, frontier) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(t), Some(f)) => *t < f,
        }
    }

    /// Runs every full batch, oldest records first.
    fn run_full(
        &mut self,
        done: &mut Vec<(Timestamp, Inferred<D>)>,
        rejects: &mut Vec<(Timestamp, Rejected<D>)>,
    ) {
        let max = self.model.max_batch();
        while self.records.len() >= max {
            self.run(max, done, rejects);
        }
    }

    /// Runs everything pending.
    fn run_all(
        &mut self,
        done: &mut Vec<(Timestamp, Inferred<D>)>,
        rejects: &mut Vec<(Timestamp, Rejected<D>)>,
    ) {
        while !self.records.is_empty() {
            let n = self.records.len().min(self.model.max_batch());
            self.run(n, done, rejects);
        }
    }

    /// Runs the first `n` pending records.
    fn run(
        &mut self,
        n: usize,
        done: &mut Vec<(Timestamp, Inferred<D>)>,
        rejects: &mut Vec<(Timestamp, Rejected<D>)>,
    ) {
        let features = self.model.features();
        let result = self.model.run(&self.rows[..n * features]);
        self.rows.drain(..n * features);
        let records = self.records.drain(..n).zip(self.times.drain(..n));
        match result {
            Ok(outputs) => {
                let width = self.model.width();
                for ((record, t), out) in records.zip(outputs.chunks_exact(width)) {
                    done.push((
                        t,
                        Inferred {
                            record,
                            outputs: out.to_vec(),
                        },
                    ));
                }
            }
            Err(e) => {
                let reason = RejectReason::Model {
                    message: e.to_string(),
                };
                for (record, t) in records {
                    let reason = reason.clone();
                    rejects.push((t, Rejected { record, reason }));
                }
            }
        }
    }
}
