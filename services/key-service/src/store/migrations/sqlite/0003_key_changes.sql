-- ListKeyChanges reads keys by change time.
CREATE INDEX kms_keys_by_update_time ON kms_keys (update_time);
