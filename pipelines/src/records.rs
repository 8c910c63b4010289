//! File rows of the device outputs (`presence/`, `fleet/`).

use std::io;

use iotflow_file::sink::{Column, ColumnKind, FieldWriter, FileRecord};
use iotflow_fleet::{FleetCount, PresenceEvent};

/// An online/offline event as a file row: `device_id`, `at` (ms),
/// `event` (`online`/`offline`), `last_seen` (ms, empty when the device
/// never sent before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceRecord(pub PresenceEvent);

impl FileRecord for PresenceRecord {
    const COLUMNS: &'static [Column] = &[
        Column::new("device_id", ColumnKind::Str),
        Column::new("at", ColumnKind::U64),
        Column::new("event", ColumnKind::Str),
        Column::new("last_seen", ColumnKind::OptU64),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(self.0.device.as_str())?;
        out.uint(self.0.at)?;
        out.string(self.0.kind.as_str())?;
        out.optional_uint(self.0.last_seen)
    }
}

/// A fleet count change as a file row: `view`, `tenant`, `key`, `count`
/// (devices in the row from `at` on), `delta` (the change), `at` (ms). The
/// latest row per (view, tenant, key) is the current count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetRecord(pub FleetCount);

impl FileRecord for FleetRecord {
    const COLUMNS: &'static [Column] = &[
        Column::new("view", ColumnKind::Str),
        Column::new("tenant", ColumnKind::Str),
        Column::new("key", ColumnKind::Str),
        Column::new("count", ColumnKind::U64),
        Column::new("delta", ColumnKind::I64),
        Column::new("at", ColumnKind::U64),
    ];

    fn write_fields<W: FieldWriter + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.string(self.0.view.as_str())?;
        out.string(&self.0.tenant)?;
        out.string(&self.0.key)?;
        out.uint(self.0.count)?;
        out.int(self.0.delta)?;
        out.uint(self.0.at)
    }
}
