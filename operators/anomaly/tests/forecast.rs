//! Time until threshold against naive references: an exact least-squares
//! fit recomputed from scratch, and the known crossing times of linear and
//! seasonal series.

use iotflow_anomaly::{Direction, ForecastConfig, ForecastCrossing, KeyedForecast};
use iotflow_types::{Reading, Timestamp};
use timely::dataflow::operators::{Capture, ToStream, capture::Event};

/// The crossing a from-scratch least-squares fit of the last `window`
/// points predicts at the last point.
fn naive_crossing(cfg: &ForecastConfig, pts: &[(Timestamp, f64)]) -> Option<Timestamp> {
    let w = &pts[pts.len().saturating_sub(cfg.window)..];
    let n = w.len() as f64;
    let t0 = w[0].0 as f64;
    let mt = w.iter().map(|p| p.0 as f64 - t0).sum::<f64>() / n;
    let mv = w.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = w.iter().map(|p| (p.0 as f64 - t0 - mt) * (p.1 - mv)).sum();
    let sxx: f64 = w.iter().map(|p| (p.0 as f64 - t0 - mt).powi(2)).sum();
    let ts = w[w.len() - 1].0;
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let level = mv + slope * (ts as f64 - t0 - mt);
    let past = match cfg.direction {
        Direction::Above => level >= cfg.threshold,
        Direction::Below => level <= cfg.threshold,
    };
    if past {
        return Some(ts);
    }
    let dt = (cfg.threshold - level) / slope;
    (dt > 0.0 && dt <= cfg.horizon_ms as f64).then(|| ts + dt.ceil() as Timestamp)
}

fn close(a: Option<Timestamp>, b: Option<Timestamp>, tol: u64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) <= tol,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn linear_trend_crossing_is_exact_and_matches_a_from_scratch_fit() {
    // 20 + 0.01/s with a deterministic wobble, one reading a second from
    // an epoch-scale start: the fit must not lose precision to it.
    let start = 1_700_000_000_000u64;
    let series: Vec<(Timestamp, f64)> = (0..3000u64)
        .map(|i| {
            (
                start + i * 1000,
                20.0 + 0.01 * i as f64 + ((i * 37) % 11) as f64 * 0.01,
            )
        })
        .collect();
    for direction in [Direction::Above, Direction::Below] {
        let cfg = ForecastConfig {
            threshold: if direction == Direction::Above {
                40.0
            } else {
                5.0
            },
            direction,
            window: 200,
            horizon_ms: 1_000_000,
            season: 0,
        };
        let got = cfg.replay(series.iter().copied());
        for i in 1..series.len() {
            let want = naive_crossing(&cfg, &series[..=i]);
            assert!(
                close(got[i].crossing, want, 1),
                "{direction:?} row {i}: {:?} vs {want:?}",
                got[i].crossing
            );
        }
        if direction == Direction::Above {
            // Truth: 20.05 + 0.01 i = 40 at i = 1995 (the wobble's mean is
            // 0.05); reported once within the horizon (1000 s before).
            let at = |i: usize| got[i].crossing.map(|c| (c as i64 - start as i64) / 1000);
            assert_eq!(at(900), None);
            assert!(
                at(1100).is_some_and(|c| c.abs_diff(1995) <= 2),
                "{:?}",
                at(1100)
            );
            assert!(
                at(1900).is_some_and(|c| c.abs_diff(1995) <= 2),
                "{:?}",
                at(1900)
            );
            assert_eq!(got[2500].crossing, Some(series[2500].0));
        } else {
            // Rising away from a floor below: never crosses.
            assert!(got.iter().all(|f| f.crossing.is_none()));
        }
    }
}

#[test]
fn seasonal_series_cross_when_their_trend_does() {
    // Trend 10 + 0.005/s under a season of 60 readings, amplitude 3.
    let period = 60u64;
    let series: Vec<(Timestamp, f64)> = (0..4000u64)
        .map(|i| {
            let phase = (i % period) as f64 / period as f64;
            (
                i * 1000,
                10.0 + 0.005 * i as f64 + 3.0 * (std::f64::consts::TAU * phase).sin(),
            )
        })
        .collect();
    let cfg = ForecastConfig {
        threshold: 25.0,
        direction: Direction::Above,
        window: 2 * period as usize,
        horizon_ms: 3_000_000,
        season: period as usize,
    };
    let got = cfg.replay(series.iter().copied());
    // Without the season, the fitted slope swings with the season's phase.
    let plain = ForecastConfig { season: 0, ..cfg }.replay(series.iter().copied());
    assert!((600..2900).any(|i| !close(plain[i].crossing, got[i].crossing, 60_000)));
    // The trend reaches 25 at 3000 s: every prediction from 600 s on
    // (the trend's window full) lands within 2 s of it.
    for (i, f) in got.iter().enumerate().take(2990).skip(600) {
        let c = f.crossing.map(|c| c / 1000).expect("within the horizon");
        assert!(c.abs_diff(3000) <= 2, "row {i}: {c}");
    }
}

#[test]
fn the_operator_forecasts_like_a_replay() {
    let cfg = ForecastConfig {
        window: 50,
        ..ForecastConfig::above(60.0)
    };
    let readings: Vec<Reading> = (0..400u64)
        .flat_map(|i| {
            [
                Reading::new(
                    "a",
                    i * 1000,
                    "temp",
                    20.0 + 0.05 * i as f64 + (i % 7) as f64 * 0.1,
                ),
                Reading::new("b", i * 1000 + 3, "temp", 50.0 - 0.01 * i as f64),
            ]
        })
        .rev()
        .collect();
    let c = cfg.clone();
    let input = readings.clone();
    let rx = timely::example(move |scope| {
        input
            .to_stream(scope)
            .forecast("f", &c, None)
            .expect("valid")
            .forecasts
            .capture()
    });
    let mut got: Vec<KeyedForecast> = rx
        .try_iter()
        .flat_map(|e| match e {
            Event::Messages(_, d) => d,
            _ => Vec::new(),
        })
        .collect();
    got.sort_by(|x, y| (&x.key, x.forecast.ts).cmp(&(&y.key, y.forecast.ts)));
    for device in ["a", "b"] {
        let mut series: Vec<(Timestamp, f64)> = readings
            .iter()
            .filter(|r| r.device.as_str() == device)
            .map(|r| (r.ts, r.value))
            .collect();
        series.sort_by_key(|p| p.0);
        let want = cfg.replay(series);
        let mine: Vec<_> = got
            .iter()
            .filter(|f| f.key.device.as_str() == device)
            .map(|f| f.forecast.clone())
            .collect();
        assert_eq!(mine, want, "{device}");
    }
    assert!(got.iter().any(|f| f.forecast.crossing.is_some()));
}
