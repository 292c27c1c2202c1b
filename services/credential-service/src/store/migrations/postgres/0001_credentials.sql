-- Credentials: the environment map only as ciphertext under a per-credential data key, which
-- is itself stored only wrapped by key-service. No plaintext column exists.
CREATE TABLE cred_credentials (
    tenant                  TEXT   NOT NULL,
    id                      TEXT   NOT NULL,
    server_id               TEXT   NOT NULL,
    template_id             TEXT   NOT NULL,
    server_name             TEXT   NOT NULL,
    configured_integrations TEXT   NOT NULL,
    wrapped_dek             BYTEA  NOT NULL,
    dek_key_version         BIGINT NOT NULL,
    ciphertext              BYTEA  NOT NULL,
    created_by              TEXT   NOT NULL,
    create_time             BIGINT NOT NULL,
    updated_by              TEXT   NOT NULL,
    update_time             BIGINT NOT NULL,
    expire_time             BIGINT,
    row_version             BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX cred_credentials_by_server ON cred_credentials (tenant, server_id);

-- The audit log: one hash chain per tenant (each event holds the SHA-256 of the previous).
CREATE TABLE cred_audit_events (
    tenant        TEXT   NOT NULL,
    sequence      BIGINT NOT NULL,
    time          BIGINT NOT NULL,
    actor         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    credential    TEXT   NOT NULL,
    outcome       TEXT   NOT NULL,
    request_id    TEXT   NOT NULL,
    previous_hash TEXT   NOT NULL,
    hash          TEXT   NOT NULL,
    PRIMARY KEY (tenant, sequence)
);
