//! The table: what a `dynamodb://` url names, creating it on first use,
//! checking its keys, turning TTL on.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use iotflow_core::clock::Clock;

use super::{
    DynamoStore, TABLE_WAIT_POLL, TABLE_WAIT_POLLS, TTL_ATTRIBUTE, build_error, sdk_error,
};
use crate::error::{Error, Result};

/// What a `dynamodb://` url says.
#[derive(Debug, PartialEq)]
struct Target {
    table: String,
    region: Option<String>,
    endpoint: Option<String>,
}

/// `dynamodb://TABLE[?region=REGION&endpoint=URL]`; values are taken verbatim.
fn parse_url(url: &str) -> Result<Target> {
    const FORM: &str = "expected dynamodb://TABLE[?region=REGION&endpoint=URL]";
    let rest = url
        .strip_prefix("dynamodb://")
        .ok_or_else(|| Error::invalid("url", FORM))?;
    let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
    let table_ok = (3..=255).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !table_ok {
        return Err(Error::invalid(
            "url",
            format!("{table:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ - .)"),
        ));
    }
    let mut target = Target {
        table: table.to_owned(),
        region: None,
        endpoint: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("region", v)) if !v.is_empty() => target.region = Some(v.to_owned()),
            Some(("endpoint", v)) if !v.is_empty() => target.endpoint = Some(v.to_owned()),
            _ => {
                return Err(Error::invalid(
                    "url",
                    format!("unknown parameter {pair:?}; {FORM}"),
                ));
            }
        }
    }
    Ok(target)
}

impl DynamoStore {
    /// Connects to the table a `dynamodb://` url names, creating it if missing.
    pub(crate) async fn open(
        url: &str,
        client: Option<Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let target = parse_url(url)?;
        let client = match client {
            Some(client) => {
                if target.region.is_some() || target.endpoint.is_some() {
                    return Err(Error::invalid(
                        "url",
                        "region and endpoint come from the DynamoDB client given to the builder",
                    ));
                }
                client
            }
            None => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(region) = target.region {
                    loader = loader.region(aws_config::Region::new(region));
                }
                if let Some(endpoint) = target.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                Client::new(&loader.load().await)
            }
        };
        let store = DynamoStore {
            client,
            table: target.table,
            clock,
        };
        store.ensure_table().await?;
        Ok(store)
    }

    /// Creates the table unless it exists, waits until it is active, checks
    /// its keys and turns TTL on.
    async fn ensure_table(&self) -> Result<()> {
        let found = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(sdk_error("DescribeTable", e)),
        };
        if !found {
            tracing::info!(table = %self.table, "creating the registry's DynamoDB table");
            let key = |name: &str, kind: KeyType| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(build_error)
            };
            let attr = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)
            };
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key("pk", KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?)
                .attribute_definitions(attr("pk")?)
                .attribute_definitions(attr("sk")?)
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Another process created it meanwhile.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                Err(e) => return Err(sdk_error("CreateTable", e)),
            }
        }
        // A new table takes seconds (sometimes more) to become active.
        for _ in 0..TABLE_WAIT_POLLS {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            if let Some(table) = described.table
                && table.table_status == Some(TableStatus::Active)
            {
                self.check_keys(&table)?;
                return self.ensure_ttl().await;
            }
            tokio::time::sleep(TABLE_WAIT_POLL).await;
        }
        Err(Error::DynamoDb {
            operation: "DescribeTable",
            message: format!(
                "table {:?} did not become active within {} s",
                self.table,
                TABLE_WAIT_POLLS * TABLE_WAIT_POLL.as_millis() as u32 / 1000
            ),
            transient: true,
        })
    }

    fn check_keys(&self, table: &aws_sdk_dynamodb::types::TableDescription) -> Result<()> {
        let key_ok = |name: &str, kind: KeyType| {
            table
                .key_schema()
                .iter()
                .any(|k| k.attribute_name() == name && *k.key_type() == kind)
        };
        let string = |name: &str| {
            table.attribute_definitions().iter().any(|a| {
                a.attribute_name() == name && *a.attribute_type() == ScalarAttributeType::S
            })
        };
        if key_ok("pk", KeyType::Hash)
            && key_ok("sk", KeyType::Range)
            && string("pk")
            && string("sk")
        {
            Ok(())
        } else {
            Err(Error::invalid(
                "url",
                format!(
                    "table {:?} exists with other keys; the registry needs `pk` (string, \
                     partition) and `sk` (string, sort)",
                    self.table
                ),
            ))
        }
    }

    async fn ensure_ttl(&self) -> Result<()> {
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
        let status = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status().cloned());
        if matches!(status, None | Some(TimeToLiveStatus::Disabled)) {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(build_error)?;
            // TTL only cleans up nonces (their condition does not rely on it):
            // a registry without it still works, so a refusal is a warning.
            if let Err(e) = self
                .client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
            {
                tracing::warn!(
                    table = %self.table,
                    "cannot enable TTL on {TTL_ATTRIBUTE}; old nonces stay until deleted by hand: {}",
                    DisplayErrorContext(&e)
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_table_and_optionally_region_and_endpoint() {
        assert_eq!(
            parse_url("dynamodb://iotflow-registry").ok(),
            Some(Target {
                table: "iotflow-registry".into(),
                region: None,
                endpoint: None
            })
        );
        assert_eq!(
            parse_url("dynamodb://reg_1?region=eu-west-1&endpoint=http://127.0.0.1:5000").ok(),
            Some(Target {
                table: "reg_1".into(),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:5000".into())
            })
        );
        for bad in [
            "dynamodb://",
            "dynamodb://ab",
            "dynamodb://a b c",
            "dynamodb://table?color=red",
            "dynamodb://table?region=",
            "postgres://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::Invalid { field: "url", .. })),
                "{bad}"
            );
        }
    }
}
