//! Shingles: the last `size` values of each series, one per reading.
//!
//! Readings are exchanged by a stable hash of their key and applied in time
//! order once the frontier passes them (via [`Epochs`]): in timely time
//! order, and the readings of one time by `(ts, value)`. That order is fixed
//! by the input alone, so every shingle is the same with 1 or 20 workers.
//!
//! With checkpoints, each series' last values are in every checkpoint
//! ([`ShingleState`], keyed by the hash the exchange routes by, so it
//! restores on any number of workers): after a restart the shingles go on
//! as if there had been none.

use std::collections::VecDeque;
use std::hash::Hash;

use iotflow_core::checkpoint::{Ack, Checkpoints, Epochs, Snapshot, Step, encoder, input_frontier};
use iotflow_core::held::Held;
use iotflow_core::state::{KeyedState, route};
use iotflow_types::{Reading, Timestamp, stable_hash};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::error::{Error, Result};

/// The last `size` values of one series, ending at one reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shingle<K> {
    /// The series.
    pub key: K,
    /// Event time of the newest value.
    pub ts: Timestamp,
    /// The values, oldest first.
    pub values: Vec<f64>,
}

/// The last values of each series a worker holds: the shingle operator's
/// checkpointed state.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct ShingleState<K> {
    /// Per series, up to `size` values, oldest first.
    pub series: FxHashMap<K, VecDeque<f64>>,
}

impl<K> Default for ShingleState<K> {
    fn default() -> Self {
        ShingleState {
            series: FxHashMap::default(),
        }
    }
}

impl<K> KeyedState for ShingleState<K>
where
    K: Eq + Hash + Serialize + DeserializeOwned,
{
    fn retain_owned(&mut self, worker: usize, peers: usize) {
        self.series
            .retain(|k, _| route(stable_hash(k), peers) == worker);
    }

    fn merge(&mut self, other: Self) {
        self.series.extend(other.series);
    }
}

impl<K: Clone + Eq + Hash> ShingleState<K> {
    /// Appends `r` to its series; the shingle ending with it once the
    /// series has `size` values.
    fn push(&mut self, k: K, r: &Reading, size: usize) -> Option<Shingle<K>> {
        let window = self.series.entry(k.clone()).or_default();
        while window.len() >= size {
            window.pop_front();
        }
        window.push_back(r.value);
        (window.len() == size).then(|| Shingle {
            key: k,
            ts: r.ts,
            values: window.iter().copied().collect(),
        })
    }
}

/// Shingles of readings per key.
pub trait Shingles<'scope> {
    /// For each reading, the last `size` values of its series (`key`)
    /// ending with it, once the series has `size` values; stamped at the
    /// reading's timely time. With `checkpoints`, the series are in every
    /// checkpoint and restored from the one being recovered.
    ///
    /// ```
    /// use iotflow_ml::Shingles;
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     (0..4u64)
    ///         .map(|i| Reading::new("d-1", i * 1_000, "temp", i as f64))
    ///         .to_stream(scope)
    ///         .shingle("last-3", 3, |r: &Reading| r.device.clone(), None)
    ///         .expect("size > 0")
    ///         .capture()
    /// });
    /// let shingles: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// let values: Vec<_> = shingles.iter().map(|s| s.values.clone()).collect();
    /// assert_eq!(values, [vec![0.0, 1.0, 2.0], vec![1.0, 2.0, 3.0]]);
    /// ```
    fn shingle<K, F>(
        self,
        name: &str,
        size: usize,
        key: F,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<StreamVec<'scope, Timestamp, Shingle<K>>>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static;
}

impl<'scope> Shingles<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn shingle<K, F>(
        self,
        name: &str,
        size: usize,
        key: F,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<StreamVec<'scope, Timestamp, Shingle<K>>>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
    {
        if size == 0 {
            return Err(Error::Config(format!(
                "{name}: shingle size must be at least 1"
            )));
        }
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<ShingleState<K>>>(name)?,
            None => None,
        };
        let Snapshot {
            state: mut st,
            tally,
        } = restored.unwrap_or_default();
        let scope = self.scope();
        let worker = scope.index();
        let mut builder = OperatorBuilder::new(name.to_owned(), scope);
        let route_key = key.clone();
        let pact = Exchange::new(move |r: &Reading| stable_hash(&route_key(r)));
        let mut input = builder.new_input(self, pact);
        let mut control = checkpoints.map(|c| builder.new_input(c.control(), Pipeline));
        let (out, shingles) = builder.new_output();
        let (acks_out, acks) = builder.new_output();
        let mut out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Shingle<K>>>>::from(out);
        let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
        let encode = checkpoints.map(|c| {
            c.add_acks(acks);
            encoder::<ShingleState<K>>()
        });
        let op_name = name.to_owned();
        builder.build(move |mut caps| {
            // Held: the shingles' capability (acks use the request's).
            caps.truncate(1);
            let mut caps = Held::new(caps);
            let mut epochs: Epochs<Reading> = Epochs::default();
            let mut ready: Vec<Shingle<K>> = Vec::new();
            let mut steps: Vec<Step<Reading>> = Vec::new();
            move |frontiers| {
                let Some(held) = caps.get() else { return };
                input.for_each(|cap, data| epochs.push_message(&cap, data));
                if let Some(control) = control.as_mut() {
                    control.for_each(|cap, data| epochs.request_message(&cap, data, 1));
                }
                let frontier = input_frontier(frontiers);
                // A time's readings may come in several messages: gather
                // them all before ordering, so the order does not depend on
                // how the input was split.
                epochs.drain(frontier, |step| match (steps.last_mut(), step) {
                    (Some(Step::Batch(last, all)), Step::Batch(t, mut data)) if *last == t => {
                        all.append(&mut data)
                    }
                    (_, step) => steps.push(step),
                });
                let mut out = out.activate();
                let mut acks_out = acks_out.activate();
                for step in steps.drain(..) {
                    match step {
                        Step::Batch(t, mut data) => {
                            data.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.value.total_cmp(&b.value)));
                            ready.extend(data.iter().filter_map(|r| st.push(key(r), r, size)));
                            if !ready.is_empty() {
                                out.session(&held[0].delayed(&t))
                                    .give_iterator(ready.drain(..));
                            }
                        }
                        Step::Checkpoint(ck, at) => {
                            if let Some(encode) = &encode {
                                let encoded = encode(&st, &tally);
                                let ack =
                                    Ack::of_state(&ck, &op_name, worker, encoded, tally.clone());
                                acks_out.session(&at).give(ack);
                            }
                        }
                    }
                }
                caps.follow(frontier);
            }
        });
        Ok(shingles)
    }
}
