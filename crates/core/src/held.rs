//! Capabilities that follow an operator's input frontier.

use iotflow_types::Timestamp;
use timely::dataflow::operators::Capability;

/// One capability per output, held at the input frontier.
///
/// Stateful operators (windows, detectors) emit whenever the frontier moves;
/// holding their capabilities at the input frontier lets them emit at any
/// time not before it, and lets the frontier through as soon as they are
/// done with it. At the end of input the capabilities are handed back once,
/// for the operator's last records (its tally), and then released.
#[derive(Debug)]
pub struct Held {
    caps: Option<Vec<Capability<Timestamp>>>,
}

impl Held {
    /// Holds the operator's initial capabilities.
    pub fn new(caps: Vec<Capability<Timestamp>>) -> Self {
        Held { caps: Some(caps) }
    }

    /// The capabilities, or `None` once the input has ended.
    pub fn get(&mut self) -> Option<&mut [Capability<Timestamp>]> {
        self.caps.as_deref_mut()
    }

    /// Moves every capability to `frontier`; at the end of input
    /// (`None`) returns them one last time and releases them on drop.
    pub fn follow(&mut self, frontier: Option<Timestamp>) -> Option<Vec<Capability<Timestamp>>> {
        match frontier {
            Some(f) => {
                for c in self.caps.iter_mut().flatten() {
                    c.downgrade(&f);
                }
                None
            }
            None => self.caps.take(),
        }
    }
}
