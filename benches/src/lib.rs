//! Benchmarks of iotflow on the fleet-v1 workload.
//!
//! - `benches/parse.rs`: NDJSON parsing, our decoder against serde_json,
//!   simd-json and sonic-rs.
//! - `benches/validate.rs`: `Rules::check` over decoded readings.
//! - `benches/tumbling.rs`, `benches/windows.rs`: the keyed window kinds in a
//!   1-worker dataflow.
//! - `benches/cep.rs`: a 3-stage CEP pattern keyed by device.
//! - `benches/detectors.rs`: every anomaly detector but RCF, alerts only
//!   and with every score.
//! - `src/bin/fleet_e2e.rs`: the whole fleet pipeline, lines/s per worker
//!   count and p50/p99 latency under a rate-limited source.
//!
//! This library holds the fixtures they share, and [`run_dataflow`], the
//! one driver loop every operator bench runs its dataflow with.

use iotflow_core::codec::{Decoder, JsonDecoder};
use iotflow_sim::{FleetConfig, FleetGenerator};
use iotflow_types::Reading;

/// The first `lines` lines of the fleet-v1 file for `seed`, without their
/// `\n` (malformed lines included, as in the file).
pub fn fleet_lines(lines: u64, seed: u64) -> Vec<Vec<u8>> {
    let mut fleet = FleetGenerator::new(&FleetConfig {
        lines,
        seed,
        ..FleetConfig::default()
    });
    let mut out = Vec::with_capacity(lines as usize);
    let mut buf = Vec::with_capacity(128);
    loop {
        buf.clear();
        if fleet.next_line(&mut buf).is_none() {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        out.push(buf.clone());
    }
    out
}

/// The readings of `lines` that decode (validation not applied).
pub fn decoded(lines: &[Vec<u8>]) -> Vec<Reading> {
    let mut dec = JsonDecoder::new();
    lines.iter().filter_map(|l| dec.decode(l).ok()).collect()
}

/// Builds a window on a stream of readings and returns its results.
pub type BuildWindow =
    for<'scope> fn(
        timely::dataflow::StreamVec<'scope, u64, Reading>,
    ) -> timely::dataflow::StreamVec<'scope, u64, iotflow_types::WindowResult>;

/// Runs a window built by `build` over `readings` once (see
/// [`run_dataflow`]). Returns (results emitted, elapsed).
pub fn run_window(readings: Vec<Reading>, build: BuildWindow) -> (u64, std::time::Duration) {
    run_dataflow(readings, build)
}

/// Runs the dataflow `build` makes on a stream of `readings` once in a
/// 1-worker timely dataflow: readings enter in batches of 10,000 whose
/// timely time follows the fleet-v1 watermark (max ts − 2000 ms + 1), as
/// the event-time source sends them, so windows fire and detectors release
/// as event time advances; the worker steps until the output has caught up
/// with each batch. Returns (records on the stream `build` returns,
/// elapsed); building the dataflow is timed (about a millisecond).
///
/// Every operator bench (windows, CEP, detectors) drives its operator
/// through this one loop, so their figures are comparable.
pub fn run_dataflow<O, F>(readings: Vec<Reading>, build: F) -> (u64, std::time::Duration)
where
    O: Clone + 'static,
    F: for<'scope> FnOnce(
            timely::dataflow::StreamVec<'scope, u64, Reading>,
        ) -> timely::dataflow::StreamVec<'scope, u64, O>
        + Send
        + Sync
        + 'static,
{
    use std::cell::Cell;
    use std::rc::Rc;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::{Input, Inspect, Probe};
    use timely::dataflow::{InputHandle, ProbeHandle};

    const BATCH: usize = 10_000;
    const DISORDER_MS: u64 = 2_000;
    timely::execute_directly(move |worker| {
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Reading>>>::new();
        let probe = ProbeHandle::new();
        let count = Rc::new(Cell::new(0u64));
        let seen = count.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            build(scope.input_from(&mut input))
                .inspect_core(move |event| {
                    if let Ok((_, out)) = event {
                        seen.set(seen.get() + out.len() as u64);
                    }
                })
                .probe_with(&probe);
        });
        let started = std::time::Instant::now();
        let mut max_ts = 0u64;
        let mut readings = readings.into_iter();
        loop {
            let mut sent = 0;
            for r in readings.by_ref().take(BATCH) {
                max_ts = max_ts.max(r.ts);
                input.send(r);
                sent += 1;
            }
            if sent == 0 {
                break;
            }
            let frontier = max_ts.saturating_sub(DISORDER_MS) + 1;
            if frontier > *input.time() {
                input.advance_to(frontier);
            }
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
        drop(input);
        while worker.step() {}
        (count.get(), started.elapsed())
    })
}
