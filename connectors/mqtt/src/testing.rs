//! Helpers for tests against a real broker (this crate's and other crates'
//! end-to-end tests).
//!
//! The CI broker is started by `.ci/services.sh start`; tests find it
//! through environment variables ([`env()`]). [`Mosquitto`] runs a private
//! broker for tests that restart it.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotflow_core::bridge::{Recv, bridge};
use iotflow_core::sink::Sink;
use iotflow_core::source::{Chunk, Source};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{Client, Event};

use crate::connection::Endpoint;
use crate::error::MqttError;
use crate::{MqttRawSink, MqttSinkConfig, TlsConfig};

/// The plain broker URL (`mqtt://127.0.0.1:1883` in CI).
pub const URL_VAR: &str = "IOTFLOW_TEST_MQTT_URL";
/// The TLS broker URL (`mqtts://127.0.0.1:8883`).
pub const TLS_URL_VAR: &str = "IOTFLOW_TEST_MQTT_TLS_URL";
/// The mutual-TLS broker URL (`mqtts://127.0.0.1:8884`).
pub const MTLS_URL_VAR: &str = "IOTFLOW_TEST_MQTT_MTLS_URL";
/// The test CA certificate (PEM path).
pub const CA_VAR: &str = "IOTFLOW_TEST_MQTT_CA";
/// The test client certificate (PEM path).
pub const CLIENT_CERT_VAR: &str = "IOTFLOW_TEST_MQTT_CLIENT_CERT";
/// The test client key (PEM path).
pub const CLIENT_KEY_VAR: &str = "IOTFLOW_TEST_MQTT_CLIENT_KEY";
/// The mosquitto binary, for tests that run (and restart) their own broker.
pub const MOSQUITTO_VAR: &str = "IOTFLOW_TEST_MOSQUITTO";

/// The value of `var`, or `None` after printing why the test is skipped.
pub fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("skipped: set {var} (see .ci/services.sh)");
            None
        }
    }
}

/// A name no other test run uses: `{prefix}-{pid}-{time}-{n}`, for topics
/// and client ids on a shared broker.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Publishes `lines` to `topic` (one message each, in order) and waits
/// until the broker has acknowledged all of them (QoS 1).
pub fn publish_lines<S: AsRef<[u8]>>(
    url: &str,
    topic: &str,
    lines: &[S],
    qos: u8,
) -> Result<(), MqttError> {
    publish_with(
        MqttSinkConfig {
            url: url.to_owned(),
            topic: topic.to_owned(),
            qos,
            ..MqttSinkConfig::default()
        },
        lines,
    )
}

/// Like [`publish_lines`], with the whole sink configuration (TLS,
/// templates, client id…).
pub fn publish_with<S: AsRef<[u8]>>(config: MqttSinkConfig, lines: &[S]) -> Result<(), MqttError> {
    let to_err = |e: iotflow_core::Error| MqttError::Connection {
        url: config.url.clone(),
        message: e.to_string(),
    };
    let mut sink = MqttRawSink::new(config.clone()).map_err(to_err)?;
    let payloads: Vec<Vec<u8>> = lines.iter().map(|l| l.as_ref().to_vec()).collect();
    for batch in payloads.chunks(256) {
        Sink::<Vec<u8>>::write(&mut sink, batch).map_err(to_err)?;
    }
    Sink::<Vec<u8>>::close(&mut sink).map_err(to_err)
}

/// A message a [`Subscriber`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Collects what is published on a topic filter (QoS 1, clean session,
/// acknowledged on receipt), e.g. to read back a sink's output.
pub struct Subscriber {
    client: Client,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Subscribes to `filter` and returns once the broker confirmed it.
    pub fn start(
        url: &str,
        filter: &str,
        tls: Option<&TlsConfig>,
    ) -> Result<Subscriber, MqttError> {
        let client_id = unique("iotflow-test-sub");
        let mut options = Endpoint {
            url,
            client_id: &client_id,
            username: None,
            password: None,
            tls,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            session_expiry_secs: 0,
            clean_start: true,
        }
        .options()?;
        options.set_receive_maximum(Some(u16::MAX));
        let (client, mut connection) = Client::new(options, 64);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .map_err(|e| MqttError::Internal(format!("subscribe: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(MqttError::Connection {
                        url: url.to_owned(),
                        message: e.to_string(),
                    });
                }
                Err(_) => {
                    return Err(MqttError::Connection {
                        url: url.to_owned(),
                        message: "no SUBACK within 15 s".into(),
                    });
                }
            }
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        if let Ok(mut v) = r.lock() {
                            v.push(Received {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                            });
                        }
                    }
                    Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => return,
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::v5::RecvTimeoutError::Timeout) => {}
                    Err(rumqttc::v5::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        Ok(Subscriber {
            client,
            received,
            stop,
            thread: Some(thread),
        })
    }

    /// Waits until at least `n` messages arrived or `timeout` passed;
    /// returns everything received so far.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received.lock().map(|v| v.clone()).unwrap_or_default();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A [`Source`] running on its own thread, its chunks collected.
pub struct SourceRun {
    chunks: Arc<Mutex<Vec<Chunk>>>,
    errors: Arc<Mutex<Vec<String>>>,
    close: Arc<AtomicBool>,
    source: Option<JoinHandle<iotflow_core::Result<()>>>,
    collector: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SourceRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRun").finish_non_exhaustive()
    }
}

impl SourceRun {
    /// Runs `source` until it ends or [`close`](SourceRun::close) is called.
    pub fn spawn<S: Source>(mut source: S) -> SourceRun {
        let (tx, mut rx) = bridge::<iotflow_core::Result<Chunk>>(4, None);
        let handle = std::thread::spawn(move || source.run(&tx));
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let close = Arc::new(AtomicBool::new(false));
        let (c, e, stop) = (chunks.clone(), errors.clone(), close.clone());
        let collector = std::thread::spawn(move || {
            loop {
                if stop.load(Ordering::Acquire) {
                    return; // drops rx: the source sees its output closed
                }
                match rx.try_recv() {
                    Recv::Item(Ok(chunk)) => {
                        if let Ok(mut v) = c.lock() {
                            v.push(chunk);
                        }
                    }
                    Recv::Item(Err(err)) => {
                        if let Ok(mut v) = e.lock() {
                            v.push(err.to_string());
                        }
                    }
                    Recv::Empty => std::thread::sleep(Duration::from_millis(2)),
                    Recv::Closed => return,
                }
            }
        });
        SourceRun {
            chunks,
            errors,
            close,
            source: Some(handle),
            collector: Some(collector),
        }
    }

    /// Every chunk so far, announcements included.
    pub fn chunks(&self) -> Vec<Chunk> {
        self.chunks.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every line so far (each message's payload as the source wrote it).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        let chunks = self.chunks();
        chunks
            .iter()
            .flat_map(|c| {
                c.data
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Errors the source sent as items.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` lines arrived or `timeout` passed; returns
    /// how many there are.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.lines().len();
            if got >= n || Instant::now() >= deadline || self.is_finished() {
                return self.lines().len();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the source's `run` has returned.
    pub fn is_finished(&self) -> bool {
        self.source.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Closes the source's output (as a stopping job does) without waiting.
    pub fn close(&self) {
        self.close.store(true, Ordering::Release);
    }

    /// Waits up to `timeout` for `run` to return; its result.
    pub fn join(mut self, timeout: Duration) -> iotflow_core::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.is_finished() {
            return Err(iotflow_core::Error::Disconnected(
                "source still running after join timeout",
            ));
        }
        let result = match self.source.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(iotflow_core::Error::Disconnected("source thread panicked")),
            None => Ok(()),
        };
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        result
    }
}

impl Drop for SourceRun {
    fn drop(&mut self) {
        self.close.store(true, Ordering::Release);
    }
}

/// A private mosquitto on a free port of 127.0.0.1, with persistence in its
/// own directory, that a test can stop and start again (its sessions and
/// queued messages survive, as on a production broker).
#[derive(Debug)]
pub struct Mosquitto {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Writes `dir/mosquitto.conf` and starts `binary` on a free port;
    /// returns once the port answers.
    pub fn start(binary: &Path, dir: &Path) -> io::Result<Mosquitto> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::create_dir_all(dir.join("data"))?;
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let mut conf = String::new();
        if let Some(u) = user {
            conf.push_str(&format!("user {u}\n"));
        }
        conf.push_str(&format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\n\
             max_inflight_messages 0\nlog_dest file {}\nlog_type all\n",
            dir.join("data").display(),
            dir.join("mosquitto.log").display()
        ));
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        let mut m = Mosquitto {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            port,
            child: None,
        };
        m.launch()?;
        Ok(m)
    }

    fn launch(&mut self) -> io::Result<()> {
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "mosquitto exited with {status} (see {})",
                    self.dir.join("mosquitto.log").display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other("mosquitto did not answer within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Its URL, `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops it with SIGTERM (mosquitto saves its persistence file) and
    /// waits for it to exit.
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                return Err(io::Error::other(
                    "mosquitto ignored SIGTERM for 10 s; killed",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same port with the same persistence.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Starts it again after [`stop`](Mosquitto::stop).
    pub fn resume(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
