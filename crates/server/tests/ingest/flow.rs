//! Readings in, chunks out: the shape of what the pipeline receives.

use iotflow_core::codec::{Decoder as _, JsonDecoder};
use iotflow_core::source::{Position, Resume};
use iotflow_server::INGEST_PARTITION;
use serde_json::json;

use crate::common::{MAX_BODY, lines, open, reading, start};

#[tokio::test]
async fn an_accepted_reading_arrives_exactly_in_the_sources_chunks() -> anyhow::Result<()> {
    let mut h = start(open(100)).await?;
    let drain = h.drain()?;
    // Pretty-printed, as a person would type it: it arrives as one compact line.
    let pretty = "{\n  \"device_id\": \"d-00042\",\n  \"ts\": 1700000000123,\n  \
                  \"metric\": \"temp\",\n  \"value\": 21.37,\n  \"unit\": \"C\"\n}\n";
    h.post("/ingest", "application/json", pretty, &[])
        .await?
        .accepted(1)?;
    h.post_lines(&[reading("d-1", 1), reading("d-1", 2)])
        .await?
        .accepted(2)?;
    h.stop().await?;
    let chunks = drain.finish().await?;

    // The partition is announced before any data.
    let first = chunks.first().expect("an announcement");
    assert_eq!(
        (&*first.source, first.data.len(), &first.resume),
        (INGEST_PARTITION, 0, &None)
    );
    assert_eq!(
        lines(&chunks)?,
        vec![
            r#"{"device_id":"d-00042","ts":1700000000123,"metric":"temp","value":21.37,"unit":"C"}"#
                .to_owned(),
            reading("d-1", 1),
            reading("d-1", 2),
        ]
    );
    // Offsets count readings: each chunk starts where the last one's resume ended.
    let mut next = 0;
    for c in chunks.iter().skip(1) {
        assert_eq!((&*c.source, c.offset), (INGEST_PARTITION, next));
        let n = c.data.iter().filter(|&&b| b == b'\n').count() as u64;
        next += n;
        assert_eq!(
            c.resume,
            Some(Resume {
                partition: INGEST_PARTITION.into(),
                position: Position::Offset(next),
            })
        );
    }
    assert_eq!(next, 3);
    let stats = h.queue.stats();
    assert_eq!(
        (
            stats.accepted_readings,
            stats.delivered_readings,
            stats.position,
            stats.queue_depth,
            stats.lost_readings
        ),
        (3, 3, 3, 0, 0)
    );
    Ok(())
}

#[tokio::test]
async fn batches_come_as_json_arrays_or_ndjson() -> anyhow::Result<()> {
    let mut h = start(open(100)).await?;
    let drain = h.drain()?;
    let r = |i| reading("d-7", i);
    let array = format!("[\n  {},\n  {},\n  {}\n]", r(1), r(2), r(3));
    h.post("/ingest/batch", "application/json", array, &[])
        .await?
        .accepted(3)?;
    let ndjson = format!("{}\r\n\n{}\n", r(4), r(5));
    h.post("/ingest/batch", "application/x-ndjson", ndjson, &[])
        .await?
        .accepted(2)?;
    // NDJSON sent as application/json (what many clients do) is read as lines.
    let as_json = format!("{}\n{}", r(6), r(7));
    h.post(
        "/ingest/batch",
        "application/json; charset=utf-8",
        as_json,
        &[],
    )
    .await?
    .accepted(2)?;
    h.post("/ingest/batch", "application/json", "[]", &[])
        .await?
        .accepted(0)?;
    h.stop().await?;
    let got = lines(&drain.finish().await?)?;
    assert_eq!(got, (1..=7).map(r).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn bad_bodies_are_refused_whole_and_invalid_readings_are_forwarded() -> anyhow::Result<()> {
    let mut h = start(open(100)).await?;
    let drain = h.drain()?;
    let refused = [
        (
            "/ingest",
            "application/json",
            "{\"device_id\":\"d-1\",\"ts\":17".to_owned(),
        ),
        ("/ingest", "application/json", "[{}]".to_owned()),
        (
            "/ingest/batch",
            "application/json",
            format!("[{}, 5]", reading("d", 1)),
        ),
        (
            "/ingest/batch",
            "application/json",
            format!("[{}", reading("d", 1)),
        ),
        (
            "/ingest/batch",
            "application/x-ndjson",
            format!("{}\n{{\"value\":NaN}}", reading("d", 1)),
        ),
    ];
    for (path, content_type, body) in refused {
        h.post(path, content_type, body.clone(), &[])
            .await?
            .expect(400, Some("malformed_body"))
            .map_err(|e| e.context(body))?;
    }
    h.post("/ingest", "text/plain", reading("d", 1), &[])
        .await?
        .expect(415, Some("unsupported_media_type"))?;
    let huge = format!("[{}]", vec![reading("d", 1); MAX_BODY / 60].join(","));
    assert!(huge.len() > MAX_BODY);
    h.post("/ingest/batch", "application/json", huge, &[])
        .await?
        .expect(413, Some("payload_too_large"))?;

    // Objects the pipeline will refuse travel on, each with its reason to come.
    let invalid = [
        (
            r#"{"device_id":"d-1","metric":"temp","value":1.0}"#,
            "missing_field",
        ),
        (
            r#"{"device_id":"d-1","ts":1,"metric":"temp","value":1e999}"#,
            "non_finite",
        ),
        (
            r#"{"device_id":"d-1","ts":1,"metric":"temp","value":"NaN"}"#,
            "nan_string",
        ),
        (
            r#"{"device_id":"d-1","ts":1,"metric":"wind","value":3}"#,
            "unknown_metric",
        ),
    ];
    let mut body: Vec<String> = vec![reading("d-1", 1)];
    body.extend(invalid.iter().map(|(line, _)| (*line).to_owned()));
    h.post_lines(&body).await?.accepted(5)?;
    h.stop().await?;
    let got = lines(&drain.finish().await?)?;
    assert_eq!(got, body, "nothing of a refused body was queued");

    // What the pipeline's decoder and rules make of the forwarded lines.
    let rules = iotflow_core::validate::Rules::fleet_default();
    let mut decoder = JsonDecoder::new();
    for (line, reason) in invalid {
        let outcome = decoder
            .decode(line.as_bytes())
            .and_then(|r| rules.check(&r).map(|()| r));
        assert_eq!(outcome.err().map(|e| e.code()), Some(reason), "{line}");
    }
    let stats = h.queue.stats();
    assert_eq!(stats.bad_requests, 7);
    Ok(())
}

#[tokio::test]
async fn stats_show_the_queue_to_read_tokens() -> anyhow::Result<()> {
    let mut h = start(open(10)).await?;
    h.post_lines(&[reading("d-1", 1), reading("d-1", 2)])
        .await?
        .accepted(2)?;
    let r = h.get("/ingest/stats", crate::common::READ_TOKEN).await?;
    r.expect(200, None)?;
    assert_eq!(
        (
            &r.body["queue_depth"],
            &r.body["queue_capacity"],
            &r.body["accepted_requests"]
        ),
        (&json!(2), &json!(10), &json!(1))
    );
    h.get("/ingest/stats", "not-a-token-of-this-server")
        .await?
        .expect(401, Some("unauthorized"))?;
    h.stop().await?;
    Ok(())
}
