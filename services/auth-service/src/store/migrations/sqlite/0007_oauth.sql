-- The OAuth 2.1 authorization server's state. No secret is stored in the clear: client
-- secrets, request handles, sessions and codes are SHA-256 hashes of 256-bit random values.

-- Registered (RFC 7591) and pre-registered clients.
CREATE TABLE auth_oauth_clients (
    client_id     TEXT   PRIMARY KEY,
    -- 'registered' (dynamic registration) or 'preregistered' (an operator).
    origin        TEXT   NOT NULL CHECK (origin IN ('registered', 'preregistered')),
    client_name   TEXT   NOT NULL,
    -- JSON array of exact URIs.
    redirect_uris TEXT   NOT NULL,
    -- Space-separated grant types.
    grant_types   TEXT   NOT NULL,
    auth_method   TEXT   NOT NULL
                  CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post',
                                         'private_key_jwt')),
    secret_hash   TEXT,
    -- private_key_jwt: the client's public keys (a JWK Set).
    jwks          TEXT,
    application_type TEXT NOT NULL CHECK (application_type IN ('web', 'native')),
    -- A resource server's client: the resource whose tokens it may introspect.
    resource      TEXT,
    -- Client credentials: the service account it acts as, and its scopes.
    tenant        TEXT,
    principal_id  TEXT,
    scope         TEXT   NOT NULL,
    create_time   BIGINT NOT NULL
);

-- Authorization requests waiting for sign-in and consent (ten minutes at most).
CREATE TABLE auth_oauth_requests (
    handle_hash    TEXT   PRIMARY KEY,
    client_id      TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    -- Requested scopes (Coffer scopes only) and whether offline_access was asked for.
    scope          TEXT   NOT NULL,
    offline        BIGINT NOT NULL,
    -- The sign-in session that may decide it, once one signed in.
    session_hash   TEXT,
    expire_time    BIGINT NOT NULL
);

-- Browser sign-in sessions.
CREATE TABLE auth_oauth_sessions (
    session_hash TEXT   PRIMARY KEY,
    tenant       TEXT   NOT NULL,
    principal_id TEXT   NOT NULL,
    create_time  BIGINT NOT NULL,
    expire_time  BIGINT NOT NULL
);

-- Remembered consents (grants): a user allowed a client these scopes for a resource.
CREATE TABLE auth_oauth_consents (
    tenant       TEXT   NOT NULL,
    principal_id TEXT   NOT NULL,
    client_id    TEXT   NOT NULL,
    resource     TEXT   NOT NULL,
    scope        TEXT   NOT NULL,
    offline      BIGINT NOT NULL,
    create_time  BIGINT NOT NULL,
    PRIMARY KEY (tenant, principal_id, client_id, resource)
);

-- Authorization codes: single use; what the first use issued is recorded so that a second
-- use can revoke it.
CREATE TABLE auth_oauth_codes (
    code_hash      TEXT   PRIMARY KEY,
    client_id      TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    scope          TEXT   NOT NULL,
    offline        BIGINT NOT NULL,
    tenant         TEXT   NOT NULL,
    principal_id   TEXT   NOT NULL,
    expire_time    BIGINT NOT NULL,
    spent_time     BIGINT,
    -- What the exchange issued: the refresh family and the access token's id and expiry.
    family         TEXT,
    jti            TEXT,
    jti_expire_time BIGINT
);

-- Client assertions (RFC 7523) seen, by the SHA-256 of client id and jti, until they expire:
-- each is accepted once.
CREATE TABLE auth_oauth_assertions (
    jti_hash    TEXT   PRIMARY KEY,
    expire_time BIGINT NOT NULL
);

-- Refresh tokens issued to an OAuth client: bound to it and to the resource (the access
-- tokens' audience). Login and API-key tokens leave both empty.
ALTER TABLE auth_refresh_tokens ADD COLUMN client_id TEXT;
ALTER TABLE auth_refresh_tokens ADD COLUMN audience TEXT;
