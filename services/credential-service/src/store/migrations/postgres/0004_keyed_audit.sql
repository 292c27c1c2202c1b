-- Keyed audit chains. Events written from now on carry mac_version 2: their hash is an
-- HMAC-SHA256 link under the tenant's audit key. Events written before (mac_version 1,
-- plain SHA-256) stay verifiable as the chain's prefix.
ALTER TABLE cred_audit_events ADD COLUMN mac_version BIGINT NOT NULL DEFAULT 1;

-- Each tenant's audit key, only as key-service wrapped it (GenerateDataKey on
-- tenants/{tenant}/keys/credential-audit).
CREATE TABLE cred_audit_keys (
    tenant      TEXT   PRIMARY KEY,
    wrapped     BYTEA   NOT NULL,
    create_time BIGINT NOT NULL
);

-- Each tenant's chain head (last sequence and link) with its MAC, written in the same
-- transaction as every event, so truncating the newest events is detected.
CREATE TABLE cred_audit_heads (
    tenant      TEXT   PRIMARY KEY,
    sequence    BIGINT NOT NULL,
    link        TEXT   NOT NULL,
    mac         TEXT   NOT NULL,
    update_time BIGINT NOT NULL
);
