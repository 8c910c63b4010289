//! The timely operator: readings and registry updates exchanged by
//! device, applied in event-time order as the frontier passes them,
//! deadlines fired by the frontier, state in every checkpoint.

use iotflow_core::checkpoint::{Ack, Checkpoints, Epochs, Snapshot, Step, encoder, input_frontier};
use iotflow_core::held::Held;
use iotflow_core::tally::Tally;
use iotflow_types::{DeviceUpdate, Reading, Timestamp, stable_hash};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::error::FleetError;
use crate::presence::config::PresenceConfig;
use crate::presence::event::{LastSeen, PresenceEvent};
use crate::presence::state::{Output, PresenceState};
use crate::presence::tally::PresenceTally;

/// The outputs of [`Presence::presence`].
#[derive(Debug)]
pub struct PresenceStreams<'scope> {
    /// `online` and `offline` events, each stamped at its own time
    /// ([`PresenceEvent::at`]).
    pub events: StreamVec<'scope, Timestamp, PresenceEvent>,
    /// Last-seen reports, each stamped at its report time
    /// ([`LastSeen::at`]).
    pub last_seen: StreamVec<'scope, Timestamp, LastSeen>,
    /// Readings whose event time was already behind their batch's time.
    pub late: StreamVec<'scope, Timestamp, Reading>,
    /// Per worker, at the end of input: what the operator did.
    pub tally: StreamVec<'scope, Timestamp, PresenceTally>,
}

/// Online/offline tracking of devices, in event time.
pub trait Presence<'scope> {
    /// Tracks which devices report: `online` at a device's first reading
    /// and at its first reading after being offline; `offline` once the
    /// watermark passes its last reading's time + `offline_after_ms` with
    /// no reading in between, whether or not anything else arrives (an
    /// idle device goes offline as soon as other devices' readings move
    /// the watermark past its deadline, and at the end of input every
    /// device still online goes offline). With `registry`, a registered
    /// device that never sends goes offline `offline_after_ms` after its
    /// registration. Every device's latest reading is reported on the
    /// `last_seen` output every `last_seen_every_ms` when it changed. With
    /// `checkpoints`, the state is in every checkpoint and restored from
    /// the one being recovered.
    ///
    /// ```
    /// use iotflow_fleet::{Presence, PresenceConfig, PresenceKind};
    /// use iotflow_types::Reading;
    /// use std::time::Duration;
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// let config = PresenceConfig::offline_after(Duration::from_secs(30));
    /// let rx = timely::example(move |scope| {
    ///     // Sensor a reports at 0 and 10 s, then at 100 s again.
    ///     [0, 10_000, 100_000]
    ///         .map(|ts| Reading::new("a", ts, "temp", 20.0))
    ///         .to_vec()
    ///         .to_stream(scope)
    ///         .presence("presence", &config, None, None)
    ///         .expect("valid config")
    ///         .events
    ///         .capture()
    /// });
    /// let events: Vec<_> = rx.try_iter()
    ///     .flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
    ///     .map(|e| (e.kind, e.at, e.last_seen))
    ///     .collect();
    /// assert_eq!(events, [
    ///     (PresenceKind::Online, 0, None),
    ///     (PresenceKind::Offline, 40_000, Some(10_000)),
    ///     (PresenceKind::Online, 100_000, Some(10_000)),
    ///     // The input ended: the frontier passes every deadline.
    ///     (PresenceKind::Offline, 130_000, Some(100_000)),
    /// ]);
    /// ```
    fn presence(
        self,
        name: &str,
        config: &PresenceConfig,
        registry: Option<StreamVec<'scope, Timestamp, DeviceUpdate>>,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<PresenceStreams<'scope>, FleetError>;
}

impl<'scope> Presence<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn presence(
        self,
        name: &str,
        config: &PresenceConfig,
        registry: Option<StreamVec<'scope, Timestamp, DeviceUpdate>>,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<PresenceStreams<'scope>, FleetError> {
        config.validate()?;
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<PresenceState>>(name)?,
            None => None,
        };
        let mut state = restored.map_or_else(PresenceState::default, |s| s.state);
        state.rebuild();
        Ok(presence_operator(
            self,
            registry,
            name,
            config.clone(),
            state,
            checkpoints,
        ))
    }
}

/// What the operator's data inputs carry, in one time-ordered stash.
enum Input {
    Reading(Reading),
    Update(DeviceUpdate),
}

fn presence_operator<'scope>(
    readings: StreamVec<'scope, Timestamp, Reading>,
    registry: Option<StreamVec<'scope, Timestamp, DeviceUpdate>>,
    name: &str,
    config: PresenceConfig,
    state: PresenceState,
    checkpoints: Option<&Checkpoints<'scope>>,
) -> PresenceStreams<'scope> {
    const TALLY: usize = 3;
    const ACKS: usize = 4;
    let worker = readings.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), readings.scope());
    let mut readings_in = builder.new_input(
        readings,
        Exchange::new(|r: &Reading| stable_hash(&r.device)),
    );
    let mut registry_in = registry
        .map(|r| builder.new_input(r, Exchange::new(|u: &DeviceUpdate| stable_hash(&u.device))));
    let mut control = checkpoints.map(|c| builder.new_input(c.control(), Pipeline));
    let (events_out, events) = builder.new_output();
    let (last_seen_out, last_seen) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let encode = checkpoints.map(|c| {
        c.add_acks(acks);
        encoder::<PresenceState>()
    });
    let mut events_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<PresenceEvent>>>::from(events_out);
    let mut last_seen_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<LastSeen>>>::from(last_seen_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Reading>>>::from(late_out);
    let mut tally_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<PresenceTally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let mut st = state;
        let mut epochs: Epochs<Input> = Epochs::default();
        let mut ready: Vec<Output> = Vec::new();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut acks_out = acks_out.activate();
            readings_in.for_each(|cap, data| {
                if let Some(t) = cap.least() {
                    epochs.push(*t, data.drain(..).map(Input::Reading).collect());
                }
            });
            if let Some(registry_in) = registry_in.as_mut() {
                registry_in.for_each(|cap, data| {
                    if let Some(t) = cap.least() {
                        epochs.push(*t, data.drain(..).map(Input::Update).collect());
                    }
                });
            }
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let now = *held[0].time();
            let mut emit = |o: Output| ready.push(o);
            let mut late: Vec<(Timestamp, Reading)> = Vec::new();
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => {
                    // Everything before `t` is complete: apply it first, so
                    // what a reading meets depends on event time only.
                    st.release(Some(t), &config, &mut emit);
                    for item in data {
                        match item {
                            Input::Reading(r) => {
                                if let Err(r) = st.push_reading(t, r) {
                                    late.push((t, r));
                                }
                            }
                            Input::Update(u) => st.push_update(t, u),
                        }
                    }
                }
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    st.release(bound, &config, &mut emit);
                    if let Some(encode) = &encode {
                        // The counts ride in the state (PresenceTally); the
                        // core tally has no fields for them.
                        let encoded = encode(&st, &Tally::default());
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, Tally::default());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            st.release(frontier, &config, &mut emit);
            if !late.is_empty() {
                let mut out = late_out.activate();
                for (t, r) in late {
                    out.session(&held[2].delayed(&t.max(now))).give(r);
                }
            }
            if !ready.is_empty() {
                let mut events_out = events_out.activate();
                let mut last_seen_out = last_seen_out.activate();
                for o in ready.drain(..) {
                    let at = o.at().max(now);
                    match o {
                        Output::Event(e) => events_out.session(&held[0].delayed(&at)).give(e),
                        Output::LastSeen(l) => last_seen_out.session(&held[1].delayed(&at)).give(l),
                    }
                }
            }
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[TALLY])
                    .give(st.take_tally());
            }
        }
    });
    PresenceStreams {
        events,
        last_seen,
        late,
        tally,
    }
}
