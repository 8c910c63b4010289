//! What the views count and what comes out: views, rows, count changes,
//! and the fold that reads them.

use std::collections::BTreeMap;
use std::fmt;

use iotflow_types::{DeviceInfo, DeviceStatus, SmallStr, Timestamp};
use serde::{Deserialize, Serialize};

/// Which breakdown of the fleet a count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Devices of a tenant; the key is the tenant.
    Tenant,
    /// Devices in a group; the key is the group id (a device in several
    /// groups counts in each).
    Group,
    /// Devices by lifecycle status; the key is `active`, `suspended` or
    /// `decommissioned`.
    Status,
    /// Devices by firmware version; the key is the version, `""` for
    /// devices without a known firmware.
    Firmware,
    /// Devices by model; the key is the device type.
    DeviceType,
    /// Devices by presence; the key is `online`, `offline`, or `unknown`
    /// for registered devices without a presence event yet. Only with a
    /// presence stream.
    Presence,
}

impl View {
    /// Every view, in declaration order.
    pub const ALL: [View; 6] = [
        View::Tenant,
        View::Group,
        View::Status,
        View::Firmware,
        View::DeviceType,
        View::Presence,
    ];

    /// `tenant`, `group`, `status`, `firmware`, `device_type` or
    /// `presence`.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Tenant => "tenant",
            View::Group => "group",
            View::Status => "status",
            View::Firmware => "firmware",
            View::DeviceType => "device_type",
            View::Presence => "presence",
        }
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the views need of a [`DeviceInfo`]: a small, ordered value a
/// differential collection can hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// The tenant.
    pub tenant: SmallStr,
    /// Model or kind.
    pub device_type: SmallStr,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Firmware version, if known.
    pub firmware: Option<SmallStr>,
    /// Groups, sorted.
    pub groups: Vec<SmallStr>,
}

impl From<&DeviceInfo> for DeviceFacts {
    fn from(info: &DeviceInfo) -> Self {
        DeviceFacts {
            tenant: info.tenant.clone(),
            device_type: info.device_type.clone(),
            status: info.status,
            firmware: info.firmware.clone(),
            groups: info.groups.clone(),
        }
    }
}

impl DeviceFacts {
    /// The rows of the views (all but presence) this device counts in.
    pub fn rows(&self) -> impl Iterator<Item = FleetRow> + '_ {
        let row = move |view, key: &str| FleetRow::new(view, &self.tenant, key);
        [
            row(View::Tenant, &self.tenant),
            row(View::Status, self.status.as_str()),
            row(View::Firmware, self.firmware.as_deref().unwrap_or("")),
            row(View::DeviceType, &self.device_type),
        ]
        .into_iter()
        .chain(self.groups.iter().map(move |g| row(View::Group, g)))
    }
}

/// One row of a view: what a count counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FleetRow {
    /// The view.
    pub view: View,
    /// The tenant of the devices counted (every view is per tenant).
    pub tenant: SmallStr,
    /// The row within the view and tenant (see [`View`]).
    pub key: SmallStr,
}

impl FleetRow {
    /// The row `key` of `view` for `tenant`.
    pub fn new(view: View, tenant: &str, key: &str) -> Self {
        FleetRow {
            view,
            tenant: SmallStr::new(tenant),
            key: SmallStr::new(key),
        }
    }
}

/// A change of one row of a view: from `at` on, `count` devices (which
/// is `delta` more than before `at`). One record per row and time, for the
/// rows whose count changed; a row whose count drops to 0 gets a last
/// record with `count: 0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FleetCount {
    /// The view.
    pub view: View,
    /// The tenant.
    pub tenant: SmallStr,
    /// The row within the view and tenant.
    pub key: SmallStr,
    /// Devices in the row from `at` on.
    pub count: u64,
    /// The change at `at`.
    pub delta: i64,
    /// Event time of the change.
    pub at: Timestamp,
}

impl FleetCount {
    /// The row counted.
    pub fn row(&self) -> FleetRow {
        FleetRow {
            view: self.view,
            tenant: self.tenant.clone(),
            key: self.key.clone(),
        }
    }
}

/// The current counts of every view, folded from [`FleetCount`]s.
///
/// Reading a view means accumulating its changes: [`FleetView::apply`]
/// adds each record's `delta`, so records can be applied in any order
/// (from any number of workers); once every record with `at ≤ T` is
/// applied, the view holds the counts at `T`. (Alternatively, keep the
/// `count` of the latest record of each row: the same, given the records
/// of a row in `at` order.)
///
/// ```
/// use iotflow_fleet::{FleetCount, FleetView, View};
/// let change = |key: &str, count, delta, at| FleetCount {
///     view: View::Status, tenant: "acme".into(), key: key.into(), count, delta, at,
/// };
/// let mut view = FleetView::default();
/// for c in [change("active", 2, 2, 0), change("active", 1, -1, 7), change("suspended", 1, 1, 7)] {
///     view.apply(&c);
/// }
/// assert_eq!(view.count(View::Status, "acme", "active"), 1);
/// assert_eq!(view.view(View::Status, "acme").collect::<Vec<_>>(), [("active", 1), ("suspended", 1)]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetView {
    counts: BTreeMap<FleetRow, i64>,
}

impl FleetView {
    /// The view at time `at`: every record with `at ≤` the given time
    /// applied.
    pub fn at<'a>(counts: impl IntoIterator<Item = &'a FleetCount>, at: Timestamp) -> Self {
        let mut view = FleetView::default();
        for c in counts.into_iter().filter(|c| c.at <= at) {
            view.apply(c);
        }
        view
    }

    /// Applies one change.
    pub fn apply(&mut self, change: &FleetCount) {
        let row = change.row();
        let n = self.counts.entry(row.clone()).or_default();
        *n += change.delta;
        if *n == 0 {
            self.counts.remove(&row);
        }
    }

    /// The count of a row (0 if absent; also 0 while it is negative,
    /// which only happens when a row's later changes were applied before
    /// its earlier ones).
    pub fn count(&self, view: View, tenant: &str, key: &str) -> u64 {
        let n = self
            .counts
            .get(&FleetRow::new(view, tenant, key))
            .copied()
            .unwrap_or(0);
        u64::try_from(n).unwrap_or(0)
    }

    /// The rows of one view and tenant with their counts, by key.
    pub fn view<'a>(
        &'a self,
        view: View,
        tenant: &'a str,
    ) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.rows()
            .filter(move |(r, _)| r.view == view && r.tenant == tenant)
            .map(|(r, n)| (r.key.as_str(), n))
    }

    /// Every non-zero row with its count, in row order.
    pub fn rows(&self) -> impl Iterator<Item = (&FleetRow, u64)> + '_ {
        self.counts
            .iter()
            .map(|(r, n)| (r, u64::try_from(*n).unwrap_or(0)))
    }

    /// Rows with a non-zero count.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
