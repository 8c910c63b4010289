//! Newline-delimited JSON files.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use iotflow_core::sink::Sink;
use serde::Serialize;

use crate::error::AlertError;

/// Writes each record as one JSON object on its own line; `close` flushes
/// and syncs the file to disk, so a closed file survives a power cut.
///
/// ```
/// use iotflow_alert::NdjsonSink;
/// use iotflow_core::sink::Sink;
/// let dir = tempfile::tempdir().expect("temp dir");
/// let path = dir.path().join("alerts.ndjson");
/// let mut sink = NdjsonSink::create(&path).expect("created");
/// sink.write(&[serde_json::json!({"a": 1}), serde_json::json!({"a": 2})]).expect("written");
/// sink.close().expect("closed");
/// assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n{\"a\":2}\n");
/// ```
#[derive(Debug)]
pub struct NdjsonSink<D> {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    _records: PhantomData<fn(&D)>,
}

impl<D> NdjsonSink<D> {
    /// Creates (or truncates) the file at `path`, and its directory.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, AlertError> {
        Self::open(path.as_ref(), false)
    }

    /// Opens the file at `path` for appending (creating it if needed):
    /// for dead letters that accumulate over runs.
    pub fn append(path: impl AsRef<Path>) -> Result<Self, AlertError> {
        Self::open(path.as_ref(), true)
    }

    fn open(path: &Path, append: bool) -> Result<Self, AlertError> {
        let io = |source| AlertError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(io)?;
        Ok(NdjsonSink {
            path: path.to_owned(),
            out: Some(BufWriter::new(file)),
            _records: PhantomData,
        })
    }

    fn io(&self, source: std::io::Error) -> iotflow_core::Error {
        iotflow_core::Error::io(&self.path, source)
    }
}

impl<D: Serialize + 'static> Sink<D> for NdjsonSink<D> {
    fn write(&mut self, batch: &[D]) -> iotflow_core::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(iotflow_core::Error::Sink {
                sink: self.path.display().to_string(),
                message: "written after close".into(),
            });
        };
        for record in batch {
            let line = serde_json::to_vec(record).map_err(|e| {
                AlertError::Encode(e.to_string()).into_sink(&self.path.display().to_string())
            })?;
            if let Err(e) = out.write_all(&line).and_then(|()| out.write_all(b"\n")) {
                return Err(self.io(e));
            }
        }
        Ok(())
    }

    fn close(&mut self) -> iotflow_core::Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let file = out.into_inner().map_err(|e| self.io(e.into_error()))?;
        file.sync_all().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertPolicy, Severity, Signal};

    #[test]
    fn alert_events_round_trip_one_per_line_and_append_keeps_old_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out/alerts.ndjson");
        let mut st = crate::state::AlertState::default();
        let mut events = Vec::new();
        for ts in [0, 10, 5_000] {
            st.push(0, Signal::new("d-1", "hot", ts, Severity::Major));
        }
        st.release(None, &AlertPolicy::default(), &mut |e| events.push(e));
        assert_eq!(events.len(), 2);

        let mut sink = NdjsonSink::create(&path).expect("created with its directory");
        sink.write(&events).expect("written");
        sink.close().expect("closed");
        assert!(sink.write(&events).is_err(), "closed sinks refuse writes");
        let mut again = NdjsonSink::append(&path).expect("reopened");
        again.write(&events[..1]).expect("appended");
        again.close().expect("closed");

        let text = std::fs::read_to_string(&path).expect("read");
        let back: Vec<crate::AlertEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one event per line"))
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[..2], events[..]);
        assert_eq!(back[2], events[0]);
    }
}
