//! Benchmarks of iotflow on the fleet-v1 workload.
//!
//! - `benches/parse.rs`: NDJSON parsing, our decoder against serde_json,
//!   simd-json and sonic-rs.
//! - `benches/validate.rs`: `Rules::check` over decoded readings.
//! - `benches/tumbling.rs`: the keyed tumbling window in a 1-worker dataflow.
//! - `src/bin/fleet_e2e.rs`: the whole fleet pipeline, lines/s per worker
//!   count and p50/p99 latency under a rate-limited source.
//!
//! This library holds the fixtures they share.

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
