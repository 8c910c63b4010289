//! Mahalanobis distance of a vector from an exponentially weighted mean
//! and full covariance: the built-in multivariate statistic.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::threshold::Threshold;

/// Mahalanobis distance (`kind = "mahalanobis"`) of each (shingled) vector
/// `x` of `d` values from an exponentially weighted mean `μ` and covariance
/// `Σ` of the vectors before it: `D² = (x − μ)ᵀ Σ⁻¹ (x − μ)`. Because `Σ`
/// is the full covariance, a vector whose every value is ordinary but whose
/// values disagree with how they usually move together (a correlation
/// break) scores high. For Gaussian data `D²` follows χ² with `d` degrees
/// of freedom; the raw statistic is its Wilson–Hilferty z-score
/// `((D²/d)^(1/3) − (1 − 2/(9d))) / √(2/(9d))`, about N(0, 1) whatever `d`,
/// so the default alarm level is 5 as for the univariate z-scores.
/// O(d³) per vector (a Cholesky factorization), O(d²) state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MahalanobisConfig {
    /// Smoothing factor of mean and covariance, in (0, 1]. Default 0.01.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Vectors before the first score. Default: 0, meaning `max(50, 10 d)`.
    #[serde(default)]
    pub warmup: u64,
    /// Flag rule. Default: fixed at z >= 5.
    #[serde(default)]
    pub threshold: Option<Threshold>,
}

fn default_alpha() -> f64 {
    0.01
}

impl Default for MahalanobisConfig {
    fn default() -> Self {
        MahalanobisConfig {
            alpha: default_alpha(),
            warmup: 0,
            threshold: None,
        }
    }
}

/// Mean and covariance of one series of vectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisState {
    n: u64,
    mean: Vec<f64>,
    /// Row-major `d × d`.
    cov: Vec<f64>,
}

impl MahalanobisConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(Error::Config(format!(
                "mahalanobis alpha must be in (0, 1], got {}",
                self.alpha
            )));
        }
        self.threshold.map_or(Ok(()), |t| t.validate())
    }

    /// The raw value of the default alarm level.
    pub fn scale(&self) -> f64 {
        5.0
    }

    /// The statistic of `x` against the state before it (`None` while
    /// warming up) and the index of the value that deviates most in σ
    /// of its own; then folds `x` in.
    pub fn observe(&self, st: &mut MahalanobisState, x: &[f64]) -> Option<(f64, usize)> {
        let d = x.len();
        if st.mean.len() != d {
            *st = MahalanobisState {
                n: 1,
                mean: x.to_vec(),
                cov: vec![0.0; d * d],
            };
            return None;
        }
        let warmup = if self.warmup == 0 {
            (10 * d as u64).max(50)
        } else {
            self.warmup
        };
        let diff: Vec<f64> = x.iter().zip(&st.mean).map(|(x, m)| x - m).collect();
        let raw = if st.n >= warmup {
            mahalanobis_sq(&st.cov, &diff).map(|d2| {
                let k = d as f64;
                let c = 2.0 / (9.0 * k);
                let z = ((d2 / k).cbrt() - (1.0 - c)) / c.sqrt();
                let worst = (0..d)
                    .max_by(|&a, &b| {
                        let s = |i: usize| diff[i].abs() / st.cov[i * d + i].max(1e-300).sqrt();
                        s(a).total_cmp(&s(b))
                    })
                    .unwrap_or(0);
                (z.clamp(0.0, 1e9), worst)
            })
        } else {
            None
        };
        let a = self.alpha;
        for (m, dv) in st.mean.iter_mut().zip(&diff) {
            *m += a * dv;
        }
        for i in 0..d {
            for j in 0..d {
                let c = &mut st.cov[i * d + j];
                *c = (1.0 - a) * (*c + a * diff[i] * diff[j]);
            }
        }
        st.n += 1;
        raw
    }
}

/// `vᵀ Σ⁻¹ v` by a Cholesky factorization of `Σ` plus a small ridge
/// (relative to its trace); `None` when `Σ` is not positive definite.
fn mahalanobis_sq(cov: &[f64], v: &[f64]) -> Option<f64> {
    let d = v.len();
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    if !(trace > 0.0 && trace.is_finite()) {
        return None;
    }
    let ridge = 1e-9 * trace / d as f64;
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = cov[i * d + j] + if i == j { ridge } else { 0.0 };
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    // Solve L y = v; D² = |y|².
    let mut y = vec![0.0; d];
    let mut d2 = 0.0;
    for i in 0..d {
        let mut s = v[i];
        for k in 0..i {
            s -= l[i * d + k] * y[k];
        }
        y[i] = s / l[i * d + i];
        d2 += y[i] * y[i];
    }
    Some(d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_inverse_of_a_known_covariance() {
        // Σ = [[4, 2], [2, 3]], Σ⁻¹ = [[3, -2], [-2, 4]] / 8.
        let d2 = mahalanobis_sq(&[4.0, 2.0, 2.0, 3.0], &[1.0, 2.0]).expect("pd");
        let want = (3.0 * 1.0 - 2.0 * 2.0 * 1.0 * 2.0 + 4.0 * 4.0) / 8.0;
        assert!((d2 - want).abs() < 1e-6, "{d2} vs {want}");
        assert_eq!(mahalanobis_sq(&[1.0, 2.0, 2.0, 1.0], &[1.0, 0.0]), None);
    }
}
