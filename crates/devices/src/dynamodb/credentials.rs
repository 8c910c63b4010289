//! Credentials and nonces on DynamoDB.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::tx::Outcome;
use super::{
    Attrs, Backoff, DynamoStore, Fail, Item, MAX_ROTATE_REVOKES, Op, keys, n, s, sdk_error,
};
use crate::credentials::{CredentialInfo, CredentialKind, NewCredential, StoredCredential};
use crate::error::{Error, Rejection, Result};

/// How long a nonce item outlives its replay window before TTL may delete
/// it: TTL runs on DynamoDB's clock, the window on the registry's.
const NONCE_TTL_MARGIN_S: i64 = 3600;

/// The writes storing a new credential: the credential (and its
/// fingerprint, unique), its index item, and the device's credential count
/// (on condition the device exists).
pub(crate) fn credential_ops(cred: &NewCredential) -> Vec<Op> {
    let mut item = keys::credential(&cred.id);
    item.insert("id".into(), s(&cred.id));
    item.insert("device_id".into(), s(&cred.device_id));
    item.insert("kind".into(), s(cred.kind.as_str()));
    item.insert("material".into(), s(&cred.material));
    item.insert("created_at".into(), n(cred.created_at));
    let mut ops = Vec::with_capacity(3);
    if let Some(fp) = &cred.fingerprint {
        item.insert("fingerprint".into(), s(fp));
        let mut unique = keys::fingerprint(fp);
        unique.insert("credential_id".into(), s(&cred.id));
        ops.push(Op::put(unique).when(
            "attribute_not_exists(pk)",
            Fail::Error(Error::AlreadyExists {
                what: "certificate",
                id: fp.clone(),
            }),
        ));
    }
    ops.push(Op::put(item).when(
        "attribute_not_exists(pk)",
        Fail::Error(Error::AlreadyExists {
            what: "credential",
            id: cred.id.clone(),
        }),
    ));
    ops.push(Op::put(keys::key(
        keys::device_credentials(&cred.device_id),
        &cred.id,
    )));
    ops
}

fn info_from_item(item: &Item) -> Result<CredentialInfo> {
    let a = Attrs::new(item, "stored credential");
    Ok(CredentialInfo {
        id: a.s("id")?,
        device_id: a.s("device_id")?,
        kind: CredentialKind::parse(&a.s("kind")?)?,
        fingerprint: a.opt_s("fingerprint")?,
        created_at: a.n("created_at")?,
        revoked_at: a.opt_n("revoked_at")?,
    })
}

impl DynamoStore {
    pub(crate) async fn insert_credential(&self, cred: &NewCredential) -> Result<()> {
        let mut backoff = Backoff::new("storing a credential");
        loop {
            let mut tx = self.tx();
            // The device first: an unknown device is reported before a taken
            // fingerprint, as on SQL.
            tx.push(
                Op::update(keys::device(&cred.device_id), "ADD #cv :one")
                    .when(
                        "attribute_exists(pk)",
                        Fail::Error(Error::not_found("device", &cred.device_id)),
                    )
                    .name("#cv", "cred_version")
                    .value(":one", n(1)),
            );
            for op in credential_ops(cred) {
                tx.push(op);
            }
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    /// The credential items of a device, in no order.
    async fn credential_items(&self, device_id: &str) -> Result<Vec<Item>> {
        let ids = self.sort_keys(&keys::device_credentials(device_id)).await?;
        self.batch_get(ids.iter().map(|id| keys::credential(id)).collect())
            .await
    }

    pub(crate) async fn rotate_hmac_key(&self, cred: &NewCredential) -> Result<()> {
        let mut backoff = Backoff::new("rotating an HMAC key");
        loop {
            // The credential count first: a key issued after this read
            // moves it and fails the transaction, so none escapes revocation.
            let device = self
                .get(keys::device(&cred.device_id))
                .await?
                .ok_or_else(|| Error::not_found("device", &cred.device_id))?;
            let version = Attrs::new(&device, "stored device").opt_n("cred_version")?;
            let mut others = Vec::new();
            for item in self.credential_items(&cred.device_id).await? {
                let info = info_from_item(&item)?;
                if info.kind == CredentialKind::Hmac && info.revoked_at.is_none() {
                    others.push(info.id);
                }
            }
            if others.len() > MAX_ROTATE_REVOKES {
                return Err(Error::invalid(
                    "device",
                    format!(
                        "{} active HMAC keys; the DynamoDB backend revokes at most \
                         {MAX_ROTATE_REVOKES} in one rotation: revoke some first",
                        others.len()
                    ),
                ));
            }
            let mut tx = self.tx();
            let count = Op::update(keys::device(&cred.device_id), "SET #cv = :next")
                .name("#cv", "cred_version")
                .value(":next", n(version.unwrap_or(0) + 1));
            tx.push(match version {
                Some(v) => count.when("#cv = :v", Fail::Retry).value(":v", n(v)),
                None => count.when("attribute_not_exists(#cv)", Fail::Retry),
            });
            for op in credential_ops(cred) {
                tx.push(op);
            }
            let now = self.now_ms();
            for id in others {
                tx.push(
                    Op::update(
                        keys::credential(&id),
                        "SET revoked_at = if_not_exists(revoked_at, :now)",
                    )
                    .value(":now", n(now)),
                );
            }
            if self.commit(tx).await? == Outcome::Committed {
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(crate) async fn revoke_credential(&self, id: &str, now: i64) -> Result<()> {
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::credential(id)))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Err(Error::not_found("credential", id))
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    pub(crate) async fn credentials(&self, device_id: &str) -> Result<Vec<CredentialInfo>> {
        let mut out = self
            .credential_items(device_id)
            .await?
            .iter()
            .map(info_from_item)
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    pub(crate) async fn stored_credential(&self, id: &str) -> Result<Option<StoredCredential>> {
        let Some(item) = self.get(keys::credential(id)).await? else {
            return Ok(None);
        };
        let a = Attrs::new(&item, "stored credential");
        let device_id = a.s("device_id")?;
        let Some(device) = self.get(keys::device(&device_id)).await? else {
            return Ok(None);
        };
        let d = Attrs::new(&device, "stored device");
        Ok(Some(StoredCredential {
            id: a.s("id")?,
            device_id,
            tenant_id: d.s("tenant_id")?,
            device_status: d.s("status")?.parse()?,
            kind: CredentialKind::parse(&a.s("kind")?)?,
            material: a.s("material")?,
            revoked: a.opt_n("revoked_at")?.is_some(),
        }))
    }

    pub(crate) async fn stored_certificate(&self, hex: &str) -> Result<Option<StoredCredential>> {
        let Some(item) = self.get(keys::fingerprint(hex)).await? else {
            return Ok(None);
        };
        let id = Attrs::new(&item, "stored fingerprint").s("credential_id")?;
        self.stored_credential(&id).await
    }

    /// Records an accepted nonce on condition it is new, or its message left
    /// the replay window (such a message fails the timestamp check anyway).
    pub(crate) async fn remember_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        ts: i64,
        oldest: i64,
        window: Duration,
    ) -> Result<()> {
        let window_s = i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2);
        let expires = ts
            .div_euclid(1000)
            .saturating_add(window_s)
            .saturating_add(NONCE_TTL_MARGIN_S);
        let mut item = keys::nonce(device_id, nonce);
        item.insert("msg_ts".into(), n(ts));
        item.insert(super::TTL_ATTRIBUTE.into(), n(expires));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR msg_ts < :oldest")
            .expression_attribute_values(":oldest", n(oldest))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Err(Rejection::ReplayedNonce.into())
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }
}
