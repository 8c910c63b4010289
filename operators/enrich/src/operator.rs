//! The timely operator: readings and registry updates exchanged by device,
//! readings joined once the registry's frontier has passed them, history
//! compacted behind both frontiers, state in every checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use iotflow_core::checkpoint::{
    Ack, Checkpoint, Checkpoints, Epochs, FINAL, Snapshot, Step, encoder, input_frontier,
};
use iotflow_core::held::Held;
use iotflow_core::tally::Tally;
use iotflow_types::{
    DeviceUpdate, Reading, Reject, RejectReason, SourcePos, Timestamp, stable_hash,
};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Antichain;
use timely::progress::frontier::MutableAntichain;

use crate::config::{EnrichConfig, UnknownDevice};
use crate::enriched::Enriched;
use crate::error::EnrichError;
use crate::state::{EnrichState, Joined};
use crate::tally::EnrichTally;

/// The outputs of [`Enrich::enrich`].
#[derive(Debug)]
pub struct EnrichStreams<'scope> {
    /// Every reading of a known device, with its description; with
    /// [`UnknownDevice::PassThrough`], also the others, without one. Each
    /// is stamped at the time its reading came in at.
    pub enriched: StreamVec<'scope, Timestamp, Enriched>,
    /// With [`UnknownDevice::Reject`], the readings of unknown devices:
    /// reason `unknown_device`, the reading as JSON in `raw`, the
    /// operator's name as `pos.source` (offset 0). Stamped like `enriched`.
    pub rejects: StreamVec<'scope, Timestamp, Reject>,
    /// Per worker, at the end of input: what the operator did.
    pub tally: StreamVec<'scope, Timestamp, EnrichTally>,
}

/// Enrichment of a stream of readings with the device registry.
pub trait Enrich<'scope> {
    /// Joins every reading with its device's description as of the
    /// reading's event time, from a stream of registry `updates` stamped at
    /// their `at` (see the crate docs for the exact semantics). With
    /// `checkpoints`, the registry history is in every checkpoint and
    /// restored from the one being recovered, on any number of workers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iotflow_enrich::{Enrich, EnrichConfig};
    /// use iotflow_types::{DeviceId, DeviceInfo, DeviceUpdate, Reading};
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// let device = |fw: &str| {
    ///     let mut info = DeviceInfo::new("d-1", "acme", "thermostat");
    ///     info.firmware = Some(fw.into());
    ///     Some(Arc::new(info))
    /// };
    /// let (enriched, rejects) = timely::example(move |scope| {
    ///     // d-1 is registered at 0 and updated to firmware 2.0 at 5 000.
    ///     let updates = vec![
    ///         DeviceUpdate { at: 0, seq: 1, device: DeviceId::new("d-1"), info: device("1.0") },
    ///         DeviceUpdate { at: 5_000, seq: 2, device: DeviceId::new("d-1"), info: device("2.0") },
    ///     ]
    ///     .to_stream(scope);
    ///     let s = vec![
    ///         Reading::new("d-1", 4_999, "temp", 21.0),
    ///         Reading::new("d-1", 5_000, "temp", 21.5),
    ///         Reading::new("d-9", 5_000, "temp", 30.0),
    ///     ]
    ///     .to_stream(scope)
    ///     .enrich("enrich", &updates, &EnrichConfig::default(), None)
    ///     .expect("nothing to restore");
    ///     (s.enriched.capture(), s.rejects.capture())
    /// });
    /// fn data<T>(e: Event<u64, Vec<T>>) -> Vec<T> {
    ///     match e { Event::Messages(_, d) => d, _ => vec![] }
    /// }
    /// let firmware: Vec<_> = enriched.try_iter().flat_map(data)
    ///     .map(|e| (e.reading.ts, e.info.and_then(|i| i.firmware.clone()).unwrap_or_default()))
    ///     .collect();
    /// assert_eq!(firmware, [(4_999, "1.0".into()), (5_000, "2.0".into())]);
    /// let rejects: Vec<_> = rejects.try_iter().flat_map(data).collect();
    /// assert_eq!(rejects[0].reason.code(), "unknown_device");
    /// ```
    fn enrich(
        self,
        name: &str,
        updates: &StreamVec<'scope, Timestamp, DeviceUpdate>,
        config: &EnrichConfig,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<EnrichStreams<'scope>, EnrichError>;
}

impl<'scope> Enrich<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn enrich(
        self,
        name: &str,
        updates: &StreamVec<'scope, Timestamp, DeviceUpdate>,
        config: &EnrichConfig,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<EnrichStreams<'scope>, EnrichError> {
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<EnrichState>>(name)?,
            None => None,
        };
        let mut state = restored.map_or_else(EnrichState::default, |s| s.state);
        state.rebuild_wake();
        Ok(enrich_operator(
            self,
            updates.clone(),
            name,
            config.unknown_device,
            state,
            checkpoints,
        ))
    }
}

/// The least of two frontiers, `None` meaning "ended" (after every time).
fn least(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn frontier_of(f: Option<&MutableAntichain<Timestamp>>) -> Option<Timestamp> {
    f.and_then(|f| f.frontier().iter().min().copied())
}

/// Whether a reading to be joined at `at` can be: the registry's frontier
/// has passed it, so every update holding from `at` or before is applied.
#[inline]
fn known_at(registry: Option<Timestamp>, at: Timestamp) -> bool {
    registry.is_none_or(|f| at < f)
}

/// One time's readings waiting for the registry.
struct Waiting {
    /// The least join time among them: nothing is released before the
    /// registry's frontier passes it.
    first: Timestamp,
    readings: Vec<Reading>,
}

fn enrich_operator<'scope>(
    readings: StreamVec<'scope, Timestamp, Reading>,
    updates: StreamVec<'scope, Timestamp, DeviceUpdate>,
    name: &str,
    unknown: UnknownDevice,
    state: EnrichState,
    checkpoints: Option<&Checkpoints<'scope>>,
) -> EnrichStreams<'scope> {
    const ACKS: usize = 3;
    let worker = readings.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), readings.scope());
    let mut readings_in = builder.new_input(
        readings,
        Exchange::new(|r: &Reading| stable_hash(&r.device)),
    );
    let mut updates_in = builder.new_input(
        updates,
        Exchange::new(|u: &DeviceUpdate| stable_hash(&u.device)),
    );
    let mut control = checkpoints.map(|c| builder.new_input(c.control(), Pipeline));
    // The registry is connected to no output: what it may still send
    // constrains nothing downstream by itself. Readings waiting for it hold
    // their own capabilities, and once the readings have ended the outputs
    // close, however long the registry runs on.
    let connected: Vec<(usize, Antichain<u64>)> = [0]
        .into_iter()
        .chain(control.is_some().then_some(2))
        .map(|input| (input, Antichain::from_elem(0)))
        .collect();
    let (enriched_out, enriched) = builder.new_output_connection(connected.clone());
    let (rejects_out, rejects) = builder.new_output_connection(connected.clone());
    let (tally_out, tally) = builder.new_output_connection(connected.clone());
    let (acks_out, acks) = builder.new_output_connection(connected);
    let encode = checkpoints.map(|c| {
        c.add_acks(acks);
        encoder::<EnrichState>()
    });
    let mut enriched_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<Enriched>>>::from(enriched_out);
    let mut rejects_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<Reject>>>::from(rejects_out);
    let mut tally_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<EnrichTally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();
    let source: Arc<str> = Arc::from(name);
    let reject = move |reading: Reading| Reject {
        pos: SourcePos {
            source: source.clone(),
            offset: 0,
        },
        reason: RejectReason::UnknownDevice,
        raw: serde_json::to_vec(&reading).unwrap_or_default(),
    };

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let mut st = state;
        // Readings by the time they came in at, until both the readings'
        // and the control frontier pass it (and no checkpoint is due
        // before it).
        let mut batches: Epochs<Reading> = Epochs::default();
        // Checkpoint requests, by (time, id), with the capability to ack.
        let mut requests: Vec<(Checkpoint, Capability<Timestamp>)> = Vec::new();
        // Readings waiting for the registry, by the time they came in at.
        let mut waiting: BTreeMap<Timestamp, Waiting> = BTreeMap::new();
        let mut keep: Vec<Reading> = Vec::new();
        let mut refused: Vec<Reject> = Vec::new();
        move |frontiers| {
            let Some(held) = caps.get() else {
                // Done (every reading is out): the registry may go on.
                readings_in.for_each(|_, data| data.clear());
                updates_in.for_each(|_, data| data.clear());
                if let Some(control) = control.as_mut() {
                    control.for_each(|_, data| data.clear());
                }
                return;
            };
            readings_in.for_each(|cap, data| batches.push_message(&cap, data));
            // Updates are applied as they come: a lookup at `t` is made only
            // once the registry's frontier passed `t`, and later updates
            // never change it (see `EnrichState::at` for checkpoints).
            updates_in.for_each(|cap, data| {
                if let Some(t) = cap.least().copied() {
                    for u in data.drain(..) {
                        st.apply(u, t);
                    }
                }
            });
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| {
                    for ck in data.drain(..) {
                        if let Some(at) = cap.retain_least(ACKS) {
                            requests.push((ck, at));
                        }
                    }
                });
                requests.sort_by_key(|(c, _)| (c.time, c.id));
            }
            let readings_f = frontier_of(frontiers.first());
            let registry = frontier_of(frontiers.get(1));
            let control_f = if control.is_some() {
                frontier_of(frontiers.get(2))
            } else {
                None
            };
            let all = input_frontier(frontiers);
            let drain_to = least(readings_f, control_f);
            let mut enriched_out = enriched_out.activate();
            let mut rejects_out = rejects_out.activate();
            let mut acks_out = acks_out.activate();

            // Joins one time's readings (all stamped `t`; `fresh`: just
            // taken from the input, to be counted), keeping those the
            // registry has not caught up with yet in `keep`; returns the
            // least join time of those.
            let mut join_batch = |st: &mut EnrichState,
                                  t: Timestamp,
                                  data: Vec<Reading>,
                                  fresh: bool,
                                  keep: &mut Vec<Reading>| {
                let cap = held[0].delayed(&t);
                let mut out = enriched_out.session(&cap);
                let mut first = None;
                for r in data {
                    let at = if fresh {
                        st.receive(&r, t)
                    } else {
                        r.ts.max(t)
                    };
                    if !known_at(registry, at) {
                        first = least(first, Some(at));
                        keep.push(r);
                        continue;
                    }
                    match st.join(r, at, unknown) {
                        Joined::Enriched(e) => out.give(e),
                        Joined::Unknown(r) => refused.push(reject(r)),
                    }
                }
                drop(out);
                if !refused.is_empty() {
                    let cap = held[1].delayed(&t);
                    rejects_out.session(&cap).give_iterator(refused.drain(..));
                }
                first
            };

            // Readings the registry has now caught up with (only batches
            // that hold some).
            waiting.retain(|t, w| {
                if !known_at(registry, w.first) {
                    return true;
                }
                let readings = std::mem::take(&mut w.readings);
                match join_batch(&mut st, *t, readings, false, &mut keep) {
                    Some(first) => {
                        w.first = first;
                        w.readings = std::mem::take(&mut keep);
                        true
                    }
                    None => false,
                }
            });

            // New readings in time order, and checkpoints between them.
            loop {
                let next = requests.first().map(|(c, _)| *c);
                let bound = match next {
                    Some(c) if !c.is_final() => least(drain_to, Some(c.time)),
                    _ => drain_to,
                };
                batches.drain(bound, |step| {
                    if let Step::Batch(t, data) = step
                        && let Some(first) = join_batch(&mut st, t, data, true, &mut keep)
                    {
                        st.tally.waited += keep.len() as u64;
                        let readings = std::mem::take(&mut keep);
                        waiting.insert(t, Waiting { first, readings });
                    }
                });
                // A checkpoint is taken once every input passed it and no
                // reading before it waits: the sinks seal those readings
                // into it, so the snapshot must not hold them.
                let due = match next {
                    Some(c) if c.is_final() => drain_to.is_none(),
                    Some(c) => c.due(all),
                    None => false,
                };
                if !due || !waiting.is_empty() {
                    break;
                }
                let (ck, at) = requests.remove(0);
                if let Some(encode) = &encode {
                    // The counts ride in the state (EnrichTally); the core
                    // tally has no fields for them.
                    let encoded = encode(&st.at(ck.time), &Tally::default());
                    let ack = Ack::of_state(&ck, &op_name, worker, encoded, Tally::default());
                    acks_out.session(&at).give(ack);
                }
            }

            // Nothing before this is looked up or emitted any more.
            let next_ck = requests
                .first()
                .map(|(c, _)| c.time)
                .filter(|t| *t != FINAL);
            let settled = least(
                least(drain_to, next_ck),
                waiting.first_key_value().map(|(t, _)| *t),
            );
            if let Some(bound) = settled {
                st.compact(bound);
            }
            if let Some(last) = caps.follow(settled) {
                tally_out
                    .activate()
                    .session(&last[2])
                    .give(std::mem::take(&mut st.tally));
            }
        }
    });
    EnrichStreams {
        enriched,
        rejects,
        tally,
    }
}
