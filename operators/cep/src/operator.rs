//! The timely operator: events exchanged by key, matched in event-time order
//! as the frontier passes them, state in every checkpoint.

use std::hash::Hash;

use iotflow_core::checkpoint::{Ack, Checkpoints, Epochs, Snapshot, Step, encoder, input_frontier};
use iotflow_core::held::Held;
use iotflow_core::state::SnapshotError;
use iotflow_core::tally::Tally;
use iotflow_types::{Timestamp, stable_hash};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::keyed::{CepState, Pushed};
use crate::matched::{Match, Timeout};
use crate::nfa::Outcome;
use crate::pattern::{Event, Pattern};
use crate::tally::CepTally;

/// The outputs of [`Cep::match_pattern`].
#[derive(Debug)]
pub struct CepStreams<'scope, K, E, O> {
    /// One record per match, made by the select function; stamped at the
    /// time the match completed (its last event, or for a trailing
    /// absence, its deadline), or at the frontier if that was later.
    pub matches: StreamVec<'scope, Timestamp, O>,
    /// Partial matches that `within` pruned, with their key.
    pub timeouts: StreamVec<'scope, Timestamp, (K, Timeout<E>)>,
    /// Events whose event time was already behind the frontier.
    pub late: StreamVec<'scope, Timestamp, E>,
    /// Events refused because their key's buffer was full.
    pub overflow: StreamVec<'scope, Timestamp, E>,
    /// Per worker, at the end of input: what the operator did.
    pub tally: StreamVec<'scope, Timestamp, CepTally>,
}

/// Complex event processing on a stream of events.
pub trait Cep<'scope, E: Event> {
    /// Matches `pattern` against the events of each key (`key`), in event
    /// time, and turns every match into a record with `select`. With
    /// `checkpoints`, the state is in every checkpoint and restored from the
    /// one being recovered (the pattern itself is rebuilt by the caller).
    ///
    /// ```
    /// use iotflow_cep::{Cep, Pattern};
    /// use iotflow_types::Reading;
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// // A door opened and not closed within 5 minutes.
    /// let pattern = Pattern::<Reading>::begin("open")
    ///     .filter(|r| r.metric.as_str() == "door" && r.value == 1.0)
    ///     .not_followed_by("closed")
    ///     .filter(|r| r.metric.as_str() == "door" && r.value == 0.0)
    ///     .within_ms(300_000)
    ///     .build()
    ///     .expect("valid pattern");
    /// let rx = timely::example(move |scope| {
    ///     vec![
    ///         Reading::new("door-1", 1_000, "door", 1.0),
    ///         Reading::new("door-1", 60_000, "door", 0.0),
    ///         Reading::new("door-2", 2_000, "door", 1.0),
    ///     ]
    ///     .to_stream(scope)
    ///     .match_pattern("door-open", &pattern, |r: &Reading| r.device.clone(), |k, m| {
    ///         (k.to_string(), m.get("open")[0].ts)
    ///     }, None)
    ///     .expect("nothing to restore")
    ///     .matches
    ///     .capture()
    /// });
    /// let alerts: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// assert_eq!(alerts, [("door-2".to_string(), 2_000)]);
    /// ```
    fn match_pattern<K, O, KF, SF>(
        self,
        name: &str,
        pattern: &Pattern<E>,
        key: KF,
        select: SF,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<CepStreams<'scope, K, E, O>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        O: Clone + 'static,
        KF: Fn(&E) -> K + Clone + 'static,
        SF: Fn(&K, &Match<E>) -> O + 'static;
}

impl<'scope, E: Event> Cep<'scope, E> for StreamVec<'scope, Timestamp, E> {
    fn match_pattern<K, O, KF, SF>(
        self,
        name: &str,
        pattern: &Pattern<E>,
        key: KF,
        select: SF,
        checkpoints: Option<&Checkpoints<'scope>>,
    ) -> Result<CepStreams<'scope, K, E, O>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        O: Clone + 'static,
        KF: Fn(&E) -> K + Clone + 'static,
        SF: Fn(&K, &Match<E>) -> O + 'static,
    {
        let restored = match checkpoints {
            Some(c) => c.restore::<Snapshot<CepState<K, E>>>(name)?,
            None => None,
        };
        let state = restored.map_or_else(CepState::default, |s| s.state);
        Ok(cep_operator(
            self,
            name,
            pattern.clone(),
            key,
            select,
            state,
            checkpoints,
        ))
    }
}

fn cep_operator<'scope, K, E, O, KF, SF>(
    stream: StreamVec<'scope, Timestamp, E>,
    name: &str,
    pattern: Pattern<E>,
    key: KF,
    select: SF,
    state: CepState<K, E>,
    checkpoints: Option<&Checkpoints<'scope>>,
) -> CepStreams<'scope, K, E, O>
where
    K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
    E: Event,
    O: Clone + 'static,
    KF: Fn(&E) -> K + Clone + 'static,
    SF: Fn(&K, &Match<E>) -> O + 'static,
{
    const ACKS: usize = 5;
    let worker = stream.scope().index();
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let route_key = key.clone();
    let pact = Exchange::new(move |e: &E| stable_hash(&route_key(e)));
    let mut input = builder.new_input(stream, pact);
    let mut control = checkpoints.map(|c| builder.new_input(c.control(), Pipeline));
    let (matches_out, matches) = builder.new_output();
    let (timeouts_out, timeouts) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (overflow_out, overflow) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let encode = checkpoints.map(|c| {
        c.add_acks(acks);
        encoder::<CepState<K, E>>()
    });
    let mut matches_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<O>>>::from(matches_out);
    let mut timeouts_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<(K, Timeout<E>)>>>::from(timeouts_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<E>>>::from(late_out);
    let mut overflow_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<E>>>::from(overflow_out);
    let mut tally_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<CepTally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let op_name = name.to_owned();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        let mut caps = Held::new(caps);
        let mut st = state;
        let mut epochs: Epochs<E> = Epochs::default();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut matches_out = matches_out.activate();
            let mut timeouts_out = timeouts_out.activate();
            let mut late_out = late_out.activate();
            let mut overflow_out = overflow_out.activate();
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let now = *held[0].time();
            let mut emit = |k: &K, at: Timestamp, o: Outcome<E>| {
                let at = at.max(now);
                match o {
                    Outcome::Match(m) => {
                        let cap = held[0].delayed(&at);
                        matches_out.session(&cap).give(select(k, &m));
                    }
                    Outcome::Timeout(t) => {
                        let cap = held[1].delayed(&at);
                        timeouts_out.session(&cap).give((k.clone(), t));
                    }
                }
            };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => {
                    // Everything before `t` is complete: match it first, so
                    // what an event meets depends on event time only.
                    st.advance(&pattern, Some(t), &mut emit);
                    let at = t.max(now);
                    for e in data {
                        match st.push(&pattern, key(&e), e, t) {
                            Pushed::Buffered => {}
                            Pushed::Late(e) => late_out.session(&held[2].delayed(&at)).give(e),
                            Pushed::Overflow(e) => {
                                overflow_out.session(&held[3].delayed(&at)).give(e)
                            }
                        }
                    }
                }
                Step::Checkpoint(ck, at) => {
                    let bound = (!ck.is_final()).then_some(ck.time);
                    st.advance(&pattern, bound, &mut emit);
                    if let Some(encode) = &encode {
                        // The counts ride in the state (CepTally); the core
                        // tally has no fields for them.
                        let encoded = encode(&st, &Tally::default());
                        let ack = Ack::of_state(&ck, &op_name, worker, encoded, Tally::default());
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            st.advance(&pattern, frontier, &mut emit);
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[4])
                    .give(std::mem::take(&mut st.tally));
            }
        }
    });
    CepStreams {
        matches,
        timeouts,
        late,
        overflow,
        tally,
    }
}
