-- What a key was created with: the API key behind the creator's bearer, if any. Revoking a
-- key revokes the keys created with it, recursively.
ALTER TABLE auth_api_keys ADD COLUMN parent_id TEXT;
CREATE INDEX auth_api_keys_by_parent ON auth_api_keys (parent_id);

-- A principal's role generation: SetRoles increments it, access tokens carry it (claim
-- pgen), and tokens of an older generation are refused.
ALTER TABLE auth_principals ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

-- The revocation feed verifiers mirror (ListRevocations): access tokens by jti, API keys by
-- id, and principals' token generations below `generation`, kept until every token they
-- concern has expired (forget_time).
CREATE TABLE auth_revocations (
    kind        TEXT   NOT NULL CHECK (kind IN ('access_token', 'api_key', 'principal')),
    id          TEXT   NOT NULL,
    revoke_time BIGINT NOT NULL,
    forget_time BIGINT NOT NULL,
    generation  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
CREATE INDEX auth_revocations_by_time ON auth_revocations (revoke_time);

-- Access tokens revoked before the feed existed move into it (verifiers forget them after
-- their expiry); the feed is then the only record of revoked tokens.
INSERT INTO auth_revocations (kind, id, revoke_time, forget_time, generation)
    SELECT 'access_token', jti, 0, expire_time, 0 FROM auth_revoked_access_tokens;
DROP TABLE auth_revoked_access_tokens;
