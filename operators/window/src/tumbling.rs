use std::hash::Hash;
use std::time::Duration;

use iotflow_core::checkpoint::{Checkpoints, Snapshot, encoder};
use iotflow_core::event_time::Lateness;
use iotflow_core::state::SnapshotError;
use iotflow_core::tally::Tally;
use iotflow_types::{Reading, SeriesKey, Stats, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::agg::StatsAggregate;
use crate::operator::{WindowState, WindowStreams, window_operator};
use crate::spec::{WindowOptions, WindowSpec};

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

    /// The same windows as a [`WindowSpec`].
    pub fn spec(&self) -> WindowSpec {
        WindowSpec::tumbling(self.size_ms).with_allowed_lateness(self.allowed_lateness_ms)
    }

    fn state<K: Eq + Hash + Clone>(&self) -> Snapshot<WindowState<K, Stats>> {
        Snapshot {
            state: self.spec().state(),
            tally: Tally::default(),
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
        let options = WindowOptions::default();
        window_operator(
            self,
            name,
            key,
            StatsAggregate,
            &options,
            config.state(),
            None,
        )
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
        let state = checkpoints
            .restore::<Snapshot<WindowState<K, Stats>>>(name)?
            .unwrap_or_else(|| config.state());
        let hooks = Some((checkpoints, encoder::<WindowState<K, Stats>>()));
        let options = WindowOptions::default();
        Ok(window_operator(
            self,
            name,
            key,
            StatsAggregate,
            &options,
            state,
            hooks,
        ))
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
                    // Fired when the watermark passed the end; allowed
                    // lateness keeps it open for updates, not closed.
                    assert_eq!(t.least(), Some(&(w.end - 1)), "{w:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 4);
    }
}
