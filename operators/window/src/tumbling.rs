use std::hash::Hash;
use std::time::Duration;

use iotflow_core::checkpoint::{
    Ack, Checkpoints, EncodeFn, Epochs, Snapshot, Step, encoder, input_frontier,
};
use iotflow_core::event_time::Lateness;
use iotflow_core::held::Held;
use iotflow_core::state::SnapshotError;
use iotflow_core::tally::Tally;
use iotflow_types::{Reading, SeriesKey, Timestamp, WindowResult, stable_hash};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::state::{Placed, TumblingState};

/// Configuration of a tumbling window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TumblingConfig {
    /// Window size in ms (windows are aligned to multiples of it).
    pub size_ms: u64,
    /// How long after the watermark passed a window it still accepts
    /// readings (ms). Default 0.
    #[serde(default)]
    pub allowed_lateness_ms: u64,
}

impl TumblingConfig {
    /// Windows of `size`.
    pub fn new(size: Duration) -> Self {
        TumblingConfig {
            size_ms: (size.as_millis() as u64).max(1),
            allowed_lateness_ms: 0,
        }
    }

    /// Keeps windows open `allowed` after the watermark passed them.
    pub fn with_allowed_lateness(mut self, allowed: Duration) -> Self {
        self.allowed_lateness_ms = allowed.as_millis() as u64;
        self
    }

    /// The lateness rule an event-time source should apply in front of this
    /// window, so that late readings are caught deterministically at the
    /// source.
    pub fn lateness(&self) -> Lateness {
        Lateness::Window {
            size_ms: self.size_ms,
            allowed_ms: self.allowed_lateness_ms,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), iotflow_core::Error> {
        if self.size_ms == 0 {
            return Err(iotflow_core::Error::Config(
                "window size must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// The outputs of a window operator.
#[derive(Debug)]
pub struct WindowStreams<'scope, K> {
    /// One result per key and window, stamped with the window's last instant
    /// (`end − 1 + allowed lateness`), below the frontier that fired it.
    pub windows: StreamVec<'scope, Timestamp, WindowResult<K>>,
    /// Readings whose window had already fired.
    pub late: StreamVec<'scope, Timestamp, Reading>,
    /// Per worker, at the end: windows emitted, readings windowed, late.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
}

/// Tumbling event-time windows over readings.
pub trait Tumbling<'scope> {
    /// Tumbling windows of `size` per (device, metric) with count, min, max,
    /// sum and mean.
    ///
    /// ```
    /// use std::time::Duration;
    /// use iotflow_types::Reading;
    /// use iotflow_window::Tumbling;
    /// use timely::dataflow::operators::{ToStream, Capture, capture::Event};
    ///
    /// let rx = timely::example(|scope| {
    ///     let readings = vec![
    ///         Reading::new("d-1", 1_000, "temp", 20.0),
    ///         Reading::new("d-1", 9_000, "temp", 22.0),
    ///         Reading::new("d-1", 10_500, "temp", 30.0),
    ///     ];
    ///     readings.to_stream(scope).tumbling("10s", Duration::from_secs(10)).windows.capture()
    /// });
    /// let mut windows: Vec<_> = rx.try_iter().flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] }).collect();
    /// windows.sort_by_key(|w| w.start);
    /// assert_eq!((windows[0].start, windows[0].stats.count, windows[0].stats.mean()), (0, 2, 21.0));
    /// assert_eq!((windows[1].start, windows[1].stats.max), (10_000, 30.0));
    /// ```
    fn tumbling(self, name: &str, size: Duration) -> WindowStreams<'scope, SeriesKey>;

    /// Tumbling windows keyed by any function of the reading.
    fn tumbling_by<K, F>(
        self,
        name: &str,
        config: &TumblingConfig,
        key: F,
    ) -> WindowStreams<'scope, K>
    where
        K: Clone + Eq + Hash + Send + 'static,
        F: Fn(&Reading) -> K + Clone + 'static;
}

impl<'scope> Tumbling<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn tumbling(self, name: &str, size: Duration) -> WindowStreams<'scope, SeriesKey> {
        self.tumbling_by(name, &TumblingConfig::new(size), SeriesKey::of)
    }

    fn tumbling_by<K, F>(
        self,
        name: &str,
        config: &TumblingConfig,
        key: F,
    ) -> WindowStreams<'scope, K>
    where
        K: Clone + Eq + Hash + Send + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
    {
        build(self, name, config, key, None)
    }
}

/// Tumbling windows that take part in checkpoints.
pub trait TumblingCheckpointed<'scope> {
    /// [`Tumbling::tumbling_by`] with its state in every checkpoint of
    /// `checkpoints`, restored from the checkpoint being recovered (on any
    /// number of workers).
    fn tumbling_checkpointed<K, F>(
        self,
        name: &str,
        config: &TumblingConfig,
        key: F,
        checkpoints: &Checkpoints<'scope>,
    ) -> Result<WindowStreams<'scope, K>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static;
}

impl<'scope> TumblingCheckpointed<'scope> for StreamVec<'scope, Timestamp, Reading> {
    fn tumbling_checkpointed<K, F>(
        self,
        name: &str,
        config: &TumblingConfig,
        key: F,
        checkpoints: &Checkpoints<'scope>,
    ) -> Result<WindowStreams<'scope, K>, SnapshotError>
    where
        K: Clone + Eq + Hash + Send + Serialize + DeserializeOwned + 'static,
        F: Fn(&Reading) -> K + Clone + 'static,
    {
        let restored = checkpoints.restore::<Snapshot<TumblingState<K>>>(name)?;
        let hooks = Hooks {
            checkpoints,
            restored,
            encode: encoder::<TumblingState<K>>(),
        };
        Ok(build(self, name, config, key, Some(hooks)))
    }
}

/// What a checkpointed operator needs besides its logic.
struct Hooks<'a, 'scope, S> {
    checkpoints: &'a Checkpoints<'scope>,
    restored: Option<Snapshot<S>>,
    encode: EncodeFn<S>,
}

/// The window operator. Input is applied in time order once the frontier
/// has passed it (see [`iotflow_core::checkpoint::Epochs`]), so the state at
/// any frontier, and at every checkpoint, is "all readings stamped before it".
fn build<'scope, K, F>(
    stream: StreamVec<'scope, Timestamp, Reading>,
    name: &str,
    config: &TumblingConfig,
    key: F,
    hooks: Option<Hooks<'_, 'scope, TumblingState<K>>>,
) -> WindowStreams<'scope, K>
where
    K: Clone + Eq + Hash + Send + 'static,
    F: Fn(&Reading) -> K + Clone + 'static,
{
    const ACKS: usize = 3;
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let worker = stream.scope().index();
    let route_key = key.clone();
    let pact = Exchange::new(move |r: &Reading| stable_hash(&route_key(r)));
    let mut input = builder.new_input(stream, pact);
    let mut control = hooks
        .as_ref()
        .map(|h| builder.new_input(h.checkpoints.control(), Pipeline));
    let (windows_out, windows) = builder.new_output();
    let (late_out, late) = builder.new_output();
    let (tally_out, tally) = builder.new_output();
    let (acks_out, acks) = builder.new_output();
    let mut windows_out =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowResult<K>>>>::from(windows_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Reading>>>::from(late_out);
    let mut tally_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tally_out);
    let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);
    let size_ms = config.size_ms.max(1);
    let allowed_ms = config.allowed_lateness_ms;
    let (restored, encode) = match hooks {
        Some(h) => {
            h.checkpoints.add_acks(acks);
            (h.restored, Some(h.encode))
        }
        None => (None, None),
    };
    let op_name = name.to_owned();

    builder.build(move |mut caps| {
        caps.truncate(ACKS);
        // Held at the input frontier: results go out at max(frontier, window end).
        let mut caps = Held::new(caps);
        let Snapshot {
            state: mut st,
            mut tally,
        } = restored.unwrap_or_else(|| Snapshot {
            state: TumblingState::<K>::new(size_ms, allowed_ms),
            tally: Tally::default(),
        });
        let mut epochs: Epochs<Reading> = Epochs::default();
        let mut late_buf = Vec::new();
        move |frontiers| {
            let Some(held) = caps.get() else { return };
            let mut windows_out = windows_out.activate();
            let mut late_out = late_out.activate();
            let mut acks_out = acks_out.activate();
            input.for_each(|cap, data| epochs.push_message(&cap, data));
            if let Some(control) = control.as_mut() {
                control.for_each(|cap, data| epochs.request_message(&cap, data, ACKS));
            }
            let frontier = input_frontier(frontiers);
            let now = *held[0].time();
            // Fires windows closed at `bound`, each at its last instant (+
            // allowed lateness): strictly below the frontier that fired it,
            // so a downstream operator whose frontier passed T has every
            // result stamped < T.
            let mut fire =
                |st: &mut TumblingState<K>, tally: &mut Tally, bound: Option<Timestamp>| {
                    st.fire(bound, |results| {
                        let Some(first) = results.first() else { return };
                        let last = first.end - 1 + allowed_ms;
                        let at = held[0].delayed(&now.max(last));
                        tally.windows += results.len() as u64;
                        tally.windowed += results.iter().map(|w| w.stats.count).sum::<u64>();
                        windows_out.session(&at).give_iterator(results.into_iter());
                    });
                };
            epochs.drain(frontier, |step| match step {
                Step::Batch(t, data) => {
                    for r in data {
                        let k = key(&r);
                        if st.add(k, r.ts, r.value) == Placed::Late {
                            late_buf.push(r);
                        }
                    }
                    if !late_buf.is_empty() {
                        tally.late += late_buf.len() as u64;
                        let at = held[1].delayed(&t.max(now));
                        late_out.session(&at).give_iterator(late_buf.drain(..));
                    }
                }
                Step::Checkpoint(ck, at) => {
                    fire(&mut st, &mut tally, (!ck.is_final()).then_some(ck.time));
                    if let Some(encode) = &encode {
                        let ack = Ack::of_state(
                            &ck,
                            &op_name,
                            worker,
                            encode(&st, &tally),
                            tally.clone(),
                        );
                        acks_out.session(&at).give(ack);
                    }
                }
            });
            fire(&mut st, &mut tally, frontier);
            if let Some(last) = caps.follow(frontier) {
                tally_out
                    .activate()
                    .session(&last[2])
                    .give(std::mem::take(&mut tally));
            }
        }
    });
    WindowStreams {
        windows,
        late,
        tally,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::operators::capture::Event;
    use timely::dataflow::operators::{Capture, ToStream};

    #[test]
    fn results_are_stamped_at_the_window_last_instant() {
        let rx = timely::example(|scope| {
            let v: Vec<Reading> = (0..50)
                .map(|i| Reading::new("d", i * 700, "temp", i as f64))
                .collect();
            let cfg = TumblingConfig::new(Duration::from_secs(10))
                .with_allowed_lateness(Duration::from_millis(5));
            v.to_stream(scope)
                .tumbling_by("w", &cfg, |r: &Reading| r.device.clone())
                .windows
                .capture()
        });
        let mut n = 0;
        for e in rx.try_iter() {
            if let Event::Messages(t, windows) = e {
                for w in windows {
                    assert_eq!(t.least(), Some(&(w.end - 1 + 5)), "{w:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 4);
    }
}
