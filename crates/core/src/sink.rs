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

/// Opens the staged file of the `n`-th epoch a committed sink writes;
/// returns the sink and the file's path.
pub type OpenStaged<D> =
    Box<dyn FnMut(u64) -> Result<(Box<dyn Sink<D>>, std::path::PathBuf)> + Send>;

/// How a committed sink names its files: staged files while an epoch is
/// open, published names once its checkpoint completes.
pub struct EpochFiles<D> {
    /// Opens a staged file for the `n`-th epoch this writer opens.
    pub open: OpenStaged<D>,
    /// Where the file sealed by checkpoint `id` becomes visible.
    pub published: Box<dyn Fn(u64) -> std::path::PathBuf + Send>,
}

impl<D> std::fmt::Debug for EpochFiles<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochFiles")
    }
}

enum ToWriter<D> {
    Batch(Vec<D>),
    Seal(u64, iotflow_types::Timestamp),
}

/// Writes a stream exactly once per checkpoint.
pub trait WriteCommitted<'scope, D> {
    /// Like [`WriteTo::write_to`], but the records stamped before each
    /// checkpoint go to a staged file of their own (opened by `files`),
    /// sealed (flushed and synced) when the checkpoint is due and reported
    /// to the committer, which publishes it after writing the manifest. A
    /// run that crashes leaves only staged files behind, which recovery
    /// deletes: output is neither lost nor doubled.
    fn write_committed(
        self,
        name: &str,
        files: EpochFiles<D>,
        checkpoints: &crate::checkpoint::Checkpoints<'scope>,
        ctx: crate::context::JobContext,
    ) -> SinkHandle;
}

impl<'scope, D> WriteCommitted<'scope, D>
    for timely::dataflow::StreamVec<'scope, iotflow_types::Timestamp, D>
where
    D: Send + Clone + 'static,
{
    fn write_committed(
        self,
        name: &str,
        mut files: EpochFiles<D>,
        checkpoints: &crate::checkpoint::Checkpoints<'scope>,
        ctx: crate::context::JobContext,
    ) -> SinkHandle {
        use crate::checkpoint::{Ack, Epochs, OutputFile, Part, Step};
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::generic::OutputBuilder;
        use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

        let scope = self.scope();
        let worker = scope.index();
        let mut builder = OperatorBuilder::new(name.to_owned(), scope);
        let info = builder.operator_info();
        let mut input = builder.new_input(self, Pipeline);
        let mut control = builder.new_input(checkpoints.control(), Pipeline);
        let (acks_out, acks) = builder.new_output();
        checkpoints.add_acks(acks);
        let mut acks_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Ack>>>::from(acks_out);

        let activator = scope.worker().sync_activator_for(info.address.to_vec());
        let (tx, mut rx) =
            crate::bridge::bridge::<ToWriter<D>>(crate::bridge::DEFAULT_CAPACITY, None);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, u64, Option<OutputFile>)>();
        let sink_name = name.to_owned();
        let thread_ctx = ctx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-sink"))
            .spawn(move || -> Result<u64> {
                let mut written = 0u64;
                let mut opened = 0u64;
                // The open epoch: sink, staged path, rows.
                let mut current: Option<(Box<dyn Sink<D>>, std::path::PathBuf, u64)> = None;
                let fail = |e: crate::Error| {
                    thread_ctx.fail(format!("sink {sink_name}: {e}"));
                    e
                };
                while let Some(msg) = rx.recv_blocking() {
                    match msg {
                        ToWriter::Batch(batch) => {
                            if current.is_none() {
                                let (sink, path) = (files.open)(opened).map_err(fail)?;
                                opened += 1;
                                current = Some((sink, path, 0));
                            }
                            if let Some((sink, _, rows)) = current.as_mut() {
                                sink.write(&batch).map_err(fail)?;
                                *rows += batch.len() as u64;
                                written += batch.len() as u64;
                            }
                        }
                        ToWriter::Seal(id, time) => {
                            let file = match current.take() {
                                Some((mut sink, path, rows)) => {
                                    sink.close().map_err(fail)?;
                                    drop(sink);
                                    let f = std::fs::File::open(&path)
                                        .and_then(|f| f.sync_all().map(|()| f))
                                        .and_then(|f| f.metadata())
                                        .map_err(|e| fail(crate::Error::io(&path, e)))?;
                                    Some(OutputFile {
                                        staged: path.display().to_string(),
                                        published: (files.published)(id).display().to_string(),
                                        rows,
                                        bytes: f.len(),
                                    })
                                }
                                None => None,
                            };
                            if done_tx.send((id, time, file)).is_err() {
                                break;
                            }
                            activator.activate().ok();
                        }
                    }
                }
                // Interrupted before the last checkpoint: the open epoch
                // stays staged and is discarded by the next run's recovery.
                if let Some((mut sink, _, _)) = current.take() {
                    sink.close().map_err(fail)?;
                }
                tracing::debug!(sink = %sink_name, records = written, "committed sink closed");
                Ok(written)
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.fail(format!("sink {name}: cannot start writer thread: {e}"));
                None
            }
        };
        let op_name = name.to_owned();
        builder.build(move |_caps| {
            let mut tx = Some(tx);
            let mut epochs: Epochs<D> = Epochs::default();
            let mut awaiting: std::collections::VecDeque<(
                u64,
                timely::dataflow::operators::Capability<u64>,
            )> = Default::default();
            move |frontiers| {
                input.for_each(|cap, data| epochs.push_message(&cap, data));
                control.for_each(|cap, data| epochs.request_message(&cap, data, 0));
                let frontier = crate::checkpoint::input_frontier(frontiers);
                let ended = frontier.is_none();
                epochs.drain(frontier, |step| {
                    let msg = match step {
                        Step::Batch(_, batch) => ToWriter::Batch(batch),
                        Step::Checkpoint(ck, cap) => {
                            awaiting.push_back((ck.id, cap));
                            ToWriter::Seal(ck.id, ck.time)
                        }
                    };
                    if let Some(t) = &tx
                        && t.send_blocking(msg).is_err()
                    {
                        ctx.fail(format!("sink {op_name}: writer thread stopped"));
                        tx = None;
                    }
                });
                let mut acks_out = acks_out.activate();
                loop {
                    let (id, time, file) = match done_rx.try_recv() {
                        Ok(done) => done,
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            // The writer failed (recorded in `ctx`): the job
                            // fails and no checkpoint commits without us.
                            awaiting.clear();
                            tx = None;
                            break;
                        }
                    };
                    match awaiting.pop_front() {
                        Some((want, cap)) if want == id => {
                            acks_out.session(&cap).give(Ack {
                                id,
                                time,
                                name: op_name.clone(),
                                worker,
                                part: Part::Output(file),
                                tally: crate::tally::Tally::default(),
                            });
                        }
                        _ => ctx.fail(format!(
                            "sink {op_name}: checkpoint {id} sealed out of order"
                        )),
                    }
                }
                if ended && awaiting.is_empty() {
                    tx = None;
                }
            }
        });
        SinkHandle {
            name: name.to_owned(),
            thread,
        }
    }
}
