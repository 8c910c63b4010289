//! Job configuration (TOML). Every field has a documented default, so an
//! empty file is a valid fleet-v1 job.
//!
//! ```toml
//! [input]
//! kind = "files"          # or "sim" (the fleet-v1 generator), "kafka",
//! paths = ["fleet.ndjson"] # "kinesis", "mqtt", "http" (see InputSpec)
//!
//! [event_time]
//! max_disorder_ms = 2000
//!
//! [window]
//! size_ms = 10000
//!
//! [zscore]
//! alpha = 0.01
//! threshold = 6.0
//! warmup = 30
//!
//! [output]
//! dir = "out"
//! windows = "parquet"
//! alerts = "ndjson"
//! rejects = "ndjson"
//! late = "ndjson"
//!
//! [cluster]
//! workers = 2
//!
//! [devices]               # optional: the device registry joins the pipeline
//! registry = "postgres://postgres@db/iotflow"   # default: DATA_DIR/devices.db
//! follow = false
//! [devices.enrich]
//! unknown_device = "reject"
//! [devices.presence]
//! offline_after_ms = 300000
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use iotflow_anomaly::Ewma;
use iotflow_core::codec::InputFormat;
use iotflow_core::event_time::EventTimeConfig;
use iotflow_core::validate::Rules;
use iotflow_file::sink::Format;
use iotflow_runtime::ClusterConfig;
use iotflow_sim::FleetConfig;
use iotflow_window::{WindowOptions, WindowSpec};
use serde::{Deserialize, Serialize};

/// Where readings come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputSpec {
    /// Files, directories or globs.
    Files {
        /// Paths, directories or glob patterns.
        paths: Vec<String>,
        /// Format; guessed from the first path's extension when absent.
        #[serde(default)]
        format: Option<InputFormat>,
    },
    /// The fleet-v1 generator, in process (no file).
    Sim(FleetConfig),
    /// Kafka topics (JSON lines, one reading per message); partitions are
    /// spread over all workers and their offsets checkpointed.
    #[cfg(feature = "kafka")]
    Kafka(iotflow_kafka::KafkaSourceConfig),
    /// A Kinesis stream (JSON, one reading per record): all shards,
    /// following resharding, sequence numbers checkpointed.
    #[cfg(feature = "kinesis")]
    Kinesis(iotflow_kinesis::KinesisSourceConfig),
    /// MQTT topic filters at QoS 1 (JSON, one reading per message),
    /// acknowledged to the broker once a checkpoint holds them.
    #[cfg(feature = "mqtt")]
    Mqtt(iotflow_mqtt::MqttSourceConfig),
    /// Readings posted to `iotflow serve`'s `POST /ingest` routes. Only a
    /// process that runs the HTTP server can feed it (`iotflow serve --job`).
    Http,
}

impl InputSpec {
    /// The input's `kind` as written in the job file.
    pub fn kind(&self) -> &'static str {
        match self {
            InputSpec::Files { .. } => "files",
            InputSpec::Sim(_) => "sim",
            #[cfg(feature = "kafka")]
            InputSpec::Kafka(_) => "kafka",
            #[cfg(feature = "kinesis")]
            InputSpec::Kinesis(_) => "kinesis",
            #[cfg(feature = "mqtt")]
            InputSpec::Mqtt(_) => "mqtt",
            InputSpec::Http => "http",
        }
    }

    /// The decoder format of the input's records: the files' format (given
    /// or guessed from the first path), JSON lines for everything else.
    pub fn format(&self) -> InputFormat {
        match self {
            InputSpec::Files { paths, format } => format.unwrap_or_else(|| {
                paths.first().map_or(InputFormat::Ndjson, |p| {
                    InputFormat::from_path(Path::new(p))
                })
            }),
            _ => InputFormat::Ndjson,
        }
    }

    /// Whether a restarted job can resume this input from a checkpoint's
    /// positions (or, for MQTT and HTTP, from what the upstream still holds
    /// unacknowledged).
    pub fn resumable(&self) -> bool {
        !matches!(self, InputSpec::Sim(_))
    }
}

/// Where and how results are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSpec {
    /// Output directory (default `out`). Results go to
    /// `DIR/{windows,alerts,rejects,late}/part-NNNNN.EXT`, one file per
    /// worker (with `[devices]` also `presence/` and `fleet/`).
    pub dir: PathBuf,
    /// Format of window results (default parquet).
    pub windows: Format,
    /// Format of alerts (default ndjson).
    pub alerts: Format,
    /// Format of rejects (default ndjson).
    pub rejects: Format,
    /// Format of late readings (default ndjson).
    pub late: Format,
    /// Format of online/offline events, with `[devices]` (default ndjson).
    pub presence: Format,
    /// Format of fleet count changes, with `[devices]` (default ndjson).
    pub fleet: Format,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            dir: PathBuf::from("out"),
            windows: Format::Parquet,
            alerts: Format::Ndjson,
            rejects: Format::Ndjson,
            late: Format::Ndjson,
            presence: Format::Ndjson,
            fleet: Format::Ndjson,
        }
    }
}

impl OutputSpec {
    /// Every output in one format.
    pub fn all(dir: impl Into<PathBuf>, format: Format) -> Self {
        OutputSpec {
            dir: dir.into(),
            windows: format,
            alerts: format,
            rejects: format,
            late: format,
            presence: format,
            fleet: format,
        }
    }
}

/// The `[devices]` section: the device registry joins the pipeline.
///
/// With it, every valid reading is enriched with its device's description
/// as of the reading's event time (readings of devices the registry does
/// not know are rejected with reason `unknown_device`, or passed through);
/// devices are tracked online/offline in event time (`presence/` output);
/// and fleet counts by tenant, group, status, firmware, type and presence
/// are maintained incrementally (`fleet/` output).
///
/// ```toml
/// [devices]
/// registry = "postgres://postgres@db/iotflow"  # default: the SQLite registry under data_dir
/// data_dir = "iotflow-data"     # default: the output directory
/// follow = false                # keep reading registry changes while running
/// poll_ms = 1000                # with follow: how often
/// views = true                  # fleet counts (fleet/)
///
/// [devices.enrich]
/// unknown_device = "reject"     # or "pass_through"
///
/// [devices.presence]
/// offline_after_ms = 300000     # no reading for 5 min of event time: offline
/// last_seen_every_ms = 60000
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// Registry URL (`postgres://…`, `sqlite://…`, `dynamodb://…`). Default:
    /// the embedded SQLite registry in `data_dir`.
    pub registry: Option<String>,
    /// Directory of the embedded registry (`devices.db`, `registry.key`).
    /// Default: the output directory.
    pub data_dir: Option<PathBuf>,
    /// Keep reading the registry's change log while the job runs, so
    /// changes take effect at their time (default false: the registry as
    /// it is at the start holds for the whole run, right for replays).
    pub follow: bool,
    /// With `follow`: time between polls of the change log, ms (default 1000).
    pub poll_ms: u64,
    /// Maintain fleet counts (default true).
    pub views: bool,
    /// Enrichment: what happens to readings of unknown devices.
    pub enrich: iotflow_enrich::EnrichConfig,
    /// Online/offline tracking.
    pub presence: iotflow_fleet::PresenceConfig,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            registry: None,
            data_dir: None,
            follow: false,
            poll_ms: 1000,
            views: true,
            enrich: iotflow_enrich::EnrichConfig::default(),
            presence: iotflow_fleet::PresenceConfig::default(),
        }
    }
}

impl DevicesConfig {
    /// The registry feed's settings.
    pub fn feed(&self) -> iotflow_devices::FeedConfig {
        iotflow_devices::FeedConfig {
            follow: self.follow,
            poll: Duration::from_millis(self.poll_ms.max(1)),
            ..iotflow_devices::FeedConfig::default()
        }
    }
}

/// The kind of window of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed windows of `size_ms`.
    #[default]
    Tumbling,
    /// Windows of `size_ms` every `slide_ms`.
    Sliding,
    /// Per-key sessions closed by `gap_ms` without readings.
    Session,
    /// Every `count` readings of a key, in event-time order.
    Count,
}

/// The `[window]` section of a job.
///
/// ```toml
/// [window]
/// kind = "sliding"        # tumbling (default) | sliding | session | count
/// size_ms = 60000         # tumbling and sliding (default 10000)
/// slide_ms = 1000         # sliding
/// # gap_ms = 30000        # session
/// # count = 100           # count
/// allowed_lateness_ms = 0 # a late reading within it re-emits its window as an update
/// # early_ms = 1000       # partial results every second of processing time (default off)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// The kind of window.
    pub kind: WindowKind,
    /// Window size (ms), tumbling and sliding.
    pub size_ms: u64,
    /// Distance between window starts (ms), sliding only.
    pub slide_ms: Option<u64>,
    /// Session gap (ms), session only.
    pub gap_ms: Option<u64>,
    /// Readings per window, count only.
    pub count: Option<u64>,
    /// How long after the watermark passed a window it still takes
    /// readings, each re-emitting the window with `kind = update` (ms;
    /// default 0).
    pub allowed_lateness_ms: u64,
    /// Every this many ms of processing time, each key's earliest open
    /// window is also emitted as it stands, with `kind = partial` (default:
    /// off).
    pub early_ms: Option<u64>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            kind: WindowKind::Tumbling,
            size_ms: 10_000,
            slide_ms: None,
            gap_ms: None,
            count: None,
            allowed_lateness_ms: 0,
            early_ms: None,
        }
    }
}

impl WindowConfig {
    /// The window specification, or why the section is inconsistent.
    pub fn spec(&self) -> Result<WindowSpec, iotflow_core::Error> {
        let allowed_lateness_ms = self.allowed_lateness_ms;
        let bad = |m: &str| Err(iotflow_core::Error::Config(format!("[window]: {m}")));
        if self.count.is_some() && self.kind != WindowKind::Count {
            return bad("count is only for kind = \"count\"");
        }
        let spec = match (self.kind, self.slide_ms, self.gap_ms) {
            (WindowKind::Count, None, None) => match self.count {
                Some(size) => WindowSpec::Count { size },
                None => return bad("kind = \"count\" needs count"),
            },
            (WindowKind::Tumbling, None, None) => WindowSpec::Tumbling {
                size_ms: self.size_ms,
                allowed_lateness_ms,
            },
            (WindowKind::Sliding, Some(slide_ms), None) => WindowSpec::Sliding {
                size_ms: self.size_ms,
                slide_ms,
                allowed_lateness_ms,
            },
            (WindowKind::Session, None, Some(gap_ms)) => WindowSpec::Session {
                gap_ms,
                allowed_lateness_ms,
            },
            (WindowKind::Sliding, None, _) => return bad("kind = \"sliding\" needs slide_ms"),
            (WindowKind::Session, _, None) => return bad("kind = \"session\" needs gap_ms"),
            (_, Some(_), _) => return bad("slide_ms is only for kind = \"sliding\""),
            (_, _, Some(_)) => return bad("gap_ms is only for kind = \"session\""),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// How the window operator fires beyond its spec (early results).
    pub fn options(&self) -> WindowOptions {
        let early = Duration::from_millis(self.early_ms.unwrap_or(0));
        WindowOptions::default().early_every(early)
    }

    /// One line for summaries, e.g. `60 s sliding every 1 s`.
    pub fn describe(&self) -> String {
        let s = |ms: u64| {
            if ms.is_multiple_of(1000) {
                format!("{} s", ms / 1000)
            } else {
                format!("{ms} ms")
            }
        };
        match self.kind {
            WindowKind::Tumbling => format!("{} tumbling", s(self.size_ms)),
            WindowKind::Sliding => format!(
                "{} sliding every {}",
                s(self.size_ms),
                s(self.slide_ms.unwrap_or_default())
            ),
            WindowKind::Session => {
                format!("sessions, gap {}", s(self.gap_ms.unwrap_or_default()))
            }
            WindowKind::Count => format!("every {} readings", self.count.unwrap_or_default()),
        }
    }
}

/// A whole job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Input (default: files `fleet.ndjson`).
    pub input: InputSpec,
    /// Watermarking (default: 2000 ms disorder).
    pub event_time: EventTimeConfig,
    /// Validation rules (default: fleet-v1 ranges).
    pub rules: Rules,
    /// Windows (default: 10 s tumbling).
    pub window: WindowConfig,
    /// EWMA z-score detector (default: alpha 0.01, |z| > 6, warm-up 30).
    pub zscore: Ewma,
    /// Outputs.
    pub output: OutputSpec,
    /// Workers and processes (default: 1 worker, 1 process).
    pub cluster: ClusterConfig,
    /// Bytes per file split (default 4 MiB).
    pub split_bytes: u64,
    /// Bytes a file source reads at a time (default 1 MiB). The watermark,
    /// and with it the firing of windows, moves between reads: smaller
    /// reads mean results sooner, at some cost in throughput.
    pub chunk_bytes: usize,
    /// Read each worker's input files at the same time, with a watermark
    /// per file, instead of one after the other (default false). For files
    /// that each cover the same period (one per device or gateway); files
    /// that follow each other in time are better read in order.
    pub interleave_files: bool,
    /// How far (ms of event time) one worker's source may run ahead of the
    /// slowest worker before it pauses (default 60 000: six 10 s windows).
    /// Bounds window state when workers run at different speeds.
    pub max_ahead_ms: u64,
    /// Checkpoints (default: none). With them a crashed or stopped job
    /// resumes where its last checkpoint left it, and outputs are
    /// exactly-once.
    pub checkpoint: Option<iotflow_runtime::checkpoint::CheckpointConfig>,
    /// The device registry (default: none): enrichment, presence and fleet
    /// views. See [`DevicesConfig`].
    pub devices: Option<DevicesConfig>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            input: InputSpec::Files {
                paths: vec!["fleet.ndjson".into()],
                format: None,
            },
            event_time: EventTimeConfig::default(),
            rules: Rules::fleet_default(),
            window: WindowConfig::default(),
            zscore: Ewma::new(0.01),
            output: OutputSpec::default(),
            cluster: ClusterConfig::default(),
            split_bytes: iotflow_file::source::DEFAULT_SPLIT_BYTES,
            chunk_bytes: iotflow_file::source::DEFAULT_CHUNK_BYTES,
            interleave_files: false,
            max_ahead_ms: 60_000,
            checkpoint: None,
            devices: None,
        }
    }
}

impl JobConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| crate::Error::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), crate::Error> {
        self.window.spec()?;
        self.zscore.validate()?;
        self.cluster.validate()?;
        if let InputSpec::Files { paths, .. } = &self.input
            && paths.is_empty()
        {
            return Err(iotflow_core::Error::Config("no input paths".into()).into());
        }
        if let Some(d) = &self.devices {
            d.presence
                .validate()
                .map_err(|e| iotflow_core::Error::Config(format!("[devices.presence]: {e}")))?;
        }
        if let Some(ck) = &self.checkpoint {
            if ck.dir.is_empty() {
                return Err(iotflow_core::Error::Config("checkpoint dir is empty".into()).into());
            }
            if !self.input.resumable() {
                return Err(iotflow_core::Error::Config(
                    "checkpoints need a resumable input (files); the generator cannot seek".into(),
                )
                .into());
            }
        }
        Ok(())
    }

    /// A fingerprint of everything that decides the job's output (input,
    /// rules, windows, detector, outputs, splits): a checkpoint is only
    /// resumed by the job that wrote it. Worker count and checkpoint
    /// settings are not part of it, so a job can resume on more or fewer
    /// workers.
    pub fn fingerprint(&self) -> String {
        let key = serde_json::json!({
            "input": self.input,
            "event_time": self.event_time,
            "rules": self.rules,
            "window": self.window,
            "zscore": self.zscore,
            "output": self.output,
            "split_bytes": self.split_bytes,
            "chunk_bytes": self.chunk_bytes,
            "interleave_files": self.interleave_files,
            "devices": self.devices,
        });
        format!(
            "{:016x}",
            iotflow_types::stable_hash(key.to_string().as_str())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "kafka", feature = "kinesis", feature = "mqtt"))]
    #[test]
    fn connector_inputs_parse_from_toml_and_read_json() {
        let kafka: JobConfig = toml::from_str(
            "[input]\nkind = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"r\"]\ngroup_id = \"g\"\n",
        )
        .expect("kafka input");
        let InputSpec::Kafka(k) = &kafka.input else {
            panic!("not kafka: {:?}", kafka.input);
        };
        assert_eq!(
            (k.brokers.as_str(), k.topics.as_slice()),
            ("b:9092", &["r".to_owned()][..])
        );
        assert_eq!(kafka.input.format(), InputFormat::Ndjson);
        assert!(kafka.input.resumable());
        let kinesis: JobConfig =
            toml::from_str("[input]\nkind = \"kinesis\"\nstream = \"s\"\n").expect("kinesis");
        assert_eq!(kinesis.input.kind(), "kinesis");
        let mqtt: JobConfig = toml::from_str(
            "[input]\nkind = \"mqtt\"\ntopics = [\"fleet/+/readings\"]\nclient_id = \"job\"\n",
        )
        .expect("mqtt");
        assert_eq!(mqtt.input.kind(), "mqtt");
        let http: JobConfig = toml::from_str("[input]\nkind = \"http\"\n").expect("http");
        assert_eq!(http.input, InputSpec::Http);
        // A misspelt connector field is an error, not a silent default.
        assert!(
            toml::from_str::<JobConfig>(
                "[input]\nkind = \"kafka\"\ntopics = [\"r\"]\ngroupid = \"g\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn empty_toml_is_the_default_job_and_unknown_keys_fail() {
        let c: JobConfig = toml::from_str("").expect("empty config");
        assert_eq!(c, JobConfig::default());
        let c: JobConfig =
            toml::from_str("[window]\nsize_ms = 5000\n[cluster]\nworkers = 2\n").expect("partial");
        assert_eq!((c.window.size_ms, c.cluster.workers), (5000, 2));
        assert!(toml::from_str::<JobConfig>("[window]\nsize = 5\n").is_err());
    }

    #[test]
    fn window_section_kinds_and_errors() {
        let c: JobConfig = toml::from_str("[window]\nsize_ms = 5000\n").expect("tumbling");
        assert_eq!(c.window.spec().expect("spec"), WindowSpec::tumbling(5000));
        let c: JobConfig =
            toml::from_str("[window]\nkind = \"sliding\"\nsize_ms = 60000\nslide_ms = 1000\n")
                .expect("sliding");
        assert_eq!(
            c.window.spec().expect("spec"),
            WindowSpec::sliding(60_000, 1000)
        );
        assert_eq!(c.window.describe(), "60 s sliding every 1 s");
        let c: JobConfig =
            toml::from_str("[window]\nkind = \"session\"\ngap_ms = 30000\n").expect("session");
        assert_eq!(c.window.spec().expect("spec"), WindowSpec::session(30_000));
        for bad in [
            "[window]\nkind = \"sliding\"\nsize_ms = 60000\n",
            "[window]\nkind = \"sliding\"\nsize_ms = 60000\nslide_ms = 7000\n",
            "[window]\nkind = \"session\"\n",
            "[window]\ngap_ms = 5\n",
        ] {
            let c: JobConfig = toml::from_str(bad).expect("parses");
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<JobConfig>("[window]\nkind = \"hopping\"\n").is_err());
    }

    #[test]
    fn checkpoint_section_with_documented_defaults() {
        let c: JobConfig = toml::from_str("[checkpoint]\ndir = \"ck\"\n").expect("checkpoint");
        let ck = c.checkpoint.expect("section");
        assert_eq!(ck.dir, "ck");
        assert_eq!(ck.interval, std::time::Duration::from_secs(10));
        assert_eq!(ck.keep, 3);
        let c: JobConfig =
            toml::from_str("[checkpoint]\ndir = \"s3://b/p\"\ninterval = \"200ms\"\nkeep = 5\n")
                .expect("checkpoint");
        let ck = c.checkpoint.expect("section");
        assert_eq!((ck.interval.as_millis(), ck.keep), (200, 5));
        let err =
            toml::from_str::<JobConfig>("[checkpoint]\ndir = \"ck\"\ninterval = \"5 parsecs\"\n")
                .expect_err("bad duration");
        assert!(err.to_string().contains("unknown unit"), "{err}");
        // Checkpoints need a seekable input.
        let mut sim = JobConfig {
            input: InputSpec::Sim(iotflow_sim::FleetConfig::default()),
            ..JobConfig::default()
        };
        sim.checkpoint = Some(iotflow_runtime::checkpoint::CheckpointConfig {
            dir: "ck".into(),
            ..Default::default()
        });
        assert!(sim.validate().is_err());
    }
}

/// Builds a [`JobConfig`] in code: `&mut self` setters, [`build`](JobBuilder::build) validates.
///
/// ```
/// use std::time::Duration;
/// use iotflow_pipelines::config::JobBuilder;
/// use iotflow_file::sink::Format;
///
/// let job = JobBuilder::new()
///     .files(["fleet.ndjson"])
///     .window(Duration::from_secs(60))
///     .max_disorder(Duration::from_secs(5))
///     .output("out", Format::Csv)
///     .workers(2)
///     .build()
///     .expect("valid job");
/// assert_eq!(job.window.size_ms, 60_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct JobBuilder {
    cfg: JobConfig,
}

impl JobBuilder {
    /// Starts from the defaults of [`JobConfig`].
    pub fn new() -> Self {
        JobBuilder::default()
    }

    /// Reads files, directories or globs (format from the extension).
    pub fn files<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, paths: I) -> &mut Self {
        self.cfg.input = InputSpec::Files {
            paths: paths.into_iter().map(Into::into).collect(),
            format: None,
        };
        self
    }

    /// Reads the fleet-v1 generator instead of files.
    pub fn simulate(&mut self, fleet: FleetConfig) -> &mut Self {
        self.cfg.input = InputSpec::Sim(fleet);
        self
    }

    /// Tumbling window size.
    pub fn window(&mut self, size: std::time::Duration) -> &mut Self {
        self.cfg.window = WindowConfig {
            size_ms: size.as_millis() as u64,
            ..WindowConfig::default()
        };
        self
    }

    /// Allowed event-time disorder before a reading is late.
    pub fn max_disorder(&mut self, d: std::time::Duration) -> &mut Self {
        self.cfg.event_time.max_disorder_ms = d.as_millis() as u64;
        self
    }

    /// Validation rules.
    pub fn rules(&mut self, rules: Rules) -> &mut Self {
        self.cfg.rules = rules;
        self
    }

    /// The z-score detector.
    pub fn zscore(&mut self, ewma: Ewma) -> &mut Self {
        self.cfg.zscore = ewma;
        self
    }

    /// Every output under `dir` in `format`.
    pub fn output(&mut self, dir: impl Into<PathBuf>, format: Format) -> &mut Self {
        self.cfg.output = OutputSpec::all(dir, format);
        self
    }

    /// Worker threads per process.
    pub fn workers(&mut self, n: usize) -> &mut Self {
        self.cfg.cluster.workers = n;
        self
    }

    /// The validated configuration.
    pub fn build(&self) -> Result<JobConfig, crate::Error> {
        self.cfg.validate()?;
        Ok(self.cfg.clone())
    }
}
