use std::time::Duration;

use iotflow_devices::{DeviceStatus, Error, MasterKey, NewDevice, Registry};
use serde_json::json;

use crate::common::{T0_MS, each_backend};

#[tokio::test]
async fn tenants_and_devices_round_trip() -> anyhow::Result<()> {
    each_backend("devices_round_trip", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;
        assert!(matches!(
            reg.create_tenant("acme", "again").await,
            Err(Error::AlreadyExists { what: "tenant", .. })
        ));
        assert!(matches!(
            reg.register_device(NewDevice::new("nobody", "x", "y"))
                .await,
            Err(Error::NotFound { what: "tenant", .. })
        ));

        let given = reg
            .register_device(
                NewDevice::new("acme", "Pump 1", "pump")
                    .with_id("pump-1")
                    .with_firmware_version("1.2.0")
                    .with_metadata(json!({"site": "north", "floor": 2})),
            )
            .await?;
        let generated = reg
            .register_device(NewDevice::new("acme", "Sensor", "thermo"))
            .await?;
        assert_eq!(generated.id.len(), 32);
        assert!(matches!(
            reg.register_device(NewDevice::new("acme", "dup", "pump").with_id("pump-1"))
                .await,
            Err(Error::AlreadyExists { what: "device", .. })
        ));

        let stored = reg.device("pump-1").await?;
        assert_eq!(stored, given);
        assert_eq!(stored.status, DeviceStatus::Active);
        assert_eq!(stored.metadata["site"], "north");
        assert_eq!(stored.created_at, T0_MS);
        assert_eq!(stored.last_seen, None);

        ctx.clock.advance(Duration::from_secs(10));
        reg.set_status("pump-1", DeviceStatus::Suspended).await?;
        reg.set_firmware_version("pump-1", "1.3.0").await?;
        reg.set_metadata("pump-1", &json!({"site": "south"}))
            .await?;
        reg.touch("pump-1").await?;
        let changed = reg.device("pump-1").await?;
        assert_eq!(changed.status, DeviceStatus::Suspended);
        assert_eq!(changed.firmware_version.as_deref(), Some("1.3.0"));
        assert_eq!(changed.metadata, json!({"site": "south"}));
        assert_eq!(changed.updated_at, T0_MS + 10_000);
        assert_eq!(changed.last_seen, Some(T0_MS + 10_000));
        assert_eq!(changed.created_at, T0_MS);
        assert!(matches!(
            reg.set_metadata("pump-1", &json!([1, 2])).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            reg.touch("ghost").await,
            Err(Error::NotFound { what: "device", .. })
        ));

        let mut ids: Vec<_> = reg
            .devices_of_tenant("acme")
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        let mut expected = vec!["pump-1".to_owned(), generated.id];
        expected.sort();
        ids.sort();
        assert_eq!(ids, expected);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn groups_add_and_remove_devices_of_their_tenant() -> anyhow::Result<()> {
    each_backend("groups", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;
        reg.create_tenant("other", "Other").await?;
        reg.register_device(NewDevice::new("acme", "a", "t").with_id("a"))
            .await?;
        reg.register_device(NewDevice::new("acme", "b", "t").with_id("b"))
            .await?;
        reg.register_device(NewDevice::new("other", "c", "t").with_id("c"))
            .await?;
        let north = reg.create_group("acme", "north").await?;
        assert!(matches!(
            reg.create_group("acme", "north").await,
            Err(Error::AlreadyExists { what: "group", .. })
        ));
        // The same name in another tenant is another group.
        reg.create_group("other", "north").await?;

        reg.add_to_group(&north.id, "a").await?;
        reg.add_to_group(&north.id, "a").await?;
        reg.add_to_group(&north.id, "b").await?;
        assert_eq!(reg.group_members(&north.id).await?, ["a", "b"]);
        assert_eq!(reg.device("a").await?.groups, [north.id.as_str()]);
        let listed = reg.devices_of_tenant("acme").await?;
        assert!(listed.iter().all(|d| d.groups == [north.id.as_str()]));
        assert!(matches!(
            reg.add_to_group(&north.id, "c").await,
            Err(Error::Invalid { field: "group", .. })
        ));

        assert!(reg.remove_from_group(&north.id, "a").await?);
        assert!(!reg.remove_from_group(&north.id, "a").await?);
        assert_eq!(reg.group_members(&north.id).await?, ["b"]);
        assert!(reg.device("a").await?.groups.is_empty());
        assert_eq!(reg.groups_of_tenant("acme").await?, [north]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn provisioning_from_csv_is_all_or_nothing() -> anyhow::Result<()> {
    each_backend("provision_csv", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;

        let bad_json = "id,name,type,tenant_id,metadata\n\
                        ok-1,One,pump,acme,\n\
                        bad-2,Two,pump,acme,{not json\n";
        let err = reg.provision_csv(bad_json.as_bytes(), false).await;
        assert!(matches!(err, Err(Error::Csv { line: 3, .. })), "{err:?}");

        let unknown_tenant = "name,type,tenant_id\nOne,pump,acme\nTwo,pump,ghost\n";
        let err = reg.provision_csv(unknown_tenant.as_bytes(), false).await;
        assert!(matches!(err, Err(Error::Csv { line: 3, .. })), "{err:?}");
        assert!(
            reg.devices_of_tenant("acme").await?.is_empty(),
            "a failed file stores nothing"
        );

        let good = "id,name,type,tenant_id,firmware_version,metadata,groups\n\
                    pump-1,Pump 1,pump,acme,1.2.0,\"{\"\"site\"\":\"\"north\"\"}\",north;pumps\n\
                    ,Sensor,thermo,acme,,,north\n";
        let done = reg.provision_csv(good.as_bytes(), true).await?;
        assert_eq!(done.len(), 2);
        let pump = reg.device("pump-1").await?;
        assert_eq!(pump.firmware_version.as_deref(), Some("1.2.0"));
        assert_eq!(pump.metadata, serde_json::json!({"site": "north"}));
        assert_eq!(pump.groups.len(), 2);
        let groups = reg.groups_of_tenant("acme").await?;
        let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["north", "pumps"]);
        assert_eq!(reg.group_members(&groups[0].id).await?.len(), 2);
        for p in &done {
            let key = p
                .hmac_key
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no key"))?;
            assert_eq!(key.device_id, p.device.id);
            assert_eq!(reg.credentials(&p.device.id).await?.len(), 1);
        }

        let dup = "id,name,type,tenant_id\nnew-1,N,pump,acme\npump-1,again,pump,acme\n";
        let err = reg.provision_csv(dup.as_bytes(), false).await;
        assert!(matches!(err, Err(Error::Csv { line: 3, .. })), "{err:?}");
        assert!(matches!(
            reg.device("new-1").await,
            Err(Error::NotFound { .. })
        ));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn hmac_keys_are_sealed_at_rest_and_never_listed() -> anyhow::Result<()> {
    each_backend("sealed_keys", |ctx| async move {
        let reg = ctx.registry.clone();
        reg.create_tenant("acme", "Acme").await?;
        reg.register_device(NewDevice::new("acme", "a", "t").with_id("a"))
            .await?;
        let key = reg.issue_hmac_key("a").await?;
        assert!(
            !format!("{key:?}").contains(key.secret()),
            "Debug must not print the secret"
        );

        let material = ctx.stored_material(&key.key_id).await?;
        assert_ne!(material, key.secret());
        assert!(!material.contains(key.secret()));

        // The database with another master key authenticates nothing.
        let other = ctx.reopen(MasterKey::generate()?).await?;
        let auth = other.authenticator(Default::default());
        let sig = iotflow_devices::sign_message(key.secret(), "a", &key.key_id, T0_MS, "n", b"x")?;
        let res = auth
            .verify_hmac(&iotflow_devices::SignedMessage {
                device_id: "a",
                key_id: &key.key_id,
                timestamp_ms: T0_MS,
                nonce: "n",
                signature: &sig,
                body: b"x",
            })
            .await;
        assert!(matches!(res, Err(Error::MasterKey(_))), "{res:?}");
        other.close().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn embedded_default_creates_its_files_on_first_use() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let reg = Registry::open_in(&data).await?;
    reg.create_tenant("acme", "Acme").await?;
    reg.close().await;
    assert!(data.join("devices.db").is_file());
    assert!(data.join("registry.key").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("registry.key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key file is owner-only");
    }
    let again = Registry::open_in(&data).await?;
    assert_eq!(again.tenant("acme").await?.name, "Acme");
    again.close().await;
    Ok(())
}

/// 60 devices with two groups and a key each: one transaction on SQL,
/// several on DynamoDB. A bad last row still stores nothing, because the
/// file is checked whole before anything is written.
#[tokio::test]
async fn large_csv_files_are_checked_whole_then_stored_whole() -> anyhow::Result<()> {
    each_backend("provision_large", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;
        reg.register_device(NewDevice::new("acme", "x", "t").with_id("taken"))
            .await?;
        let rows = |n: usize| {
            let mut file = String::from("id,name,type,tenant_id,groups\n");
            for i in 0..n {
                file.push_str(&format!("d-{i:03},D{i},pump,acme,g{};all\n", i % 3));
            }
            file
        };
        for last in [
            "taken,T,pump,acme,\n",
            "x-1,X,pump,ghost,\n",
            "d-000,again,pump,acme,\n",
            "x-2,X,pump,acme,bad\u{7}group\n",
        ] {
            let file = rows(60) + last;
            let err = reg.provision_csv(file.as_bytes(), true).await;
            assert!(matches!(err, Err(Error::Csv { line: 62, .. })), "{err:?}");
            assert_eq!(reg.devices_of_tenant("acme").await?.len(), 1);
            assert!(reg.groups_of_tenant("acme").await?.is_empty());
        }
        assert_eq!(reg.last_change().await?, 1, "a failed file logs nothing");

        let done = reg.provision_csv(rows(60).as_bytes(), true).await?;
        assert_eq!(done.len(), 60);
        let groups = reg.groups_of_tenant("acme").await?;
        let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["all", "g0", "g1", "g2"]);
        assert_eq!(reg.group_members(&groups[0].id).await?.len(), 60);
        assert_eq!(reg.group_members(&groups[1].id).await?.len(), 20);
        for p in &done {
            assert_eq!(p.device.groups.len(), 2);
            assert_eq!(reg.device(&p.device.id).await?, p.device);
            assert_eq!(reg.credentials(&p.device.id).await?.len(), 1);
        }
        // One change per device, numbered in file order after the first.
        let log = reg.changes_since(1, 1000).await?;
        let logged: Vec<(u64, &str)> = log.iter().map(|u| (u.seq, u.device.as_str())).collect();
        let expected: Vec<(u64, String)> = (0..60).map(|i| (i + 2, format!("d-{i:03}"))).collect();
        let expected: Vec<(u64, &str)> = expected.iter().map(|(s, d)| (*s, d.as_str())).collect();
        assert_eq!(logged, expected);
        assert_eq!(reg.snapshot().await?.devices.len(), 61);
        Ok(())
    })
    .await
}
