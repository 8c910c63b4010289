//! A Prometheus endpoint for a running job.
//!
//! [`serve_metrics`] answers `GET /metrics` with the job's live counters in
//! the Prometheus text format (records and bytes read, rejects, late
//! readings, failures). It is a plain thread on a `TcpListener`: no async
//! runtime, nothing to configure but the address.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iotflow_core::context::JobContext;
use iotflow_core::tally::Progress;

use crate::Error;

/// A running metrics endpoint; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The exposition text for `ctx`, labelled with the process index.
pub fn render(ctx: &JobContext, process: usize) -> String {
    let p = &ctx.progress;
    let mut out = String::new();
    let mut metric = |kind: &str, name: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{process=\"{process}\"}} {value}\n"
        ));
    };
    let counters = [
        (
            "iotflow_records_read_total",
            "Records (non-blank lines) read by sources.",
            Progress::get(&p.lines),
        ),
        (
            "iotflow_bytes_read_total",
            "Bytes read by sources.",
            Progress::get(&p.bytes),
        ),
        (
            "iotflow_rejected_total",
            "Records rejected by decoding or validation.",
            Progress::get(&p.rejected),
        ),
        (
            "iotflow_late_total",
            "Valid readings that arrived after their window closed.",
            Progress::get(&p.late),
        ),
        (
            "iotflow_failures_total",
            "Source or sink failures.",
            ctx.failures().len() as u64,
        ),
        (
            "iotflow_checkpoints_total",
            "Checkpoints completed (manifest written) by this process.",
            Progress::get(&p.checkpoints),
        ),
    ];
    for (name, help, value) in counters {
        metric("counter", name, help, value);
    }
    let gauges = [
        (
            "iotflow_checkpoint_state_bytes",
            "State bytes of the last completed checkpoint.",
            Progress::get(&p.checkpoint_bytes),
        ),
        (
            "iotflow_checkpoint_duration_ms",
            "Request-to-manifest time of the last completed checkpoint (ms).",
            Progress::get(&p.checkpoint_ms),
        ),
    ];
    for (name, help, value) in gauges {
        metric("gauge", name, help, value);
    }
    out
}

/// Serves `/metrics` on `addr` (e.g. `127.0.0.1:9898`, port 0 for any).
pub fn serve_metrics(addr: &str, ctx: JobContext, process: usize) -> Result<MetricsServer, Error> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::Config(format!("metrics address {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("metrics address {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("metrics address {addr}: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, &ctx, process) {
                            tracing::debug!("metrics request failed: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => tracing::warn!("metrics accept failed: {e}"),
                }
            }
        })
        .map_err(|e| Error::Start(format!("metrics thread: {e}")))?;
    tracing::info!(%local, "serving Prometheus metrics at /metrics");
    Ok(MetricsServer {
        addr: local,
        stop,
        thread: Some(thread),
    })
}

fn answer(stream: TcpStream, ctx: &JobContext, process: usize) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = if request_line.starts_with("GET ")
        && (path == "/metrics" || path.starts_with("/metrics?"))
    {
        ("200 OK", "text/plain; version=0.0.4", render(ctx, process))
    } else {
        (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".to_owned(),
        )
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn serves_live_counters_in_prometheus_format() {
        let ctx = JobContext::new();
        let server = serve_metrics("127.0.0.1:0", ctx.clone(), 0).expect("bind");
        ctx.progress.lines.fetch_add(42, Ordering::Relaxed);
        ctx.progress.rejected.fetch_add(3, Ordering::Relaxed);
        let body = get(server.addr(), "/metrics");
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("# TYPE iotflow_records_read_total counter"));
        assert!(body.contains("# TYPE iotflow_checkpoints_total counter"));
        assert!(body.contains("# TYPE iotflow_checkpoint_state_bytes gauge"));
        assert!(body.contains("iotflow_records_read_total{process=\"0\"} 42"));
        assert!(body.contains("iotflow_rejected_total{process=\"0\"} 3"));
        ctx.progress.lines.fetch_add(8, Ordering::Relaxed);
        assert!(
            get(server.addr(), "/metrics").contains("iotflow_records_read_total{process=\"0\"} 50")
        );
        assert!(get(server.addr(), "/other").starts_with("HTTP/1.1 404"));
    }
}
