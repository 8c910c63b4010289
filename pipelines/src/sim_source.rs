//! The fleet-v1 generator as a source: no file, no disk.
//!
//! One generator is shared by the workers of a process; each worker's I/O
//! thread takes the next ~1 MiB of lines under a lock, so workers read
//! consecutive stretches of event time side by side (as with file splits).
//! In a cluster only process 0 generates.

use std::sync::{Arc, Mutex};

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Source};
use iotflow_core::{Error, Result};
use iotflow_sim::{FleetConfig, FleetGenerator};

/// A generator shared by the workers of one process.
#[derive(Clone)]
pub struct SharedGenerator {
    inner: Arc<Mutex<(FleetGenerator, u64)>>,
    name: Arc<str>,
}

impl std::fmt::Debug for SharedGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGenerator")
            .field("name", &self.name)
            .finish()
    }
}

impl SharedGenerator {
    /// A generator for `cfg`.
    pub fn new(cfg: &FleetConfig) -> Self {
        SharedGenerator {
            inner: Arc::new(Mutex::new((FleetGenerator::new(cfg), 0))),
            name: Arc::from(format!(
                "sim:fleet-v1(seed={},lines={})",
                cfg.seed, cfg.lines
            )),
        }
    }

    /// A source reading from this generator.
    pub fn source(&self) -> SimSource {
        SimSource {
            gen_: self.clone(),
            chunk_bytes: 1 << 20,
        }
    }
}

/// One worker's view of a [`SharedGenerator`].
#[derive(Debug)]
pub struct SimSource {
    gen_: SharedGenerator,
    chunk_bytes: usize,
}

impl Source for SimSource {
    fn name(&self) -> String {
        self.gen_.name.to_string()
    }

    fn run(&mut self, out: &BridgeSender<Result<Chunk>>) -> Result<()> {
        loop {
            let mut data = Vec::with_capacity(self.chunk_bytes + 256);
            let offset = {
                let mut g = self
                    .gen_
                    .inner
                    .lock()
                    .map_err(|_| Error::Disconnected("generator lock poisoned"))?;
                let offset = g.1;
                if g.0.fill(&mut data, self.chunk_bytes) == 0 {
                    return Ok(());
                }
                g.1 += data.len() as u64;
                offset
            };
            if out
                .send_blocking(Ok(Chunk {
                    source: self.gen_.name.clone(),
                    offset,
                    data,
                    resume: None,
                }))
                .is_err()
            {
                return Ok(());
            }
        }
    }
}
