//! What only the DynamoDB backend has: its table, its limits, its url.

use std::sync::Arc;

use iotflow_devices::dynamodb::sdk as ddb;
use iotflow_devices::dynamodb::{MAX_METADATA_BYTES, sdk::types::AttributeValue};
use iotflow_devices::{Error, MasterKey, NewDevice, RegistryBuilder};
use serde_json::json;

use crate::common::{Backend, each_backend};

#[tokio::test]
async fn metadata_larger_than_an_item_holds_is_refused_on_dynamodb() -> anyhow::Result<()> {
    each_backend("dynamodb_metadata", |ctx| async move {
        let reg = ctx.registry;
        reg.create_tenant("acme", "Acme").await?;
        let big = json!({ "blob": "x".repeat(MAX_METADATA_BYTES) });
        let registered = reg
            .register_device(NewDevice::new("acme", "a", "t").with_metadata(big.clone()))
            .await;
        let small = reg
            .register_device(NewDevice::new("acme", "b", "t").with_id("b"))
            .await?;
        let changed = reg.set_metadata(&small.id, &big).await;
        if matches!(ctx.backend, Backend::DynamoDb(_)) {
            for result in [registered.map(|_| ()), changed] {
                assert!(
                    matches!(
                        result,
                        Err(Error::Invalid {
                            field: "metadata",
                            ..
                        })
                    ),
                    "{result:?}"
                );
            }
            assert_eq!(reg.last_change().await?, 1, "nothing was logged");
        } else {
            registered?;
            changed?;
        }
        Ok(())
    })
    .await
}

fn client(endpoint: &str) -> ddb::Client {
    ddb::Client::from_conf(
        ddb::Config::builder()
            .behavior_version(ddb::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(ddb::config::Region::new("us-east-1"))
            .credentials_provider(ddb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build(),
    )
}

#[tokio::test]
async fn a_table_with_other_keys_is_refused() -> anyhow::Result<()> {
    let Ok(endpoint) = std::env::var(crate::common::DYNAMODB_ENV) else {
        println!("DynamoDB skipped: set {}", crate::common::DYNAMODB_ENV);
        return Ok(());
    };
    let client = client(&endpoint);
    let table = format!("iotflow_t_other_keys_{}", std::process::id());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(ddb::types::BillingMode::PayPerRequest)
        .key_schema(
            ddb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(ddb::types::KeyType::Hash)
                .build()?,
        )
        .attribute_definitions(
            ddb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ddb::types::ScalarAttributeType::S)
                .build()?,
        )
        .send()
        .await?;
    let opened = RegistryBuilder::new(format!("dynamodb://{table}"))
        .dynamodb_client(client.clone())
        .master_key(MasterKey::generate()?)
        .build()
        .await;
    client.delete_table().table_name(&table).send().await?;
    assert!(
        matches!(opened, Err(Error::Invalid { field: "url", .. })),
        "{opened:?}"
    );
    Ok(())
}

/// Without a client of our own, the url's region and endpoint and the
/// environment's credentials (here: .ci/run's test keys) configure one.
#[tokio::test]
async fn a_url_alone_opens_the_table_with_the_environments_credentials() -> anyhow::Result<()> {
    let (Ok(endpoint), Ok(_)) = (
        std::env::var(crate::common::DYNAMODB_ENV),
        std::env::var("AWS_ACCESS_KEY_ID"),
    ) else {
        println!(
            "DynamoDB url skipped: set {} and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            crate::common::DYNAMODB_ENV
        );
        return Ok(());
    };
    let table = format!("iotflow_t_url_{}", std::process::id());
    let reg = RegistryBuilder::new(format!(
        "dynamodb://{table}?region=us-east-1&endpoint={endpoint}"
    ))
    .clock(Arc::new(iotflow_core::clock::ManualClock::default()))
    .master_key(MasterKey::generate()?)
    .build()
    .await;
    let result = async {
        let reg = reg?;
        reg.create_tenant("acme", "Acme").await?;
        assert_eq!(reg.list_tenants().await?.len(), 1);
        anyhow::Ok(())
    }
    .await;
    let stored = client(&endpoint)
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("tenant".into()))
        .key("sk", AttributeValue::S("acme".into()))
        .send()
        .await?
        .item;
    client(&endpoint)
        .delete_table()
        .table_name(&table)
        .send()
        .await?;
    result?;
    assert!(stored.is_some(), "the tenant is in the table the url names");
    Ok(())
}
