//! The operator against a naive join on seeded random input, with 1 and 2
//! workers and both unknown-device modes: for each reading, scan every
//! update of its device for the one valid at its time.
//!
//! The registry: a snapshot at time 0, then firmware, group and status
//! changes, removals and re-registrations, ties at one `at` resolved by
//! `seq` (sent in random order), updates of devices with no readings,
//! updates stamped later than their `at`, and a device registered only
//! midway. Readings: several devices (one never registered), disordered
//! within a bound, a few stamped later than their event time. The two
//! inputs are interleaved with the registry ahead of the readings, level
//! with them, or behind them (updates then arrive, in processing time,
//! after readings they affect, and those readings must wait).

mod common;

use common::random::{Case, random_case};
use common::{Action, deterministic, rendered, run};
use iotflow_enrich::{EnrichConfig, EnrichTally, UnknownDevice};
use iotflow_types::DeviceStatus;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The naive join: expected (enriched, rejects) renderings and tally.
fn oracle(case: &Case, mode: UnknownDevice) -> (Vec<String>, Vec<String>, EnrichTally) {
    let mut enriched = Vec::new();
    let mut rejects = Vec::new();
    let mut tally = EnrichTally {
        received: case.readings.len() as u64,
        updates: case.updates.len() as u64,
        late_updates: case.updates.iter().filter(|(s, u)| u.at < *s).count() as u64,
        ..EnrichTally::default()
    };
    for (t, r) in &case.readings {
        let at = r.ts.max(*t);
        tally.late += u64::from(r.ts < *t);
        let valid = case
            .updates
            .iter()
            .filter(|(s, u)| u.device == r.device && u.at.max(*s) <= at)
            .max_by_key(|(s, u)| (u.at.max(*s), u.seq))
            .and_then(|(_, u)| u.info.clone());
        let head = format!("{t} {} {} {} {}", r.device, r.ts, r.metric, r.value);
        match (valid, mode) {
            (Some(i), _) => {
                tally.enriched += 1;
                tally.inactive += u64::from(i.status != DeviceStatus::Active);
                enriched.push(format!("{head} {}", i.name));
            }
            (None, UnknownDevice::PassThrough) => {
                tally.passed_through += 1;
                enriched.push(format!("{head} -"));
            }
            (None, _) => {
                tally.rejected += 1;
                rejects.push(format!("{head} unknown_device from enrich"));
            }
        }
    }
    enriched.sort();
    rejects.sort();
    (enriched, rejects, tally)
}

#[test]
fn operator_matches_the_naive_join() {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut waited = 0;
    let mut seen = EnrichTally::default();
    for round in 0..48 {
        let lead = [3_000, 0, -500, -3_000][round % 4];
        let mode = if round % 3 == 0 {
            UnknownDevice::PassThrough
        } else {
            UnknownDevice::Reject
        };
        let workers = 1 + (round / 4) % 2;
        let n = rng.random_range(50..400);
        let case = random_case(&mut rng, n, lead);
        let (want_e, want_r, want_tally) = oracle(&case, mode);
        let config = EnrichConfig::default().with_unknown_device(mode);
        let out = run(&case.script, workers, &config, 0, None, None);
        let (got_e, got_r) = rendered(&out);
        assert_eq!(
            got_e, want_e,
            "round {round}: enriched ({workers} workers, lead {lead})"
        );
        assert_eq!(
            got_r, want_r,
            "round {round}: rejects ({workers} workers, lead {lead})"
        );
        assert_eq!(
            deterministic(&out.tally),
            want_tally,
            "round {round}: tally"
        );
        out.tally
            .check_conservation()
            .expect("every reading accounted for");
        if lead < 0 {
            waited += out.tally.waited;
        }
        seen.merge(&want_tally);
    }
    // The cases cover what they claim to.
    assert!(waited > 100, "readings waited for the registry: {waited}");
    assert!(seen.rejected > 100 && seen.passed_through > 50, "{seen:?}");
    assert!(
        seen.inactive > 100 && seen.late > 50 && seen.late_updates > 20,
        "{seen:?}"
    );
}

#[test]
fn arrival_order_and_worker_count_do_not_change_the_output() {
    let mut rng = SmallRng::seed_from_u64(9);
    for round in 0..6 {
        let case = random_case(&mut rng, 300, 0);
        let config = EnrichConfig::default();
        let reference = rendered(&run(&case.script, 1, &config, 0, None, None));
        // The same stamps, other interleavings, on 2 workers: every update
        // first (the registry fully ahead), and every reading first (fully
        // behind: every reading waits).
        let updates = case
            .updates
            .iter()
            .map(|(s, u)| Action::Update(*s, u.clone()));
        let readings = case
            .readings
            .iter()
            .map(|(t, r)| Action::Reading(*t, r.clone()));
        let ahead: Vec<Action> = updates.clone().chain(readings.clone()).collect();
        let behind: Vec<Action> = readings.chain([Action::Step]).chain(updates).collect();
        for script in [ahead, behind] {
            assert_eq!(
                rendered(&run(&script, 2, &config, 0, None, None)),
                reference,
                "round {round}"
            );
        }
    }
}
