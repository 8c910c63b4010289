//! Fleet status: which devices report, when each was last seen, and how
//! the fleet breaks down by tenant, group, status, firmware and presence,
//! all in event time.
//!
//! Operating a fleet starts with two questions: *is this device still
//! talking to us?* and *what do we have out there?* The first is about the
//! telemetry stream, the second about the device registry; the answer to
//! "how many of acme's meters are offline" needs both. This crate answers
//! them as dataflow operators, so the answers move with event time like
//! every other iotflow result: the same on a laptop replaying a day of
//! history in a second and on a cluster following live traffic.
//!
//! # Presence
//!
//! [`Presence::presence`] turns a stream of [`Reading`](iotflow_types::Reading)s
//! (and, optionally, the registry's [`DeviceUpdate`](iotflow_types::DeviceUpdate)s)
//! into [`PresenceEvent`]s, with `offline_after_ms` from a
//! [`PresenceConfig`]:
//!
//! * a device's first reading ever is `online` at that reading's time
//!   (`last_seen: None`);
//! * a device with no reading for `offline_after_ms` goes `offline` at
//!   its last reading's time + `offline_after_ms`;
//! * the first reading after that is `online` again at its time, with the
//!   last reading before the gap as `last_seen`;
//! * with a registry stream, a registered device that has never sent goes
//!   `offline` `offline_after_ms` after its registration (`last_seen:
//!   None`); removing it before that cancels the expectation. Registry
//!   changes of a device that has sent do not change its presence.
//!
//! Offline is an *absence*, and absences are timers in event time: the
//! `offline` event of a deadline `d` fires once the operator's frontier
//! (the watermark) passes `d`. Nothing from the device itself is needed:
//! other devices' readings moving the watermark are enough, with the
//! input still open. At the end of input the frontier is empty, past
//! every deadline, so every device still online goes offline then, at its
//! own deadline. Events are stamped at their own time.
//!
//! Readings and updates are exchanged by a stable hash of the device and
//! held until the frontier passes their time; then every device's
//! readings, updates and deadlines are applied in time order. At one time
//! the order is: deadlines, then registry updates (by `at`, then `seq`),
//! then readings. So a reading exactly at a device's deadline comes
//! after its `offline` event and brings it straight back `online` (choose
//! `offline_after_ms` above the reporting interval). Disorder within the
//! watermark therefore never changes a result; neither does the number
//! of workers. A reading already behind its batch's time is *late*: it
//! goes to the `late` output, counted in the [`PresenceTally`]. A registry
//! update released behind its own time takes effect when it was released,
//! so none is late.
//!
//! The *last-seen view* is the latest reading time of each device. The
//! `last_seen` output reports it as an upsert stream: at every multiple of
//! `last_seen_every_ms`, one [`LastSeen`] per device whose last reading
//! changed in the period just ended (and after the end of input, the
//! last period's); the latest record of a device is its current value.
//! Presence events carry `last_seen` as well.
//!
//! The operator's state, a [`PresenceState`] per worker (every known
//! device and what waits for the watermark), is in every checkpoint and
//! restores, rescaled by device, on any number of workers.
//!
//! # Fleet views
//!
//! [`FleetViews::fleet_views`] counts registered devices by tenant,
//! group, status, firmware version and device type, and, given the
//! presence events, by `online`/`offline`/`unknown` per tenant. The
//! counts are maintained incrementally with differential dataflow:
//!
//! 1. a registry change *replaces* the device's previous description;
//!    [`Latest::latest`] keeps each device's current value (keyed, in
//!    event-time order) and turns each replacement into differential
//!    diffs, `−(device, old)` and `+(device, new)`, at the time it takes
//!    effect. Presence events become a collection the same way;
//! 2. each device contributes one [`FleetRow`] per view (a device in three
//!    groups counts in each); presence rows come from joining presence
//!    with the registry, so only registered devices count;
//! 3. `count()` maintains each row's size; every change of a row at a time
//!    comes out, once the frontier passes that time, as one
//!    [`FleetCount`] with the new `count` and the `delta`.
//!
//! To read a view, accumulate the deltas: [`FleetView`] folds
//! [`FleetCount`]s in any order, and once every change with `at ≤ T` is
//! in, holds the counts at `T`. A dashboard can instead keep the latest
//! `count` per row.
//!
//! The views are not in checkpoints (differential's arrangements are not
//! under the state contract): a restarted job rebuilds them from the
//! registry stream, which starts with a snapshot at time 0.
//!
//! # Example
//!
//! Presence with the registry, then the views over both:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use iotflow_fleet::{FleetView, FleetViews, Presence, PresenceConfig, View};
//! use iotflow_types::{DeviceInfo, DeviceUpdate, Reading};
//! use timely::dataflow::operators::{Capture, ToStream, capture::Event};
//!
//! let register = |id: &str| DeviceUpdate {
//!     at: 0,
//!     seq: 1,
//!     device: id.into(),
//!     info: Some(Arc::new(DeviceInfo::new(id, "acme", "meter"))),
//! };
//! let rx = timely::example(move |scope| {
//!     let registry = vec![register("m-1"), register("m-2"), register("m-3")].to_stream(scope);
//!     // m-1 reports until 60 s, m-2 only at 5 s, m-3 never.
//!     let readings = (0..=60u64)
//!         .map(|s| Reading::new("m-1", s * 1_000, "kwh", 1.0))
//!         .chain([Reading::new("m-2", 5_000, "kwh", 1.0)])
//!         .collect::<Vec<_>>()
//!         .to_stream(scope);
//!     let config = PresenceConfig::offline_after(Duration::from_secs(30));
//!     let presence = readings
//!         .presence("presence", &config, Some(registry.clone()), None)
//!         .expect("valid config");
//!     registry
//!         .fleet_views("fleet", Some(presence.events))
//!         .counts
//!         .capture()
//! });
//! let counts: Vec<_> = rx.try_iter()
//!     .flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
//!     .collect();
//! let presence_at = |t| FleetView::at(&counts, t)
//!     .view(View::Presence, "acme")
//!     .map(|(k, n)| (k.to_owned(), n))
//!     .collect::<Vec<_>>();
//! let row = |k: &str, n: u64| (k.to_owned(), n);
//! // At 1 s m-1 is online; the others have not been heard of yet.
//! assert_eq!(presence_at(1_000), [row("online", 1), row("unknown", 2)]);
//! // At 35 s m-2 (5 s + 30 s) and m-3 (0 s + 30 s) are offline.
//! assert_eq!(presence_at(35_000), [row("offline", 2), row("online", 1)]);
//! // After the end of input, everyone is.
//! assert_eq!(presence_at(u64::MAX), [row("offline", 3)]);
//! ```
#![deny(missing_docs)]

mod error;
mod latest;
mod presence;
mod views;

pub use error::FleetError;
pub use latest::{Latest, Upsert};
pub use presence::config::PresenceConfig;
pub use presence::event::{LastSeen, PresenceEvent, PresenceKind};
pub use presence::operator::{Presence, PresenceStreams};
pub use presence::state::PresenceState;
pub use presence::tally::PresenceTally;
pub use views::{DeviceFacts, FleetCount, FleetRow, FleetStreams, FleetView, FleetViews, View};
