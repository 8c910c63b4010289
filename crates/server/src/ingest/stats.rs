//! The ingest counters as callers see them: JSON (`GET /ingest/stats`)
//! and the Prometheus text format.

use serde::Serialize;

/// A snapshot of the ingest counters
/// ([`IngestQueue::stats`](super::IngestQueue::stats); also served at
/// `GET /ingest/stats`). Counters count since the process started;
/// positions continue across restarts of a checkpointed job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngestStats {
    /// Readings accepted and waiting for the pipeline (gauge).
    pub queue_depth: u64,
    /// Most readings the queue holds.
    pub queue_capacity: u64,
    /// Whether the queue refuses new readings (server stopping, or the
    /// pipeline's source is gone).
    pub closed: bool,
    /// Requests answered `202`.
    pub accepted_requests: u64,
    /// Readings in those requests.
    pub accepted_readings: u64,
    /// Requests answered `503 queue_full`.
    pub rejected_full_requests: u64,
    /// Readings in those requests (none of them was queued).
    pub rejected_full_readings: u64,
    /// Requests answered `503 unavailable` because the queue was closed.
    pub rejected_closed_requests: u64,
    /// Requests whose device credentials were missing or refused (`401`).
    pub auth_failures: u64,
    /// Requests of an authenticated device carrying readings of another
    /// device (`403 wrong_device`).
    pub forbidden: u64,
    /// Requests refused as malformed (`400`, `413`, `415`).
    pub bad_requests: u64,
    /// Readings handed to the pipeline by this process.
    pub delivered_readings: u64,
    /// The source's position: readings delivered on `http:ingest` since
    /// the job first started (restored from checkpoints).
    pub position: u64,
    /// The position in the newest completed checkpoint: readings up to it
    /// are durable; those after it are lost if the process crashes.
    pub checkpointed_position: u64,
    /// Readings accepted but never delivered because the pipeline stopped
    /// first (see the module documentation).
    pub lost_readings: u64,
}

impl IngestStats {
    /// The counters in the Prometheus text format, labelled
    /// `process="{process}"`, for a job's `/metrics` endpoint.
    pub fn prometheus(&self, process: usize) -> String {
        let rows: [(&str, &str, &str, u64); 15] = [
            (
                "gauge",
                "iotflow_ingest_queue_depth",
                "Readings accepted over HTTP and waiting for the pipeline.",
                self.queue_depth,
            ),
            (
                "gauge",
                "iotflow_ingest_queue_capacity",
                "Most readings the HTTP ingest queue holds.",
                self.queue_capacity,
            ),
            (
                "gauge",
                "iotflow_ingest_closed",
                "1 when the HTTP ingest queue refuses new readings.",
                u64::from(self.closed),
            ),
            (
                "counter",
                "iotflow_ingest_accepted_requests_total",
                "Ingest requests answered 202.",
                self.accepted_requests,
            ),
            (
                "counter",
                "iotflow_ingest_accepted_readings_total",
                "Readings in ingest requests answered 202.",
                self.accepted_readings,
            ),
            (
                "counter",
                "iotflow_ingest_rejected_full_requests_total",
                "Ingest requests answered 503 queue_full.",
                self.rejected_full_requests,
            ),
            (
                "counter",
                "iotflow_ingest_rejected_full_readings_total",
                "Readings in ingest requests answered 503 queue_full.",
                self.rejected_full_readings,
            ),
            (
                "counter",
                "iotflow_ingest_rejected_closed_requests_total",
                "Ingest requests refused because the queue was closed.",
                self.rejected_closed_requests,
            ),
            (
                "counter",
                "iotflow_ingest_auth_failures_total",
                "Ingest requests with missing or refused device credentials.",
                self.auth_failures,
            ),
            (
                "counter",
                "iotflow_ingest_forbidden_total",
                "Ingest requests with readings of another device.",
                self.forbidden,
            ),
            (
                "counter",
                "iotflow_ingest_bad_requests_total",
                "Ingest requests refused as malformed (400, 413, 415).",
                self.bad_requests,
            ),
            (
                "counter",
                "iotflow_ingest_delivered_readings_total",
                "Readings handed to the pipeline.",
                self.delivered_readings,
            ),
            (
                "gauge",
                "iotflow_ingest_position",
                "Readings delivered on http:ingest since the job first started.",
                self.position,
            ),
            (
                "gauge",
                "iotflow_ingest_checkpointed_position",
                "The http:ingest position in the newest completed checkpoint.",
                self.checkpointed_position,
            ),
            (
                "counter",
                "iotflow_ingest_lost_readings_total",
                "Readings accepted but not delivered because the pipeline stopped.",
                self.lost_readings,
            ),
        ];
        let mut out = String::new();
        for (kind, name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{process=\"{process}\"}} {value}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_every_counter() {
        let text = IngestStats {
            queue_depth: 3,
            ..IngestStats::default()
        }
        .prometheus(0);
        assert!(text.contains("iotflow_ingest_queue_depth{process=\"0\"} 3\n"));
        assert_eq!(text.matches("# TYPE ").count(), 15);
    }
}
