-- DisableKey / EnableKey: a reversible stop beside the lifecycle state (a disabled key can
-- still be scheduled for deletion, and a cancelled deletion leaves it disabled).
ALTER TABLE kms_keys ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
