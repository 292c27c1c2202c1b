-- Revoked refresh-token families. Checked on every spend, so a token issued by a refresh
-- that raced a reuse detection (revoking the family's rows while the new row was written)
-- is refused all the same.
CREATE TABLE auth_refresh_families (
    family      TEXT   PRIMARY KEY,
    revoke_time BIGINT NOT NULL
);
