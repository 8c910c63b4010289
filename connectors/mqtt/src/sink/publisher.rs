//! One publishing connection: rumqttc's event loop on the sink's runtime,
//! reconnecting with backoff; counts QoS 1 acknowledgements so `close` can
//! wait for all of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::watch;

use crate::backoff::{Backoff, BackoffConfig};
use crate::connection::{Failure, classify};
use crate::error::MqttError;
use crate::sink::MqttSinkStats;

/// What the connection task reports to the writer.
#[derive(Debug, Default)]
struct Shared {
    /// QoS 1 PUBACKs received (successful or not).
    acked: AtomicU64,
    /// Set when the broker did not resume the session after a reconnect
    /// while QoS 1 messages were unacknowledged (rumqttc drops them then).
    session_lost: AtomicBool,
    /// A failure retrying cannot fix, or a refused PUBACK.
    error: Mutex<Option<String>>,
}

pub(crate) struct Publisher {
    url: String,
    rt: tokio::runtime::Runtime,
    client: AsyncClient,
    task: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Becomes true when the task has ended (fatal error or disconnect).
    dead: watch::Receiver<bool>,
    /// QoS 1 messages handed to rumqttc.
    sent: u64,
    stats: Arc<MqttSinkStats>,
}

impl Publisher {
    pub(crate) fn start(
        url: &str,
        options: MqttOptions,
        backoff: BackoffConfig,
        stats: Arc<MqttSinkStats>,
    ) -> Result<Publisher, MqttError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("iotflow-mqtt-sink")
            .enable_all()
            .build()
            .map_err(|e| MqttError::Internal(format!("tokio runtime: {e}")))?;
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let shared = Arc::new(Shared::default());
        let (dead_tx, dead) = watch::channel(false);
        let task = rt.spawn(poll(
            url.to_owned(),
            eventloop,
            backoff,
            shared.clone(),
            stats.clone(),
            dead_tx,
        ));
        Ok(Publisher {
            url: url.to_owned(),
            rt,
            client,
            task: Some(task),
            shared,
            dead,
            sent: 0,
            stats,
        })
    }

    fn failure(&self) -> Option<MqttError> {
        let msg = self.shared.error.lock().ok().and_then(|e| e.clone())?;
        Some(MqttError::Refused {
            url: self.url.clone(),
            message: msg,
        })
    }

    /// Queues one message; blocks while rumqttc's queue is full (the
    /// broker's Receive Maximum of unacknowledged messages is in flight).
    pub(crate) fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), MqttError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let len = payload.len() as u64;
        let client = &self.client;
        let mut dead = self.dead.clone();
        let queued = self.rt.block_on(async {
            tokio::select! {
                r = client.publish(topic, qos, retain, payload) => r.map_err(|e| e.to_string()),
                _ = dead.wait_for(|d| *d) => Err("the connection task ended".to_owned()),
            }
        });
        if let Err(why) = queued {
            return Err(self.failure().unwrap_or(MqttError::Connection {
                url: self.url.clone(),
                message: why,
            }));
        }
        if qos != QoS::AtMostOnce {
            self.sent += 1;
        }
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// QoS 1 messages not yet acknowledged by the broker.
    pub(crate) fn unacked(&self) -> u64 {
        self.sent
            .saturating_sub(self.shared.acked.load(Ordering::Acquire))
    }

    /// Waits until the broker has acknowledged every QoS 1 message (or
    /// `timeout` passes), then disconnects.
    pub(crate) fn close(&mut self, timeout: Duration) -> Result<(), MqttError> {
        let deadline = Instant::now() + timeout;
        let mut waited = Ok(());
        while self.unacked() > 0 {
            if let Some(e) = self.failure() {
                waited = Err(e);
                break;
            }
            if self.shared.session_lost.load(Ordering::Acquire) {
                waited = Err(MqttError::Connection {
                    url: self.url.clone(),
                    message: format!(
                        "the broker did not resume the session after a reconnect; {} QoS 1 message(s) were never acknowledged and may be lost",
                        self.unacked()
                    ),
                });
                break;
            }
            if *self.dead.borrow() {
                waited = Err(MqttError::Connection {
                    url: self.url.clone(),
                    message: format!(
                        "connection ended with {} QoS 1 message(s) unacknowledged",
                        self.unacked()
                    ),
                });
                break;
            }
            if Instant::now() >= deadline {
                waited = Err(MqttError::Connection {
                    url: self.url.clone(),
                    message: format!(
                        "{} QoS 1 message(s) still unacknowledged after {} s",
                        self.unacked(),
                        timeout.as_secs()
                    ),
                });
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if waited.is_ok()
            && let Some(e) = self.failure()
        {
            waited = Err(e);
        }
        self.shutdown();
        waited
    }

    fn shutdown(&mut self) {
        let client = &self.client;
        let _ = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), client.disconnect()).await
        });
        if let Some(task) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), task).await });
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn poll(
    url: String,
    mut eventloop: EventLoop,
    backoff: BackoffConfig,
    shared: Arc<Shared>,
    stats: Arc<MqttSinkStats>,
    dead: watch::Sender<bool>,
) {
    let mut backoff = Backoff::new(backoff);
    // Unacknowledged publishes rumqttc will resend if the broker resumes
    // the session (and drop if it does not).
    let mut at_risk = 0usize;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                if !ack.session_present && at_risk > 0 {
                    tracing::error!(broker = %url, unacknowledged = at_risk, "mqtt sink: the broker did not resume the session; unacknowledged messages are dropped");
                    shared.session_lost.store(true, Ordering::Release);
                }
                at_risk = 0;
                tracing::debug!(broker = %url, session_present = ack.session_present, "mqtt sink: connected");
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if !matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                ) {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(broker = %url, reason = ?ack.reason, "mqtt sink: the broker refused a message");
                    if let Ok(mut e) = shared.error.lock() {
                        e.get_or_insert_with(|| {
                            format!("the broker refused a message: {:?}", ack.reason)
                        });
                    }
                }
                stats.acked.fetch_add(1, Ordering::Relaxed);
                shared.acked.fetch_add(1, Ordering::AcqRel);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => match classify(&e) {
                Failure::Fatal(message) => {
                    tracing::error!(broker = %url, %message, "mqtt sink: cannot connect");
                    if let Ok(mut err) = shared.error.lock() {
                        err.get_or_insert(message);
                    }
                    break;
                }
                Failure::Transient(message) => {
                    at_risk = eventloop
                        .pending
                        .iter()
                        .filter(|r| matches!(r, rumqttc::v5::Request::Publish(_)))
                        .count();
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    tracing::warn!(broker = %url, %message, retry_in_ms = delay.as_millis() as u64, "mqtt sink: connection lost; reconnecting");
                    tokio::time::sleep(delay).await;
                }
            },
        }
    }
    let _ = dead.send(true);
}
