//! The source's I/O thread: turns broker messages into chunks and
//! acknowledges them when their checkpoint (or hand-off) allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::{Duration, Instant};

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Commits, Position, Resume};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;
use tokio::sync::Notify;

use super::acks::{AckBook, Arrival};
use super::poll::{FromBroker, Poller};
use super::{MqttSource, MqttSourceConfig, MqttSourceStats};
use crate::error::MqttError;
use crate::lines::push_line;

/// How often the loop looks at commits, the idle timer and a closed output
/// when no message arrives.
const TICK: Duration = Duration::from_millis(50);

pub(super) struct Reader {
    config: MqttSourceConfig,
    key: Arc<str>,
    stats: Arc<MqttSourceStats>,
    commits: Option<Commits>,
    rt: tokio::runtime::Runtime,
    from_broker: Receiver<FromBroker>,
    stop: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The current connection's client (acks go through it only).
    client: Option<AsyncClient>,
    epoch: u64,
    connected: bool,
    /// Messages delivered so far: the partition's position.
    delivered: u64,
    /// Unacknowledged messages and when they may be acknowledged.
    acks: AckBook<Publish>,
    buf: Vec<u8>,
    buf_first: u64,
    buf_since: Option<Instant>,
    last_activity: Instant,
}

impl Reader {
    /// Starts the connection task.
    pub(super) fn start(src: &MqttSource) -> Result<Reader, MqttError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("iotflow-mqtt-source")
            .enable_all()
            .build()
            .map_err(|e| MqttError::Internal(format!("tokio runtime: {e}")))?;
        let (to_reader, from_broker) = channel();
        let stop = Arc::new(Notify::new());
        let stopping = Arc::new(AtomicBool::new(false));
        let poller = Poller {
            url: src.config.url.clone(),
            options: src.options.clone(),
            // Acks never wait for room: at most Receive Maximum are due.
            request_capacity: usize::from(src.config.receive_maximum) + 64,
            filters: src.filters.clone(),
            qos: src.qos,
            backoff: src.config.reconnect.clone(),
            stats: src.stats.clone(),
            to_reader,
            stop: stop.clone(),
            stopping: stopping.clone(),
        };
        let task = rt.spawn(poller.run());
        Ok(Reader {
            config: src.config.clone(),
            key: src.key.clone(),
            stats: src.stats.clone(),
            commits: src.commits.clone(),
            rt,
            from_broker,
            stop,
            stopping,
            task: Some(task),
            client: None,
            epoch: 0,
            connected: false,
            delivered: src.start,
            acks: AckBook::new(src.commits.is_some(), src.start),
            buf: Vec::new(),
            buf_first: src.start,
            buf_since: None,
            last_activity: Instant::now(),
        })
    }

    /// Reads until the job stops (then waits for its final checkpoint,
    /// acknowledges it and disconnects: `Ok(None)`) or, with
    /// `stop_after_idle_ms`, until the input went quiet: then everything is
    /// handed on and the reader returned, to [`finish`](Reader::finish)
    /// once the channel is dropped (the job's last checkpoint needs that).
    pub(super) fn run(
        mut self,
        out: &BridgeSender<iotflow_core::Result<Chunk>>,
    ) -> Result<Option<Reader>, MqttError> {
        let announce = Chunk {
            source: self.key.clone(),
            offset: self.delivered,
            data: Vec::new(),
            resume: None,
        };
        if out.send_blocking(Ok(announce)).is_err() {
            return self.finish().map(|()| None);
        }
        let linger = Duration::from_millis(self.config.linger_ms);
        loop {
            let wait = match self.buf_since {
                Some(t) => linger.saturating_sub(t.elapsed()).min(TICK),
                None => TICK,
            };
            match self.from_broker.recv_timeout(wait) {
                Ok(event) => self.on_event(event)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(MqttError::Internal("the connection task ended".into()));
                }
            }
            let full = self.buf.len() >= self.config.max_chunk_bytes;
            let due = self.buf_since.is_some_and(|t| t.elapsed() >= linger);
            if (full || due) && !self.flush(out) {
                return self.finish().map(|()| None);
            }
            self.poll_commits();
            if out.is_closed() {
                return self.finish().map(|()| None);
            }
            if let Some(idle) = self.config.stop_after_idle_ms
                && self.connected
                && self.last_activity.elapsed() >= Duration::from_millis(idle)
            {
                tracing::info!(partition = %self.key, delivered = self.delivered, "mqtt source: idle; stopping");
                if !self.flush(out) {
                    return self.finish().map(|()| None);
                }
                return Ok(Some(self));
            }
        }
    }

    fn on_event(&mut self, event: FromBroker) -> Result<(), MqttError> {
        match event {
            FromBroker::Connected {
                epoch,
                client,
                session_present,
            } => self.on_connected(epoch, client, session_present),
            FromBroker::Message { epoch, publish } => {
                if epoch == self.epoch {
                    self.on_message(publish);
                }
            }
            FromBroker::Lost(why) => {
                tracing::debug!(partition = %self.key, %why, held = self.acks.held(), "mqtt source: connection lost");
                self.connected = false;
                self.client = None;
            }
            FromBroker::Fatal(e) => {
                self.shutdown();
                return Err(e);
            }
        }
        Ok(())
    }

    fn on_connected(&mut self, epoch: u64, client: AsyncClient, session_present: bool) {
        self.epoch = epoch;
        self.client = Some(client);
        self.connected = true;
        self.last_activity = Instant::now();
        let lost = self.acks.reconnected(session_present);
        if lost > 0 {
            tracing::warn!(
                partition = %self.key,
                unacknowledged = lost,
                "mqtt source: the broker did not resume the session; it will not redeliver what was unacknowledged"
            );
        }
    }

    fn on_message(&mut self, publish: Publish) {
        self.last_activity = Instant::now();
        let payload = publish.payload.clone();
        if publish.qos != QoS::AtMostOnce {
            let (pkid, dup) = (publish.pkid, publish.dup);
            match self.acks.arrive(self.delivered + 1, pkid, dup, publish) {
                Arrival::Redelivery => {
                    self.stats
                        .redeliveries_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    self.ack_ready();
                    return;
                }
                Arrival::New if dup => {
                    self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
                }
                Arrival::New => {}
            }
        }
        if self.buf.is_empty() {
            self.buf_first = self.delivered;
            self.buf_since = Some(Instant::now());
        }
        self.delivered += 1;
        if push_line(&mut self.buf, &payload) {
            self.stats.empty_payloads.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
    }

    /// Sends the buffered chunk; false when the job has stopped.
    fn flush(&mut self, out: &BridgeSender<iotflow_core::Result<Chunk>>) -> bool {
        self.buf_since = None;
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Chunk {
            source: self.key.clone(),
            offset: self.buf_first,
            data: std::mem::take(&mut self.buf),
            resume: Some(Resume {
                partition: self.key.clone(),
                position: Position::Offset(self.delivered),
            }),
        };
        if out.send_blocking(Ok(chunk)).is_err() {
            return false;
        }
        self.acks.handed(self.delivered);
        self.stats.chunks.fetch_add(1, Ordering::Relaxed);
        self.ack_ready();
        true
    }

    fn poll_commits(&mut self) {
        let Some(commits) = self.commits.clone() else {
            return;
        };
        let mut advanced = false;
        while let Some(positions) = commits.take() {
            self.apply_commit(&positions);
            advanced = true;
        }
        if advanced {
            self.ack_ready();
        }
    }

    fn apply_commit(&mut self, positions: &[Resume]) {
        for r in positions.iter().filter(|r| r.partition == self.key) {
            if let Position::Offset(n) = r.position {
                self.acks.committed(n);
            }
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Acknowledges every held message its checkpoint (or, without
    /// checkpoints, its hand-off) covers.
    fn ack_ready(&mut self) {
        let Some(client) = &self.client else {
            // Held until the next connection, where the broker resends them.
            return;
        };
        let due = self.acks.due();
        let mut acked = 0u64;
        for publish in &due {
            // Fails only when this connection is already gone: the broker
            // then resends the message, and its copy is acked.
            let sent = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.ack(publish)).await
            });
            if matches!(sent, Ok(Ok(()))) {
                acked += 1;
            }
        }
        self.stats.acks.fetch_add(acked, Ordering::Relaxed);
    }

    /// The end of a run: wait for the job's final checkpoint and
    /// acknowledge it, then disconnect.
    pub(super) fn finish(mut self) -> Result<(), MqttError> {
        if let Some(commits) = self.commits.clone() {
            let deadline = Instant::now() + Duration::from_secs(self.config.final_commit_wait_secs);
            loop {
                if let Some(p) = commits.wait(Duration::from_millis(250)) {
                    self.apply_commit(&p);
                }
                self.drain_while_stopping();
                if commits.ended() {
                    while let Some(p) = commits.take() {
                        self.apply_commit(&p);
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        partition = %self.key,
                        unacknowledged = self.acks.held(),
                        "mqtt source: the job's final checkpoint did not complete in time; the broker will redeliver what is unacknowledged"
                    );
                    break;
                }
            }
            self.ack_ready();
        }
        self.shutdown();
        tracing::info!(
            partition = %self.key,
            delivered = self.delivered,
            unacknowledged = self.acks.held(),
            "mqtt source: stopped"
        );
        Ok(())
    }

    /// While waiting for the final checkpoint: follow reconnects, drop new
    /// messages (unacknowledged, so the broker keeps them for next run).
    fn drain_while_stopping(&mut self) {
        loop {
            match self.from_broker.try_recv() {
                Ok(FromBroker::Connected {
                    epoch,
                    client,
                    session_present,
                }) => self.on_connected(epoch, client, session_present),
                Ok(FromBroker::Message { .. }) => {}
                Ok(FromBroker::Lost(_)) => self.client = None,
                Ok(FromBroker::Fatal(e)) => {
                    tracing::warn!(error = %e, "mqtt source: connection failed while stopping");
                    self.client = None;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Disconnects cleanly (queued acks go out first) and ends the task.
    fn shutdown(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), client.disconnect()).await
            });
        }
        if let Some(task) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), task).await });
        }
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_one();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_one();
    }
}
