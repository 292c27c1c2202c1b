-- The keyed audit chain of privilege changes, one per tenant (see store/audit.rs). The old
-- unchained auth_audit_events table is kept, read-only, for what it already holds.
CREATE TABLE auth_audit_chain (
    tenant        TEXT   NOT NULL,
    sequence      BIGINT NOT NULL,
    time          BIGINT NOT NULL,
    actor         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    outcome       TEXT   NOT NULL,
    previous_hash TEXT   NOT NULL,
    hash          TEXT   NOT NULL,
    PRIMARY KEY (tenant, sequence)
);

-- Each chain's head (last sequence and link, MACed), updated in the transaction of every
-- event; the row is also the per-tenant append lock.
CREATE TABLE auth_audit_heads (
    tenant      TEXT   PRIMARY KEY,
    sequence    BIGINT NOT NULL,
    link        TEXT   NOT NULL,
    mac         TEXT   NOT NULL,
    update_time BIGINT NOT NULL
);

-- auth-service's audit key, only as key-service wrapped it (GenerateDataKey on
-- tenants/coffer-system/keys/auth-audit).
CREATE TABLE auth_audit_key (
    id          TEXT   PRIMARY KEY CHECK (id = 'audit'),
    wrapped     BYTEA   NOT NULL,
    create_time BIGINT NOT NULL
);
