use std::collections::HashSet;

use rand::Rng;

use crate::format::{push_fixed, push_zero_padded};
use crate::rng::{FleetRng, SplitMix64, StdNormal};
use crate::{FleetConfig, FleetMeta, LineKind, MalformedKind};

/// One of the four fleet-v1 metrics.
struct MetricSpec {
    name: &'static [u8],
    unit: &'static [u8],
    /// Normal band the per-(device, metric) baselines are drawn from.
    lo: f64,
    hi: f64,
    /// Noise standard deviation.
    sigma: f64,
    decimals: u8,
    /// Literal written by [`MalformedKind::OutOfRange`].
    out_of_range: &'static [u8],
}

/// Indexed by `(second + device) % 4`, as in `gen_fleet.py`.
const METRICS: [MetricSpec; 4] = [
    MetricSpec {
        name: b"temp",
        unit: b"C",
        lo: 15.0,
        hi: 30.0,
        sigma: 0.3,
        decimals: 2,
        out_of_range: b"999.0",
    },
    MetricSpec {
        name: b"humidity",
        unit: b"%",
        lo: 20.0,
        hi: 80.0,
        sigma: 1.5,
        decimals: 2,
        out_of_range: b"150.0",
    },
    MetricSpec {
        name: b"pressure",
        unit: b"hPa",
        lo: 980.0,
        hi: 1040.0,
        sigma: 0.8,
        decimals: 2,
        out_of_range: b"5.0",
    },
    MetricSpec {
        name: b"vibration",
        unit: b"g",
        lo: 0.0,
        hi: 2.0,
        sigma: 0.05,
        decimals: 4,
        out_of_range: b"-1.0",
    },
];

/// Nominal disorder: every ts is the nominal time minus U{0..JITTER_MS-1}.
const JITTER_MS: u64 = 2000;

/// What the setup pass precomputes per device, so a line costs no division
/// and no formatting of the device id.
struct Device {
    /// Baseline per metric, [`METRICS`] order.
    base: [f64; 4],
    /// `(d * 1000) / devices`: devices are spread evenly over each second.
    offset_ms: u64,
    /// `d-` and the zero-padded number, `id_len` bytes used.
    id: [u8; 12],
    id_len: u8,
}

impl Device {
    fn new(d: u32, devices: u32, rng: &mut FleetRng) -> Self {
        // Baselines stay 8 sigma inside the band where the band allows, so
        // spikes stay physically valid.
        let base = METRICS.map(|m| {
            let margin = (8.0 * m.sigma).min((m.hi - m.lo) / 4.0);
            let (a, b) = (m.lo + margin, m.hi - margin);
            a + (b - a) * rng.random::<f64>()
        });
        let mut text = Vec::with_capacity(12);
        text.extend_from_slice(b"d-");
        push_zero_padded(&mut text, u64::from(d), 5);
        let mut id = [0u8; 12];
        id[..text.len()].copy_from_slice(&text);
        Device {
            base,
            offset_ms: u64::from(d) * 1000 / u64::from(devices),
            id,
            id_len: text.len() as u8,
        }
    }

    fn id(&self) -> &[u8] {
        &self.id[..usize::from(self.id_len)]
    }
}

/// A value as it goes into a line.
#[derive(Clone, Copy)]
enum Value {
    /// A number with this many decimals.
    Fixed(f64, u8),
    /// Bytes written as they are (`NaN`, `"n/a"`, `1e999`, …).
    Raw(&'static [u8]),
}

/// The fields of one reading; [`Fields::push`] writes them as a JSON object.
struct Fields<'a> {
    id: &'a [u8],
    ts: u64,
    metric: &'a [u8],
    value: Value,
    unit: &'a [u8],
}

impl Fields<'_> {
    /// Appends the object without a newline, leaving out field number
    /// `skip` (0 device_id, 1 ts, 2 metric, 3 value, 4 unit) if given.
    #[inline]
    fn push(&self, buf: &mut Vec<u8>, skip: Option<usize>) {
        buf.push(b'{');
        let mut first = true;
        for field in 0..5 {
            if skip == Some(field) {
                continue;
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            match field {
                0 => {
                    buf.extend_from_slice(b"\"device_id\":\"");
                    buf.extend_from_slice(self.id);
                    buf.push(b'"');
                }
                1 => {
                    buf.extend_from_slice(b"\"ts\":");
                    buf.extend_from_slice(itoa::Buffer::new().format(self.ts).as_bytes());
                }
                2 => {
                    buf.extend_from_slice(b"\"metric\":\"");
                    buf.extend_from_slice(self.metric);
                    buf.push(b'"');
                }
                3 => {
                    buf.extend_from_slice(b"\"value\":");
                    match self.value {
                        Value::Fixed(v, decimals) => push_fixed(buf, v, decimals),
                        Value::Raw(raw) => buf.extend_from_slice(raw),
                    }
                }
                _ => {
                    buf.extend_from_slice(b"\"unit\":\"");
                    buf.extend_from_slice(self.unit);
                    buf.push(b'"');
                }
            }
        }
        buf.push(b'}');
    }
}

/// The fleet-v1 line generator: a deterministic stream of NDJSON readings.
///
/// [`new`](FleetGenerator::new) does the setup pass (baselines of every
/// device and metric, and which lines are spikes or malformed); then each
/// [`next_line`](FleetGenerator::next_line) appends one line. Lines are
/// written into a caller's buffer, so a generator allocates nothing per
/// line.
///
/// ```
/// use iotflow_sim::{FleetConfig, FleetGenerator, LineKind};
///
/// let cfg = FleetConfig { lines: 3, ..FleetConfig::default() };
/// let mut fleet = FleetGenerator::new(&cfg);
/// let mut buf = Vec::new();
/// while let Some(kind) = fleet.next_line(&mut buf) {
///     assert_eq!(kind, LineKind::Valid); // 3 lines: no spike, no malformed
/// }
/// let text = String::from_utf8(buf)?;
/// assert!(text.starts_with(r#"{"device_id":"d-00000","ts":17000000"#));
/// assert_eq!(text.lines().count(), 3);
/// assert_eq!(fleet.meta().valid, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FleetGenerator {
    cfg: FleetConfig,
    devices: Vec<Device>,
    /// Spike and malformed lines, by ascending line index.
    plan: Vec<(u64, LineKind)>,
    next_special: usize,
    rng: FleetRng,
    normal: StdNormal,
    /// Index of the next line, and its device and second.
    line: u64,
    device: usize,
    second: u64,
    spikes: u64,
    malformed: [u64; 8],
}

impl FleetGenerator {
    /// Prepares the generator for `cfg`: draws the baselines of every
    /// (device, metric) and picks the spike and malformed lines. This costs
    /// `O(devices + lines / 1000)` time and memory.
    ///
    /// # Panics
    ///
    /// If `cfg` is invalid (see [`FleetConfig::validate`]).
    pub fn new(cfg: &FleetConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("FleetGenerator::new: {e}");
        }
        let mut seeder = SplitMix64(cfg.seed);
        let mut setup = FleetRng::from_splitmix(&mut seeder);
        let rng = FleetRng::from_splitmix(&mut seeder);
        let devices = (0..cfg.devices)
            .map(|d| Device::new(d, cfg.devices, &mut setup))
            .collect();
        let plan = plan(cfg.lines, &mut setup);
        FleetGenerator {
            cfg: cfg.clone(),
            devices,
            plan,
            next_special: 0,
            rng,
            normal: StdNormal::default(),
            line: 0,
            device: 0,
            second: 0,
            spikes: 0,
            malformed: [0; 8],
        }
    }

    /// Appends the next line, with its trailing `\n`, to `buf` and says what
    /// kind of line it is; `None` (and nothing appended) once all
    /// `cfg.lines` lines are out.
    #[inline]
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Option<LineKind> {
        if self.line >= self.cfg.lines {
            return None;
        }
        let kind = match self.plan.get(self.next_special) {
            Some(&(line, kind)) if line == self.line => {
                self.next_special += 1;
                kind
            }
            _ => LineKind::Valid,
        };
        let dev = &self.devices[self.device];
        let mi = ((self.second + self.device as u64) % 4) as usize;
        let metric = &METRICS[mi];
        let nominal = self.cfg.start_ms + JITTER_MS + self.second * 1000 + dev.offset_ms;
        let ts = nominal - self.rng.random_range(0..JITTER_MS);
        let base = dev.base[mi];
        let value = if kind == LineKind::Spike {
            let sign = if self.rng.random_bool(0.5) { 1.0 } else { -1.0 };
            base + sign * 8.0 * metric.sigma
        } else {
            base + self.normal.sample(&mut self.rng).clamp(-3.0, 3.0) * metric.sigma
        };
        let fields = Fields {
            id: dev.id(),
            ts,
            metric: metric.name,
            value: Value::Fixed(value, metric.decimals),
            unit: metric.unit,
        };
        match kind {
            LineKind::Valid => fields.push(buf, None),
            LineKind::Spike => {
                fields.push(buf, None);
                self.spikes += 1;
            }
            LineKind::Malformed(k) => {
                push_malformed(buf, &mut self.rng, k, fields, metric);
                self.malformed[k.index()] += 1;
            }
        }
        buf.push(b'\n');

        self.line += 1;
        self.device += 1;
        if self.device == self.devices.len() {
            self.device = 0;
            self.second += 1;
        }
        Some(kind)
    }

    /// Appends whole lines to `buf` until it holds at least `max_bytes`
    /// bytes or the generator is done; returns how many lines it appended
    /// (0 if `buf` was already that full, or at the end).
    ///
    /// ```
    /// use iotflow_sim::{FleetConfig, FleetGenerator};
    ///
    /// let mut fleet = FleetGenerator::new(&FleetConfig { lines: 10_000, ..Default::default() });
    /// let mut chunk = Vec::with_capacity(1 << 16);
    /// let mut total = 0;
    /// loop {
    ///     chunk.clear();
    ///     let n = fleet.fill(&mut chunk, 1 << 16);
    ///     if n == 0 { break; }
    ///     assert!(chunk.ends_with(b"\n"));
    ///     total += n as u64;
    /// }
    /// assert_eq!(total, 10_000);
    /// ```
    pub fn fill(&mut self, buf: &mut Vec<u8>, max_bytes: usize) -> usize {
        let mut n = 0;
        while buf.len() < max_bytes && self.next_line(buf).is_some() {
            n += 1;
        }
        n
    }

    /// Counts of the lines generated so far. Once the generator is done
    /// they are the file's: `malformed` is `round(lines * 0.001)` and
    /// `spikes` is `round(lines * 0.0005)`, rounding half to even as
    /// Python's `round` does.
    pub fn meta(&self) -> FleetMeta {
        FleetMeta::new(self.line, self.cfg.seed, self.spikes, &self.malformed)
    }

    /// The 1-based line numbers of all spike readings of the whole file
    /// (not only of the lines generated so far), ascending: what
    /// `FILE.anomalies` lists.
    pub fn anomaly_lines(&self) -> Vec<u64> {
        self.plan
            .iter()
            .filter(|(_, kind)| *kind == LineKind::Spike)
            .map(|(line, _)| line + 1)
            .collect()
    }
}

/// Writes the malformed variant `kind` of the reading `fields`.
fn push_malformed(
    buf: &mut Vec<u8>,
    rng: &mut FleetRng,
    kind: MalformedKind,
    fields: Fields<'_>,
    metric: &MetricSpec,
) {
    let raw = |value| Fields { value: Value::Raw(value), ..fields };
    match kind {
        MalformedKind::Truncated => {
            let start = buf.len();
            fields.push(buf, None);
            let len = (buf.len() - start) as u64;
            // Keep 1..=len-2 bytes: the closing `"}` or `}` is always lost.
            let keep = rng.random_range(1..=len - 2);
            buf.truncate(start + keep as usize);
        }
        MalformedKind::MissingField => {
            let skip = rng.random_range(0..4u32) as usize;
            fields.push(buf, Some(skip));
        }
        MalformedKind::NanLiteral => raw(b"NaN").push(buf, None),
        MalformedKind::NanString => raw(b"\"NaN\"").push(buf, None),
        MalformedKind::StringValue => raw(b"\"n/a\"").push(buf, None),
        MalformedKind::OutOfRange => raw(metric.out_of_range).push(buf, None),
        MalformedKind::OverflowInf => raw(b"1e999").push(buf, None),
        MalformedKind::UnknownMetric => Fields {
            metric: b"rpm",
            unit: b"rpm",
            ..fields
        }
        .push(buf, None),
    }
}

/// `(malformed, spikes)` of a file of `lines` lines: `round(lines * 0.001)`
/// and `round(lines * 0.0005)` with Python's float arithmetic and
/// round-half-to-even.
pub(crate) fn special_counts(lines: u64) -> (u64, u64) {
    let n = lines as f64;
    (
        (n * 0.001).round_ties_even() as u64,
        (n * 0.0005).round_ties_even() as u64,
    )
}

/// Picks the malformed and spike lines: a uniformly random ordered sample of
/// distinct line indices (Floyd's algorithm, then a Fisher–Yates shuffle for
/// the order); the first `malformed` picks get the kinds cyclically, the
/// rest are spikes. Returned sorted by line index.
fn plan(lines: u64, rng: &mut FleetRng) -> Vec<(u64, LineKind)> {
    let (n_bad, n_spike) = special_counts(lines);
    let m = (n_bad + n_spike).min(lines);
    let mut chosen = HashSet::with_capacity(m as usize);
    let mut picks = Vec::with_capacity(m as usize);
    for j in lines - m..lines {
        let t = rng.random_range(0..=j);
        let pick = if chosen.insert(t) {
            t
        } else {
            chosen.insert(j);
            j
        };
        picks.push(pick);
    }
    drop(chosen);
    for k in (1..picks.len()).rev() {
        let r = rng.random_range(0..=k as u64) as usize;
        picks.swap(k, r);
    }
    let mut plan: Vec<(u64, LineKind)> = picks
        .into_iter()
        .enumerate()
        .map(|(j, line)| {
            let kind = if (j as u64) < n_bad {
                LineKind::Malformed(MalformedKind::ALL[j % MalformedKind::ALL.len()])
            } else {
                LineKind::Spike
            };
            (line, kind)
        })
        .collect();
    plan.sort_unstable_by_key(|&(line, _)| line);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_like_python() {
        // Values of Python's round(n * 0.001), round(n * 0.0005).
        let cases = [
            (0, (0, 0)),
            (1, (0, 0)),
            (7, (0, 0)),
            (500, (0, 0)),
            (1000, (1, 0)),
            (1500, (2, 1)),
            (2500, (2, 1)),
            (3000, (3, 2)),
            (5000, (5, 2)),
            (200_000, (200, 100)),
            (1_000_000, (1000, 500)),
        ];
        for (n, expected) in cases {
            assert_eq!(special_counts(n), expected, "n = {n}");
        }
    }

    #[test]
    fn plan_is_distinct_sorted_and_cyclic() {
        let mut rng = FleetRng::from_splitmix(&mut SplitMix64(3));
        let plan = plan(100_000, &mut rng);
        assert_eq!(plan.len(), 150);
        assert!(plan.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(plan.iter().all(|&(line, _)| line < 100_000));
        let spikes = plan.iter().filter(|p| p.1 == LineKind::Spike).count();
        assert_eq!(spikes, 50);
        for k in MalformedKind::ALL {
            let n = plan.iter().filter(|p| p.1 == LineKind::Malformed(k)).count();
            let expected = if k.index() < 100 % 8 { 13 } else { 12 };
            assert_eq!(n, expected, "{k}");
        }
    }
}
