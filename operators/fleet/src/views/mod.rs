//! Fleet views: device counts by tenant, group, status, firmware, type
//! and presence, maintained incrementally with differential dataflow.

mod rows;

use std::collections::BTreeMap;
use std::fmt;

use differential_dataflow::VecCollection;
use iotflow_types::stable_hash;
use iotflow_types::{DeviceId, DeviceUpdate, Timestamp};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::operators::vec::Map;

pub use rows::{DeviceFacts, FleetCount, FleetRow, FleetView, View};

use crate::latest::{Latest, Upsert};
use crate::presence::event::{PresenceEvent, PresenceKind};

/// The outputs of [`FleetViews::fleet_views`].
pub struct FleetStreams<'scope> {
    /// Count changes, each stamped at its own time ([`FleetCount::at`]).
    pub counts: StreamVec<'scope, Timestamp, FleetCount>,
    /// The registry as a collection: each registered device with the facts
    /// the views use. Join or count it for views of your own.
    pub devices: VecCollection<'scope, Timestamp, (DeviceId, DeviceFacts), isize>,
    /// Each device's latest presence, registered or not (`None` without a
    /// presence stream).
    pub presence: Option<VecCollection<'scope, Timestamp, (DeviceId, PresenceKind), isize>>,
}

impl fmt::Debug for FleetStreams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetStreams")
            .field("counts", &self.counts)
            .field("presence", &self.presence.is_some())
            .finish_non_exhaustive()
    }
}

/// Incrementally maintained counts over the device registry.
pub trait FleetViews<'scope> {
    /// Counts registered devices by tenant, group, status, firmware and
    /// device type, and (with `presence`) by online/offline per tenant.
    ///
    /// The registry changes become a differential collection of `(device,
    /// facts)` ([`Latest::latest`]: a change replaces the device's previous
    /// facts); each device contributes one row per view; `count()`
    /// maintains the rows' sizes; every change of a row's size at a time
    /// comes out as one [`FleetCount`], once the frontier passes that time.
    /// Presence events become a `(device, online|offline)` collection,
    /// joined with the registry for the tenant: only registered devices
    /// count, and a registered device without a presence event counts as
    /// `unknown`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use iotflow_fleet::{FleetView, FleetViews, View};
    /// use iotflow_types::{DeviceInfo, DeviceStatus, DeviceUpdate};
    /// use timely::dataflow::operators::{Capture, ToStream, capture::Event};
    ///
    /// let register = |at, seq, id: &str, status| {
    ///     let mut info = DeviceInfo::new(id, "acme", "thermostat");
    ///     info.status = status;
    ///     DeviceUpdate { at, seq, device: id.into(), info: Some(Arc::new(info)) }
    /// };
    /// let rx = timely::example(move |scope| {
    ///     vec![
    ///         register(0, 1, "t-1", DeviceStatus::Active),
    ///         register(0, 2, "t-2", DeviceStatus::Active),
    ///         register(5_000, 3, "t-2", DeviceStatus::Suspended),
    ///     ]
    ///     .to_stream(scope)
    ///     .fleet_views("fleet", None)
    ///     .counts
    ///     .capture()
    /// });
    /// let counts: Vec<_> = rx.try_iter()
    ///     .flat_map(|e| match e { Event::Messages(_, d) => d, _ => vec![] })
    ///     .collect();
    /// let before = FleetView::at(&counts, 4_999);
    /// assert_eq!(before.count(View::Status, "acme", "active"), 2);
    /// let after = FleetView::at(&counts, 5_000);
    /// assert_eq!(after.view(View::Status, "acme").collect::<Vec<_>>(), [("active", 1), ("suspended", 1)]);
    /// assert_eq!(after.count(View::Tenant, "acme", "acme"), 2);
    /// ```
    fn fleet_views(
        self,
        name: &str,
        presence: Option<StreamVec<'scope, Timestamp, PresenceEvent>>,
    ) -> FleetStreams<'scope>;
}

impl<'scope> FleetViews<'scope> for StreamVec<'scope, Timestamp, DeviceUpdate> {
    fn fleet_views(
        self,
        name: &str,
        presence: Option<StreamVec<'scope, Timestamp, PresenceEvent>>,
    ) -> FleetStreams<'scope> {
        let devices = self
            .map(|u| Upsert {
                at: u.at,
                seq: u.seq,
                key: u.device,
                value: u.info.as_deref().map(DeviceFacts::from),
            })
            .latest(&format!("{name}-devices"));
        let mut rows = devices
            .clone()
            .flat_map(|(_, facts)| facts.rows().collect::<Vec<_>>());
        let presence = presence.map(|events| {
            events
                .map(|e| Upsert {
                    at: e.at,
                    // The only same-time pair of one device is `offline`
                    // then `online` (a reading right at the deadline).
                    seq: u64::from(e.kind == PresenceKind::Online),
                    key: e.device,
                    value: Some(e.kind),
                })
                .latest(&format!("{name}-presence"))
        });
        if let Some(presence) = &presence {
            let tenants = devices.clone().map(|(d, f)| (d, f.tenant));
            let known = tenants
                .clone()
                .join_map(presence.clone(), |_, tenant, kind| {
                    FleetRow::new(View::Presence, tenant, kind.as_str())
                });
            let unknown = tenants
                .antijoin(presence.clone().map(|(d, _)| d))
                .map(|(_, tenant)| FleetRow::new(View::Presence, &tenant, "unknown"));
            rows = rows.concat(known).concat(unknown);
        }
        let counts = changes(rows.count(), name);
        FleetStreams {
            counts,
            devices,
            presence,
        }
    }
}

/// Turns `count()`'s output (`−(row, old)`, `+(row, new)` at each time a
/// row changes) into one [`FleetCount`] per row and time, once the
/// frontier passes the time.
fn changes<'scope>(
    counted: VecCollection<'scope, Timestamp, (FleetRow, isize), isize>,
    name: &str,
) -> StreamVec<'scope, Timestamp, FleetCount> {
    let pact =
        Exchange::new(|((row, _), _, _): &((FleetRow, isize), Timestamp, isize)| stable_hash(row));
    counted
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<FleetCount>>, _, _, _>(
            pact,
            &format!("{name}-counts"),
            |cap, _info| {
                let mut cap = Some(cap);
                // time → row → (old, new)
                type Changes = BTreeMap<Timestamp, BTreeMap<FleetRow, (isize, isize)>>;
                let mut pending: Changes = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|_, data| {
                        for ((row, n), t, r) in data.drain(..) {
                            let e = pending.entry(t).or_default().entry(row).or_default();
                            // A retraction names the old count, an addition the new.
                            if r < 0 {
                                e.0 += n * -r;
                            } else {
                                e.1 += n * r;
                            }
                        }
                    });
                    let frontier = frontier.frontier().iter().min().copied();
                    let Some(held) = cap.as_mut() else { return };
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.is_some_and(|f| t >= f) {
                            break;
                        }
                        let rows = entry.remove();
                        let at = t.max(*held.time());
                        let at = held.delayed(&at);
                        let mut session = output.session(&at);
                        for (row, (old, new)) in rows {
                            if old == new {
                                continue;
                            }
                            session.give(FleetCount {
                                view: row.view,
                                tenant: row.tenant,
                                key: row.key,
                                count: u64::try_from(new).unwrap_or(0),
                                delta: (new - old) as i64,
                                at: t,
                            });
                        }
                    }
                    match frontier {
                        Some(f) => held.downgrade(&f),
                        None => cap = None,
                    }
                }
            },
        )
}
