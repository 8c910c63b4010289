//! Helpers for tests against a Kinesis-compatible server (moto,
//! kinesalite), used by this crate's tests and by end-to-end tests of other
//! crates.
//!
//! Every function is blocking (it runs its own small runtime) and takes the
//! server's URL, e.g. `http://127.0.0.1:5000`; credentials are the fixed
//! test ones ([`test_credentials`]), region `us-east-1`.
//!
//! ```no_run
//! use iotflow_kinesis::testing;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "http://127.0.0.1:5000";
//! let stream = testing::unique_name("doc");
//! testing::create_stream(url, &stream, 2)?;
//! testing::put_lines(url, &stream, &[r#"{"device_id":"d1","ts":1,"metric":"temp","value":1.0}"#])?;
//! assert_eq!(testing::read_all(url, &stream)?.len(), 1);
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::StreamStatus;
use iotflow_core::bridge::bridge;
use iotflow_core::sink::Sink;
use iotflow_core::source::{Chunk, Source};

use crate::client::{self, Connect};
use crate::{
    Error, KinesisCredentials, KinesisRawSink, KinesisSinkConfig, KinesisSource,
    KinesisSourceConfig, RawRecord,
};

/// The credentials the test servers accept (`test` / `test`).
pub fn test_credentials() -> KinesisCredentials {
    KinesisCredentials::new("test", "test")
}

/// A stream name unique in this process and run: `{prefix}-{pid}-{n}-{ms}`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        ms % 1_000_000_000
    )
}

/// A bounded source configuration for `stream` on the server at `url`:
/// test credentials, `stop_at_end`, short poll, list and backoff intervals.
pub fn source_config(url: &str, stream: &str) -> KinesisSourceConfig {
    KinesisSourceConfig {
        endpoint_url: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        credentials: Some(test_credentials()),
        poll_interval_ms: 50,
        list_interval_ms: 250,
        backoff_base_ms: 20,
        backoff_max_ms: 500,
        request_timeout_ms: 10_000,
        stop_at_end: true,
        ..KinesisSourceConfig::new(stream)
    }
}

/// A sink configuration for `stream` on the server at `url`, with test
/// credentials and short backoffs.
pub fn sink_config(url: &str, stream: &str) -> KinesisSinkConfig {
    KinesisSinkConfig {
        endpoint_url: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        credentials: Some(test_credentials()),
        backoff_base_ms: 20,
        backoff_max_ms: 500,
        request_timeout_ms: 10_000,
        ..KinesisSinkConfig::new(stream)
    }
}

/// Runs `f` with a client for `url` on a fresh runtime.
fn with_client<T, F>(url: &str, f: impl FnOnce(Client) -> F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let rt = client::runtime()?;
    rt.block_on(async {
        let creds = test_credentials();
        let kinesis = client::build_client(&Connect {
            endpoint_url: Some(url),
            region: Some("us-east-1"),
            credentials: Some(&creds),
            request_timeout: Duration::from_secs(10),
        })
        .await?;
        f(kinesis).await
    })
}

fn api(op: &'static str, stream: &str, e: impl std::fmt::Display) -> Error {
    Error::Api {
        op,
        stream: stream.to_owned(),
        message: e.to_string(),
    }
}

async fn wait_active(kinesis: &Client, stream: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| {
                api(
                    "DescribeStreamSummary",
                    stream,
                    client::classify(&e).message,
                )
            })?;
        let active = out
            .stream_description_summary()
            .is_some_and(|s| *s.stream_status() == StreamStatus::Active);
        if active {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(api(
                "DescribeStreamSummary",
                stream,
                "not ACTIVE after 30 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Creates `stream` with `shards` shards and waits until it is active.
pub fn create_stream(url: &str, stream: &str, shards: u32) -> Result<(), Error> {
    with_client(url, |k| async move {
        k.create_stream()
            .stream_name(stream)
            .shard_count(i32::try_from(shards).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| api("CreateStream", stream, client::classify(&e).message))?;
        wait_active(&k, stream).await
    })
}

/// Deletes `stream` (tests clean up after themselves).
pub fn delete_stream(url: &str, stream: &str) -> Result<(), Error> {
    with_client(url, |k| async move {
        k.delete_stream()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| api("DeleteStream", stream, client::classify(&e).message))?;
        Ok(())
    })
}

/// Puts `lines` (one record each) with the raw sink, partition key = the
/// JSON `device_id` or `device` field (round-robin for lines without one).
pub fn put_lines<S: AsRef<str>>(url: &str, stream: &str, lines: &[S]) -> Result<(), Error> {
    let records: Vec<RawRecord> = lines
        .iter()
        .map(|l| RawRecord {
            partition_key: None,
            data: l.as_ref().as_bytes().to_vec(),
        })
        .collect();
    put_records(url, stream, &records)
}

/// Puts `records` with the raw sink (keys as given, or the `device` rule).
pub fn put_records(url: &str, stream: &str, records: &[RawRecord]) -> Result<(), Error> {
    let mut sink =
        KinesisRawSink::new(sink_config(url, stream)).map_err(|e| api("PutRecords", stream, e))?;
    Sink::<RawRecord>::write(&mut sink, records).map_err(|e| api("PutRecords", stream, e))?;
    Sink::<RawRecord>::close(&mut sink).map_err(|e| api("PutRecords", stream, e))
}

/// A shard as `ListShards` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSummary {
    /// Its id.
    pub id: String,
    /// The shard it was split from, or the first of the two it was merged
    /// from.
    pub parent: Option<String>,
    /// The second shard of a merge.
    pub adjacent_parent: Option<String>,
    /// Whether it still takes records (not split or merged away).
    pub open: bool,
    /// First hash key it covers (decimal).
    pub starting_hash_key: String,
    /// Last hash key it covers (decimal).
    pub ending_hash_key: String,
}

/// All shards of `stream`, by id.
pub fn list_shards(url: &str, stream: &str) -> Result<Vec<ShardSummary>, Error> {
    with_client(url, |k| async move { list(&k, stream).await })
}

async fn list(k: &Client, stream: &str) -> Result<Vec<ShardSummary>, Error> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = k.list_shards();
        let req = match token.take() {
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let out = req
            .send()
            .await
            .map_err(|e| api("ListShards", stream, client::classify(&e).message))?;
        for s in out.shards() {
            let range = s.hash_key_range();
            shards.push(ShardSummary {
                id: s.shard_id().to_owned(),
                parent: s.parent_shard_id().map(str::to_owned),
                adjacent_parent: s.adjacent_parent_shard_id().map(str::to_owned),
                open: s
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none()),
                starting_hash_key: range
                    .map(|r| r.starting_hash_key().to_owned())
                    .unwrap_or_default(),
                ending_hash_key: range
                    .map(|r| r.ending_hash_key().to_owned())
                    .unwrap_or_default(),
            });
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    shards.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(shards)
}

/// Splits open shard `shard` of `stream` at the middle of its hash range,
/// waits until the stream is active again and returns the two children.
pub fn split_shard(url: &str, stream: &str, shard: &str) -> Result<Vec<String>, Error> {
    with_client(url, |k| async move {
        let before = list(&k, stream).await?;
        let s = before
            .iter()
            .find(|s| s.id == shard)
            .ok_or_else(|| api("SplitShard", stream, format!("no shard {shard}")))?;
        let mid = mid_hash_key(&s.starting_hash_key, &s.ending_hash_key)
            .ok_or_else(|| api("SplitShard", stream, "shard's hash range is not decimal"))?;
        k.split_shard()
            .stream_name(stream)
            .shard_to_split(shard)
            .new_starting_hash_key(mid)
            .send()
            .await
            .map_err(|e| api("SplitShard", stream, client::classify(&e).message))?;
        wait_active(&k, stream).await?;
        let after = list(&k, stream).await?;
        Ok(after
            .into_iter()
            .filter(|c| c.parent.as_deref() == Some(shard) && c.adjacent_parent.is_none())
            .map(|c| c.id)
            .collect())
    })
}

/// Merges open shards `shard` and `adjacent` (adjacent hash ranges) of
/// `stream`, waits until active again and returns the child.
pub fn merge_shards(url: &str, stream: &str, shard: &str, adjacent: &str) -> Result<String, Error> {
    with_client(url, |k| async move {
        k.merge_shards()
            .stream_name(stream)
            .shard_to_merge(shard)
            .adjacent_shard_to_merge(adjacent)
            .send()
            .await
            .map_err(|e| api("MergeShards", stream, client::classify(&e).message))?;
        wait_active(&k, stream).await?;
        list(&k, stream)
            .await?
            .into_iter()
            .find(|c| {
                c.parent.as_deref() == Some(shard) && c.adjacent_parent.as_deref() == Some(adjacent)
            })
            .map(|c| c.id)
            .ok_or_else(|| api("MergeShards", stream, "no merged child listed"))
    })
}

/// The middle of a 128-bit hash range given in decimal (`u128` holds it).
fn mid_hash_key(start: &str, end: &str) -> Option<String> {
    let (a, b) = (start.parse::<u128>().ok()?, end.parse::<u128>().ok()?);
    Some((a + (b - a) / 2 + 1).to_string())
}

/// Runs `source` on a thread until it returns (or, with `limit`, until at
/// least `limit` records arrived: then the output is closed, as when a job
/// stops) and returns every chunk it sent, in order.
pub fn collect(
    mut source: KinesisSource,
    limit: Option<usize>,
) -> Result<Vec<Chunk>, iotflow_core::Error> {
    let (tx, mut rx) = bridge(16, None);
    let runner = std::thread::Builder::new()
        .name(source.name())
        .spawn(move || source.run(&tx))
        .map_err(|e| iotflow_core::Error::io("kinesis source thread", e))?;
    let mut chunks = Vec::new();
    let mut records = 0;
    let mut failed = None;
    while let Some(item) = rx.recv_blocking() {
        match item {
            Ok(chunk) => {
                records += lines(std::slice::from_ref(&chunk)).len();
                chunks.push(chunk);
                if limit.is_some_and(|l| records >= l) {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let ran = runner
        .join()
        .map_err(|_| iotflow_core::Error::Disconnected("kinesis source thread panicked"))?;
    match failed {
        Some(e) => Err(e),
        None => ran.map(|()| chunks),
    }
}

/// The records of `chunks` as lines, in order.
pub fn lines(chunks: &[Chunk]) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|c| c.data.split(|&b| b == b'\n').filter(|l| !l.is_empty()))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// Every record of `stream` now, read by one bounded source.
pub fn read_all(url: &str, stream: &str) -> Result<Vec<String>, Error> {
    let source = KinesisSource::new(source_config(url, stream), 0, 1, Vec::new())
        .map_err(|e| api("GetRecords", stream, e))?;
    let chunks = collect(source, None).map_err(|e| api("GetRecords", stream, e))?;
    Ok(lines(&chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_range_middle() {
        let max = u128::MAX.to_string();
        assert_eq!(
            mid_hash_key("0", &max).as_deref(),
            Some("170141183460469231731687303715884105728")
        );
        assert_eq!(mid_hash_key("10", "20").as_deref(), Some("16"));
        assert!(mid_hash_key("x", "1").is_none());
    }
}
