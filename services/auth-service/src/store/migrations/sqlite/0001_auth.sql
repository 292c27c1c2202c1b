-- Tenants, principals, signing keys, refresh tokens, revoked access tokens, login lockouts.
-- No secret is stored in the clear: passwords are bcrypt hashes, refresh tokens SHA-256
-- hashes, and signing keys are encrypted by key-service.
CREATE TABLE auth_tenants (
    id           TEXT   PRIMARY KEY,
    display_name TEXT   NOT NULL,
    create_time  BIGINT NOT NULL
);

CREATE TABLE auth_principals (
    tenant        TEXT   NOT NULL REFERENCES auth_tenants (id),
    id            TEXT   NOT NULL,
    kind          TEXT   NOT NULL CHECK (kind IN ('user', 'service_account')),
    password_hash TEXT,
    roles         TEXT   NOT NULL,
    scopes        TEXT   NOT NULL,
    create_time   BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE auth_signing_keys (
    kid                 TEXT   PRIMARY KEY,
    encrypted_private   TEXT   NOT NULL,
    public_jwk          TEXT   NOT NULL,
    create_time         BIGINT NOT NULL,
    retire_time         BIGINT,
    unpublish_time      BIGINT
);

CREATE TABLE auth_refresh_tokens (
    token_hash   TEXT   PRIMARY KEY,
    family       TEXT   NOT NULL,
    tenant       TEXT   NOT NULL,
    principal_id TEXT   NOT NULL,
    scope        TEXT   NOT NULL,
    create_time  BIGINT NOT NULL,
    expire_time  BIGINT NOT NULL,
    spent_time   BIGINT,
    revoke_time  BIGINT
);
CREATE INDEX auth_refresh_tokens_family ON auth_refresh_tokens (family);

CREATE TABLE auth_revoked_access_tokens (
    jti         TEXT   PRIMARY KEY,
    expire_time BIGINT NOT NULL
);

CREATE TABLE auth_lockouts (
    subject      TEXT   PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT
);

CREATE TABLE auth_audit_events (
    id      TEXT   PRIMARY KEY,
    time    BIGINT NOT NULL,
    tenant  TEXT   NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    subject TEXT   NOT NULL,
    outcome TEXT   NOT NULL
);
