//! How a key's matcher is written to a checkpoint and read back.
//!
//! A matcher holds closures nowhere: runs are stage indices, bitmasks and a
//! chain of events. The chain is a shared list in memory; in a snapshot each
//! event is written once (with its sequence number) and each run or waiting
//! match as the path of (stage, sequence) pairs it took. Reading it back
//! rebuilds the shared list node by node, so runs that shared a prefix share
//! it again, exactly as before.

use std::collections::HashMap;
use std::rc::Rc;

use iotflow_types::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::matched::Node;
use crate::nfa::{At, Done, Matcher, Run};

type Path = Vec<(u16, u64)>;

#[derive(Serialize, Deserialize)]
struct RunSnap {
    at: At,
    greedy: Option<u16>,
    not_next: u32,
    not_followed: u32,
    accepting: bool,
    start_ts: Timestamp,
    start_seq: u64,
    path: Path,
}

#[derive(Serialize)]
struct SnapRef<'a, E> {
    now: Timestamp,
    next_seq: u64,
    events: Vec<(u64, Timestamp, &'a E)>,
    runs: Vec<RunSnap>,
    held: Vec<(Path, Timestamp)>,
}

#[derive(Deserialize)]
struct Snap<E> {
    now: Timestamp,
    next_seq: u64,
    events: Vec<(u64, Timestamp, E)>,
    runs: Vec<RunSnap>,
    held: Vec<(Path, Timestamp)>,
}

fn path_of<'a, E>(chain: &'a Rc<Node<E>>, events: &mut HashMap<u64, (Timestamp, &'a E)>) -> Path {
    chain
        .path()
        .into_iter()
        .map(|n| {
            events.entry(n.seq).or_insert((n.ts, n.event.as_ref()));
            (n.stage, n.seq)
        })
        .collect()
}

impl<E: Serialize> Serialize for Matcher<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut events = HashMap::new();
        let runs = self
            .runs
            .iter()
            .map(|r| RunSnap {
                at: r.at,
                greedy: r.greedy,
                not_next: r.not_next,
                not_followed: r.not_followed,
                accepting: r.accepting,
                start_ts: r.start_ts,
                start_seq: r.start_seq,
                path: path_of(&r.chain, &mut events),
            })
            .collect();
        let held = self
            .held
            .iter()
            .map(|d| (path_of(&d.chain, &mut events), d.at))
            .collect();
        let mut events: Vec<(u64, Timestamp, &E)> =
            events.into_iter().map(|(s, (t, e))| (s, t, e)).collect();
        events.sort_by_key(|(s, _, _)| *s);
        SnapRef {
            now: self.now,
            next_seq: self.next_seq,
            events,
            runs,
            held,
        }
        .serialize(s)
    }
}

/// Rebuilds shared chains: one node per (parent, stage, seq).
struct Rebuild<E> {
    events: HashMap<u64, (Timestamp, Rc<E>)>,
    nodes: HashMap<(usize, u16, u64), Rc<Node<E>>>,
}

impl<E> Rebuild<E> {
    fn chain(&mut self, path: &Path) -> Result<Rc<Node<E>>, String> {
        let mut prev: Option<Rc<Node<E>>> = None;
        for &(stage, seq) in path {
            let parent = prev.as_ref().map_or(0, |n| Rc::as_ptr(n) as usize);
            let node = match self.nodes.get(&(parent, stage, seq)) {
                Some(n) => n.clone(),
                None => {
                    let (ts, event) = self
                        .events
                        .get(&seq)
                        .ok_or_else(|| format!("snapshot misses event {seq}"))?;
                    let n = Rc::new(Node {
                        stage,
                        seq,
                        ts: *ts,
                        event: event.clone(),
                        prev: prev.take(),
                    });
                    self.nodes.insert((parent, stage, seq), n.clone());
                    n
                }
            };
            prev = Some(node);
        }
        prev.ok_or_else(|| "snapshot holds an empty partial match".to_owned())
    }
}

impl<'de, E: DeserializeOwned> Deserialize<'de> for Matcher<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let snap = Snap::<E>::deserialize(d)?;
        let mut rb = Rebuild {
            events: snap
                .events
                .into_iter()
                .map(|(s, t, e)| (s, (t, Rc::new(e))))
                .collect(),
            nodes: HashMap::new(),
        };
        let mut runs = Vec::with_capacity(snap.runs.len());
        for r in snap.runs {
            runs.push(Run {
                at: r.at,
                greedy: r.greedy,
                not_next: r.not_next,
                not_followed: r.not_followed,
                accepting: r.accepting,
                start_ts: r.start_ts,
                start_seq: r.start_seq,
                chain: rb.chain(&r.path).map_err(serde::de::Error::custom)?,
            });
        }
        let mut held = Vec::with_capacity(snap.held.len());
        for (path, at) in snap.held {
            let chain = rb.chain(&path).map_err(serde::de::Error::custom)?;
            held.push(Done {
                seqs: path.iter().map(|(_, s)| *s).collect(),
                chain,
                at,
            });
        }
        Ok(Matcher {
            runs,
            held,
            now: snap.now,
            next_seq: snap.next_seq,
        })
    }
}
