-- Device registry schema. Portable SQL: runs unchanged on SQLite and
-- PostgreSQL (through sqlx's Any driver), so only TEXT and BIGINT columns:
-- times are Unix milliseconds, metadata is JSON text, secrets are base64 text.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    device_type TEXT NOT NULL,
    status TEXT NOT NULL,
    firmware_version TEXT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_seen BIGINT
);

CREATE INDEX devices_tenant ON devices (tenant_id);

CREATE TABLE device_groups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, device_id)
);

CREATE INDEX group_members_device ON group_members (device_id);

-- One row per key or certificate. `material` is the HMAC key sealed with the
-- master key (never the key itself), or a JWT public key in PEM; `fingerprint`
-- is the SHA-256 of a client certificate's DER, unique across all devices.
CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    material TEXT NOT NULL,
    fingerprint TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX credentials_device ON credentials (device_id);

-- Nonces of accepted HMAC messages, kept while their timestamp is inside the
-- replay window; shared by every ingest process using this database.
CREATE TABLE auth_nonces (
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    msg_ts BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);

CREATE INDEX auth_nonces_ts ON auth_nonces (msg_ts);
