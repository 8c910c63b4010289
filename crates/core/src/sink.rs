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

/// A running sink: the writer thread behind a [`WriteTo::write_to`].
#[derive(Debug)]
pub struct SinkHandle {
    name: String,
    thread: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl SinkHandle {
    /// Waits until the sink has written and closed everything; returns the
    /// number of records written.
    pub fn join(mut self) -> Result<u64> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(crate::Error::Sink {
                sink: self.name.clone(),
                message: "writer thread panicked".into(),
            }),
            None => Ok(0),
        }
    }
}

/// Writes a stream to a [`Sink`] on a writer thread.
pub trait WriteTo<D> {
    /// Moves every batch of the stream into a bounded channel (capacity
    /// [`DEFAULT_CAPACITY`](crate::bridge::DEFAULT_CAPACITY) batches) read by
    /// a writer thread that calls `sink`; the worker blocks when the writer
    /// falls behind, which slows the sources: backpressure instead of memory
    /// growth. When the stream ends the sink is closed. A sink error is
    /// recorded in `ctx` and the rest of the stream is discarded (the job then
    /// fails).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use iotflow_core::{context::JobContext, sink::{VecSink, WriteTo}};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// let out = Arc::new(Mutex::new(Vec::new()));
    /// let sink_out = out.clone();
    /// timely::execute(timely::Config::thread(), move |worker| {
    ///     let handle = worker.dataflow::<u64, _, _>(|scope| {
    ///         (0..10u32).to_stream(scope).write_to("numbers", VecSink::new(sink_out.clone()), JobContext::new())
    ///     });
    ///     while worker.step() {}
    ///     handle.join().expect("sink ok");
    /// }).expect("timely");
    /// assert_eq!(out.lock().unwrap().len(), 10);
    /// ```
    fn write_to<S: Sink<D>>(
        self,
        name: &str,
        sink: S,
        ctx: crate::context::JobContext,
    ) -> SinkHandle;
}

impl<'scope, T, D> WriteTo<D> for timely::dataflow::StreamVec<'scope, T, D>
where
    T: timely::progress::Timestamp,
    D: Send + 'static,
{
    fn write_to<S: Sink<D>>(
        self,
        name: &str,
        mut sink: S,
        ctx: crate::context::JobContext,
    ) -> SinkHandle {
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::generic::Operator;

        let (tx, mut rx) = crate::bridge::bridge::<Vec<D>>(crate::bridge::DEFAULT_CAPACITY, None);
        let sink_name = name.to_owned();
        let thread_ctx = ctx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-sink"))
            .spawn(move || {
                let mut written = 0u64;
                let mut failed: Option<crate::Error> = None;
                while let Some(batch) = rx.recv_blocking() {
                    if failed.is_none() {
                        match sink.write(&batch) {
                            Ok(()) => written += batch.len() as u64,
                            Err(e) => {
                                thread_ctx.fail(format!("sink {sink_name}: {e}"));
                                failed = Some(e);
                            }
                        }
                    }
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                let closed = sink.close().map(|()| written);
                tracing::debug!(sink = %sink_name, records = written, ok = closed.is_ok(), "sink closed");
                closed
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.fail(format!("sink {name}: cannot start writer thread: {e}"));
                None
            }
        };
        let mut tx = Some(tx);
        let op_ctx = ctx;
        let op_name = name.to_owned();
        self.sink(Pipeline, name, move |(input, frontier)| {
            input.for_each(|_cap, data| {
                if let Some(t) = &tx
                    && t.send_blocking(std::mem::take(data)).is_err()
                {
                    op_ctx.fail(format!("sink {op_name}: writer thread stopped"));
                    tx = None;
                }
            });
            if frontier.is_empty() {
                tx = None;
            }
        });
        SinkHandle {
            name: name.to_owned(),
            thread,
        }
    }
}
