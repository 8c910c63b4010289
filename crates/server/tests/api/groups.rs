use serde_json::{Value, json};

use crate::common::{device, each_backend, group, tenant};

fn names(v: &Value) -> Vec<&str> {
    v["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g["name"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn groups_gain_and_lose_members_of_their_own_tenant() -> anyhow::Result<()> {
    each_backend("groups", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "acme").await?;
        tenant(api, "other").await?;
        let south = group(api, "acme", "south").await?;
        let north = group(api, "acme", "north").await?;
        let west = group(api, "other", "west").await?;
        device(api, "acme", "a1", "pump").await?;
        device(api, "acme", "a2", "pump").await?;
        device(api, "other", "o1", "pump").await?;

        let listed = api.get("/tenants/acme/groups").await?.expect(200)?;
        assert_eq!(names(&listed), ["north", "south"]);
        assert_eq!(names(&api.get("/tenants/other/groups").await?.expect(200)?), ["west"]);
        api.post("/tenants/acme/groups", &json!({"name": "north"}))
            .await?
            .expect_error(409, "already_exists")?;
        // The same name in another tenant is another group.
        group(api, "other", "north").await?;

        let member = |g: &str, d: &str| format!("/groups/{g}/devices/{d}");
        api.put(&member(&north, "a1"), None).await?.expect(204)?;
        api.put(&member(&north, "a1"), None).await?.expect(204)?;
        api.put(&member(&north, "a2"), None).await?.expect(204)?;
        api.put(&member(&south, "a2"), None).await?.expect(204)?;
        let g = api.get(&format!("/groups/{north}")).await?.expect(200)?;
        assert_eq!(g["members"], json!(["a1", "a2"]));
        let a2 = api.get("/devices/a2").await?.expect(200)?;
        let mut expected = vec![north.clone(), south.clone()];
        expected.sort();
        assert_eq!(a2["groups"], json!(expected));

        let msg = api
            .put(&member(&north, "o1"), None)
            .await?
            .expect_error(400, "invalid_input")?;
        assert!(msg.contains("different tenants"), "{msg}");
        api.put(&member(&north, "nope"), None).await?.expect_error(404, "not_found")?;
        api.put(&member("nope", "a1"), None).await?.expect_error(404, "not_found")?;

        api.delete(&member(&north, "a1")).await?.expect(204)?;
        let msg = api.delete(&member(&north, "a1")).await?.expect_error(404, "not_found")?;
        assert!(msg.contains("not a member"), "{msg}");
        api.delete(&member("nope", "a1")).await?.expect_error(404, "not_found")?;
        let g = api.get(&format!("/groups/{north}")).await?.expect(200)?;
        assert_eq!(g["members"], json!(["a2"]));
        assert_eq!(api.get("/devices/a1").await?.expect(200)?["groups"], json!([]));

        // Registering into a group of another tenant stores nothing.
        let msg = api
            .post(
                "/devices",
                &json!({"tenant_id": "acme", "id": "a3", "name": "a3", "type": "t", "groups": [west]}),
            )
            .await?
            .expect_error(400, "invalid_input")?;
        assert!(msg.contains("belongs to tenant"), "{msg}");
        api.post(
            "/devices",
            &json!({"tenant_id": "acme", "id": "a3", "name": "a3", "type": "t", "groups": ["nope"]}),
        )
        .await?
        .expect_error(404, "not_found")?;
        api.get("/devices/a3").await?.expect_error(404, "not_found")?;

        for path in ["/groups/nope", "/tenants/nope/groups"] {
            api.get(path).await?.expect_error(404, "not_found")?;
        }
        api.post("/tenants/nope/groups", &json!({"name": "x"}))
            .await?
            .expect_error(404, "not_found")?;
        api.post("/tenants/acme/groups", &json!({"name": ""}))
            .await?
            .expect_error(400, "invalid_input")?;
        Ok(())
    })
    .await
}
