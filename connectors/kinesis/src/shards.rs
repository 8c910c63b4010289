//! Shard lineage: which worker owns a shard, and when a shard may be read.
//!
//! Pure logic over a listing of shards, plus the process-wide registry of
//! finished shards that lets a merged child wait for an adjacent parent
//! read by another worker of the same process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use iotflow_core::source::Position;

/// One shard as `ListShards` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardInfo {
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    pub(crate) adjacent_parent: Option<String>,
    /// The last sequence number of a closed shard; `None` while open.
    pub(crate) ending_sequence: Option<String>,
}

impl ShardInfo {
    /// Parents named by the shard (merges have two, splits one).
    pub(crate) fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent
            .iter()
            .chain(&self.adjacent_parent)
            .map(String::as_str)
    }
}

/// FNV-1a, 64 bits: a hash that never changes across versions, platforms
/// or processes (assignment must be the same everywhere).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The worker that reads shards descending from `root`.
pub(crate) fn owner_of_root(root: &str, peers: usize) -> usize {
    let peers = peers.max(1) as u64;
    // The modulus is below `peers`, which fits usize.
    usize::try_from(fnv1a(root.as_bytes()) % peers).unwrap_or(0)
}

/// The shards of a stream at one listing, by id.
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    shards: BTreeMap<String, ShardInfo>,
}

impl Listing {
    pub(crate) fn new(shards: impl IntoIterator<Item = ShardInfo>) -> Self {
        Listing {
            shards: shards.into_iter().map(|s| (s.id.clone(), s)).collect(),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&ShardInfo> {
        self.shards.get(id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.shards.contains_key(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ShardInfo> {
        self.shards.values()
    }

    /// The oldest ancestor of `id` reachable through `ParentShardId` in this
    /// listing (ancestors past the retention period are no longer listed).
    pub(crate) fn root<'a>(&'a self, id: &'a str) -> &'a str {
        let mut at = id;
        // A listing is a forest; the bound only guards against a server that
        // reports a cycle.
        for _ in 0..=self.shards.len() {
            match self.shards.get(at).and_then(|s| s.parent.as_deref()) {
                Some(p) if self.shards.contains_key(p) => at = p,
                _ => break,
            }
        }
        at
    }

    /// Parents of `id` that this listing still holds (the others are past
    /// retention: nothing of them is left to read).
    pub(crate) fn listed_parents<'a>(&'a self, id: &str) -> Vec<&'a str> {
        self.shards
            .get(id)
            .map(|s| s.parents().filter(|p| self.contains(p)).collect())
            .unwrap_or_default()
    }
}

/// Whether a shard listed when the source starts, with no position of its
/// own, continues a lineage the restored checkpoint was in the middle of:
/// some ancestor (through ancestors without positions) has a sequence
/// position. Such a shard holds only records after data still to be read,
/// so it is read from its beginning whatever the configured start.
pub(crate) fn continues_restored_lineage(
    listing: &Listing,
    id: &str,
    resume: &HashMap<String, Position>,
) -> bool {
    let mut stack = vec![id];
    let mut seen = HashSet::new();
    while let Some(at) = stack.pop() {
        if !seen.insert(at) {
            continue;
        }
        for p in listing.listed_parents(at) {
            match resume.get(p) {
                Some(Position::Done) => {}
                Some(_) => return true,
                None => stack.push(p),
            }
        }
    }
    false
}

/// Remembers each shard's owner from the first listing it appeared in, so
/// that a parent dropping out of later listings (retention) does not move
/// its descendants to another worker in the middle of a run.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    peers: usize,
    known: HashMap<String, usize>,
}

impl Owners {
    pub(crate) fn new(peers: usize) -> Self {
        Owners {
            peers: peers.max(1),
            known: HashMap::new(),
        }
    }

    /// The owner of `id`: its parent's if the parent's is known (children
    /// stay with their parent), else by the root of its lineage in
    /// `listing`.
    pub(crate) fn owner(&mut self, listing: &Listing, id: &str) -> usize {
        if let Some(&w) = self.known.get(id) {
            return w;
        }
        let inherited = listing
            .get(id)
            .and_then(|s| s.parent.as_deref())
            .and_then(|p| self.known.get(p).copied());
        let w = inherited.unwrap_or_else(|| owner_of_root(listing.root(id), self.peers));
        self.known.insert(id.to_owned(), w);
        w
    }
}

/// Shards of one stream that some source of this process has read to
/// their end (or restored as done), shared by the workers of a job.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    shards: Mutex<HashSet<String>>,
}

impl Finished {
    pub(crate) fn insert(&self, id: &str) {
        if let Ok(mut s) = self.shards.lock() {
            s.insert(id.to_owned());
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.shards.lock().is_ok_and(|s| s.contains(id))
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Finished>>>> = LazyLock::new(Mutex::default);

/// The registry of finished shards shared by the sources with the same
/// `key` (the job's view of one stream: endpoint, stream, worker count and
/// restored positions), alive while any of them is.
///
/// Two identical jobs running at the same time in one process share it:
/// a merged child may then start before its adjacent parent is read by the
/// other job (order across that merge only; nothing is lost).
pub(crate) fn finished_registry(key: &str) -> Arc<Finished> {
    let Ok(mut reg) = REGISTRY.lock() else {
        return Arc::default();
    };
    reg.retain(|_, w| w.strong_count() > 0);
    if let Some(f) = reg.get(key).and_then(Weak::upgrade) {
        return f;
    }
    let f = Arc::new(Finished::default());
    reg.insert(key.to_owned(), Arc::downgrade(&f));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>, closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            ending_sequence: closed.then(|| "9".into()),
        }
    }

    /// 0 and 1 at creation; 0 split into 2, 3; 3 and 1 merged into 4.
    fn reshaped() -> Listing {
        Listing::new([
            shard("s0", None, None, true),
            shard("s1", None, None, true),
            shard("s2", Some("s0"), None, false),
            shard("s3", Some("s0"), None, true),
            shard("s4", Some("s3"), Some("s1"), false),
        ])
    }

    #[test]
    fn roots_follow_parent_shard_ids() {
        let l = reshaped();
        assert_eq!(l.root("s0"), "s0");
        assert_eq!(l.root("s2"), "s0");
        assert_eq!(l.root("s4"), "s0");
        assert_eq!(l.root("s1"), "s1");
        assert_eq!(l.root("unknown"), "unknown");
    }

    #[test]
    fn a_lineage_stays_on_one_worker_for_any_worker_count() {
        let l = reshaped();
        for peers in 1..=7 {
            let mut o = Owners::new(peers);
            let w0 = o.owner(&l, "s0");
            assert!(w0 < peers);
            for child in ["s2", "s3", "s4"] {
                assert_eq!(o.owner(&l, child), w0, "peers={peers} child={child}");
            }
            // Any other worker computing from the same listing agrees.
            let mut other = Owners::new(peers);
            assert_eq!(other.owner(&l, "s4"), w0);
            assert_eq!(other.owner(&l, "s1"), owner_of_root("s1", peers));
        }
    }

    #[test]
    fn assignment_is_a_fixed_function_of_the_root_id() {
        // FNV-1a of fixed strings: a change here would move shards between
        // workers of existing deployments on upgrade.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let spread: HashSet<usize> = (0..16)
            .map(|i| owner_of_root(&format!("shardId-{i:012}"), 4))
            .collect();
        assert_eq!(spread.len(), 4, "16 shards should reach all 4 workers");
    }

    #[test]
    fn owners_survive_parents_leaving_the_listing() {
        let mut o = Owners::new(5);
        let full = reshaped();
        let w = o.owner(&full, "s2");
        // s0 is past retention: s2 is now a root of its own, but keeps its
        // owner within the run.
        let trimmed = Listing::new(full.iter().filter(|s| s.id != "s0").cloned());
        assert_eq!(trimmed.root("s2"), "s2");
        assert_eq!(o.owner(&trimmed, "s2"), w);
        // A new child of s2 inherits s2's owner.
        let grown = Listing::new(trimmed.iter().cloned().chain([shard(
            "s5",
            Some("s2"),
            None,
            false,
        )]));
        assert_eq!(o.owner(&grown, "s5"), w);
    }

    #[test]
    fn listed_parents_skip_expired_ones() {
        let l = reshaped();
        assert_eq!(l.listed_parents("s4"), vec!["s3", "s1"]);
        let trimmed = Listing::new(l.iter().filter(|s| s.id != "s1").cloned());
        assert_eq!(trimmed.listed_parents("s4"), vec!["s3"]);
        assert!(l.listed_parents("s0").is_empty());
    }

    #[test]
    fn shards_continuing_a_restored_lineage_start_at_their_beginning() {
        let l = reshaped();
        let seq = |s: &str| Position::Sequence(s.into());
        let none = HashMap::new();
        assert!(!continues_restored_lineage(&l, "s4", &none));
        // Mid-way through s0: s2, s3 and (through s3) s4 continue it.
        let mid: HashMap<String, Position> = [("s0".to_owned(), seq("5"))].into();
        for id in ["s2", "s3", "s4"] {
            assert!(continues_restored_lineage(&l, id, &mid), "{id}");
        }
        assert!(!continues_restored_lineage(&l, "s1", &mid));
        // s0 done, s3 done: s4 only depends on s1, which has no position.
        let done: HashMap<String, Position> = [
            ("s0".to_owned(), Position::Done),
            ("s3".to_owned(), Position::Done),
        ]
        .into();
        assert!(!continues_restored_lineage(&l, "s4", &done));
        let adj: HashMap<String, Position> = [
            ("s3".to_owned(), Position::Done),
            ("s1".to_owned(), seq("2")),
        ]
        .into();
        assert!(continues_restored_lineage(&l, "s4", &adj));
    }

    #[test]
    fn registry_is_shared_while_alive_and_fresh_afterwards() {
        let a = finished_registry("test-key");
        let b = finished_registry("test-key");
        a.insert("s0");
        assert!(b.contains("s0"));
        drop((a, b));
        let c = finished_registry("test-key");
        assert!(!c.contains("s0"));
    }
}
