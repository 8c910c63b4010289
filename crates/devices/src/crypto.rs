//! Key material: randomness, the master key that seals HMAC keys at rest,
//! HMAC-SHA256 and SHA-256 fingerprints. All from `ring`.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// `n` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::MasterKey("the system random generator failed".into()))?;
    Ok(buf)
}

/// A random 128-bit id as 32 lowercase hex digits.
pub(crate) fn random_id() -> Result<String> {
    Ok(hex(&random_bytes::<16>()?))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The key that seals device HMAC keys in the database
/// (ChaCha20-Poly1305, 256 bits).
///
/// Device HMAC keys must be usable for verification, so the registry keeps
/// them — but only sealed with this key, bound to their credential id. Whoever
/// reads the database (a backup, a replica, an SQL console) without the master
/// key cannot recover a device key; no API returns a key after it was issued.
/// Keep the master key outside the database: `IOTFLOW_DEVICES_MASTER_KEY`
/// (base64 of 32 bytes) in production, or the `registry.key` file that
/// [`Registry::open_in`](crate::Registry::open_in) creates (mode 0600) for the
/// embedded default.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The environment variable [`MasterKey::from_env`] reads.
pub const MASTER_KEY_ENV: &str = "IOTFLOW_DEVICES_MASTER_KEY";

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<Self> {
        Ok(MasterKey {
            bytes: random_bytes()?,
        })
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let raw = B64
            .decode(text.trim())
            .map_err(|e| Error::MasterKey(format!("not base64: {e}")))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::MasterKey("must be 32 bytes".into()))?;
        Ok(MasterKey { bytes })
    }

    /// Reads [`MASTER_KEY_ENV`]; `None` when it is not set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(v) => Self::from_base64(&v).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The key as base64, to store it outside the database.
    pub fn to_base64(&self) -> String {
        B64.encode(self.bytes)
    }

    /// Reads the key file at `path`, or creates it with a new key
    /// (owner-only permissions on Unix).
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(io)?;
                std::io::Write::write_all(&mut f, key.to_base64().as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn aead(&self) -> Result<LessSafeKey> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &self.bytes)
            .map_err(|_| Error::MasterKey("cannot build the AEAD key".into()))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `secret`, bound to `context` (the credential id): base64 of
    /// nonce ‖ ciphertext ‖ tag.
    pub(crate) fn seal(&self, context: &str, secret: &[u8]) -> Result<String> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut buf = secret.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::MasterKey("sealing failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(B64.encode(out))
    }

    /// Opens what [`seal`](Self::seal) produced for the same `context`.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>> {
        let wrong = || Error::MasterKey(format!("credential {context} does not open with it"));
        let raw = B64.decode(sealed).map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}
