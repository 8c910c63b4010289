//! The bounded queue seen from outside: 503 when full, never accept and
//! drop, and the source's end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use iotflow_core::bridge::bridge;
use iotflow_core::source::{Chunk, Source as _};
use iotflow_server::IngestConfig;

use crate::common::{Drain, lines, open, reading, start};

/// Lines numbered from `*next`, `n` of them.
fn numbered(next: &AtomicU64, n: u64) -> Vec<String> {
    let first = next.fetch_add(n, Ordering::Relaxed);
    (first..first + n).map(|i| reading("d-1", i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_every_accepted_reading_comes_out_once() -> anyhow::Result<()>
{
    let mut h = start(IngestConfig {
        retry_after_secs: 2,
        ..open(10)
    })
    .await?;
    let seq = Arc::new(AtomicU64::new(0));
    let mut accepted = 0usize;

    // No consumer yet: three requests of 3 fit, the fourth does not.
    for _ in 0..3 {
        h.post_lines(&numbered(&seq, 3)).await?.accepted(3)?;
        accepted += 3;
    }
    let r = h.post_lines(&numbered(&seq, 3)).await?;
    r.expect(503, Some("queue_full"))?;
    assert_eq!(r.header("retry-after"), "2");
    // One more reading still fits; then nothing does.
    h.post_lines(&numbered(&seq, 1)).await?.accepted(1)?;
    accepted += 1;
    for n in [1, 4] {
        h.post_lines(&numbered(&seq, n))
            .await?
            .expect(503, Some("queue_full"))?;
    }
    // Larger than the whole queue: never fits, so not 503 but 413.
    h.post_lines(&numbered(&seq, 11))
        .await?
        .expect(413, Some("payload_too_large"))?;
    assert_eq!(h.queue.depth(), 10);

    // Now a consumer, and concurrent clients racing for the room.
    let drain = h.drain()?;
    let h = Arc::new(h);
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (h, seq) = (Arc::clone(&h), Arc::clone(&seq));
            tokio::spawn(async move {
                let (mut ok, mut full) = (0usize, 0usize);
                for i in 0..40u64 {
                    let n = 1 + (c + i) % 7;
                    let r = h.post_lines(&numbered(&seq, n)).await?;
                    match r.status {
                        202 => {
                            r.accepted(n as usize)?;
                            ok += n as usize;
                        }
                        _ => {
                            r.expect(503, Some("queue_full"))?;
                            anyhow::ensure!(r.header("retry-after") == "2");
                            full += 1;
                        }
                    }
                }
                anyhow::Ok((ok, full))
            })
        })
        .collect();
    let mut refused = 3;
    for c in clients {
        let (ok, full) = c.await??;
        accepted += ok;
        refused += full;
    }
    let mut h = Arc::into_inner(h).ok_or_else(|| anyhow::anyhow!("harness still shared"))?;
    h.stop().await?;
    let got = lines(&drain.finish().await?)?;

    // Exactly the readings of 202 requests: none lost, none doubled.
    assert_eq!(got.len(), accepted);
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "a reading came out twice");
    let stats = h.queue.stats();
    assert_eq!(stats.accepted_readings as usize, accepted);
    assert_eq!(stats.delivered_readings as usize, accepted);
    assert_eq!(stats.rejected_full_requests as usize, refused);
    assert_eq!(stats.lost_readings, 0);
    Ok(())
}

#[tokio::test]
async fn closing_the_queue_ends_the_source_after_what_was_queued() -> anyhow::Result<()> {
    let mut h = start(open(100)).await?;
    h.post_lines(&[reading("d-1", 1), reading("d-1", 2)])
        .await?
        .accepted(2)?;
    let drain = h.drain()?;
    h.queue.close();
    let chunks = drain.finish().await?;
    assert_eq!(lines(&chunks)?, vec![reading("d-1", 1), reading("d-1", 2)]);
    // A closed queue takes nothing more, and says so.
    let r = h.post_lines(&[reading("d-1", 3)]).await?;
    r.expect(503, Some("unavailable"))?;
    assert!(!r.header("retry-after").is_empty());
    assert_eq!(h.queue.stats().rejected_closed_requests, 1);
    h.stop().await?;
    Ok(())
}

#[tokio::test]
async fn when_the_job_stops_ingest_refuses_instead_of_accepting_into_the_void() -> anyhow::Result<()>
{
    let mut h = start(open(100)).await?;
    let mut source = h.source.take().expect("source");
    let (tx, rx) = bridge::<iotflow_core::Result<Chunk>>(1, None);
    // The job is gone before the source runs: it stops at once.
    drop(rx);
    h.post_lines(&[reading("d-1", 1)]).await?.accepted(1)?;
    tokio::task::spawn_blocking(move || source.run(&tx)).await??;
    let r = h.post_lines(&[reading("d-1", 2)]).await?;
    r.expect(503, Some("unavailable"))?;
    let stats = h.queue.stats();
    // The one reading accepted before the stop is counted, not hidden.
    assert_eq!((stats.lost_readings, stats.closed), (1, true));
    h.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_source_dropped_unrun_closes_its_queue() -> anyhow::Result<()> {
    let mut h = start(open(100)).await?;
    // The source is dropped unrun: its queue must not keep accepting.
    drop(h.source.take());
    h.post_lines(&[reading("d-1", 1)])
        .await?
        .expect(503, Some("unavailable"))?;
    h.stop().await?;
    // And a drain of a fresh, closed queue ends at once with just the announcement.
    let (queue, source) = iotflow_server::IngestQueue::new(5);
    queue.close();
    let chunks = Drain::start(source).finish().await?;
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].data.is_empty());
    Ok(())
}
