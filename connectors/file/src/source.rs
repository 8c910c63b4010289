//! The file source: NDJSON or CSV files, a directory or a glob, split
//! across workers.
//!
//! [`plan`] expands the inputs into a sorted list of files and cuts each file
//! into byte ranges ([`Split`]s) of about `split_bytes`. Split `i` goes to
//! global worker `i mod peers`, so consecutive stretches of a file (and of
//! event time) are read by different workers side by side, and every process
//! of a cluster computes the same assignment. A split owns the lines that
//! *start* inside it; its position in the source is a byte offset.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iotflow_core::bridge::BridgeSender;
use iotflow_core::source::{Chunk, Position, Resume, Source};
use iotflow_core::{Error, Result};

/// A byte range of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The file.
    pub path: Arc<str>,
    /// First byte (inclusive).
    pub start: u64,
    /// Last byte (exclusive); lines starting before it belong to the split.
    pub end: u64,
}

impl Split {
    /// The split's identity in checkpoints: `path@start`. It does not depend
    /// on the worker that reads it, so positions rescale.
    pub fn key(&self) -> Arc<str> {
        Arc::from(format!("{}@{}", self.path, self.start))
    }
}

/// Default split size: 4 MiB (≈ 50 000 fleet-v1 lines).
pub const DEFAULT_SPLIT_BYTES: u64 = 4 << 20;

/// Bytes a file source reads at a time unless told otherwise (1 MiB).
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// Expands files, directories (their regular, non-hidden files, sorted) and
/// glob patterns into files, then cuts them into splits of `split_bytes`.
pub fn plan(inputs: &[String], split_bytes: u64) -> Result<Vec<Split>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = Path::new(input);
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| Error::io(p, e))?;
            let mut in_dir = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|e| Error::io(p, e))?;
                let path = entry.path();
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                let is_data = !input_is_sidecar(&path);
                if path.is_file() && !hidden && is_data {
                    in_dir.push(path);
                }
            }
            if in_dir.is_empty() {
                return Err(Error::Config(format!(
                    "no input files in directory {input}"
                )));
            }
            in_dir.sort();
            files.extend(in_dir);
        } else if p.exists() {
            files.push(p.to_path_buf());
        } else if input.contains(['*', '?', '[']) {
            let paths =
                glob::glob(input).map_err(|e| Error::Config(format!("bad glob {input}: {e}")))?;
            let mut matched: Vec<PathBuf> = paths
                .filter_map(|r| r.ok())
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(Error::Config(format!("no files match {input}")));
            }
            matched.sort();
            files.extend(matched);
        } else {
            return Err(Error::io(
                p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
    }
    let split_bytes = split_bytes.max(1);
    let mut splits = Vec::new();
    for f in files {
        let len = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        let path: Arc<str> = Arc::from(f.to_string_lossy().as_ref());
        let mut start = 0;
        while start < len {
            let end = (start + split_bytes).min(len);
            splits.push(Split {
                path: path.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(splits)
}

/// Generator side files (`x.meta.json`, `x.anomalies`) next to data files.
fn input_is_sidecar(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".meta.json") || name.ends_with(".anomalies")
}

/// The splits of one worker, read in order.
#[derive(Debug)]
pub struct FileSource {
    splits: Vec<Split>,
    chunk_bytes: usize,
    max_record_bytes: usize,
    resume: std::collections::HashMap<Arc<str>, Position>,
    interleave: bool,
}

impl FileSource {
    /// The share of `plan` that global worker `worker` of `peers` reads.
    pub fn for_worker(plan: &[Split], worker: usize, peers: usize) -> Self {
        let splits = plan
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers.max(1) == worker)
            .map(|(_, s)| s.clone())
            .collect();
        FileSource {
            splits,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_record_bytes: 1 << 20,
            resume: Default::default(),
            interleave: false,
        }
    }

    /// Reads this worker's files at the same time (one thread each) instead
    /// of one after the other: for files that each cover the same period
    /// (one file per device or gateway), whose readings would otherwise be
    /// late behind the files read before them. The event-time source keeps
    /// a watermark per file and holds the least. Files that follow each
    /// other in time are better read in order (the default): read at once,
    /// the later ones wait in memory for the earliest.
    pub fn interleaved(mut self, yes: bool) -> Self {
        self.interleave = yes;
        self
    }

    /// Resumes from saved positions (the last [`Resume`] of each partition,
    /// from chunks already consumed): finished splits are skipped, others
    /// start at their saved offset, splits without a position from their
    /// start.
    pub fn with_resume(mut self, positions: impl IntoIterator<Item = Resume>) -> Self {
        self.resume = positions
            .into_iter()
            .map(|r| (r.partition, r.position))
            .collect();
        self
    }

    /// Bytes per chunk handed to the worker (default 1 MiB).
    pub fn with_chunk_bytes(mut self, n: usize) -> Self {
        self.chunk_bytes = n.max(1);
        self
    }

    /// A record longer than this is cut here and rejected as `too_long`
    /// (default 1 MiB); memory stays bounded whatever the file holds.
    pub fn with_max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = n.max(1);
        self
    }

    fn read_split(&self, split: &Split, out: &BridgeSender<Result<Chunk>>) -> Result<bool> {
        let path = Path::new(&*split.path);
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let key = split.key();
        let mut start = split.start;
        match self.resume.get(&key) {
            Some(Position::Done) => return Ok(true),
            // A saved offset is the start of a line.
            Some(Position::Offset(o)) if *o > split.start => {
                start = *o;
                file.seek(SeekFrom::Start(start))
                    .map_err(|e| Error::io(path, e))?;
            }
            _ => {}
        }
        if start == split.start && start > 0 {
            // The line in progress at `start` belongs to the previous split.
            file.seek(SeekFrom::Start(start - 1))
                .map_err(|e| Error::io(path, e))?;
            let mut one = [0u8; 1];
            file.read_exact(&mut one).map_err(|e| Error::io(path, e))?;
            if one[0] != b'\n' {
                let skipped = skip_line(&mut file).map_err(|e| Error::io(path, e))?;
                start += skipped;
            }
            file.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io(path, e))?;
        }
        if start >= split.end {
            return Ok(true);
        }
        let mut carry: Vec<u8> = Vec::with_capacity(self.chunk_bytes + 4096);
        let mut carry_off = start;
        let mut skipping = false;
        let mut buf = vec![0u8; self.chunk_bytes];
        loop {
            let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
            let mut data = &buf[..n];
            if skipping {
                // Discarding the tail of an over-long record already rejected.
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        carry_off += (i + 1) as u64;
                        data = &data[i + 1..];
                        skipping = false;
                    }
                    None => {
                        carry_off += n as u64;
                        if n == 0 {
                            return Ok(true);
                        }
                        continue;
                    }
                }
                if carry_off >= split.end {
                    return Ok(true);
                }
            }
            carry.extend_from_slice(data);
            let limit = (split.end - carry_off) as usize; // lines starting before this index are ours
            if limit <= carry.len() {
                let from = limit.saturating_sub(1);
                if let Some(j) = memchr::memchr(b'\n', &carry[from..]).map(|j| from + j) {
                    carry.truncate(j + 1);
                    return self
                        .emit(split, &key, out, &mut carry, carry_off, Next::Done)
                        .map(|sent| sent.is_some());
                }
            }
            if n == 0 {
                // End of file: the last line may lack its newline.
                if !carry.is_empty() {
                    return self
                        .emit(split, &key, out, &mut carry, carry_off, Next::Done)
                        .map(|s| s.is_some());
                }
                return Ok(true);
            }
            match memchr::memrchr(b'\n', &carry) {
                Some(j) => {
                    let rest = carry.split_off(j + 1);
                    let len = carry.len() as u64;
                    if self
                        .emit(split, &key, out, &mut carry, carry_off, Next::After)?
                        .is_none()
                    {
                        return Ok(false);
                    }
                    carry = rest;
                    carry_off += len;
                }
                None if carry.len() > self.max_record_bytes => {
                    // One record larger than allowed: hand over its head (the
                    // decoder rejects it as too long) and skip the rest.
                    let len = carry.len() as u64;
                    carry.push(b'\n');
                    // No resume point inside a record: a restart re-reads it whole.
                    if self
                        .emit(split, &key, out, &mut carry, carry_off, Next::Unknown)?
                        .is_none()
                    {
                        return Ok(false);
                    }
                    carry_off += len;
                    skipping = true;
                }
                None => {}
            }
        }
    }

    /// Sends `carry` as a chunk; `None` if the worker is gone.
    fn emit(
        &self,
        split: &Split,
        key: &Arc<str>,
        out: &BridgeSender<Result<Chunk>>,
        carry: &mut Vec<u8>,
        offset: u64,
        next: Next,
    ) -> Result<Option<()>> {
        let data = std::mem::replace(carry, Vec::with_capacity(self.chunk_bytes + 4096));
        let position = match next {
            Next::After => Some(Position::Offset(offset + data.len() as u64)),
            Next::Done => Some(Position::Done),
            Next::Unknown => None,
        };
        let chunk = Chunk {
            source: split.path.clone(),
            offset,
            data,
            resume: position.map(|position| Resume {
                partition: key.clone(),
                position,
            }),
        };
        Ok(out.send_blocking(Ok(chunk)).ok())
    }
}

/// Where a split resumes after a chunk.
#[derive(Clone, Copy, Debug)]
enum Next {
    /// Right after the chunk.
    After,
    /// Nowhere: the split is finished.
    Done,
    /// Not at a record boundary (inside an over-long record).
    Unknown,
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Skips through the next `\n`; returns the bytes skipped.
fn skip_line(f: &mut File) -> std::io::Result<u64> {
    let mut buf = [0u8; 8192];
    let mut skipped = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(skipped);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            skipped += (i + 1) as u64;
            return Ok(skipped);
        }
        skipped += n as u64;
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        format!("file({} splits)", self.splits.len())
    }

    fn run(&mut self, out: &BridgeSender<Result<Chunk>>) -> Result<()> {
        // This worker's splits, grouped by file (the plan keeps a file's
        // splits together and in order).
        let mut files: Vec<Vec<&Split>> = Vec::new();
        for split in &self.splits {
            match files.last_mut() {
                Some(f) if f[0].path == split.path => f.push(split),
                _ => files.push(vec![split]),
            }
        }
        if !self.interleave || files.len() < 2 {
            for file in &files {
                if !self.read_file(file, out)? {
                    break;
                }
            }
            return Ok(());
        }
        // Every file at once, each announced first so that it holds the
        // watermark from the start (per-partition watermarks).
        for file in &files {
            let hello = Chunk {
                source: file[0].path.clone(),
                ..Chunk::default()
            };
            if out.send_blocking(Ok(hello)).is_err() {
                return Ok(());
            }
        }
        let this: &FileSource = self;
        std::thread::scope(|scope| {
            let readers: Vec<_> = files
                .iter()
                .map(|file| scope.spawn(move || this.read_file(file, out)))
                .collect();
            let mut first_error = Ok(());
            for r in readers {
                let result = r
                    .join()
                    .unwrap_or(Err(Error::Disconnected("file reader thread panicked")));
                if let (Err(e), true) = (result, first_error.is_ok()) {
                    first_error = Err(e);
                }
            }
            first_error
        })
    }
}

impl FileSource {
    /// Reads one file's splits in order, then says the file is done (an
    /// empty chunk whose position is `Done` for the file itself), so that
    /// its watermark stops holding the source's. `false` if the worker is
    /// gone.
    fn read_file(&self, splits: &[&Split], out: &BridgeSender<Result<Chunk>>) -> Result<bool> {
        for split in splits {
            if !self.read_split(split, out)? || out.is_closed() {
                return Ok(false);
            }
        }
        let path = splits[0].path.clone();
        let done = Chunk {
            source: path.clone(),
            resume: Some(Resume {
                partition: path,
                position: Position::Done,
            }),
            ..Chunk::default()
        };
        Ok(out.send_blocking(Ok(done)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotflow_core::bridge::bridge;
    use std::io::Write;

    fn read_all(path: &Path, split_bytes: u64, peers: usize, chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let plan = plan(&[path.to_string_lossy().into_owned()], split_bytes).expect("plan");
        let mut lines = Vec::new();
        for w in 0..peers {
            let (tx, mut rx) = bridge(1024, None);
            let mut src = FileSource::for_worker(&plan, w, peers)
                .with_chunk_bytes(chunk)
                .with_max_record_bytes(64);
            let t = std::thread::spawn(move || src.run(&tx));
            while let Some(c) = rx.recv_blocking() {
                let c = c.expect("chunk");
                let mut off = c.offset;
                for l in c.data.split_inclusive(|b| *b == b'\n') {
                    lines.push((off, l.strip_suffix(b"\n").unwrap_or(l).to_vec()));
                    off += l.len() as u64;
                }
            }
            t.join().expect("join").expect("run");
        }
        lines.sort();
        lines
    }

    #[test]
    fn every_line_exactly_once_for_any_split_and_chunk_size() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("in.ndjson");
        let mut f = File::create(&path).expect("create");
        let mut want = Vec::new();
        let mut off = 0u64;
        for i in 0..200 {
            let line = "x".repeat(i % 17) + &i.to_string();
            writeln!(f, "{line}").expect("write");
            want.push((off, line.clone().into_bytes()));
            off += line.len() as u64 + 1;
        }
        write!(f, "last-without-newline").expect("write");
        want.push((off, b"last-without-newline".to_vec()));
        drop(f);
        for split in [1, 3, 7, 50, 4096] {
            for peers in [1, 2, 3] {
                for chunk in [1, 5, 64, 1 << 16] {
                    assert_eq!(
                        read_all(&path, split, peers, chunk),
                        want,
                        "split {split} peers {peers} chunk {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn resuming_from_saved_positions_reads_the_rest_exactly_once_on_any_worker_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("in.ndjson");
        let lines: Vec<String> = (0..500)
            .map(|i| format!("{}-{i}", "z".repeat(i % 13)))
            .collect();
        std::fs::write(&path, lines.join("\n")).expect("write");
        let plan = plan(&[path.to_string_lossy().into_owned()], 700).expect("plan");
        let drain = |src: FileSource, take: usize| {
            let (tx, mut rx) = bridge(100_000, None);
            let mut src = src.with_chunk_bytes(64);
            let t = std::thread::spawn(move || src.run(&tx));
            let mut got = Vec::new();
            let mut resume = std::collections::HashMap::new();
            let mut n = 0;
            while let Some(c) = rx.recv_blocking() {
                let c = c.expect("chunk");
                if n == take {
                    break;
                }
                n += 1;
                got.extend(
                    c.data
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| l.to_vec()),
                );
                if let Some(r) = c.resume {
                    resume.insert(r.partition.clone(), r);
                }
            }
            drop(rx);
            let _ = t.join();
            (got, resume)
        };
        for (old, new) in [(1, 1), (2, 1), (1, 3), (3, 2)] {
            // A "checkpoint" after a few chunks per worker…
            let mut before = Vec::new();
            let mut saved = Vec::new();
            for w in 0..old {
                let (got, resume) = drain(FileSource::for_worker(&plan, w, old), 5);
                before.extend(got);
                saved.extend(resume.into_values());
            }
            // …then a restart with another number of workers.
            let mut after = Vec::new();
            for w in 0..new {
                after.extend(
                    drain(
                        FileSource::for_worker(&plan, w, new).with_resume(saved.clone()),
                        usize::MAX,
                    )
                    .0,
                );
            }
            let mut all: Vec<Vec<u8>> = before.into_iter().chain(after).collect();
            all.sort();
            let mut want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            want.sort();
            assert_eq!(all, want, "{old} -> {new} workers");
        }
    }

    #[test]
    fn over_long_record_is_cut_not_buffered() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("long.ndjson");
        std::fs::write(&path, format!("a\n{}\nb\n", "y".repeat(1000))).expect("write");
        let got = read_all(&path, 1 << 20, 1, 16);
        assert_eq!(got.first().map(|l| l.1.clone()), Some(b"a".to_vec()));
        assert_eq!(got.last().map(|l| l.1.clone()), Some(b"b".to_vec()));
        assert_eq!(got.len(), 3);
        assert!(got[1].1.len() < 1000 && got[1].1.len() > 64);
    }

    #[test]
    fn missing_input_names_the_path() {
        let err = plan(&["/nonexistent/x.ndjson".into()], 10).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/x.ndjson"), "{err}");
    }
}
