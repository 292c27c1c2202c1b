-- Failures count within a window (the lockout duration) from the first one; older ones are
-- forgotten, so occasional mistakes never add up to a lockout.
ALTER TABLE auth_lockouts ADD COLUMN window_start BIGINT NOT NULL DEFAULT 0;
