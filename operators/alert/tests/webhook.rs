//! The webhook sink against a real HTTP server on 127.0.0.1, started here:
//! it fails the first requests with 503, refuses some payloads with 400,
//! stalls some past the client's timeout, and records what it accepted.
#![cfg(feature = "webhook")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use iotflow_alert::{
    AlertEvent, AlertPolicy, Alerting, DeadLetter, Severity, Signal, WebhookConfig, WebhookSink,
    WebhookStats,
};
use iotflow_core::context::JobContext;
use iotflow_core::sink::{Sink, VecSink, WriteTo};
use timely::dataflow::operators::ToStream;

/// How the test server answers.
#[derive(Clone, Default)]
struct Script {
    /// The first this-many requests get 503.
    fail_first: usize,
    /// Requests whose body contains this get 400.
    refuse: Option<&'static str>,
    /// These request numbers (0-based) stall for 2 s before answering.
    stall: BTreeSet<usize>,
}

#[derive(Default)]
struct Seen {
    requests: usize,
    /// Accepted bodies by idempotency key.
    accepted: Vec<(String, String)>,
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(script: Script) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let shared = seen.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, script) = (shared.clone(), script.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, seen.clone(), script.clone()));
                    // Clients that time out drop their connection: not an error here.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.lock().expect("lock").requests
    }

    fn accepted(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("lock").accepted.clone()
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Seen>>,
    script: Script,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let body = String::from_utf8_lossy(&req.into_body().collect().await?.to_bytes()).into_owned();
    let n = {
        let mut s = seen.lock().expect("lock");
        s.requests += 1;
        s.requests - 1
    };
    if script.stall.contains(&n) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let status = if n < script.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else if !json || script.refuse.is_some_and(|r| body.contains(r)) {
        StatusCode::BAD_REQUEST
    } else {
        seen.lock().expect("lock").accepted.push((key, body));
        StatusCode::OK
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("response"))
}

fn config(url: String) -> WebhookConfig {
    WebhookConfig {
        timeout_ms: 300,
        max_retries: 4,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        ..WebhookConfig::new(url)
    }
}

/// Alert events of a small job: each device's alert opens and resolves;
/// `d-bad`'s events carry a rule the server refuses.
fn events() -> Vec<AlertEvent> {
    let policy = AlertPolicy::default().with_resolve_after_ms(1_000);
    let signals: Vec<Signal> = ["d-1", "d-2", "d-3", "d-bad"]
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            let rule = if *d == "d-bad" { "poison" } else { "hot" };
            (0..3).map(move |k| Signal::new(d, rule, i as u64 * 10 + k * 100, Severity::Warning))
        })
        .collect();
    let out: Arc<Mutex<Vec<AlertEvent>>> = Arc::default();
    let sink = out.clone();
    timely::example(move |scope| {
        signals
            .to_stream(scope)
            .alerts("alerts", &policy, None)
            .expect("valid policy")
            .events
            .write_to("collect", VecSink::new(sink.clone()), JobContext::new())
    })
    .join()
    .expect("collected");
    let events = out.lock().expect("lock").clone();
    assert_eq!(events.len(), 8, "an opened and a resolved per device");
    events
}

/// Runs `events` through the sink inside a timely dataflow (`write_to`: the
/// sink on its writer thread behind the bounded bridge).
fn deliver(
    cfg: &WebhookConfig,
    events: Vec<AlertEvent>,
) -> (Arc<WebhookStats>, Vec<DeadLetter>, Vec<String>) {
    let dead: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let sink = WebhookSink::new(cfg, VecSink::new(dead.clone())).expect("valid config");
    let stats = sink.stats();
    let ctx = JobContext::new();
    let job = ctx.clone();
    let sink = Mutex::new(Some(sink));
    timely::execute(timely::Config::thread(), move |worker| {
        let sink = sink.lock().expect("lock").take().expect("one worker");
        let events = events.clone();
        let handle = worker.dataflow::<u64, _, _>(|scope| {
            events
                .to_stream(scope)
                .write_to("webhook", sink, job.clone())
        });
        while worker.step() {}
        handle.join().expect("sink closes");
    })
    .expect("timely runs");
    let dead = dead.lock().expect("lock").clone();
    (stats, dead, ctx.failures())
}

fn keys(events: &[AlertEvent]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| format!("{:016x}-{}-{}", e.incident, e.transition.as_str(), e.at))
        .collect()
}

#[test]
fn retries_through_503s_and_dead_letters_what_is_refused() {
    let server = Server::start(Script {
        fail_first: 3,
        refuse: Some("poison"),
        ..Script::default()
    });
    let events = events();
    let (good, bad): (Vec<AlertEvent>, Vec<AlertEvent>) = events
        .iter()
        .cloned()
        .partition(|e| e.rule.as_str() != "poison");
    let (stats, dead, failures) = deliver(&config(server.url()), events);
    assert!(failures.is_empty(), "{failures:?}");

    // Every good event arrived exactly once, as the JSON of the event.
    let accepted = server.accepted();
    let mut by_key: BTreeMap<String, Vec<AlertEvent>> = BTreeMap::new();
    for (key, body) in &accepted {
        let e: AlertEvent = serde_json::from_str(body).expect("an event as JSON");
        by_key.entry(key.clone()).or_default().push(e);
    }
    assert_eq!(accepted.len(), good.len());
    assert!(by_key.values().all(|v| v.len() == 1), "no duplicates");
    assert_eq!(by_key.keys().cloned().collect::<BTreeSet<_>>(), keys(&good));
    let mut got: Vec<AlertEvent> = by_key.into_values().flatten().collect();
    let mut want = good.clone();
    let order = |a: &AlertEvent, b: &AlertEvent| (&a.device, a.at).cmp(&(&b.device, b.at));
    got.sort_by(order);
    want.sort_by(order);
    assert_eq!(got, want);

    // The 400s were not retried: they are dead letters with the reason.
    assert_eq!(dead.len(), bad.len());
    for d in &dead {
        assert_eq!(d.status, Some(400));
        assert!(!d.retryable);
        assert!(d.reason.contains("400"), "{}", d.reason);
        let e: AlertEvent = serde_json::from_str(d.payload.get()).expect("payload kept");
        assert_eq!(e.rule.as_str(), "poison");
    }
    assert_eq!(WebhookStats::get(&stats.retries), 3);
    assert_eq!(WebhookStats::get(&stats.delivered), good.len() as u64);
    assert_eq!(WebhookStats::get(&stats.dead_lettered), bad.len() as u64);
    assert_eq!(server.requests(), good.len() + bad.len() + 3);
    assert_eq!(WebhookStats::get(&stats.requests), server.requests() as u64);
}

#[test]
fn a_timed_out_request_is_retried() {
    let server = Server::start(Script {
        stall: [0].into(),
        ..Script::default()
    });
    let events = events();
    let (stats, dead, failures) = deliver(&config(server.url()), events.clone());
    assert!(
        failures.is_empty() && dead.is_empty(),
        "{failures:?} {dead:?}"
    );
    assert_eq!(WebhookStats::get(&stats.retries), 1);
    // The stalled request never got an answer to the client: accepted or
    // not by the server, the retry went through, and everything arrived.
    let accepted: BTreeSet<String> = server.accepted().into_iter().map(|(k, _)| k).collect();
    assert_eq!(accepted, keys(&events));
}

#[test]
fn an_endpoint_down_for_good_dead_letters_after_the_last_retry() {
    let server = Server::start(Script {
        fail_first: usize::MAX,
        ..Script::default()
    });
    let events: Vec<AlertEvent> = events().into_iter().take(2).collect();
    let cfg = config(server.url());
    let (stats, dead, failures) = deliver(&cfg, events);
    assert!(failures.is_empty(), "the job goes on: {failures:?}");
    assert_eq!(dead.len(), 2);
    for d in &dead {
        assert!(d.retryable, "the endpoint was down, not refusing");
        assert_eq!(d.status, None);
        assert!(d.reason.contains("503"), "{}", d.reason);
    }
    let attempts = 2 * (cfg.max_retries as usize + 1);
    assert_eq!(server.requests(), attempts);
    assert_eq!(
        WebhookStats::get(&stats.retries),
        2 * cfg.max_retries as u64
    );
}

#[test]
fn batches_post_json_arrays() {
    let server = Server::start(Script::default());
    let events = events();
    let cfg = WebhookConfig {
        batch_size: 3,
        ..config(server.url())
    };
    let (stats, dead, _) = deliver(&cfg, events.clone());
    assert!(dead.is_empty());
    let mut got = Vec::new();
    for (_, body) in server.accepted() {
        let batch: Vec<AlertEvent> = serde_json::from_str(&body).expect("a JSON array");
        assert!((1..=3).contains(&batch.len()));
        got.extend(batch);
    }
    assert_eq!(keys(&got), keys(&events));
    assert_eq!(got.len(), events.len());
    assert_eq!(WebhookStats::get(&stats.delivered), events.len() as u64);
}

#[test]
fn a_connection_refused_is_retried_then_dead_lettered() {
    // Bind a port, then free it: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let cfg = WebhookConfig {
        max_retries: 2,
        ..config(format!("http://{addr}/hook"))
    };
    let mut sink = WebhookSink::new(&cfg, VecSink::new(Arc::default())).expect("valid");
    let stats = sink.stats();
    let ev = events().remove(0);
    sink.write(std::slice::from_ref(&ev))
        .expect("dead-lettered, not failed");
    sink.close().expect("closes");
    assert_eq!(WebhookStats::get(&stats.requests), 3);
    assert_eq!(WebhookStats::get(&stats.dead_lettered), 1);
}
