use serde_json::{Value, json};

use crate::common::{Api, device, each_backend, group, tenant};

fn ids(page: &Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every page of `GET /devices?{query}` with `limit`; returns page sizes and all ids.
async fn all_pages(
    api: &Api,
    query: &str,
    limit: u32,
) -> anyhow::Result<(Vec<usize>, Vec<String>)> {
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/devices?limit={limit}&{query}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = api.get(&path).await?.expect(200)?;
        let got = ids(&page);
        sizes.push(got.len());
        all.extend(got);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        anyhow::ensure!(sizes.len() < 100, "paging does not end");
    }
    Ok((sizes, all))
}

fn range(ids: &[u32]) -> Vec<String> {
    ids.iter().map(|i| format!("d{i:02}")).collect()
}

#[tokio::test]
async fn devices_are_filtered_and_paged_by_id() -> anyhow::Result<()> {
    each_backend("listing", |ctx| async move {
        let api = &ctx.api;
        tenant(api, "beta").await?;
        tenant(api, "acme").await?;
        let g = group(api, "acme", "g").await?;
        // Registered out of id order: pages are by id, not by insertion.
        for i in [5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 7, 4] {
            let (t, ty) = if i < 8 {
                ("acme", if i % 2 == 0 { "pump" } else { "thermo" })
            } else {
                ("beta", "pump")
            };
            device(api, t, &format!("d{i:02}"), ty).await?;
        }
        for (id, status) in [
            ("d01", "suspended"),
            ("d05", "suspended"),
            ("d09", "decommissioned"),
        ] {
            api.put(
                &format!("/devices/{id}/status"),
                Some(&json!({"status": status})),
            )
            .await?
            .expect(200)?;
        }
        for id in ["d02", "d03", "d06"] {
            api.put(&format!("/groups/{g}/devices/{id}"), None)
                .await?
                .expect(204)?;
        }

        let everything = range(&(0..12).collect::<Vec<_>>());
        let page = api.get("/devices").await?.expect(200)?;
        assert_eq!(
            (ids(&page), &page["next"]),
            (everything.clone(), &Value::Null)
        );
        assert_eq!(
            all_pages(api, "", 5).await?,
            (vec![5, 5, 2], everything.clone())
        );
        assert_eq!(
            all_pages(api, "", 12).await?,
            (vec![12], everything.clone())
        );
        assert_eq!(all_pages(api, "", 1).await?.1, everything);

        let g_query = format!("group={g}");
        let g_and_pump = format!("group={g}&type=pump");
        let cases: Vec<(&str, Vec<u32>)> = vec![
            ("tenant=acme", (0..8).collect()),
            ("tenant=acme&type=pump", vec![0, 2, 4, 6]),
            ("type=thermo", vec![1, 3, 5, 7]),
            ("status=suspended", vec![1, 5]),
            ("status=active&tenant=beta", vec![8, 10, 11]),
            ("tenant=beta&status=decommissioned", vec![9]),
            (g_query.as_str(), vec![2, 3, 6]),
            (g_and_pump.as_str(), vec![2, 6]),
            ("tenant=nobody", vec![]),
        ];
        for (query, expected) in cases {
            let (_, got) = all_pages(api, query, 2).await?;
            assert_eq!(got, range(&expected), "{query}");
        }
        assert_eq!(all_pages(api, "tenant=acme", 3).await?.0, vec![3, 3, 2]);
        let after = api
            .get("/devices?tenant=acme&after=d05")
            .await?
            .expect(200)?;
        assert_eq!(ids(&after), range(&[6, 7]));

        // Listed devices carry their groups, like single ones.
        let page = api
            .get(&format!("/devices?group={g}&limit=1"))
            .await?
            .expect(200)?;
        assert_eq!(page["devices"][0]["groups"], json!([g]));
        assert_eq!(page["next"], "d02");

        let tenants = api.get("/tenants").await?.expect(200)?;
        let tenant_ids: Vec<&str> = tenants["tenants"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(tenant_ids, ["acme", "beta"]);

        // Bad parameters.
        for (query, code) in [
            ("limit=0", "invalid_input"),
            ("limit=1001", "invalid_input"),
            ("limit=-1", "invalid_query"),
            ("limit=many", "invalid_query"),
            ("limit=99999999999", "invalid_query"),
            ("status=sleeping", "invalid_query"),
            ("tenantt=acme", "invalid_query"),
            ("tenant=a%00b", "invalid_input"),
        ] {
            api.get(&format!("/devices?{query}"))
                .await?
                .expect_error(400, code)
                .map_err(|e| e.context(query.to_owned()))?;
        }
        Ok(())
    })
    .await
}
