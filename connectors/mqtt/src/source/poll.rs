//! The connection task of a source: polls rumqttc's event loop on the
//! connector's runtime, reconnects with backoff, (re)subscribes, and hands
//! everything the reader needs over one channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::Notify;

use crate::backoff::{Backoff, BackoffConfig};
use crate::connection::{Failure, classify};
use crate::error::MqttError;
use crate::source::MqttSourceStats;

/// What the connection task tells the reader, in order.
#[derive(Debug)]
pub(super) enum FromBroker {
    /// A connection is up. `epoch` counts connections of this run; acks
    /// go through `client`, which belongs to this connection only.
    Connected {
        epoch: u64,
        client: AsyncClient,
        session_present: bool,
    },
    /// A message received on connection `epoch`.
    Message { epoch: u64, publish: Publish },
    /// The connection failed or dropped; the task retries after a backoff.
    Lost(String),
    /// A failure retrying cannot fix; the task has ended.
    Fatal(MqttError),
}

/// Everything the task needs.
pub(super) struct Poller {
    pub(super) url: String,
    pub(super) options: MqttOptions,
    pub(super) request_capacity: usize,
    pub(super) filters: Vec<String>,
    pub(super) qos: QoS,
    pub(super) backoff: BackoffConfig,
    pub(super) stats: Arc<MqttSourceStats>,
    pub(super) to_reader: Sender<FromBroker>,
    /// Ends the task (also while it waits to reconnect).
    pub(super) stop: Arc<Notify>,
    pub(super) stopping: Arc<AtomicBool>,
}

impl Poller {
    pub(super) async fn run(self) {
        let mut backoff = Backoff::new(self.backoff.clone());
        let mut epoch = 0u64;
        let mut subscribed = false;
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            let (client, mut eventloop) =
                AsyncClient::new(self.options.clone(), self.request_capacity);
            let failure = loop {
                let event = tokio::select! {
                    () = self.stop.notified() => return,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        epoch += 1;
                        backoff.reset();
                        self.stats.connects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            broker = %self.url,
                            client_id = %self.options.client_id(),
                            session_present = ack.session_present,
                            "mqtt source: connected"
                        );
                        let connected = FromBroker::Connected {
                            epoch,
                            client: client.clone(),
                            session_present: ack.session_present,
                        };
                        if self.to_reader.send(connected).is_err() {
                            return;
                        }
                        // A resumed session keeps its subscriptions; the
                        // first connection of a run subscribes anyway, so a
                        // changed topic list takes effect (retained messages
                        // are only sent for subscriptions that are new).
                        if !subscribed || !ack.session_present {
                            let filters = self.filters.iter().map(|f| Filter {
                                retain_forward_rule: RetainForwardRule::OnNewSubscribe,
                                ..Filter::new(f.clone(), self.qos)
                            });
                            if let Err(e) = client.subscribe_many(filters).await {
                                let _ = self.to_reader.send(FromBroker::Fatal(
                                    MqttError::Internal(format!("subscribe request: {e}")),
                                ));
                                return;
                            }
                            subscribed = true;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if self
                            .to_reader
                            .send(FromBroker::Message { epoch, publish })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused: Vec<String> = ack
                            .return_codes
                            .iter()
                            .zip(&self.filters)
                            .filter(|(c, _)| !matches!(c, SubscribeReasonCode::Success(_)))
                            .map(|(c, f)| format!("{f:?}: {c:?}"))
                            .collect();
                        if !refused.is_empty() {
                            let _ = self.to_reader.send(FromBroker::Fatal(MqttError::Refused {
                                url: self.url.clone(),
                                message: format!("subscription refused: {}", refused.join(", ")),
                            }));
                            return;
                        }
                        self.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(filters = ?self.filters, "mqtt source: subscribed");
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                        // The DISCONNECT (and the acks queued before it)
                        // may still be in the write buffer: keep polling
                        // until the broker closes the connection, so no
                        // acknowledgement is lost and redelivered.
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                            while eventloop.poll().await.is_ok() {}
                        })
                        .await;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => break e,
                }
            };
            drop(eventloop);
            drop(client);
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            match classify(&failure) {
                Failure::Fatal(message) => {
                    tracing::error!(broker = %self.url, %message, "mqtt source: cannot connect");
                    let _ = self.to_reader.send(FromBroker::Fatal(MqttError::Refused {
                        url: self.url.clone(),
                        message,
                    }));
                    return;
                }
                Failure::Transient(message) => {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        broker = %self.url,
                        %message,
                        attempt = backoff.failures(),
                        retry_in_ms = delay.as_millis() as u64,
                        "mqtt source: connection lost; reconnecting"
                    );
                    if self.to_reader.send(FromBroker::Lost(message)).is_err() {
                        return;
                    }
                    tokio::select! {
                        () = self.stop.notified() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}
