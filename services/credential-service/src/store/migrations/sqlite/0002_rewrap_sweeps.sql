-- Progress of re-wrap sweeps, one row per tenant, saved after every page so a sweep resumes.
CREATE TABLE cred_rewrap_sweeps (
    tenant         TEXT   PRIMARY KEY,
    target_version BIGINT NOT NULL,
    cursor         TEXT   NOT NULL,
    rewrapped      BIGINT NOT NULL,
    failed         BIGINT NOT NULL,
    update_time    BIGINT NOT NULL
);
