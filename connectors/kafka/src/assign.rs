//! Which worker reads which partition, and how partitions are named.
//!
//! Every worker computes the same answer from the same metadata, without
//! talking to the others or to a group coordinator: partition `p` of topic
//! `t` goes to worker `(start(t) + p) % peers`, where `start(t)` is a stable
//! hash of the topic name modulo `peers` (Flink's `KafkaSourceEnumerator`
//! rule). Each topic's partitions are dealt round-robin over all workers, so
//! the load differs by at most one partition per topic, and a partition
//! added later (discovery) never moves an existing one to another worker —
//! which a rule over the position in one sorted list of all topics'
//! partitions would do as soon as a topic other than the last one grows.

use std::sync::Arc;

use iotflow_core::source::{Position, Resume};

/// The partition key of `topic`/`partition` in chunks and checkpoints:
/// `kafka:{topic}/{partition}`. It does not depend on the worker, so a
/// checkpoint taken with `W` workers resumes on any number.
pub fn partition_key(topic: &str, partition: i32) -> Arc<str> {
    Arc::from(format!("kafka:{topic}/{partition}"))
}

/// The topic and partition of a key made by [`partition_key`], or `None`
/// for a key of another source.
pub fn parse_partition_key(key: &str) -> Option<(&str, i32)> {
    let rest = key.strip_prefix("kafka:")?;
    let (topic, partition) = rest.rsplit_once('/')?;
    if topic.is_empty() {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    (partition >= 0).then_some((topic, partition))
}

/// FNV-1a: stable across processes, builds and Rust versions (the
/// standard hasher is not promised to be).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The worker (of `peers`) that reads `partition` of `topic`.
pub fn owner(topic: &str, partition: i32, peers: usize) -> usize {
    let peers = peers.max(1) as u64;
    let start = fnv1a(topic.as_bytes()) % peers;
    let p = u64::try_from(partition).unwrap_or(0);
    ((start + p % peers) % peers) as usize
}

/// Converts the positions a completed checkpoint holds into offsets to
/// commit: `(topic, partition, next offset)`. A `Done` partition commits
/// the offset after its last message, which `done_at(key)` knows; keys of
/// other sources and sequence positions are skipped.
pub fn offsets_to_commit(
    positions: &[Resume],
    done_at: impl Fn(&str) -> Option<u64>,
) -> Vec<(String, i32, u64)> {
    let mut out = Vec::with_capacity(positions.len());
    for r in positions {
        let Some((topic, partition)) = parse_partition_key(&r.partition) else {
            continue;
        };
        let offset = match &r.position {
            Position::Offset(o) => Some(*o),
            Position::Done => done_at(&r.partition),
            _ => None,
        };
        if let Some(o) = offset {
            out.push((topic.to_owned(), partition, o));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_others() {
        let k = partition_key("fleet.v1/raw", 12);
        assert_eq!(&*k, "kafka:fleet.v1/raw/12");
        assert_eq!(parse_partition_key(&k), Some(("fleet.v1/raw", 12)));
        assert_eq!(parse_partition_key("kinesis:s/shardId-0"), None);
        assert_eq!(parse_partition_key("kafka:t/x"), None);
        assert_eq!(parse_partition_key("kafka:/3"), None);
        assert_eq!(parse_partition_key("kafka:t/-1"), None);
        assert_eq!(parse_partition_key("kafka:t"), None);
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_load_is_even() {
        for peers in 1..=7 {
            for topic in ["a", "readings", "fleet-v1"] {
                let mut load = vec![0usize; peers];
                for p in 0..50 {
                    let owners: Vec<usize> = (0..peers)
                        .filter(|&w| owner(topic, p, peers) == w)
                        .collect();
                    assert_eq!(owners.len(), 1, "{topic}/{p} with {peers} peers");
                    load[owners[0]] += 1;
                }
                let (min, max) = (load.iter().min(), load.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{load:?}");
            }
        }
    }

    #[test]
    fn consecutive_partitions_go_to_consecutive_workers() {
        let peers = 3;
        let first = owner("t", 0, peers);
        for p in 0..9 {
            assert_eq!(owner("t", p, peers), (first + p as usize) % peers);
        }
    }

    #[test]
    fn adding_partitions_or_topics_moves_nothing() {
        let peers = 4;
        let before: Vec<usize> = (0..8).map(|p| owner("t", p, peers)).collect();
        // A grown topic and a second topic leave the first's owners alone.
        let after: Vec<usize> = (0..16).map(|p| owner("t", p, peers)).collect();
        assert_eq!(&after[..8], &before[..]);
        assert_eq!(
            (0..8).map(|p| owner("t", p, peers)).collect::<Vec<_>>(),
            before
        );
    }

    #[test]
    fn one_worker_owns_everything() {
        assert!((0..100).all(|p| owner("x", p, 1) == 0));
        // peers = 0 is treated as 1 rather than dividing by zero.
        assert_eq!(owner("x", 3, 0), 0);
    }

    #[test]
    fn commit_offsets_from_positions() {
        let positions = vec![
            Resume {
                partition: partition_key("t", 0),
                position: Position::Offset(17),
            },
            Resume {
                partition: partition_key("t", 1),
                position: Position::Done,
            },
            Resume {
                partition: partition_key("t", 2),
                position: Position::Done,
            },
            Resume {
                partition: Arc::from("file:/x@0"),
                position: Position::Offset(5),
            },
        ];
        let got = offsets_to_commit(&positions, |k| (k == "kafka:t/1").then_some(40));
        assert_eq!(got, vec![("t".to_owned(), 0, 17), ("t".to_owned(), 1, 40)]);
    }
}
