use std::time::Duration;

use iotflow_devices::{
    DeviceFilter, DeviceStatus, Error, FeedConfig, NewDevice, device_info, registry_updates,
};
use iotflow_types::{DeviceUpdate, Timestamp};
use serde_json::json;
use timely::dataflow::operators::Inspect;

use crate::common::{Backend, T0_MS, each_backend};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn every_change_is_logged_with_the_description_after_it() -> anyhow::Result<()> {
    each_backend("change_log", |ctx| async move {
        let reg = ctx.registry;
        assert_eq!(reg.last_change().await?, 0);
        reg.create_tenant("acme", "Acme").await?;
        reg.register_device(NewDevice::new("acme", "Pump", "pump").with_id("p-1"))
            .await?;
        ctx.clock.advance(SEC);
        reg.set_firmware_version("p-1", "2.0.0").await?;
        let group = reg.create_group("acme", "north").await?;
        ctx.clock.advance(SEC);
        reg.add_to_group(&group.id, "p-1").await?;
        // Adding again changes nothing and logs nothing.
        reg.add_to_group(&group.id, "p-1").await?;
        reg.set_metadata("p-1", &json!({"site": "n", "floor": 2}))
            .await?;
        ctx.clock.advance(SEC);
        reg.set_status("p-1", DeviceStatus::Suspended).await?;
        assert!(reg.remove_from_group(&group.id, "p-1").await?);
        assert!(!reg.remove_from_group(&group.id, "p-1").await?);
        let csv = "id,name,type,tenant_id,groups\nc-1,C1,thermo,acme,north;south\n";
        reg.provision_csv(csv.as_bytes(), false).await?;
        // A failed change logs nothing.
        assert!(matches!(
            reg.set_firmware_version("nope", "1").await,
            Err(Error::NotFound { .. })
        ));

        let log = reg.changes_since(0, 100).await?;
        let seqs: Vec<u64> = log.iter().map(|u| u.seq).collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
        assert_eq!(reg.last_change().await?, 7);
        let t = |s: u64| (T0_MS as u64) + s * 1000;
        let ats: Vec<Timestamp> = log.iter().map(|u| u.at).collect();
        assert_eq!(ats, [t(0), t(1), t(2), t(2), t(3), t(3), t(3)]);
        let info = |i: usize| log[i].info.as_deref().expect("an info");
        assert_eq!(info(0).firmware, None);
        assert_eq!(info(1).firmware.as_deref(), Some("2.0.0"));
        assert_eq!(info(2).groups, [group.id.as_str()]);
        assert_eq!(info(3).meta("site"), Some("n"));
        assert_eq!(info(3).meta("floor"), Some("2"));
        assert_eq!(info(4).status, DeviceStatus::Suspended);
        assert!(info(5).groups.is_empty());
        assert_eq!(info(6).device.as_str(), "c-1");
        assert_eq!(info(6).groups.len(), 2);
        // The last logged description of each device is its current one.
        assert_eq!(*info(5), device_info(&reg.device("p-1").await?));
        assert_eq!(*info(6), device_info(&reg.device("c-1").await?));

        // A tail, and a limit.
        let tail = reg.changes_since(5, 1).await?;
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].seq, 6);

        // The snapshot is the current state as of the last change.
        let snap = reg.snapshot().await?;
        assert_eq!(snap.seq, 7);
        let ids: Vec<&str> = snap.devices.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(ids, ["c-1", "p-1"]);
        assert_eq!(*snap.devices[1], device_info(&reg.device("p-1").await?));

        assert_eq!(reg.prune_changes(T0_MS + 2000).await?, 2);
        assert_eq!(reg.changes_since(0, 100).await?.len(), 5);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn list_devices_filters_and_pages() -> anyhow::Result<()> {
    each_backend("list_devices", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("a", "A").await?;
        reg.create_tenant("b", "B").await?;
        for i in 0..25 {
            let tenant = if i % 5 == 0 { "b" } else { "a" };
            let kind = if i % 2 == 0 { "pump" } else { "thermo" };
            reg.register_device(NewDevice::new(tenant, "d", kind).with_id(format!("d-{i:02}")))
                .await?;
        }
        let g = reg.create_group("a", "g").await?;
        for id in ["d-01", "d-02", "d-03"] {
            reg.add_to_group(&g.id, id).await?;
        }
        reg.set_status("d-02", DeviceStatus::Suspended).await?;

        // Every device, in pages of 10, by id.
        let mut seen = Vec::new();
        let mut filter = DeviceFilter::default().limit(10);
        loop {
            let page = reg.list_devices(&filter).await?;
            seen.extend(page.devices.iter().map(|d| d.id.clone()));
            match page.next {
                Some(next) => filter = filter.after(next),
                None => break,
            }
        }
        let all: Vec<String> = (0..25).map(|i| format!("d-{i:02}")).collect();
        assert_eq!(seen, all);

        let ids = |p: iotflow_devices::DevicePage| -> Vec<String> {
            p.devices.into_iter().map(|d| d.id).collect()
        };
        let b = reg
            .list_devices(&DeviceFilter::default().tenant("b"))
            .await?;
        assert_eq!(ids(b), ["d-00", "d-05", "d-10", "d-15", "d-20"]);
        let grouped = reg
            .list_devices(&DeviceFilter::default().group(g.id.clone()))
            .await?;
        assert!(grouped.devices.iter().all(|d| d.groups == [g.id.clone()]));
        assert_eq!(ids(grouped), ["d-01", "d-02", "d-03"]);
        let active_pumps_in_g = reg
            .list_devices(
                &DeviceFilter::default()
                    .group(g.id.clone())
                    .status(DeviceStatus::Active)
                    .device_type("thermo"),
            )
            .await?;
        assert_eq!(ids(active_pumps_in_g), ["d-01", "d-03"]);
        // Exactly a page: no next cursor.
        let five = reg
            .list_devices(&DeviceFilter::default().tenant("b").limit(5))
            .await?;
        assert_eq!(five.next, None);
        for bad in [0, 1001] {
            assert!(matches!(
                reg.list_devices(&DeviceFilter::default().limit(bad)).await,
                Err(Error::Invalid { field: "limit", .. })
            ));
        }
        // Values are bound, never spliced into SQL.
        let none = reg
            .list_devices(&DeviceFilter::default().tenant("a' OR '1'='1"))
            .await?;
        assert!(none.devices.is_empty());
        Ok(())
    })
    .await
}

/// The feed emits the snapshot at time 0, then each change at its change
/// time, with the frontier following the registry's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_follows_the_change_log_in_event_time() -> anyhow::Result<()> {
    each_backend("feed", |ctx| async move {
        let reg = ctx.registry.clone();
        reg.create_tenant("acme", "Acme").await?;
        reg.register_device(NewDevice::new("acme", "One", "pump").with_id("d-1"))
            .await?;

        let config = FeedConfig {
            follow: true,
            poll: Duration::from_millis(10),
            grace: Duration::ZERO,
            ..FeedConfig::default()
        };
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let feed_reg = reg.clone();
        let worker = std::thread::spawn(move || {
            timely::execute_directly(move |worker| {
                worker.dataflow::<Timestamp, _, _>(|scope| {
                    let (updates, handle) = registry_updates(scope, "registry", feed_reg, config);
                    updates.inspect_core(move |event| {
                        if let Ok((stamp, batch)) = event {
                            for u in batch {
                                let _ = out_tx.send((*stamp.expect_singleton(), u.clone()));
                            }
                        }
                    });
                    handle_tx
                        .send(handle)
                        .expect("the test waits for the handle");
                });
            });
        });
        let handle = handle_rx.recv()?;
        // Wait for the snapshot to be read before changing anything.
        while handle.last_seq() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ctx.clock.advance(5 * SEC);
        reg.register_device(NewDevice::new("acme", "Two", "pump").with_id("d-2"))
            .await?;
        reg.set_firmware_version("d-1", "1.1").await?;
        ctx.clock.advance(5 * SEC);
        reg.set_status("d-2", DeviceStatus::Suspended).await?;
        while handle.last_seq() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.stop();
        tokio::task::spawn_blocking(move || worker.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the timely worker panicked"))?;

        let got: Vec<(Timestamp, DeviceUpdate)> = out_rx.try_iter().collect();
        let flat: Vec<(Timestamp, u64, &str, Option<&str>, DeviceStatus)> = got
            .iter()
            .map(|(t, u)| {
                assert_eq!(*t, u.at, "emitted at its own time");
                let info = u.info.as_deref().expect("no removals here");
                (
                    u.at,
                    u.seq,
                    u.device.as_str(),
                    info.firmware.as_deref(),
                    info.status,
                )
            })
            .collect();
        let t0 = T0_MS as u64;
        assert_eq!(
            flat,
            [
                (0, 1, "d-1", None, DeviceStatus::Active),
                (t0 + 5000, 2, "d-2", None, DeviceStatus::Active),
                (t0 + 5000, 3, "d-1", Some("1.1"), DeviceStatus::Active),
                (t0 + 10_000, 4, "d-2", None, DeviceStatus::Suspended),
            ]
        );
        assert_eq!(handle.late_changes(), 0);
        Ok(())
    })
    .await
}

/// Writers racing on the same devices: every change gets the next number,
/// none is lost, and each device's last logged description is its current
/// one (no change was described from a stale read).
///
/// On SQLite too: write transactions begin with `BEGIN IMMEDIATE`, so a
/// writer waits for the file instead of failing with "database is locked".
/// Not on DynamoDB as the tests run it: moto checks and writes a transaction's items
/// one by one without a lock, so concurrent transactions are not isolated
/// there as they are on DynamoDB (the retry on a moved counter is tested in
/// `dynamodb::tx`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_are_numbered_without_gaps() -> anyhow::Result<()> {
    each_backend("concurrent_changes", |ctx| async move {
        if matches!(ctx.backend, Backend::DynamoDb(_)) {
            return Ok(());
        }
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;
        for i in 0..4 {
            reg.register_device(NewDevice::new("acme", "d", "t").with_id(format!("d-{i}")))
                .await?;
        }
        let group = reg.create_group("acme", "g").await?;
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let reg = reg.clone();
                let group = group.id.clone();
                tokio::spawn(async move {
                    for k in 0..5 {
                        reg.set_firmware_version(&format!("d-{i}"), &format!("{i}.{k}"))
                            .await?;
                        reg.add_to_group(&group, &format!("d-{}", (i + k) % 4))
                            .await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for w in writers {
            w.await??;
        }
        // 4 registrations, 20 firmware changes, 4 devices joining once.
        let log = reg.changes_since(0, 1000).await?;
        let seqs: Vec<u64> = log.iter().map(|u| u.seq).collect();
        assert_eq!(seqs, (1..=28).collect::<Vec<_>>());
        assert_eq!(reg.last_change().await?, 28);
        for i in 0..4 {
            let id = format!("d-{i}");
            let last = log
                .iter()
                .rev()
                .find(|u| u.device.as_str() == id)
                .and_then(|u| u.info.clone())
                .ok_or_else(|| anyhow::anyhow!("no change of {id}"))?;
            let now = reg.device(&id).await?;
            assert_eq!(now.firmware_version, Some(format!("{i}.4")));
            assert_eq!(*last, device_info(&now));
        }
        Ok(())
    })
    .await
}
