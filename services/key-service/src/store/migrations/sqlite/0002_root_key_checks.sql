-- One key check value per root key version (a PRF output of a fixed label under the root
-- key; never the key). At start-up every configured root key must match its row, so a wrong
-- key with a known version number is refused before it wraps anything.
CREATE TABLE kms_root_key_checks (
    root_version BIGINT NOT NULL PRIMARY KEY,
    check_value  BLOB   NOT NULL,
    create_time  BIGINT NOT NULL
);
