//! The backend's building blocks against a real endpoint (moto in CI):
//! transaction outcomes, and reads racing a half-applied transaction.

use std::sync::Arc;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use iotflow_core::clock::ManualClock;

use super::tx::{MAX_ITEMS, Outcome};
use super::{Attrs, DynamoStore, Fail, Op, keys};
use crate::error::Error;
use crate::model::Device;

/// A store in a fresh table of the test endpoint, if one is configured.
async fn store(case: &str) -> Option<(DynamoStore, aws_sdk_dynamodb::Client, String)> {
    let Ok(endpoint) = std::env::var("IOTFLOW_TEST_DYNAMODB_URL") else {
        println!("{case}: DynamoDB skipped: set IOTFLOW_TEST_DYNAMODB_URL");
        return None;
    };
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("iotflow_u_{case}_{}", std::process::id());
    let store = DynamoStore::open(
        &format!("dynamodb://{table}"),
        Some(client.clone()),
        Arc::new(ManualClock::default()),
    )
    .await
    .expect("the test endpoint answers");
    Some((store, client, table))
}

fn tenant_must_exist() -> Op {
    Op::check(keys::tenant("nobody")).when(
        "attribute_exists(pk)",
        Fail::Error(Error::not_found("tenant", "nobody")),
    )
}

fn device(id: &str) -> Device {
    crate::registry::prepare_device(crate::NewDevice::new("t", id, "k").with_id(id), 0)
        .expect("a valid device")
}

#[tokio::test]
async fn a_moved_counter_means_retry_and_wins_over_other_failures() -> anyhow::Result<()> {
    let Some((db, client, table)) = store("commit").await else {
        return Ok(());
    };
    let result = async {
        let d = device("d-1");
        // Fresh counter: commits, and the counter moves to 1.
        let mut tx = db.tx();
        tx.log_changes(0, &[&d], 5)?;
        assert_eq!(db.commit(tx).await?, Outcome::Committed);
        assert_eq!(db.last_seq().await?, 1);

        // Written as if the counter still held 0: another writer won.
        let mut stale = db.tx();
        stale.log_changes(0, &[&d], 6)?;
        assert_eq!(db.commit(stale).await?, Outcome::Retry);

        // A failed condition marked as an error is that error...
        let mut refused = db.tx();
        refused.push(tenant_must_exist());
        refused.log_changes(1, &[&d], 7)?;
        let err = db.commit(refused).await;
        assert!(
            matches!(err, Err(Error::NotFound { what: "tenant", .. })),
            "{err:?}"
        );
        // ...unless what was read is stale too: then read again first.
        let mut both = db.tx();
        both.push(tenant_must_exist());
        both.log_changes(0, &[&d], 7)?;
        assert_eq!(db.commit(both).await?, Outcome::Retry);

        // Nothing of the refused transactions was written.
        assert_eq!(db.last_seq().await?, 1);
        let log = db.query(keys::CHANGES, None, None).await?;
        assert_eq!(log.len(), 1);
        assert_eq!(Attrs::new(&log[0], "change").n("changed_at")?, 5);

        // More than one transaction holds is refused before sending.
        let mut big = db.tx();
        for i in 0..=MAX_ITEMS {
            big.push(Op::put(keys::key("p", i.to_string())));
        }
        let err = db.commit(big).await;
        assert!(
            matches!(
                err,
                Err(Error::DynamoDb {
                    transient: false,
                    ..
                })
            ),
            "{err:?}"
        );
        anyhow::Ok(())
    }
    .await;
    client.delete_table().table_name(&table).send().await?;
    result
}

/// What a query sees while a transaction is half applied: a change item
/// without the one before it, or a counter and change item ahead of
/// their device item.
#[tokio::test]
async fn readers_never_skip_a_change_that_is_still_being_applied() -> anyhow::Result<()> {
    let Some((db, client, table)) = store("half_applied").await else {
        return Ok(());
    };
    let result = async {
        let d = device("d-1");
        let mut tx = db.tx();
        for op in crate::dynamodb::devices::device_ops(&d, 0, 1, Fail::Retry)? {
            tx.push(op);
        }
        tx.log_changes(0, &[&d], 5)?;
        assert_eq!(db.commit(tx).await?, Outcome::Committed);

        // Changes 2 (d-1's firmware "9") and 3 (a new device) are in the
        // log and the counter, but in neither device item yet (as if
        // still being applied); for a while change 2 is not visible.
        let mut newer = d.clone();
        newer.firmware_version = Some("9".into());
        let ghost = device("ghost");
        let mut half = db.tx();
        half.log_changes(1, &[&newer, &ghost], 6)?;
        assert_eq!(db.commit(half).await?, Outcome::Committed);
        let change = |seq: u64| keys::key(keys::CHANGES, keys::change_sk(seq));
        let two = db.get(change(2)).await?.expect("change 2");
        db.client
            .delete_item()
            .table_name(&db.table)
            .set_key(Some(change(2)))
            .send()
            .await?;
        let seqs = |rows: Vec<crate::changes::ChangeRow>| -> Vec<i64> {
            rows.iter().map(|r| r.seq).collect()
        };
        // 3 without 2: the reader stops before the gap...
        assert_eq!(seqs(db.changes_since(0, 10).await?), [1]);
        assert_eq!(seqs(db.changes_since(1, 10).await?), Vec::<i64>::new());
        // ...and goes on once 2 is there.
        db.client
            .put_item()
            .table_name(&db.table)
            .set_item(Some(two))
            .send()
            .await?;
        assert_eq!(seqs(db.changes_since(0, 10).await?), [1, 2, 3]);
        // The snapshot as of 3 has both changes, though the device items
        // do not show them.
        let snap = db.snapshot(3).await?;
        let got: Vec<(&str, Option<&str>)> = snap
            .iter()
            .map(|i| (i.device.as_str(), i.firmware.as_deref()))
            .collect();
        assert_eq!(got, [("d-1", Some("9")), ("ghost", None)]);
        // A pruned gap is no gap.
        db.mark_pruned(2).await?;
        db.batch_delete(vec![change(1), change(2)]).await?;
        assert_eq!(seqs(db.changes_since(0, 10).await?), [3]);
        anyhow::Ok(())
    }
    .await;
    client.delete_table().table_name(&table).send().await?;
    result
}
