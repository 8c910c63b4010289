//! Running jobs: N worker threads in one process, or P processes that form
//! one timely cluster.
//!
//! A job is a closure that every worker runs to build and drive its part of
//! the dataflow. [`execute`] starts it with timely's own communication layer:
//! one process with `workers` threads, or — when [`ClusterConfig::processes`]
//! is greater than one — process `process` of a cluster whose members are
//! listed in `addresses` (one `host:port` per process, from a hosts file or
//! the command line; every process runs the same binary with the same list).
//! Worker `w` of process `p` has global index `p × workers + w`; sources
//! split their input by that index.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod metrics;
pub mod store;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use timely::CommunicationConfig;
use timely::worker::Worker;

/// Errors of iotflow-runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster configuration is inconsistent (user error).
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// Reading the hosts file failed.
    #[error("hosts file {path}: {source}")]
    HostsFile {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Timely could not start (e.g. a peer address is unreachable).
    #[error("cannot start workers: {0}")]
    Start(String),
    /// A worker panicked.
    #[error("worker failed: {0}")]
    Worker(String),
}

/// How many workers and processes run a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Worker threads per process (default 1).
    pub workers: usize,
    /// Processes in the cluster (default 1).
    pub processes: usize,
    /// This process's index in `0..processes`.
    pub process: usize,
    /// `host:port` of every process, in process order (required when
    /// `processes > 1`).
    pub addresses: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            workers: 1,
            processes: 1,
            process: 0,
            addresses: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// One process with `workers` threads.
    pub fn local(workers: usize) -> Self {
        ClusterConfig {
            workers: workers.max(1),
            ..Default::default()
        }
    }

    /// Reads process addresses from a hosts file: one `host:port` per line,
    /// blank lines and `#` comments ignored.
    pub fn read_hosts(path: &Path) -> Result<Vec<String>, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::HostsFile {
            path: path.display().to_string(),
            source,
        })?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }

    /// Total workers of the cluster.
    pub fn peers(&self) -> usize {
        self.workers * self.processes
    }

    /// Checks consistency.
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 {
            return Err(Error::Config("workers must be at least 1".into()));
        }
        if self.processes == 0 {
            return Err(Error::Config("processes must be at least 1".into()));
        }
        if self.process >= self.processes {
            return Err(Error::Config(format!(
                "process index {} is not below the number of processes {}",
                self.process, self.processes
            )));
        }
        if self.processes > 1 && self.addresses.len() != self.processes {
            return Err(Error::Config(format!(
                "{} processes need {} addresses (hosts file or --addresses), got {}",
                self.processes,
                self.processes,
                self.addresses.len()
            )));
        }
        Ok(())
    }

    fn timely(&self) -> timely::Config {
        let communication = if self.processes > 1 {
            CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// Runs `job` on every worker of this process and returns each worker's
/// result, in worker order.
pub fn execute<T, F>(cluster: &ClusterConfig, job: F) -> Result<Vec<T>, Error>
where
    T: Send + 'static,
    F: Fn(&mut Worker) -> T + Send + Sync + 'static,
{
    cluster.validate()?;
    tracing::info!(
        workers = cluster.workers,
        processes = cluster.processes,
        process = cluster.process,
        "starting timely workers"
    );
    let guards = timely::execute(cluster.timely(), job).map_err(Error::Start)?;
    guards
        .join()
        .into_iter()
        .map(|r| r.map_err(Error::Worker))
        .collect()
}

/// Steps `worker` until `done` says so, parking while idle (sources wake it).
pub fn drive(worker: &mut Worker, mut done: impl FnMut() -> bool) {
    while !done() {
        worker.step_or_park(Some(Duration::from_millis(50)));
    }
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let c = ClusterConfig {
            processes: 2,
            ..Default::default()
        };
        assert!(
            c.validate()
                .expect_err("invalid")
                .to_string()
                .contains("2 processes need 2 addresses")
        );
        let c = ClusterConfig {
            process: 3,
            processes: 2,
            addresses: vec!["a:1".into(), "b:2".into()],
            ..Default::default()
        };
        assert!(c.validate().is_err());
        assert!(ClusterConfig::local(4).validate().is_ok());
    }

    #[test]
    fn runs_every_worker() {
        let out = execute(&ClusterConfig::local(2), |w| w.index()).expect("run");
        assert_eq!(out, vec![0, 1]);
    }
}
