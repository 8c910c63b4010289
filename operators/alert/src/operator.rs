//! The timely operator: signals exchanged by key, applied in lifecycle-time
//! order as the frontier passes them, deadlines expired by the frontier,
//! state in every checkpoint.

use iotflow_core::checkpoint::{Ack, Checkpoints, Epochs, Snapshot, Step, encoder, input_frontier};
use iotflow_core::held::Held;
use iotflow_core::tally::Tally;
use iotflow_types::Timestamp;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::error::AlertError;
use crate::event::AlertEvent;
use crate::policy::AlertPolicy;
use crate::signal::Signal;
use crate::state::AlertState;
use crate::tally::AlertTally;

/// The outputs of [`Alerting::alerts`].
#[derive(Debug)]
pub struct AlertStreams<'scope> {
    /// Lifecycle events, each stamped at its own time
    /// ([`AlertEvent::at`]).
    pub events: StreamVec<'scope, Timestamp, AlertEvent>,
    /// Per worker, at the end of input: what the operator did.
    pub tally: StreamVec<'scope, Timestamp, AlertTally>,
}

/// Alert lifecycles over a stream of condition [`Signal`]s.
pub trait Alerting<'scope> {
    /// Turns signals into alert lifecycle events per (device, rule), by
    /// `policy`: `opened` on the first signal outside a cool-down, repeats
    /// deduplicated and counted, `escalated` when the condition persists
    /// (or worsens), `resolved` once the watermark passes the last
    /// signal's time plus `resolve_after_ms`, whether or not any other
    /// signal arrives. With `checkpoints`, the state is in every checkpoint and restored
    /// from the one being recovered.
    ///
    /// ```
    /// use iotflow_alert::{AlertPolicy, Alerting, Severity, Signal, Transition};
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// let policy = AlertPolicy::default()
    ///     .with_resolve_after_ms(1_000)
    ///     .with_escalate_after_ms(2_000)
    ///     .with_cooldown_ms(5_000);
    /// let rx = timely::example(move |scope| {
    ///     // Hot every 500 ms from 0 to 3 000, then once more at 4 500
    ///     // (a cool-down after the resolve at 4 000 suppresses it).
    ///     (0..=6u64).map(|i| i * 500).chain([4_500])
    ///         .map(|ts| Signal::new("d-1", "hot", ts, Severity::Warning))
    ///         .collect::<Vec<_>>()
    ///         .to_stream(scope)
    ///         .alerts("lifecycle", &policy, None)
    ///         .expect("valid policy")
    ///         .events
    ///         .capture()
    /// });
    /// let events: Vec<_> = rx.try_iter()
    ///     .flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
    ///     .map(|e| (e.transition, e.at, e.severity))
    ///     .collect();
    /// assert_eq!(events, [
    ///     (Transition::Opened, 0, Severity::Warning),
    ///     (Transition::Escalated, 2_000, Severity::Minor),
    ///     (Transition::Resolved, 4_000, Severity::Minor),
    /// ]);
    /// ```
    fn alerts(
        self,
        name: &str,
        policy: &AlertPolicy,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<AlertStreams<'scope>, AlertError>;
}

impl<'scope> Alerting<'scope> for StreamVec<'scope, Timestamp, Signal> {
    fn alerts(
        self,
        name: &str,
        policy: &AlertPolicy,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<AlertStreams<'scope>, AlertError> {
        policy.validate()?;
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<AlertState>>(name)?,
            None => None,
        };
        let mut state = restored.map_or_else(AlertState::default, |s| s.state);
        state.rebuild_timers();
        Ok(alert_operator(
            self,
            name,
            policy.clone(),
            state,
            checkpoints,
        ))
    }
}

fn alert_operator<'scope>(
    stream: StreamVec<'scope, Timestamp, Signal>,
    name: &str,
    policy: AlertPolicy,
    state: AlertState,
    checkpoints: Option<&Checkpoints<'scope>>,
) -> AlertStreams<'scope> {
    const ACKS: usize = 2;
    let worker = stream.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let pact = Exchange::new(|s: &Signal| s.key_hash());
    let mut input = builder.new_input(stream, pact);
    let mut control = checkpoints.map(|c| builder.new_input(c.control(), Pipeline));
    let (events_out, events) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let encode = checkpoints.map(|c| {
        c.add_acks(acks);
        encoder::<AlertState>()
    });
    let mut events_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<AlertEvent>>>::from(events_out);
    let mut tally_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<AlertTally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let mut st = state;
        let mut epochs: Epochs<Signal> = Epochs::default();
        let mut ready: Vec<AlertEvent> = Vec::new();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let now = *held[0].time();
            let mut flush = |ready: &mut Vec<AlertEvent>| {
                if ready.is_empty() {
                    return;
                }
                let mut out = events_out.activate();
                for e in ready.drain(..) {
                    out.session(&held[0].delayed(&e.at.max(now))).give(e);
                }
            };
            let mut emit = |e: AlertEvent| ready.push(e);
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => {
                    for s in data {
                        st.push(t, s);
                    }
                }
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    st.release(bound, &policy, &mut emit);
                    if let Some(encode) = &encode {
                        // The counts ride in the state (AlertTally); the
                        // core tally has no fields for them.
                        let encoded = encode(&st, &Tally::default());
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, Tally::default());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            st.release(frontier, &policy, &mut emit);
            flush(&mut ready);
            if let Some(last) = caps.follow(frontier) {
                tally_out.activate().session(&last[1]).give(st.take_tally());
            }
        }
    });
    AlertStreams { events, tally }
}
