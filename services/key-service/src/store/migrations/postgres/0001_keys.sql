-- Tenant keys and their versions. Key material is stored only wrapped under a KEK derived from
-- a root key; `root_version` says which.
CREATE TABLE kms_keys (
    tenant                 TEXT    NOT NULL,
    key_id                 TEXT    NOT NULL,
    primary_version        BIGINT  NOT NULL,
    min_decryption_version BIGINT  NOT NULL,
    min_encryption_version BIGINT  NOT NULL,
    deletion_allowed       BIGINT  NOT NULL CHECK (deletion_allowed IN (0, 1)),
    state                  TEXT    NOT NULL CHECK (state IN ('enabled', 'pending_deletion', 'destroyed')),
    create_time            BIGINT  NOT NULL,
    update_time            BIGINT  NOT NULL,
    destroy_time           BIGINT,
    PRIMARY KEY (tenant, key_id)
);

CREATE TABLE kms_key_versions (
    tenant       TEXT   NOT NULL,
    key_id       TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    root_version BIGINT NOT NULL,
    wrapped      BYTEA  NOT NULL,
    create_time  BIGINT NOT NULL,
    PRIMARY KEY (tenant, key_id, version),
    FOREIGN KEY (tenant, key_id) REFERENCES kms_keys (tenant, key_id)
);

CREATE INDEX kms_key_versions_by_root ON kms_key_versions (root_version);
CREATE INDEX kms_keys_pending_deletion ON kms_keys (destroy_time) WHERE state = 'pending_deletion';
