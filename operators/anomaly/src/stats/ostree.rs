//! An order-statistics multiset of `f64`: insert, remove and select the k-th
//! smallest in O(log n) expected, as a treap (a binary search tree that is a
//! heap on random priorities) with subtree sizes, in an arena so that it is
//! plain data (serde, `Clone`) for snapshots.
//!
//! Values are ordered by `f64::total_cmp`, so equal values are kept as
//! duplicates and NaN would sort last (detectors never insert NaN).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Node {
    key: f64,
    prio: u32,
    size: u32,
    left: u32,
    right: u32,
}

/// An order-statistics multiset of `f64`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderStats {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    /// xorshift state for priorities: deterministic, so a run and its
    /// restored snapshot build the same trees.
    seed: u32,
}

impl Default for OrderStats {
    fn default() -> Self {
        OrderStats {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            seed: 0x9E37_79B9,
        }
    }
}

impl OrderStats {
    /// Number of values held.
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size
        }
    }

    fn fix(&mut self, t: u32) {
        let n = self.nodes[t as usize];
        self.nodes[t as usize].size = 1 + self.size(n.left) + self.size(n.right);
    }

    fn next_prio(&mut self) -> u32 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        x
    }

    /// Splits `t` into (keys < key, keys >= key).
    fn split(&mut self, t: u32, key: f64) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let n = self.nodes[t as usize];
        if n.key.total_cmp(&key) == Ordering::Less {
            let (a, b) = self.split(n.right, key);
            self.nodes[t as usize].right = a;
            self.fix(t);
            (t, b)
        } else {
            let (a, b) = self.split(n.left, key);
            self.nodes[t as usize].left = b;
            self.fix(t);
            (a, t)
        }
    }

    /// Splits `t` into its `k` smallest values and the rest.
    fn split_rank(&mut self, t: u32, k: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let n = self.nodes[t as usize];
        let ls = self.size(n.left);
        if k <= ls {
            let (a, b) = self.split_rank(n.left, k);
            self.nodes[t as usize].left = b;
            self.fix(t);
            (a, t)
        } else {
            let (a, b) = self.split_rank(n.right, k - ls - 1);
            self.nodes[t as usize].right = a;
            self.fix(t);
            (t, b)
        }
    }

    /// Joins `a` and `b`, every key of `a` <= every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.nodes[a as usize].right;
            let m = self.merge(r, b);
            self.nodes[a as usize].right = m;
            self.fix(a);
            a
        } else {
            let l = self.nodes[b as usize].left;
            let m = self.merge(a, l);
            self.nodes[b as usize].left = m;
            self.fix(b);
            b
        }
    }

    /// Adds a value.
    pub fn insert(&mut self, key: f64) {
        let node = Node {
            key,
            prio: self.next_prio(),
            size: 1,
            left: NIL,
            right: NIL,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (a, b) = self.split(self.root, key);
        let a = self.merge(a, id);
        self.root = self.merge(a, b);
    }

    /// Removes one copy of `key`; `false` if it is not held.
    pub fn remove(&mut self, key: f64) -> bool {
        let (a, b) = self.split(self.root, key);
        let (one, rest) = self.split_rank(b, 1);
        let found = one != NIL && self.nodes[one as usize].key.total_cmp(&key) == Ordering::Equal;
        let b = if found {
            self.free.push(one);
            rest
        } else {
            self.merge(one, rest)
        };
        self.root = self.merge(a, b);
        found
    }

    /// The `k`-th smallest value (0-based), if `k < len`.
    pub fn select(&self, mut k: usize) -> Option<f64> {
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t as usize];
            let ls = self.size(n.left) as usize;
            match k.cmp(&ls) {
                Ordering::Less => t = n.left,
                Ordering::Equal => return Some(n.key),
                Ordering::Greater => {
                    k -= ls + 1;
                    t = n.right;
                }
            }
        }
        None
    }

    /// The median: the middle value, or the mean of the two middle values.
    pub fn median(&self) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let hi = self.select(n / 2)?;
        if n % 2 == 1 {
            Some(hi)
        } else {
            Some(midpoint(self.select(n / 2 - 1)?, hi))
        }
    }

    /// The median and the median absolute deviation from it, in O(log² n):
    /// the deviations of the values below the median and of those above it
    /// are two sorted sequences, and the median of their union is found by
    /// a binary search over how many come from each.
    pub fn median_mad(&self) -> Option<(f64, f64)> {
        let n = self.len();
        let m = self.median()?;
        let p = n / 2;
        // Left deviations: m - a[p-1-i], i in 0..p; right: a[p+j] - m.
        let left = |i: usize| self.select(p - 1 - i).map_or(f64::INFINITY, |x| m - x);
        let right = |j: usize| self.select(p + j).map_or(f64::INFINITY, |x| x - m);
        let kth = |k: usize| kth_of_two(k, p, n - p, left, right);
        let hi = kth(n / 2);
        let mad = if n % 2 == 1 {
            hi
        } else {
            midpoint(kth(n / 2 - 1), hi)
        };
        Some((m, mad))
    }
}

fn midpoint(a: f64, b: f64) -> f64 {
    a + (b - a) / 2.0
}

/// The `k`-th smallest (0-based) of the union of two sorted sequences of
/// lengths `na` and `nb`, given by accessors.
fn kth_of_two(
    k: usize,
    na: usize,
    nb: usize,
    a: impl Fn(usize) -> f64,
    b: impl Fn(usize) -> f64,
) -> f64 {
    // i = how many of the k+1 smallest come from `a`.
    let mut lo = (k + 1).saturating_sub(nb);
    let mut hi = (k + 1).min(na);
    while lo < hi {
        let i = lo + (hi - lo) / 2;
        let j = k + 1 - i;
        // Too few from `a` while a[i] is smaller than the last taken b.
        if j > 0 && a(i) < b(j - 1) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let (i, j) = (lo, k + 1 - lo);
    let from_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
    let from_b = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
    from_a.max(from_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The textbook computation: sort, take the middle, sort the absolute
    /// deviations, take their middle.
    pub(crate) fn naive_median_mad(values: &[f64]) -> (f64, f64) {
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                midpoint(v[n / 2 - 1], v[n / 2])
            }
        };
        let m = med(&mut values.to_vec());
        let mut dev: Vec<f64> = values
            .iter()
            .map(|x| if *x <= m { m - x } else { x - m })
            .collect();
        (m, med(&mut dev))
    }

    #[test]
    fn select_matches_sorted_vector_under_random_inserts_and_removes() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut t = OrderStats::default();
        let mut v: Vec<f64> = Vec::new();
        for _ in 0..5000 {
            if v.is_empty() || rng.random_bool(0.6) {
                // Few distinct values, to exercise duplicates.
                let x = f64::from(rng.random_range(0..50)) * 0.5;
                t.insert(x);
                v.push(x);
            } else {
                let x = v.swap_remove(rng.random_range(0..v.len()));
                assert!(t.remove(x));
            }
            assert!(!t.remove(1e9));
            v.sort_by(f64::total_cmp);
            assert_eq!(t.len(), v.len());
            for (k, x) in v.iter().enumerate() {
                assert_eq!(t.select(k), Some(*x));
            }
            assert_eq!(t.select(v.len()), None);
        }
    }

    #[test]
    fn median_mad_matches_naive_on_sliding_windows() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        for window in [1usize, 2, 3, 4, 7, 16, 33, 64] {
            let mut t = OrderStats::default();
            let mut q = std::collections::VecDeque::new();
            for i in 0..600 {
                let x = if i % 50 < 10 {
                    3.0 // runs of equal values
                } else {
                    rng.random::<f64>() * 10.0 - 5.0
                };
                t.insert(x);
                q.push_back(x);
                if q.len() > window {
                    let old = q.pop_front().expect("non-empty");
                    assert!(t.remove(old));
                }
                let v: Vec<f64> = q.iter().copied().collect();
                let (m, mad) = naive_median_mad(&v);
                assert_eq!(t.median_mad(), Some((m, mad)), "window {window} step {i}");
            }
        }
    }

    #[test]
    fn nodes_are_reused() {
        let mut t = OrderStats::default();
        for i in 0..1000 {
            t.insert(f64::from(i));
            if i >= 10 {
                assert!(t.remove(f64::from(i - 10)));
            }
        }
        assert!(t.nodes.len() <= 12);
        assert_eq!(t.len(), 10);
    }
}
