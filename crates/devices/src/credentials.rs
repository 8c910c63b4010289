//! Device credentials: HMAC keys, JWT public keys, client-certificate
//! fingerprints; issuing, rotating, revoking.

use std::fmt;

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::crypto::{b64_encode, hex, random_bytes, random_id, sha256};
use crate::error::{Error, Result, on_conflict};
use crate::model::DeviceStatus;
use crate::registry::{Registry, Store};

/// What a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A shared HMAC-SHA256 key; the device signs messages with it.
    Hmac,
    /// An ES256 (P-256) public key; the device signs JWTs.
    JwtEs256,
    /// An Ed25519 public key; the device signs JWTs (EdDSA).
    JwtEdDsa,
    /// The SHA-256 fingerprint of an mTLS client certificate.
    Certificate,
}

impl CredentialKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Hmac => "hmac",
            CredentialKind::JwtEs256 => "jwt_es256",
            CredentialKind::JwtEdDsa => "jwt_eddsa",
            CredentialKind::Certificate => "x509",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "hmac" => CredentialKind::Hmac,
            "jwt_es256" => CredentialKind::JwtEs256,
            "jwt_eddsa" => CredentialKind::JwtEdDsa,
            "x509" => CredentialKind::Certificate,
            other => return Err(Error::invalid("credential kind", other.to_owned())),
        })
    }
}

/// A credential as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// Key id; HMAC messages and JWTs (`kid`) name it.
    pub id: String,
    /// The device it authenticates.
    pub device_id: String,
    /// What it is.
    pub kind: CredentialKind,
    /// Certificate fingerprint (hex), for [`CredentialKind::Certificate`].
    pub fingerprint: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Revocation time, Unix milliseconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// A freshly issued HMAC key. The secret exists only here: the registry
/// keeps it sealed and never returns it again, so hand it to the device now.
pub struct IssuedHmacKey {
    /// Key id, sent with every signed message.
    pub key_id: String,
    /// The device it belongs to.
    pub device_id: String,
    secret: String,
}

impl IssuedHmacKey {
    /// The key, base64 of 32 random bytes.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for IssuedHmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedHmacKey")
            .field("key_id", &self.key_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 fingerprint of a client certificate (of its DER encoding),
/// as TLS terminators report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateFingerprint([u8; 32]);

impl CertificateFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        CertificateFingerprint(sha256(der))
    }

    /// Parses 64 hex digits, optionally `:`-separated (`AB:CD:…`), any case.
    pub fn from_hex(text: &str) -> Result<Self> {
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
        let bad = || Error::invalid("certificate fingerprint", "expected 64 hex digits");
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        Ok(CertificateFingerprint(out))
    }

    /// Lowercase hex, no separators: the stored form.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// A credential with what authentication needs of its device.
#[derive(Debug)]
pub(crate) struct StoredCredential {
    pub(crate) id: String,
    pub(crate) device_id: String,
    pub(crate) tenant_id: String,
    pub(crate) device_status: DeviceStatus,
    pub(crate) kind: CredentialKind,
    pub(crate) material: String,
    pub(crate) revoked: bool,
}

/// A credential about to be stored, made the same way for every backend.
#[derive(Debug)]
pub(crate) struct NewCredential {
    pub(crate) id: String,
    pub(crate) device_id: String,
    pub(crate) kind: CredentialKind,
    /// The sealed HMAC key, a JWT public key (PEM), or the fingerprint (hex).
    pub(crate) material: String,
    pub(crate) fingerprint: Option<String>,
    pub(crate) created_at: i64,
}

impl NewCredential {
    pub(crate) fn info(&self) -> CredentialInfo {
        CredentialInfo {
            id: self.id.clone(),
            device_id: self.device_id.clone(),
            kind: self.kind,
            fingerprint: self.fingerprint.clone(),
            created_at: self.created_at,
            revoked_at: None,
        }
    }
}

const STORED_COLUMNS: &str = "SELECT c.id, c.device_id, d.tenant_id, d.status, c.kind, \
     c.material, c.revoked_at FROM credentials c JOIN devices d ON d.id = c.device_id";

fn stored_from_row(row: &AnyRow) -> Result<StoredCredential> {
    let status: String = row.try_get("status")?;
    let kind: String = row.try_get("kind")?;
    Ok(StoredCredential {
        id: row.try_get("id")?,
        device_id: row.try_get("device_id")?,
        tenant_id: row.try_get("tenant_id")?,
        device_status: status.parse()?,
        kind: CredentialKind::parse(&kind)?,
        material: row.try_get("material")?,
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

impl Registry {
    /// Issues a new HMAC key for a device; earlier keys stay valid (overlap
    /// rotation: revoke them once the device uses the new one).
    pub async fn issue_hmac_key(&self, device_id: &str) -> Result<IssuedHmacKey> {
        let (issued, cred) = self.new_hmac_key(device_id)?;
        self.insert_credential(&cred).await?;
        Ok(issued)
    }

    /// Issues a new HMAC key and revokes the device's other HMAC keys, in
    /// one transaction.
    pub async fn rotate_hmac_key(&self, device_id: &str) -> Result<IssuedHmacKey> {
        let (issued, cred) = self.new_hmac_key(device_id)?;
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => {
                db.rotate_hmac_key(&cred).await?;
                return Ok(issued);
            }
        };
        let mut tx = crate::registry::begin_write(pool).await?;
        self.sql_insert_credential(&mut tx, &cred).await?;
        sqlx::query(
            "UPDATE credentials SET revoked_at = $1 \
             WHERE device_id = $2 AND kind = $3 AND id <> $4 AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(device_id)
        .bind(CredentialKind::Hmac.as_str())
        .bind(&issued.key_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// A new random HMAC key for `device_id`: what to hand out, and what to
    /// store (the key sealed with the master key, bound to its id).
    pub(crate) fn new_hmac_key(&self, device_id: &str) -> Result<(IssuedHmacKey, NewCredential)> {
        let secret = random_bytes::<32>()?;
        let key_id = random_id()?;
        let sealed = self.inner.master.seal(&key_id, &secret)?;
        let cred = NewCredential {
            id: key_id.clone(),
            device_id: device_id.to_owned(),
            kind: CredentialKind::Hmac,
            material: sealed,
            fingerprint: None,
            created_at: self.now_ms(),
        };
        let issued = IssuedHmacKey {
            key_id,
            device_id: device_id.to_owned(),
            secret: b64_encode(&secret),
        };
        Ok((issued, cred))
    }

    /// Registers a device's JWT public key (SPKI PEM, `-----BEGIN PUBLIC KEY-----`)
    /// of `kind` [`CredentialKind::JwtEs256`] or [`CredentialKind::JwtEdDsa`].
    /// Tokens name it in their `kid` header.
    pub async fn add_jwt_key(
        &self,
        device_id: &str,
        kind: CredentialKind,
        public_key_pem: &str,
    ) -> Result<CredentialInfo> {
        let parsed = match kind {
            CredentialKind::JwtEs256 => {
                jsonwebtoken::DecodingKey::from_ec_pem(public_key_pem.as_bytes())
            }
            CredentialKind::JwtEdDsa => {
                jsonwebtoken::DecodingKey::from_ed_pem(public_key_pem.as_bytes())
            }
            _ => return Err(Error::invalid("credential kind", "expected a JWT key kind")),
        };
        parsed.map_err(|e| Error::invalid("public key", e.to_string()))?;
        let cred = NewCredential {
            id: random_id()?,
            device_id: device_id.to_owned(),
            kind,
            material: public_key_pem.to_owned(),
            fingerprint: None,
            created_at: self.now_ms(),
        };
        self.insert_credential(&cred).await?;
        Ok(cred.info())
    }

    /// Registers a client certificate for mTLS, by fingerprint. A certificate
    /// identifies one device only.
    pub async fn add_certificate(
        &self,
        device_id: &str,
        fingerprint: &CertificateFingerprint,
    ) -> Result<CredentialInfo> {
        let hex = fingerprint.to_hex();
        let cred = NewCredential {
            id: random_id()?,
            device_id: device_id.to_owned(),
            kind: CredentialKind::Certificate,
            material: hex.clone(),
            fingerprint: Some(hex),
            created_at: self.now_ms(),
        };
        self.insert_credential(&cred).await?;
        Ok(cred.info())
    }

    async fn insert_credential(&self, cred: &NewCredential) -> Result<()> {
        match self.store() {
            Store::Sql(pool) => {
                let mut conn = pool.acquire().await?;
                self.sql_insert_credential(&mut conn, cred).await
            }
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => db.insert_credential(cred).await,
        }
    }

    pub(crate) async fn sql_insert_credential(
        &self,
        conn: &mut AnyConnection,
        cred: &NewCredential,
    ) -> Result<()> {
        let known = sqlx::query("SELECT id FROM devices WHERE id = $1")
            .bind(&cred.device_id)
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Err(Error::not_found("device", &cred.device_id));
        }
        sqlx::query(
            "INSERT INTO credentials (id, device_id, kind, material, fingerprint, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&cred.id)
        .bind(&cred.device_id)
        .bind(cred.kind.as_str())
        .bind(&cred.material)
        .bind(cred.fingerprint.as_deref())
        .bind(cred.created_at)
        .execute(&mut *conn)
        .await
        .map_err(on_conflict(
            "certificate",
            cred.fingerprint.as_deref().unwrap_or(&cred.id),
        ))?;
        Ok(())
    }

    /// Revokes a credential; messages using it are refused with
    /// [`Rejection::RevokedKey`](crate::Rejection::RevokedKey). Revoking twice
    /// keeps the first time.
    pub async fn revoke_credential(&self, credential_id: &str) -> Result<()> {
        let now = self.now_ms();
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.revoke_credential(credential_id, now).await,
        };
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now)
        .bind(credential_id)
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("credential", credential_id));
        }
        Ok(())
    }

    /// A device's credentials, oldest first, without secrets.
    pub async fn credentials(&self, device_id: &str) -> Result<Vec<CredentialInfo>> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.credentials(device_id).await,
        };
        sqlx::query(
            "SELECT id, device_id, kind, fingerprint, created_at, revoked_at FROM credentials \
             WHERE device_id = $1 ORDER BY created_at, id",
        )
        .bind(device_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(CredentialInfo {
                id: r.try_get("id")?,
                device_id: r.try_get("device_id")?,
                kind: CredentialKind::parse(&kind)?,
                fingerprint: r.try_get("fingerprint")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
    }

    pub(crate) async fn stored_credential(&self, id: &str) -> Result<Option<StoredCredential>> {
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.stored_credential(id).await,
        };
        sqlx::query(&format!("{STORED_COLUMNS} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(stored_from_row)
            .transpose()
    }

    pub(crate) async fn stored_certificate(
        &self,
        fingerprint: &CertificateFingerprint,
    ) -> Result<Option<StoredCredential>> {
        let hex = fingerprint.to_hex();
        let pool = match self.store() {
            Store::Sql(pool) => pool,
            #[cfg(feature = "dynamodb")]
            Store::Dynamo(db) => return db.stored_certificate(&hex).await,
        };
        sqlx::query(&format!("{STORED_COLUMNS} WHERE c.fingerprint = $1"))
            .bind(hex)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(stored_from_row)
            .transpose()
    }
}
