//! What a pattern produces: matches, timed-out partial matches, and the view
//! of a partial match that iterative conditions see.

use std::rc::Rc;

use iotflow_types::Timestamp;
use serde::{Deserialize, Serialize};

/// One event taken into a partial match: a persistent list, newest first,
/// so the branches of a non-deterministic pattern share their prefix and an
/// event lives as long as some partial match holds it.
#[derive(Debug)]
pub(crate) struct Node<E> {
    pub(crate) stage: u16,
    pub(crate) seq: u64,
    pub(crate) ts: Timestamp,
    pub(crate) event: Rc<E>,
    pub(crate) prev: Option<Rc<Node<E>>>,
}

impl<E> Node<E> {
    /// The chain from oldest to newest.
    pub(crate) fn path(self: &Rc<Self>) -> Vec<&Node<E>> {
        let mut out = Vec::new();
        let mut at = Some(self.as_ref());
        while let Some(n) = at {
            out.push(n);
            at = n.prev.as_deref();
        }
        out.reverse();
        out
    }
}

/// The events a partial match has taken so far, as an iterative condition
/// sees them (Flink's `ctx.getEventsForPattern`).
///
/// Looking up a stage walks the partial match from its newest event; the
/// cost is the length of the match, so keep iterative conditions to the
/// stages they need.
#[derive(Debug)]
pub struct Partial<'a, E> {
    pub(crate) names: &'a [String],
    pub(crate) last: Option<&'a Node<E>>,
}

impl<'a, E> Partial<'a, E> {
    fn index(&self, stage: &str) -> Option<u16> {
        self.names.iter().position(|n| n == stage).map(|i| i as u16)
    }

    fn nodes(&self) -> impl Iterator<Item = &'a Node<E>> + 'a {
        let mut at = self.last;
        std::iter::from_fn(move || {
            let n = at?;
            at = n.prev.as_deref();
            Some(n)
        })
    }

    /// The events taken by `stage`, oldest first.
    pub fn events(&self, stage: &str) -> Vec<&'a E> {
        let Some(i) = self.index(stage) else {
            return Vec::new();
        };
        let mut out: Vec<&E> = self
            .nodes()
            .filter(|n| n.stage == i)
            .map(|n| n.event.as_ref())
            .collect();
        out.reverse();
        out
    }

    /// The newest event taken by `stage`.
    pub fn last(&self, stage: &str) -> Option<&'a E> {
        let i = self.index(stage)?;
        self.nodes()
            .find(|n| n.stage == i)
            .map(|n| n.event.as_ref())
    }

    /// The oldest event taken by `stage`.
    pub fn first(&self, stage: &str) -> Option<&'a E> {
        let i = self.index(stage)?;
        self.nodes()
            .filter(|n| n.stage == i)
            .last()
            .map(|n| n.event.as_ref())
    }

    /// How many events `stage` has taken.
    pub fn count(&self, stage: &str) -> usize {
        match self.index(stage) {
            Some(i) => self.nodes().filter(|n| n.stage == i).count(),
            None => 0,
        }
    }

    /// How many events the partial match holds.
    pub fn len(&self) -> usize {
        self.nodes().count()
    }

    /// Whether the partial match is empty (the condition of a first stage).
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }
}

/// A complete match: for each stage that took events, its name and its
/// events in event-time order. Stages come in pattern order, which is also
/// event order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match<E> {
    /// (stage name, events) for every stage that took at least one event.
    pub stages: Vec<(String, Vec<E>)>,
    /// Event time of the first event.
    pub start: Timestamp,
    /// Event time of the last event.
    pub end: Timestamp,
}

impl<E> Match<E> {
    /// The events of `stage` (empty if it took none).
    pub fn get(&self, stage: &str) -> &[E] {
        self.stages
            .iter()
            .find(|(n, _)| n == stage)
            .map_or(&[], |(_, e)| e.as_slice())
    }

    /// Every event, in event order.
    pub fn events(&self) -> impl Iterator<Item = &E> {
        self.stages.iter().flat_map(|(_, e)| e.iter())
    }

    /// How many events the match holds.
    pub fn len(&self) -> usize {
        self.stages.iter().map(|(_, e)| e.len()).sum()
    }

    /// Whether the match holds no event (never true for an emitted match).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn from_chain(names: &[String], chain: &Rc<Node<E>>) -> Self
    where
        E: Clone,
    {
        let path = chain.path();
        let mut stages: Vec<(String, Vec<E>)> = Vec::new();
        for n in &path {
            let name = &names[n.stage as usize];
            match stages.last_mut() {
                Some((last, evs)) if last == name => evs.push(n.event.as_ref().clone()),
                _ => stages.push((name.clone(), vec![n.event.as_ref().clone()])),
            }
        }
        Match {
            stages,
            start: path.first().map_or(0, |n| n.ts),
            end: path.last().map_or(0, |n| n.ts),
        }
    }
}

/// A partial match pruned by `within`: the frontier passed its first
/// event's time + `within` before it completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeout<E> {
    /// What it had matched.
    pub partial: Match<E>,
    /// The time it expired at (first event time + `within`).
    pub deadline: Timestamp,
}
