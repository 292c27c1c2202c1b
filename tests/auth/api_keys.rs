//! API keys: issue once, verify (cached), exchange, scopes never escalate, revocation reaches
//! every replica within a second, roll with grace, malformed keys never
//! touch the database.

use std::time::{Duration, Instant};

use coffer_crypto::apikey::ApiKey;
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase, on_each_backend};
use sqlx::Connection as _;
use tonic::Code;

use crate::helpers::{Stack, assert_status, bearer, create_key, scope_list, verify};

#[tokio::test]
async fn keys_are_shown_once_verify_and_exchange_for_their_scopes_only() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut gateway = stack.client_as("gateway").await;
        let created = create_key(&mut gateway, &alice, "mcp:read org:read").await;
        let key = created.key.clone();
        assert!(key.starts_with("mcp_sk_") && ApiKey::parse(&key).is_ok());
        let meta = created.api_key.unwrap();
        assert_eq!(meta.principal, "tenants/acme/principals/alice");
        assert_eq!(meta.scopes.join(" "), "mcp:read org:read");
        assert!(meta.hint.starts_with("mcp_sk_") && meta.hint.contains("..."));
        assert!(!meta.hint.contains(&key[20..40]));

        let listed = gateway
            .list_api_keys(bearer(
                &alice,
                pb::ListApiKeysRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.api_keys.len(), 1);
        assert_eq!(listed.api_keys[0].name, meta.name);

        let mut credential_service = stack.client_as("credential-service").await;
        let verified = verify(&mut credential_service, &key).await.unwrap();
        assert_eq!(
            (verified.tenant.as_str(), verified.principal.as_str()),
            ("acme", "tenants/acme/principals/alice")
        );
        assert_eq!(verified.scopes.join(" "), "mcp:read org:read");
        // Cached now: verifying again answers the same.
        assert_eq!(
            verify(&mut credential_service, &key).await.unwrap(),
            verified
        );
        let denied = verify(&mut stack.client_as("random-app").await, &key).await;
        assert_status(denied, Code::PermissionDenied, "permission denied");

        let exchanged = gateway
            .exchange_api_key(pb::ExchangeApiKeyRequest { key: key.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(exchanged.scope, "mcp:read org:read");
        assert!(exchanged.refresh_token.is_empty());
        // The session token and the key itself work as bearers, within their scopes.
        for credential in [&exchanged.access_token, &key] {
            let tenant = gateway
                .get_tenant(bearer(
                    credential,
                    pb::GetTenantRequest {
                        name: "tenants/acme".into(),
                    },
                ))
                .await
                .unwrap();
            assert_eq!(tenant.into_inner().name, "tenants/acme");
            let escalate = gateway
                .create_principal(bearer(
                    credential,
                    crate::helpers::user_request("acme", "mallory", &["org_admin"]),
                ))
                .await;
            assert_status(escalate, Code::PermissionDenied, "permission denied");
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_never_grants_more_than_its_creator_holds() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "vera", &["viewer"]).await;
        let vera = stack.login("acme", "vera").await.access_token;
        let mut client = stack.client_as("gateway").await;
        // Viewers have no user:token scope, so they cannot mint keys at all.
        let refused = client
            .create_api_key(bearer(
                &vera,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(refused, Code::PermissionDenied, "permission denied");

        stack.create_user("acme", "dev", &["developer"]).await;
        let dev = stack.login("acme", "dev").await.access_token;
        let too_much = client
            .create_api_key(bearer(
                &dev,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    scopes: scope_list("credential:reveal"),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(too_much, Code::InvalidArgument, "credential:reveal");
        // A key made with a narrow key cannot be wider than that key.
        let narrow = create_key(&mut client, &dev, "mcp:read user:token")
            .await
            .key;
        let wider = client
            .create_api_key(bearer(
                &narrow,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    scopes: scope_list("mcp:write"),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(wider, Code::InvalidArgument, "mcp:write");
        let other = client
            .create_api_key(bearer(
                &dev,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    principal: "tenants/acme/principals/vera".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(other, Code::PermissionDenied, "permission denied");
        let unknown = client
            .create_api_key(bearer(
                &dev,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    scopes: scope_list("mcp:god"),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(unknown, Code::InvalidArgument, "unknown scope `mcp:god`");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn revocation_reaches_every_replica_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let created = create_key(&mut client, &alice, "mcp:read").await;
        let (mut replica, mut replica_client) = stack.second_instance(|_| {}).await;
        // Warm the replica's cache.
        assert!(verify(&mut replica_client, &created.key).await.is_ok());

        let revoked = client
            .revoke_api_key(bearer(
                &alice,
                pb::RevokeApiKeyRequest {
                    name: created.api_key.unwrap().name,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(revoked.revoke_time.is_some());
        assert_status(
            verify(&mut stack.operator(), &created.key).await,
            Code::Unauthenticated,
            "invalid credentials",
        );

        let revoked_at = Instant::now();
        let mut refused = false;
        while revoked_at.elapsed() < Duration::from_secs(1) {
            if verify(&mut replica_client, &created.key).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            refused,
            "the replica still accepted a revoked key after a second"
        );
        replica.stop().await.unwrap();
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rolling_keeps_the_old_secret_for_the_grace_period_only() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("gateway").await;
        let created = create_key(&mut client, &alice, "mcp:read").await;
        let name = created.api_key.unwrap().name;
        let roll = |grace: u64| pb::RollApiKeyRequest {
            name: name.clone(),
            grace_period: Some(prost_types::Duration {
                seconds: i64::try_from(grace).unwrap(),
                nanos: 0,
            }),
        };

        let too_long = client.roll_api_key(bearer(&alice, roll(604_801))).await;
        assert_status(
            too_long,
            Code::InvalidArgument,
            "invalid grace_period: at most 7 days",
        );
        let rolled = client
            .roll_api_key(bearer(&alice, roll(3600)))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(rolled.key, created.key);
        assert_eq!(
            ApiKey::parse(&rolled.key).unwrap().id(),
            ApiKey::parse(&created.key).unwrap().id()
        );
        let mut operator = stack.operator();
        assert!(verify(&mut operator, &rolled.key).await.is_ok());
        assert!(
            verify(&mut operator, &created.key).await.is_ok(),
            "old secret within the grace period"
        );

        let final_key = client
            .roll_api_key(bearer(&alice, roll(0)))
            .await
            .unwrap()
            .into_inner()
            .key;
        assert!(verify(&mut operator, &final_key).await.is_ok());
        for stale in [&created.key, &rolled.key] {
            assert_status(
                verify(&mut operator, stale).await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_keys_are_refused_without_touching_the_database() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let stack = Stack::spawn(db).await;
    stack
        .tenant_with_user("acme", "alice", &["org_admin"])
        .await;
    let alice = stack.login("acme", "alice").await.access_token;
    let key = create_key(&mut stack.client_as("gateway").await, &alice, "mcp:read")
        .await
        .key;

    // Break the table: from now on any lookup fails loudly.
    sqlx::any::install_default_drivers();
    let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE auth_api_keys RENAME TO auth_api_keys_moved")
        .execute(&mut raw)
        .await
        .unwrap();
    drop(raw);

    let mut operator = stack.operator();
    let fresh = ApiKey::generate().unwrap();
    let lookup = verify(&mut operator, fresh.expose_secret())
        .await
        .unwrap_err();
    assert_eq!(
        lookup.code(),
        Code::Internal,
        "a well-formed key does reach the database"
    );

    let mut bad_checksum = key.clone().into_bytes();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] = if bad_checksum[last] == b'A' {
        b'B'
    } else {
        b'A'
    };
    for malformed in [
        key.replacen("mcp_sk_", "mcp_pk_", 1),
        key[..key.len() - 1].to_owned(),
        format!("{key}0"),
        key.replacen(&key[20..21], "+", 1),
        String::from_utf8(bad_checksum).unwrap(),
        String::new(),
    ] {
        assert_status(
            verify(&mut operator, &malformed).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let clock = coffer_server::Clock::manual();
    let stack = Stack::spawn_with(db, |config| config.clock = clock.clone()).await;
    stack
        .tenant_with_user("acme", "alice", &["org_admin"])
        .await;
    let alice = stack.login("acme", "alice").await.access_token;
    let created = stack
        .client_as("gateway")
        .await
        .create_api_key(bearer(
            &alice,
            pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                ttl: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(created.api_key.unwrap().expire_time.is_some());
    let mut operator = stack.operator();
    assert!(verify(&mut operator, &created.key).await.is_ok());
    // Past the expiry on the service's clock (the cached verification included).
    clock.advance(2);
    assert_status(
        verify(&mut operator, &created.key).await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    stack.shutdown().await;
}

/// A stack whose auth-service runs one bcrypt check at a time at `cost`, and an `mcp:read` key
/// of acme's org admin alice (not yet verified, so not cached).
async fn one_bcrypt_slot(cost: u32) -> (Stack, String) {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let stack = Stack::spawn_with(db, |config| {
        config.bcrypt_concurrency = 1;
        config.bcrypt_cost = cost;
    })
    .await;
    stack
        .tenant_with_user("acme", "alice", &["org_admin"])
        .await;
    let alice = stack.login("acme", "alice").await.access_token;
    let key = create_key(&mut stack.client_as("gateway").await, &alice, "mcp:read")
        .await
        .key;
    (stack, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saturated_bcrypt_pool_refuses_uncached_checks_at_once_but_never_cached_ones() {
    // One slot and a slow cost, so concurrent uncached checks overlap for certain.
    let (stack, key) = one_bcrypt_slot(13).await;
    assert!(
        verify(&mut stack.operator(), &key).await.is_ok(),
        "now cached"
    );

    let mut uncached = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut client = stack.operator();
        let guess = ApiKey::generate().unwrap();
        uncached.spawn(async move { verify(&mut client, guess.expose_secret()).await });
    }
    let cached = verify(&mut stack.operator(), &key).await;
    assert!(
        cached.is_ok(),
        "a cached key waited behind bcrypt: {cached:?}"
    );
    let mut exhausted = 0;
    while let Some(outcome) = uncached.join_next().await {
        let status = outcome.unwrap().unwrap_err();
        match status.code() {
            Code::ResourceExhausted => exhausted += 1,
            Code::Unauthenticated => {}
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    assert!(
        exhausted >= 1,
        "no uncached check was refused while the only slot was busy"
    );
    stack.shutdown().await;
}

/// A burst of calls with one key that is not cached (new, or its entry just expired) runs
/// bcrypt once: the others wait for that check and are answered from the cache, instead of
/// each taking a slot of the bounded pool and being shed.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_with_one_uncached_key_runs_bcrypt_once_and_sheds_nothing() {
    // One slot: without coalescing, every call but the first would be refused.
    let (stack, key) = one_bcrypt_slot(10).await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (mut client, key) = (stack.operator(), key.clone());
        burst.spawn(async move { verify(&mut client, &key).await });
    }
    while let Some(outcome) = burst.join_next().await {
        let outcome = outcome.unwrap();
        assert!(outcome.is_ok(), "a call of the burst failed: {outcome:?}");
    }
    // A wrong key is never cached: a burst of it is checked one call at a time, each refused
    // as a wrong key (not shed), so a flood of one guess costs one slot, not the pool.
    let guess = ApiKey::generate().unwrap();
    let mut wrong = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (mut client, guess) = (stack.operator(), guess.expose_secret().to_owned());
        wrong.spawn(async move { verify(&mut client, &guess).await });
    }
    while let Some(outcome) = wrong.join_next().await {
        assert_status(
            outcome.unwrap(),
            Code::Unauthenticated,
            "invalid credentials",
        );
    }
    stack.shutdown().await;
}

/// PostgreSQL only: with the polls slowed to a minute, revocations and signing-key rotations
/// still reach the replica at once, through LISTEN/NOTIFY.
#[tokio::test]
async fn on_postgres_changes_reach_replicas_through_notify() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let slow_polls = |config: &mut coffer_auth_service::Config| {
        config.api_key_change_poll = Duration::from_secs(60);
        config.signing_key_refresh = Duration::from_secs(60);
    };
    let stack = Stack::spawn_with(db, slow_polls).await;
    stack
        .tenant_with_user("acme", "alice", &["org_admin"])
        .await;
    let alice = stack.login("acme", "alice").await.access_token;
    let mut client = stack.client_as("gateway").await;
    let created = create_key(&mut client, &alice, "mcp:read").await;
    let (mut replica, mut replica_client) = stack.second_instance(slow_polls).await;
    assert!(
        verify(&mut replica_client, &created.key).await.is_ok(),
        "cached on the replica"
    );

    client
        .revoke_api_key(bearer(
            &alice,
            pb::RevokeApiKeyRequest {
                name: created.api_key.unwrap().name,
            },
        ))
        .await
        .unwrap();
    let revoked_at = Instant::now();
    let mut refused = false;
    while revoked_at.elapsed() < Duration::from_secs(1) {
        if verify(&mut replica_client, &created.key).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "NOTIFY did not evict the replica's cached key within a second"
    );

    let rotated = stack
        .operator()
        .rotate_signing_key(pb::RotateSigningKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    let rotated_at = Instant::now();
    let mut published = false;
    while rotated_at.elapsed() < Duration::from_secs(2) {
        let keys = replica_client
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys;
        if keys.first().is_some_and(|k| k.kid == rotated.kid) {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        published,
        "NOTIFY did not bring the rotation to the replica"
    );
    replica.stop().await.unwrap();
    stack.shutdown().await;
}
