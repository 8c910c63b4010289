//! The state contract: how operator state is snapshotted, restored and
//! rescaled.
//!
//! Every stateful operator keeps its state keyed, in one serde type per
//! worker that implements [`KeyedState`]. A snapshot is that type encoded
//! with [`encode`]: bincode behind a small header (magic, format version,
//! length, CRC-32), so a truncated or corrupted snapshot is detected by
//! [`decode`] instead of restoring garbage.
//!
//! Keys live on the worker that timely's exchange sends them to:
//! [`route`]`(stable_hash(key), peers)` — the same rule as
//! `Exchange::new(|r| stable_hash(key(r)))`. State written by `W` workers can
//! therefore be reloaded by any number `W'` of workers: each new worker
//! decodes every old part and keeps the keys it owns ([`rescale`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Magic bytes of a state snapshot.
const MAGIC: &[u8; 4] = b"IFS1";
const HEADER: usize = 4 + 8 + 4;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not a snapshot, or of another format version.
    #[error("not an iotflow state snapshot (bad magic)")]
    BadMagic,
    /// Shorter than its header says (e.g. a write cut short by a crash).
    #[error("snapshot truncated: {have} of {want} bytes")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The payload does not match its checksum.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// The payload does not decode as the expected state type.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// The state could not be encoded.
    #[error("state does not encode: {0}")]
    Encode(String),
}

/// Encodes `state` as a self-checking snapshot.
pub fn encode<S: Serialize>(state: &S) -> Result<Vec<u8>, SnapshotError> {
    let payload = bincode::serde::encode_to_vec(state, bincode::config::standard())
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a snapshot's header, length and checksum without decoding it.
pub fn check(bytes: &[u8]) -> Result<(), SnapshotError> {
    payload(bytes).map(|_| ())
}

/// Decodes a snapshot written by [`encode`], checking length and checksum.
pub fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, SnapshotError> {
    let payload = payload(bytes)?;
    bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map(|(s, _)| s)
        .map_err(|e| SnapshotError::Decode(e.to_string()))
}

fn payload(bytes: &[u8]) -> Result<&[u8], SnapshotError> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(
            if bytes.len() < HEADER && MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
                SnapshotError::Truncated {
                    have: bytes.len(),
                    want: HEADER,
                }
            } else {
                SnapshotError::BadMagic
            },
        );
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[4..12]);
    let want = HEADER as u64 + u64::from_le_bytes(len);
    if (bytes.len() as u64) < want {
        return Err(SnapshotError::Truncated {
            have: bytes.len(),
            want: want as usize,
        });
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[12..16]);
    let payload = &bytes[HEADER..want as usize];
    if crc32fast::hash(payload) != u32::from_le_bytes(crc) {
        return Err(SnapshotError::Checksum);
    }
    Ok(payload)
}

/// The worker (of `peers`) that owns a key with stable hash `hash`; the same
/// rule as timely's exchange.
#[inline]
pub fn route(hash: u64, peers: usize) -> usize {
    (hash % peers.max(1) as u64) as usize
}

/// State partitioned by key, that can be split and merged for rescaling.
pub trait KeyedState: Sized + Serialize + DeserializeOwned {
    /// Drops every key that worker `worker` of `peers` does not own.
    fn retain_owned(&mut self, worker: usize, peers: usize);
    /// Adds `other`'s keys (disjoint in a consistent snapshot) to `self`.
    fn merge(&mut self, other: Self);
}

/// The state of worker `worker` of `peers`, from the parts written by any
/// number of old workers.
pub fn rescale<S: KeyedState>(parts: Vec<S>, worker: usize, peers: usize) -> Option<S> {
    let mut parts = parts.into_iter();
    let mut acc = parts.next()?;
    acc.retain_owned(worker, peers);
    for mut p in parts {
        p.retain_owned(worker, peers);
        acc.merge(p);
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Counts(BTreeMap<String, u64>);

    impl KeyedState for Counts {
        fn retain_owned(&mut self, worker: usize, peers: usize) {
            self.0
                .retain(|k, _| route(iotflow_types::stable_hash(k.as_str()), peers) == worker);
        }
        fn merge(&mut self, other: Self) {
            for (k, v) in other.0 {
                *self.0.entry(k).or_default() += v;
            }
        }
    }

    fn counts(keys: &[&str]) -> Counts {
        Counts(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), i as u64))
                .collect(),
        )
    }

    #[test]
    fn round_trip_and_corruption_detected() {
        let c = counts(&["a", "b", "c"]);
        let bytes = encode(&c).expect("encode");
        assert_eq!(decode::<Counts>(&bytes), Ok(c));
        assert!(matches!(
            decode::<Counts>(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Truncated { .. })
        ));
        assert!(matches!(
            decode::<Counts>(&bytes[..3]),
            Err(SnapshotError::Truncated { .. })
        ));
        let mut flipped = bytes;
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert_eq!(decode::<Counts>(&flipped), Err(SnapshotError::Checksum));
        assert_eq!(
            decode::<Counts>(b"garbage-garbage-garbage"),
            Err(SnapshotError::BadMagic)
        );
    }

    #[test]
    fn rescale_keeps_every_key_exactly_once() {
        let keys: Vec<String> = (0..200).map(|i| format!("d-{i}")).collect();
        let all = Counts(keys.iter().map(|k| (k.clone(), 1)).collect());
        for old in 1..=3 {
            // Split the state the way `old` workers would hold it.
            let parts: Vec<Counts> = (0..old)
                .map(|w| {
                    let mut c = Counts(all.0.clone());
                    c.retain_owned(w, old);
                    c
                })
                .collect();
            for new in 1..=3 {
                let mut merged = Counts(BTreeMap::new());
                for w in 0..new {
                    let mine = rescale(parts.iter().map(|p| Counts(p.0.clone())).collect(), w, new)
                        .expect("parts");
                    assert!(
                        mine.0
                            .keys()
                            .all(|k| route(iotflow_types::stable_hash(k.as_str()), new) == w)
                    );
                    merged.merge(mine);
                }
                assert_eq!(merged, all, "{old} -> {new} workers");
            }
        }
    }
}
