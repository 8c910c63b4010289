//! Random Cut Forest (feature `rcf`): `krcflib`, AWS's Rust RCF.

use iotflow_types::Timestamp;
use rcflib::rcf::{AugmentedRCF, RCFBuilder, RCFLarge, RCFOptionsBuilder};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::detector::Statistic;
use crate::threshold::Threshold;

/// Random Cut Forest (`kind = "rcf"`): a forest of random cut trees over
/// the last `shingle_size` readings of the series as one point; the score
/// is the forest's expected inverse depth of the point (how easily it is
/// isolated), computed before the point is added. Raw statistic: the RCF
/// score (about 0.7 for ordinary points); default alarm level 2.5.
///
/// Cost: O(trees · log sample_size) per reading, and memory proportional
/// to `trees · sample_size` per series — orders of magnitude more than the
/// other detectors. Measured per series (`tests/rcf_memory.rs`, shingle 4,
/// resident memory over 100 series and checkpoint bytes):
///
/// | trees × sample_size | resident | checkpoint | 40,000 series |
/// |---|---|---|---|
/// | 50 × 256 (default) | ~1.05 MiB | ~830 KiB | ~42 GiB: exhausts memory |
/// | 20 × 128 | ~210 KiB | ~150 KiB | ~8 GiB |
/// | 10 × 64 | ~56 KiB | ~38 KiB | ~2.2 GiB |
/// | 5 × 32 | ~28 KiB | ~10 KiB | ~1.1 GiB |
///
/// So the default suits tens or hundreds of series; for one forest per
/// (device, metric) of a fleet, lower both (accuracy falls with them:
/// fewer trees make the score noisier, a smaller sample forgets sooner),
/// or use the multivariate mode, one forest per device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcfConfig {
    /// Consecutive readings per point. Default 4.
    #[serde(default = "default_shingle")]
    pub shingle_size: usize,
    /// Trees. Default 50.
    #[serde(default = "default_trees")]
    pub trees: usize,
    /// Points each tree samples. Default 256.
    #[serde(default = "default_sample")]
    pub sample_size: usize,
    /// Points before the first score. Default 64.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Seed of the trees' randomness. Default 42.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Flag rule. Default: fixed at 2.5.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_shingle() -> usize {
    4
}
fn default_trees() -> usize {
    50
}
fn default_sample() -> usize {
    256
}
fn default_warmup() -> usize {
    64
}
fn default_seed() -> u64 {
    42
}

impl Default for RcfConfig {
    fn default() -> Self {
        RcfConfig {
            shingle_size: default_shingle(),
            trees: default_trees(),
            sample_size: default_sample(),
            warmup: default_warmup(),
            seed: default_seed(),
            threshold: None,
        }
    }
}

/// One series' forest (built at its first reading).
pub type Forest = RCFLarge<u64, u64>;

impl RcfConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        self.forest(1).map(|_| ())
    }

    /// A forest for points of `dims` values (before shingling).
    pub fn forest(&self, dims: usize) -> Result<Forest, Error> {
        RCFBuilder::new(dims, self.shingle_size)
            .tree_capacity(self.sample_size)
            .number_of_trees(self.trees)
            .random_seed(self.seed)
            .output_after(self.warmup)
            .internal_shingling(true)
            .parallel_enabled(false)
            .build_large_simple::<u64>()
            .map_err(|e| Error::Config(format!("rcf: {e:?}")))
    }

    /// Scores `point` against the forest, then adds it; `None` while
    /// warming up or if the forest rejects the point.
    pub fn score_update(&self, forest: &mut Forest, point: &[f32]) -> Option<f64> {
        let ready = forest.entries_seen() as usize >= self.warmup + self.shingle_size;
        let score = if ready {
            forest.score(point).ok()
        } else {
            None
        };
        let seen = forest.entries_seen();
        forest.update(point, seen).ok()?;
        score
    }
}

/// The forest of one series.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RcfState {
    forest: Option<Box<Forest>>,
}

impl Statistic for RcfConfig {
    type State = RcfState;

    fn init(&self) -> RcfState {
        RcfState::default()
    }

    fn observe(&self, st: &mut RcfState, _ts: Timestamp, value: f64) -> Option<f64> {
        if st.forest.is_none() {
            st.forest = Some(Box::new(self.forest(1).ok()?));
        }
        let forest = st.forest.as_mut()?;
        self.score_update(forest, &[value as f32])
    }

    fn scale(&self) -> f64 {
        2.5
    }
}
