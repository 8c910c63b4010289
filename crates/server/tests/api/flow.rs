use iotflow_devices::DeviceStatus;
use serde_json::json;

use crate::common::{T0_MS, each_backend, group, tenant};

#[tokio::test]
async fn a_device_is_registered_changed_and_read_back() -> anyhow::Result<()> {
    each_backend("flow", |ctx| async move {
        let api = &ctx.api;
        let t = tenant(api, "acme").await?;
        assert_eq!(
            t,
            json!({"id": "acme", "name": "Tenant acme", "created_at": T0_MS})
        );
        assert_eq!(api.get("/tenants/acme").await?.expect(200)?, t);
        let north = group(api, "acme", "north").await?;

        let d = api
            .post(
                "/devices",
                &json!({
                    "tenant_id": "acme", "name": "Pump 1", "type": "pump",
                    "firmware_version": "1.2.0", "metadata": {"site": "north"},
                    "groups": [north, north]
                }),
            )
            .await?
            .expect(201)?;
        let id = d["id"].as_str().unwrap_or_default().to_owned();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "generated id {id:?}"
        );
        assert_eq!(
            d,
            json!({
                "id": id, "tenant_id": "acme", "name": "Pump 1", "type": "pump",
                "status": "active", "firmware_version": "1.2.0",
                "metadata": {"site": "north"}, "groups": [north],
                "created_at": T0_MS, "updated_at": T0_MS, "last_seen": null
            })
        );
        assert_eq!(api.get(&format!("/devices/{id}")).await?.expect(200)?, d);

        // PATCH changes only the fields given.
        let p = api
            .patch(
                &format!("/devices/{id}"),
                &json!({"firmware_version": "1.3.0"}),
            )
            .await?
            .expect(200)?;
        assert_eq!(
            (&p["firmware_version"], &p["metadata"]),
            (&json!("1.3.0"), &json!({"site": "north"}))
        );
        let p = api
            .patch(
                &format!("/devices/{id}"),
                &json!({"metadata": {"site": "south", "floor": 2}}),
            )
            .await?
            .expect(200)?;
        assert_eq!(
            (&p["firmware_version"], &p["metadata"]),
            (&json!("1.3.0"), &json!({"site": "south", "floor": 2}))
        );

        let s = api
            .put(
                &format!("/devices/{id}/status"),
                Some(&json!({"status": "suspended"})),
            )
            .await?
            .expect(200)?;
        assert_eq!(s["status"], "suspended");

        // A device with a chosen id that needs escaping in a URL.
        let odd = "pump 2/ü";
        let made = api
            .post(
                "/devices",
                &json!({"tenant_id": "acme", "id": odd, "name": "Pump 2", "type": "pump"}),
            )
            .await?
            .expect(201)?;
        assert_eq!(made["id"], odd);
        let fetched = api.get("/devices/pump%202%2F%C3%BC").await?.expect(200)?;
        assert_eq!(fetched, made);

        let g = api.get(&format!("/groups/{north}")).await?.expect(200)?;
        assert_eq!(
            g,
            json!({"id": north, "tenant_id": "acme", "name": "north",
                   "created_at": T0_MS, "members": [id]})
        );

        // The registry holds what the API said.
        let stored = ctx.registry.device(&id).await?;
        assert_eq!(stored.status, DeviceStatus::Suspended);
        assert_eq!(stored.firmware_version.as_deref(), Some("1.3.0"));
        assert_eq!(stored.metadata, json!({"site": "south", "floor": 2}));
        assert_eq!(stored.groups, vec![north]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn health_answers_without_a_token() -> anyhow::Result<()> {
    each_backend("health", |ctx| async move {
        let anonymous = ctx.api.with_token(None);
        let r = anonymous.get("/healthz").await?;
        assert_eq!(r.expect(200)?, json!({"status": "ok"}));
        Ok(())
    })
    .await
}
