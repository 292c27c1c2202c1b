-- API keys: only the bcrypt hash of the secret is stored (and, during a roll's grace period,
-- the previous secret's hash).
CREATE TABLE auth_api_keys (
    id                   TEXT   PRIMARY KEY,
    tenant               TEXT   NOT NULL,
    principal_id         TEXT   NOT NULL,
    display_name         TEXT   NOT NULL,
    secret_hash          TEXT   NOT NULL,
    previous_hash        TEXT,
    previous_valid_until BIGINT,
    scopes               TEXT   NOT NULL,
    hint                 TEXT   NOT NULL,
    created_by           TEXT   NOT NULL,
    create_time          BIGINT NOT NULL,
    expire_time          BIGINT,
    last_used_time       BIGINT,
    revoke_time          BIGINT,
    change_time          BIGINT NOT NULL,
    FOREIGN KEY (tenant, principal_id) REFERENCES auth_principals (tenant, id)
);
CREATE INDEX auth_api_keys_by_tenant ON auth_api_keys (tenant, id);
CREATE INDEX auth_api_keys_by_change ON auth_api_keys (change_time);
