//! Validation rules: which readings are physically plausible.
//!
//! Decoding checks shape (fields, types); [`Rules`] check meaning: the metric
//! must be known (unless unknown metrics are allowed) and its value inside the
//! metric's physical range, inclusive. A stream splits into valid readings and
//! reason-coded rejects with [`Validate::validate`]; the event-time source
//! applies the same rules before a reading can advance the watermark, so that
//! garbage never moves event time.

use std::collections::BTreeMap;
use std::sync::Arc;

use iotflow_types::{Reading, Reject, RejectReason, SourcePos};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Stream, StreamVec};
use timely::progress::Timestamp;

/// Inclusive physical range of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// Smallest plausible value.
    pub min: f64,
    /// Largest plausible value.
    pub max: f64,
}

/// Validation rules (`RulesConfig` in TOML: `[rules.metrics.temp] min = -50.0, max = 150.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Known metrics and their physical ranges.
    #[serde(default)]
    pub metrics: BTreeMap<String, Range>,
    /// Accept metrics that are not in `metrics` (any finite value). Default: false.
    #[serde(default)]
    pub allow_unknown_metrics: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules::fleet_default()
    }
}

impl Rules {
    /// The fleet-v1 rules: temp −50..150, humidity 0..100, pressure 800..1200,
    /// vibration 0..50; unknown metrics rejected.
    pub fn fleet_default() -> Self {
        let mut metrics = BTreeMap::new();
        for (name, min, max) in [
            ("temp", -50.0, 150.0),
            ("humidity", 0.0, 100.0),
            ("pressure", 800.0, 1200.0),
            ("vibration", 0.0, 50.0),
        ] {
            metrics.insert(name.to_owned(), Range { min, max });
        }
        Rules {
            metrics,
            allow_unknown_metrics: false,
        }
    }

    /// Rules that accept any finite value of any metric.
    pub fn permissive() -> Self {
        Rules {
            metrics: BTreeMap::new(),
            allow_unknown_metrics: true,
        }
    }

    /// Checks one reading.
    #[inline]
    pub fn check(&self, r: &Reading) -> Result<(), RejectReason> {
        if !r.value.is_finite() {
            return Err(RejectReason::NonFinite);
        }
        match self.metrics.get(r.metric.as_str()) {
            Some(range) if r.value >= range.min && r.value <= range.max => Ok(()),
            Some(_) => Err(RejectReason::OutOfRange),
            None if self.allow_unknown_metrics => Ok(()),
            None => Err(RejectReason::UnknownMetric),
        }
    }
}

/// Splits a stream of readings into valid readings and rejects.
pub trait Validate<'scope, T: Timestamp> {
    /// Applies `rules`; rejected readings leave as [`Reject`]s whose raw bytes
    /// are the reading as JSON (the original bytes are gone by this point).
    ///
    /// ```
    /// use iotflow_core::validate::{Rules, Validate};
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let (valid, rejects) = timely::example(|scope| {
    ///     let readings = vec![Reading::new("d-1", 5, "temp", 21.0), Reading::new("d-1", 6, "temp", 900.0)];
    ///     let (valid, rejects) = readings.to_stream(scope).validate("validate", &Rules::fleet_default());
    ///     (valid.capture(), rejects.capture())
    /// });
    /// let valid: Vec<Reading> = valid.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// let rejects: Vec<_> = rejects.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(valid.len(), 1);
    /// assert_eq!(rejects[0].reason.code(), "out_of_range");
    /// ```
    fn validate(
        self,
        name: &str,
        rules: &Rules,
    ) -> (StreamVec<'scope, T, Reading>, StreamVec<'scope, T, Reject>);
}

impl<'scope, T: Timestamp> Validate<'scope, T> for StreamVec<'scope, T, Reading> {
    fn validate(
        self,
        name: &str,
        rules: &Rules,
    ) -> (StreamVec<'scope, T, Reading>, StreamVec<'scope, T, Reject>) {
        let rules = rules.clone();
        let source: Arc<str> = Arc::from(name);
        let mut builder = OperatorBuilder::new(name.to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (ok, ok_stream) = builder.new_output();
        let (err, err_stream): (_, Stream<'scope, T, Vec<Reject>>) = builder.new_output();
        let mut ok =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Reading>>>::from(ok);
        let mut err =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Reject>>>::from(err);
        builder.build(move |_| {
            move |_frontiers| {
                let mut ok = ok.activate();
                let mut err = err.activate();
                input.for_each(|cap, data| {
                    let mut ok = ok.session(&cap);
                    let mut err = err.session(&cap);
                    for r in data.drain(..) {
                        match rules.check(&r) {
                            Ok(()) => ok.give(r),
                            Err(reason) => err.give(Reject {
                                pos: SourcePos {
                                    source: source.clone(),
                                    offset: 0,
                                },
                                reason,
                                raw: serde_json::to_vec(&r).unwrap_or_default(),
                            }),
                        }
                    }
                });
            }
        });
        (ok_stream, err_stream)
    }
}
