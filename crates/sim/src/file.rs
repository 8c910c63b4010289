use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, FleetConfig, FleetGenerator, FleetMeta};

/// Bytes generated per write (and per progress report, ~13,000 lines).
const CHUNK: usize = 1 << 20;

/// `PATH.meta.json`, where [`write_file`] puts the [`FleetMeta`] of `PATH`.
pub fn meta_path(path: &Path) -> PathBuf {
    with_suffix(path, ".meta.json")
}

/// `PATH.anomalies`, where [`write_file`] lists the spike line numbers of
/// `PATH`, one per line.
pub fn anomalies_path(path: &Path) -> PathBuf {
    with_suffix(path, ".anomalies")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes the fleet-v1 file `path` for `cfg`, plus its two companions as
/// `gen_fleet.py` does: [`meta_path`] (the [`FleetMeta`] as JSON) and
/// [`anomalies_path`] (1-based spike line numbers). Existing files are
/// replaced.
///
/// `progress` is called after every chunk of about 1 MiB with the number of
/// lines written so far, the last call with `cfg.lines`.
///
/// ```no_run
/// use iotflow_sim::{FleetConfig, write_file};
/// let meta = write_file(&FleetConfig::default(), "fleet.ndjson".as_ref(), |_| {})?;
/// assert_eq!(meta.malformed, 1000);
/// # Ok::<(), iotflow_sim::Error>(())
/// ```
pub fn write_file(
    cfg: &FleetConfig,
    path: &Path,
    mut progress: impl FnMut(u64),
) -> Result<FleetMeta, Error> {
    cfg.validate()?;
    let mut fleet = FleetGenerator::new(cfg);

    // The generator fills a large buffer that goes to the file in one write.
    let mut out = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut chunk = Vec::with_capacity(CHUNK + 256);
    let mut written = 0;
    loop {
        chunk.clear();
        let n = fleet.fill(&mut chunk, CHUNK);
        if n == 0 {
            break;
        }
        out.write_all(&chunk).map_err(|e| Error::io(path, e))?;
        written += n as u64;
        progress(written);
    }
    drop(out);

    let anomalies = anomalies_path(path);
    let io = |e| Error::io(&anomalies, e);
    let mut w = BufWriter::with_capacity(1 << 16, File::create(&anomalies).map_err(io)?);
    let mut itoa = itoa::Buffer::new();
    for line in fleet.anomaly_lines() {
        w.write_all(itoa.format(line).as_bytes()).map_err(io)?;
        w.write_all(b"\n").map_err(io)?;
    }
    w.flush().map_err(io)?;

    let meta = fleet.meta();
    // One-space indent, like Python's json.dump(..., indent=1).
    let mut json = Vec::with_capacity(512);
    let indent = serde_json::ser::PrettyFormatter::with_indent(b" ");
    serde::Serialize::serialize(
        &meta,
        &mut serde_json::Serializer::with_formatter(&mut json, indent),
    )?;
    json.push(b'\n');
    let meta_file = meta_path(path);
    std::fs::write(&meta_file, json).map_err(|e| Error::io(&meta_file, e))?;
    Ok(meta)
}
