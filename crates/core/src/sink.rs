//! Sinks: where results leave a pipeline.
//!
//! A [`Sink`] runs on its own I/O thread; workers hand it batches through a
//! bounded channel (see [`crate::bridge`]), so a slow sink slows the workers
//! instead of growing memory.

use crate::Result;

/// A destination for records of type `D`.
///
/// `write` receives batches in the order one worker produced them; `close`
/// is called once after the last batch and must flush everything (a sink that
/// is dropped without `close` may lose its tail).
pub trait Sink<D>: Send + 'static {
    /// Writes one batch.
    fn write(&mut self, batch: &[D]) -> Result<()>;
    /// Flushes and finalizes the output.
    fn close(&mut self) -> Result<()>;
}

impl<D, S: Sink<D> + ?Sized> Sink<D> for Box<S> {
    fn write(&mut self, batch: &[D]) -> Result<()> {
        (**self).write(batch)
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
}

/// A sink that keeps everything in memory, for tests and small jobs.
#[derive(Debug)]
pub struct VecSink<D> {
    out: std::sync::Arc<std::sync::Mutex<Vec<D>>>,
}

impl<D> VecSink<D> {
    /// A sink appending to `out`.
    pub fn new(out: std::sync::Arc<std::sync::Mutex<Vec<D>>>) -> Self {
        VecSink { out }
    }
}

impl<D: Clone + Send + 'static> Sink<D> for VecSink<D> {
    fn write(&mut self, batch: &[D]) -> Result<()> {
        self.out
            .lock()
            .map_err(|_| crate::Error::Disconnected("VecSink mutex poisoned"))?
            .extend_from_slice(batch);
        Ok(())
    }
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
