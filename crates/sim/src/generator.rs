use rand::Rng;

use crate::format::push_zero_padded;
use crate::line::{Fields, METRICS, Value, push_malformed};
use crate::plan::plan;
use crate::rng::{FleetRng, SplitMix64, StdNormal};
use crate::{FleetConfig, FleetMeta, LineKind};

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
