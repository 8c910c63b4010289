//! The three read calls the source makes, with errors classified.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

use crate::client::{Failure, classify};
use crate::config::StartPosition;
use crate::shards::ShardInfo;

/// Where a shard iterator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum IteratorStart {
    /// The configured start position.
    Configured(StartPosition),
    /// The shard's first retained record.
    TrimHorizon,
    /// Right after this sequence number.
    After(String),
}

/// Lists all shards of `stream`, following `NextToken` pages.
pub(super) async fn list_shards(
    client: &Client,
    stream: &str,
    page_size: i32,
) -> Result<Vec<ShardInfo>, Failure> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    // AWS takes a continuation token without the stream name (and refuses
    // both); moto wants the stream name again. Try AWS's way first.
    let mut token_with_stream = false;
    loop {
        let mut req = client.list_shards().max_results(page_size);
        req = match &token {
            Some(t) if token_with_stream => req.next_token(t).stream_name(stream),
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let f = classify(&e);
                let refused = matches!(
                    f.code.as_deref(),
                    Some("InvalidToken" | "InvalidArgumentException")
                );
                if token.is_some() && !token_with_stream && refused {
                    token_with_stream = true;
                    continue;
                }
                return Err(f);
            }
        };
        shards.extend(out.shards().iter().map(|s| {
            ShardInfo {
                id: s.shard_id().to_owned(),
                parent: s.parent_shard_id().map(str::to_owned),
                adjacent_parent: s.adjacent_parent_shard_id().map(str::to_owned),
                ending_sequence: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .map(str::to_owned),
            }
        }));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(shards),
        }
    }
}

/// A shard iterator at `start`.
pub(super) async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    start: &IteratorStart,
) -> Result<Option<String>, Failure> {
    let req = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let req = match start {
        IteratorStart::Configured(StartPosition::TrimHorizon) | IteratorStart::TrimHorizon => {
            req.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        IteratorStart::Configured(StartPosition::Latest) => {
            req.shard_iterator_type(ShardIteratorType::Latest)
        }
        IteratorStart::Configured(StartPosition::AtTimestamp(ms)) => req
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(*ms)),
        IteratorStart::After(seq) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
    };
    let out = req.send().await.map_err(|e| classify(&e))?;
    Ok(out.shard_iterator().map(str::to_owned))
}

/// What one `GetRecords` returned.
#[derive(Debug)]
pub(super) struct Batch {
    /// `(sequence number, data)` in shard order.
    pub(super) records: Vec<(String, Vec<u8>)>,
    /// `None` once a closed shard has been read to its end.
    pub(super) next_iterator: Option<String>,
    pub(super) millis_behind: Option<i64>,
}

pub(super) async fn get_records(
    client: &Client,
    iterator: &str,
    limit: u32,
) -> Result<Batch, Failure> {
    let out = client
        .get_records()
        .shard_iterator(iterator)
        .limit(i32::try_from(limit).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let millis_behind = out.millis_behind_latest();
    let next_iterator = out.next_shard_iterator().map(str::to_owned);
    let records = out
        .records
        .into_iter()
        .map(|r| (r.sequence_number, r.data.into_inner()))
        .collect();
    Ok(Batch {
        records,
        next_iterator,
        millis_behind,
    })
}
