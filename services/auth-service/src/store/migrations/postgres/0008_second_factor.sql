-- Two-step sign-in: TOTP (RFC 6238) and recovery codes.

-- A user's TOTP secret, stored only encrypted by key-service
-- (tenants/{tenant}/keys/auth-factors, bound to the user by the encryption context).
CREATE TABLE auth_totp_factors (
    tenant            TEXT   NOT NULL,
    principal_id      TEXT   NOT NULL,
    secret_ciphertext TEXT   NOT NULL,
    -- NULL while enrolling: set once a code from the secret was seen. Only a confirmed
    -- factor is asked for at sign-in.
    confirm_time      BIGINT,
    -- The last time step whose code was accepted: no code is accepted twice.
    last_step         BIGINT,
    create_time       BIGINT NOT NULL,
    PRIMARY KEY (tenant, principal_id)
);

-- Recovery codes: SHA-256 hashes of 80-bit random codes, each usable once.
CREATE TABLE auth_recovery_codes (
    tenant       TEXT   NOT NULL,
    principal_id TEXT   NOT NULL,
    code_hash    TEXT   NOT NULL,
    used_time    BIGINT,
    PRIMARY KEY (tenant, principal_id, code_hash)
);

-- A pending request whose user gave the right password but not yet the second factor.
ALTER TABLE auth_oauth_requests ADD COLUMN factor_tenant TEXT;
ALTER TABLE auth_oauth_requests ADD COLUMN factor_principal_id TEXT;
ALTER TABLE auth_oauth_requests ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0;
