//! The fleet pipeline: validate → 10 s tumbling windows → EWMA z-score.

use std::path::Path;
use std::sync::{Arc, Mutex};

use iotflow_anomaly::{Score, ScoreCheckpointed};
use iotflow_core::checkpoint::Checkpoints;
use iotflow_core::codec::Decoder;
use iotflow_core::context::JobContext;
use iotflow_core::event_time::{FrontierLimit, SourceOptions, event_time_source_with};
use iotflow_core::sink::{EpochFiles, Sink, SinkHandle, WriteCommitted, WriteTo};
use iotflow_core::source::Source;
use iotflow_core::tally::Tally;
use iotflow_file::sink::{FileRecord, Format, open_sink};
use iotflow_types::{
    Alert, LateReading, Reading, Reject, RejectReason, SeriesKey, Timestamp, WindowResult,
};
use iotflow_window::{StatsAggregate, WindowSpec, Windowed};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::probe::Handle;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator, Probe};
use timely::dataflow::{Scope, StreamVec};

use iotflow_devices::{Registry, registry_updates};
use iotflow_enrich::Enrich;
use iotflow_fleet::{FleetCount, FleetViews, Presence, PresenceEvent};

use crate::config::{JobConfig, OutputSpec};
use crate::records::{FleetRecord, PresenceRecord};

/// Every stream of the fleet pipeline, for sinks or further operators.
#[derive(Debug)]
pub struct FleetStreams<'scope> {
    /// Valid, on-time readings.
    pub readings: StreamVec<'scope, Timestamp, Reading>,
    /// Late readings (from the source and the window).
    pub late: StreamVec<'scope, Timestamp, LateReading>,
    /// Rejected records with reasons.
    pub rejects: StreamVec<'scope, Timestamp, Reject>,
    /// Window results.
    pub windows: StreamVec<'scope, Timestamp, WindowResult<SeriesKey>>,
    /// Alerts.
    pub alerts: StreamVec<'scope, Timestamp, Alert>,
    /// Tallies of every stage.
    pub tally: StreamVec<'scope, Timestamp, Tally>,
    /// The source's tally alone: its frontier is the sources' frontier
    /// (what a checkpoint coordinator trails).
    pub source_tally: StreamVec<'scope, Timestamp, Tally>,
    /// Online/offline events, with `[devices]`.
    pub presence: Option<StreamVec<'scope, Timestamp, PresenceEvent>>,
    /// Fleet count changes, with `[devices]` and `views = true`.
    pub fleet: Option<StreamVec<'scope, Timestamp, FleetCount>>,
}

/// Builds the fleet pipeline on `scope` reading from `source`.
pub fn fleet_dataflow<'scope>(
    scope: Scope<'scope, Timestamp>,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    cfg: &JobConfig,
    ctx: &JobContext,
) -> FleetStreams<'scope> {
    // Cannot fail: nothing to restore without checkpoints, no registry.
    build(scope, source, decoder, cfg, ctx, None, None).unwrap_or_else(|_| unreachable!())
}

/// The fleet pipeline with the device registry: [`fleet_dataflow`] (with
/// `checkpoints` if given) where every valid reading is enriched from
/// `registry` as of its event time before the windows, and devices are
/// tracked online/offline and counted, as `cfg.devices` says (see
/// [`DevicesConfig`](crate::config::DevicesConfig)). Without `cfg.devices`
/// the registry is not used.
pub fn fleet_dataflow_with_registry<'scope>(
    scope: Scope<'scope, Timestamp>,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    cfg: &JobConfig,
    ctx: &JobContext,
    checkpoints: Option<&Checkpoints<'scope>>,
    registry: &Registry,
) -> Result<FleetStreams<'scope>, crate::Error> {
    build(
        scope,
        source,
        decoder,
        cfg,
        ctx,
        checkpoints,
        Some(registry),
    )
}

/// [`fleet_dataflow`] whose source, window and detector take part in
/// `checkpoints` (and restore from the checkpoint it carries).
pub fn fleet_dataflow_checkpointed<'scope>(
    scope: Scope<'scope, Timestamp>,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    cfg: &JobConfig,
    ctx: &JobContext,
    checkpoints: &Checkpoints<'scope>,
) -> Result<FleetStreams<'scope>, crate::Error> {
    build(scope, source, decoder, cfg, ctx, Some(checkpoints), None)
}

fn build<'scope>(
    scope: Scope<'scope, Timestamp>,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    cfg: &JobConfig,
    ctx: &JobContext,
    checkpoints: Option<&Checkpoints<'scope>>,
    registry: Option<&Registry>,
) -> Result<FleetStreams<'scope>, crate::Error> {
    // The source decides lateness by the window's rule: exactly fleet-v1's
    // "a reading whose window has already fired is late".
    let spec = cfg.window.spec()?;
    let event_time = cfg.event_time.clone().with_lateness(spec.lateness());
    // Bound how far one worker's source runs ahead of the slowest one.
    let probe = Handle::new();
    let limit = FrontierLimit {
        probe: probe.clone(),
        max_ahead_ms: cfg.max_ahead_ms,
    };
    let src = event_time_source_with(
        scope,
        "source",
        source,
        decoder,
        cfg.rules.clone(),
        event_time,
        ctx.clone(),
        SourceOptions {
            limit: Some(limit),
            checkpoints,
        },
    )?;
    let mut rejects = src.rejects;
    let mut tally = src.tally.clone();
    let mut presence = None;
    let mut fleet = None;
    let readings = match (&cfg.devices, registry) {
        (Some(dc), Some(registry)) => {
            let (updates, feed) = registry_updates(scope, "registry", registry.clone(), dc.feed());
            // A followed registry has no end: stop reading it when the
            // readings end (the sources' frontier is global).
            src.tally
                .clone()
                .sink(Pipeline, "stop-registry", move |(input, frontier)| {
                    input.for_each(|_, _| {});
                    if frontier.is_empty() {
                        feed.stop();
                    }
                });
            let e = src
                .readings
                .enrich("enrich", &updates, &dc.enrich, checkpoints)?;
            rejects = rejects.concat(e.rejects);
            tally = tally.concat(e.tally.map(|t| {
                let mut out = Tally::default();
                if t.rejected > 0 {
                    out.rejected
                        .insert(RejectReason::UnknownDevice.code().into(), t.rejected);
                }
                out.rejected_downstream = t.rejected;
                out
            }));
            let readings = e.enriched.map(|x| x.reading);
            // Presence from readings alone: the registry's snapshot holds
            // from time 0, so "registered but never sent" would put every
            // device offline at `offline_after` past the epoch. Registered
            // devices without readings count as `unknown` in the views.
            let p = readings
                .clone()
                .presence("presence", &dc.presence, None, checkpoints)?;
            if dc.views {
                fleet = Some(updates.fleet_views("fleet", Some(p.events.clone())).counts);
            }
            presence = Some(p.events);
            readings
        }
        _ => src.readings,
    };
    // Named by kind: the name keys the operator's state in checkpoints.
    let name = match spec {
        WindowSpec::Tumbling { .. } => "tumbling",
        _ => "window",
    };
    let w = readings.clone().window_with(
        name,
        &spec,
        SeriesKey::of,
        StatsAggregate,
        &cfg.window.options(),
        checkpoints,
    )?;
    let z = match checkpoints {
        Some(ck) => readings
            .clone()
            .score_checkpointed("zscore", cfg.zscore, ck)?,
        None => readings.clone().score("zscore", cfg.zscore),
    };
    let windows = w.windows.probe_with(&probe);
    let alerts = z.alerts.probe_with(&probe);
    Ok(FleetStreams {
        readings,
        late: src.late.concat(w.late),
        rejects,
        windows,
        alerts,
        source_tally: src.tally,
        tally: tally.concat(w.tally).concat(z.tally),
        presence,
        fleet,
    })
}

fn part<D: FileRecord>(
    dir: &Path,
    kind: &str,
    format: Format,
    worker: usize,
) -> iotflow_core::Result<Box<dyn Sink<D>>> {
    open_sink::<D>(
        format,
        &dir.join(kind)
            .join(format!("part-{worker:05}.{}", format.extension())),
    )
}

/// Writes windows, alerts, rejects and late readings under `out.dir`, one
/// file per worker and kind.
pub fn attach_sinks<'scope>(
    streams: FleetStreams<'scope>,
    out: &OutputSpec,
    worker: usize,
    ctx: &JobContext,
) -> iotflow_core::Result<(Vec<SinkHandle>, StreamVec<'scope, Timestamp, Tally>)> {
    let d = &out.dir;
    let handles = vec![
        streams.windows.write_to(
            "windows",
            part::<WindowResult>(d, "windows", out.windows, worker)?,
            ctx.clone(),
        ),
        streams.alerts.write_to(
            "alerts",
            part::<Alert>(d, "alerts", out.alerts, worker)?,
            ctx.clone(),
        ),
        streams.rejects.write_to(
            "rejects",
            part::<Reject>(d, "rejects", out.rejects, worker)?,
            ctx.clone(),
        ),
        streams.late.write_to(
            "late",
            part::<LateReading>(d, "late", out.late, worker)?,
            ctx.clone(),
        ),
    ];
    let mut handles = handles;
    if let Some(p) = streams.presence {
        handles.push(p.map(PresenceRecord).write_to(
            "presence",
            part::<PresenceRecord>(d, "presence", out.presence, worker)?,
            ctx.clone(),
        ));
    }
    if let Some(f) = streams.fleet {
        handles.push(f.map(FleetRecord).write_to(
            "fleet",
            part::<FleetRecord>(d, "fleet", out.fleet, worker)?,
            ctx.clone(),
        ));
    }
    Ok((handles, streams.tally))
}

/// Where a committed sink of `kind` stages and publishes its files.
fn epoch_files<D: FileRecord>(
    dir: &Path,
    kind: &'static str,
    format: Format,
    worker: usize,
    run: &str,
) -> EpochFiles<D> {
    let staging = staging_dir(dir).join(kind);
    let published = dir.join(kind);
    let ext = format.extension();
    let run = run.to_owned();
    EpochFiles {
        open: Box::new(move |n| {
            // Unique per run: a staged file of a crashed run can never be
            // mistaken for one a checkpoint's manifest names.
            let path = staging.join(format!("w{worker:05}-{run}-{n:08}.{ext}"));
            Ok((open_sink::<D>(format, &path)?, path))
        }),
        published: Box::new(move |id| published.join(format!("part-{id:08}-{worker:05}.{ext}"))),
    }
}

/// An id for this run's staged files: process id and start time.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}-{nanos:x}", std::process::id())
}

/// Where committed sinks stage files until their checkpoint completes.
pub fn staging_dir(out: &Path) -> std::path::PathBuf {
    out.join(".staging")
}

/// Like [`attach_sinks`], but every output is committed per checkpoint:
/// files named `part-<checkpoint:08>-<worker:05>.<ext>` appear when their
/// checkpoint completes, so a crash neither loses nor doubles output.
/// `run` tells this run's staged files from those of earlier runs (any
/// string unique per run and process, e.g. [`run_id`]).
pub fn attach_committed_sinks<'scope>(
    streams: FleetStreams<'scope>,
    out: &OutputSpec,
    worker: usize,
    ctx: &JobContext,
    checkpoints: &Checkpoints<'scope>,
    run: &str,
) -> (Vec<SinkHandle>, StreamVec<'scope, Timestamp, Tally>) {
    let d = &out.dir;
    let handles = vec![
        streams.windows.write_committed(
            "windows",
            epoch_files::<WindowResult>(d, "windows", out.windows, worker, run),
            checkpoints,
            ctx.clone(),
        ),
        streams.alerts.write_committed(
            "alerts",
            epoch_files::<Alert>(d, "alerts", out.alerts, worker, run),
            checkpoints,
            ctx.clone(),
        ),
        streams.rejects.write_committed(
            "rejects",
            epoch_files::<Reject>(d, "rejects", out.rejects, worker, run),
            checkpoints,
            ctx.clone(),
        ),
        streams.late.write_committed(
            "late",
            epoch_files::<LateReading>(d, "late", out.late, worker, run),
            checkpoints,
            ctx.clone(),
        ),
    ];
    let mut handles = handles;
    if let Some(p) = streams.presence {
        handles.push(p.map(PresenceRecord).write_committed(
            "presence",
            epoch_files::<PresenceRecord>(d, "presence", out.presence, worker, run),
            checkpoints,
            ctx.clone(),
        ));
    }
    if let Some(f) = streams.fleet {
        handles.push(f.map(FleetRecord).write_committed(
            "fleet",
            epoch_files::<FleetRecord>(d, "fleet", out.fleet, worker, run),
            checkpoints,
            ctx.clone(),
        ));
    }
    (handles, streams.tally)
}

/// Prepares the output directory of a checkpointed run resuming from
/// checkpoint `restored` (`None`: from the start): drops staged files and
/// every part file not published by a checkpoint up to `restored`.
pub fn prepare_committed_output(
    out: &OutputSpec,
    restored: Option<u64>,
) -> iotflow_core::Result<()> {
    let staging = staging_dir(&out.dir);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| iotflow_core::Error::io(&staging, e))?;
    }
    for kind in ["windows", "alerts", "rejects", "late", "presence", "fleet"] {
        let dir = out.dir.join(kind);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("part-") else {
                continue;
            };
            // part-<checkpoint>-<worker>.<ext>; anything else is not ours to keep.
            let epoch = rest
                .split_once('-')
                .and_then(|(e, w)| w.contains('.').then_some(e))
                .and_then(|e| e.parse::<u64>().ok());
            let keep = matches!((epoch, restored), (Some(e), Some(r)) if e <= r);
            if !keep {
                std::fs::remove_file(entry.path())
                    .map_err(|e| iotflow_core::Error::io(entry.path(), e))?;
            }
        }
    }
    Ok(())
}

/// Sums every worker's tallies on worker 0 into `into`.
pub fn collect_tally(tally: StreamVec<'_, Timestamp, Tally>, into: Arc<Mutex<Tally>>) {
    tally.sink(
        Exchange::new(|_: &Tally| 0),
        "collect-tally",
        move |(input, _frontier)| {
            input.for_each(|_cap, data| {
                if let Ok(mut t) = into.lock() {
                    for part in data.drain(..) {
                        t.merge(&part);
                    }
                }
            });
        },
    );
}

/// Removes part files of earlier runs that this run will not overwrite
/// (`part-NNNNN` with `NNNNN ≥ peers`, or of another format).
pub fn clean_stale_parts(out: &OutputSpec, peers: usize) -> iotflow_core::Result<()> {
    for (kind, format) in [
        ("windows", out.windows),
        ("alerts", out.alerts),
        ("rejects", out.rejects),
        ("late", out.late),
        ("presence", out.presence),
        ("fleet", out.fleet),
    ] {
        let dir = out.dir.join(kind);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("part-") else {
                continue;
            };
            let (num, ext) = rest.split_once('.').unwrap_or((rest, ""));
            let stale = num.parse::<usize>().is_ok_and(|n| n >= peers) || ext != format.extension();
            if stale {
                std::fs::remove_file(entry.path())
                    .map_err(|e| iotflow_core::Error::io(entry.path(), e))?;
            }
        }
    }
    Ok(())
}
