//! Regression tests for attacks found in the security review of the running stack, each
//! named after the attack, through real servers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase, on_each_backend};
use tonic::Code;

use crate::helpers::{Stack, assert_status, new_credential};

fn hydrate_request(
    name: &str,
    base_config: String,
    paths: Vec<(String, String)>,
) -> pb::HydrateConfigRequest {
    pb::HydrateConfigRequest {
        name: name.to_owned(),
        base_config,
        paths: paths.into_iter().collect(),
    }
}

#[tokio::test]
async fn hydrate_with_a_fifty_thousand_segment_pointer_is_refused_and_the_server_stays_up() {
    let stack = Stack::spawn(TestDatabase::create(Backend::Sqlite).await.unwrap()).await;
    let created = stack
        .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
        .await;
    let mut client = stack.client().await;
    let attack = hydrate_request(
        &created.name,
        "{}".into(),
        vec![("/a".repeat(50_000), "TOKEN".into())],
    );
    assert_status(
        client.hydrate_config(stack.as_user("admin", attack)).await,
        Code::InvalidArgument,
        "invalid paths",
    );
    // Nested as deep as the limits allow, base and pointer together.
    let base = format!("{}{}", r#"{"b":"#.repeat(31) + "{", "}".repeat(32));
    let deepest = hydrate_request(&created.name, base, vec![("/a".repeat(32), "TOKEN".into())]);
    client
        .hydrate_config(stack.as_user("admin", deepest))
        .await
        .unwrap();
    // Still serving, and still answering correctly.
    let fine = hydrate_request(
        &created.name,
        "{}".into(),
        vec![("/t".into(), "TOKEN".into())],
    );
    let out = client
        .hydrate_config(stack.as_user("admin", fine))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.config, r#"{"t":"ghp_a_token_value_1234"}"#);
    stack.shutdown().await;
}

#[tokio::test]
async fn hydrate_amplifying_one_large_value_over_thousands_of_paths_is_refused() {
    let stack = Stack::spawn(TestDatabase::create(Backend::Sqlite).await.unwrap()).await;
    let big = "v".repeat(60 * 1024);
    let created = stack.create("github", &[("BIG", &big)]).await;
    let mut client = stack.client().await;
    // The reviewed attack: a 30 KB request for a 180 MB answer.
    let paths = |n: usize| {
        (0..n)
            .map(|i| (format!("/k{i}"), "BIG".to_owned()))
            .collect()
    };
    assert_status(
        client
            .hydrate_config(stack.as_user(
                "admin",
                hydrate_request(&created.name, "{}".into(), paths(3000)),
            ))
            .await,
        Code::InvalidArgument,
        "at most 256 paths",
    );
    // Within the path count, still far past the output bound.
    assert_status(
        client
            .hydrate_config(stack.as_user(
                "admin",
                hydrate_request(&created.name, "{}".into(), paths(256)),
            ))
            .await,
        Code::InvalidArgument,
        "would exceed 1048576 bytes",
    );
    // At the bound: 16 paths make 983 KB and are answered.
    let out = client
        .hydrate_config(stack.as_user(
            "admin",
            hydrate_request(&created.name, "{}".into(), paths(16)),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(out.config.len() <= 1024 * 1024 && out.config.len() > 16 * 60 * 1024);
    // A base config too large, or nested too deep, is named as such.
    let huge = format!(r#"{{"p":"{}"}}"#, "x".repeat(65_536));
    assert_status(
        client
            .hydrate_config(stack.as_user("admin", hydrate_request(&created.name, huge, paths(1))))
            .await,
        Code::InvalidArgument,
        "invalid base_config: at most 65536 bytes",
    );
    let deep = format!("{}{}", r#"{"b":"#.repeat(32) + "{", "}".repeat(33));
    assert_status(
        client
            .hydrate_config(stack.as_user("admin", hydrate_request(&created.name, deep, paths(1))))
            .await,
        Code::InvalidArgument,
        "invalid base_config: nested at most 32 levels",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_value_sealed_to_one_tenant_replayed_into_another_tenant_is_refused() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let mut client = stack.client().await;
        let sealing_key = |who: &'static str, tenant: &str| {
            stack.as_user(
                who,
                pb::GetSealingKeyRequest {
                    parent: format!("tenants/{tenant}"),
                },
            )
        };
        let acme = client
            .get_sealing_key(sealing_key("admin", "acme"))
            .await
            .unwrap()
            .into_inner();
        let globex = client
            .get_sealing_key(sealing_key("other", "globex"))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(acme.public_key, globex.public_key);
        assert!(acme.kid.starts_with("tenants/acme/"), "{}", acme.kid);
        assert!(globex.kid.starts_with("tenants/globex/"), "{}", globex.kid);

        // A value acme sealed, as an attacker in globex captured it.
        let public_key: [u8; 32] = STANDARD
            .decode(&acme.public_key)
            .unwrap()
            .try_into()
            .unwrap();
        let sealed = pb::SealedValue {
            ciphertext: STANDARD
                .encode(coffer_crypto::sealed::seal(&public_key, b"acme's provider key").unwrap()),
            kid: acme.kid.clone(),
        };
        let mut replay = new_credential("stolen", &[]);
        replay.parent = "tenants/globex".into();
        replay.sealed_env = [("TOKEN".to_owned(), sealed.clone())].into();
        assert_status(
            client
                .create_credential(stack.as_user("other", replay))
                .await,
            Code::FailedPrecondition,
            "not a key of tenant globex",
        );
        // Nothing was stored in globex; the same box still works where it belongs.
        let listed = client
            .list_credentials(stack.as_user(
                "other",
                pb::ListCredentialsRequest {
                    parent: "tenants/globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.credentials.is_empty());
        let mut own = new_credential("github", &[]);
        own.sealed_env = [("TOKEN".to_owned(), sealed)].into();
        let created = client
            .create_credential(stack.as_user("admin", own))
            .await
            .unwrap()
            .into_inner();
        let revealed = stack.reveal(&created.name).await.unwrap();
        assert_eq!(revealed.env["TOKEN"], "acme's provider key");
        stack.shutdown().await;
    })
    .await;
}

/// An auth-service client with the certificate `name`, for the stack's auth-service.
async fn auth_client(
    stack: &Stack,
    name: &str,
) -> pb::auth_service_client::AuthServiceClient<tonic::transport::Channel> {
    let material = stack
        .ca
        .issue_material(name, coffer_transport::dev_ca::Usage::Client)
        .unwrap();
    pb::auth_service_client::AuthServiceClient::new(
        coffer_test_support::connect(stack.auth_service.addr, material.client_config("127.0.0.1"))
            .await
            .unwrap(),
    )
}

fn with_bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn list_acme() -> pb::ListCredentialsRequest {
    pb::ListCredentialsRequest {
        parent: "tenants/acme".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_token_exchanged_for_a_revoked_api_key_is_refused_everywhere_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let mut auth = auth_client(&stack, "gateway").await;
        let mut credentials = stack.client().await;
        let admin = stack.tokens["admin"].clone();
        let create = |display_name: &str| pb::CreateApiKeyRequest {
            parent: "tenants/acme".into(),
            display_name: display_name.into(),
            ..Default::default()
        };
        let key = auth
            .create_api_key(with_bearer(&admin, create("laptop")))
            .await
            .unwrap()
            .into_inner();
        let exchanged = auth
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                key: key.key.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        // Keys created with the key, or with the token exchanged for it, derive from it.
        let by_token = auth
            .create_api_key(with_bearer(&exchanged, create("from the token")))
            .await
            .unwrap()
            .into_inner()
            .key;
        let by_key = auth
            .create_api_key(with_bearer(&key.key, create("from the key")))
            .await
            .unwrap()
            .into_inner()
            .key;
        for bearer in [&exchanged, &by_token, &by_key] {
            credentials
                .list_credentials(with_bearer(bearer, list_acme()))
                .await
                .unwrap();
        }

        auth.revoke_api_key(with_bearer(
            &admin,
            pb::RevokeApiKeyRequest {
                name: key.api_key.unwrap().name,
            },
        ))
        .await
        .unwrap();
        // auth-service: at once.
        assert_status(
            auth.get_tenant(with_bearer(
                &exchanged,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        assert_status(
            auth.create_api_key(with_bearer(&exchanged, create("escape")))
                .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        // credential-service, which verifies the JWT locally: within a second.
        let started = std::time::Instant::now();
        loop {
            let listed = credentials
                .list_credentials(with_bearer(&exchanged, list_acme()))
                .await;
            match listed {
                Err(status) if status.code() == Code::Unauthenticated => break,
                other => assert!(
                    started.elapsed() < std::time::Duration::from_secs(1),
                    "still accepted after {:?}: {other:?}",
                    started.elapsed()
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for derived in [&by_token, &by_key] {
            assert_status(
                credentials
                    .list_credentials(with_bearer(derived, list_acme()))
                    .await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_expired_api_key_is_refused_at_once_and_its_exchanged_token_expires_with_it() {
    let stack = Stack::spawn(TestDatabase::create(Backend::Sqlite).await.unwrap()).await;
    let mut auth = auth_client(&stack, "gateway").await;
    let mut credentials = stack.client().await;
    let key = auth
        .create_api_key(with_bearer(
            &stack.tokens["admin"],
            pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                display_name: "short".into(),
                ttl_seconds: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let expiry = key.api_key.unwrap().expire_time.unwrap().seconds;
    let exchanged = auth
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            key: key.key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(exchanged.expires_in <= 2, "{}", exchanged.expires_in);
    let payload = exchanged.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["exp"].as_i64().unwrap() <= expiry, "{claims}");
    assert_eq!(claims["akid"], key.key[7..19]);
    // Used (and cached) while valid...
    credentials
        .list_credentials(with_bearer(&key.key, list_acme()))
        .await
        .unwrap();
    // ...and refused from the first second past its expiry, cache or not.
    let past = u64::try_from(expiry + 1).unwrap();
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < past
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_status(
        credentials
            .list_credentials(with_bearer(&key.key, list_acme()))
            .await,
        Code::Unauthenticated,
        "invalid credentials",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn denied_requests_cannot_grow_the_audit_log_at_will() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
            .await;
        let mut client = stack.client().await;
        let audit_events = |client: &mut crate::helpers::Client| {
            let request = stack.as_user(
                "admin",
                pb::ListAuditEventsRequest {
                    parent: "tenants/acme".into(),
                    page_size: 1000,
                    ..Default::default()
                },
            );
            let mut client = client.clone();
            async move {
                client
                    .list_audit_events(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .events
            }
        };
        let before = audit_events(&mut client).await.len();
        // A viewer (no credential:reveal) asks for 50 made-up ids, then 50 times for a real
        // one.
        for i in 0..50 {
            let request = pb::RevealCredentialRequest {
                name: format!("tenants/acme/credentials/{i:032x}"),
            };
            assert_status(
                client
                    .reveal_credential(stack.as_user("viewer", request))
                    .await,
                Code::PermissionDenied,
                "permission denied",
            );
        }
        assert_eq!(
            audit_events(&mut client).await.len(),
            before,
            "unknown ids were audited"
        );
        for _ in 0..50 {
            let request = pb::RevealCredentialRequest {
                name: created.name.clone(),
            };
            assert_status(
                client
                    .reveal_credential(stack.as_user("viewer", request))
                    .await,
                Code::PermissionDenied,
                "permission denied",
            );
        }
        let events = audit_events(&mut client).await;
        let denials = events.iter().filter(|e| e.outcome == "denied").count();
        assert_eq!(
            denials, 10,
            "one budget of denials is audited, the rest counted"
        );
        let metrics = stack.metrics().await;
        assert!(
            metrics.contains("coffer_credential_denied_total 100"),
            "{metrics}"
        );
        assert!(
            metrics.contains("coffer_credential_denied_unaudited_total 90"),
            "{metrics}"
        );
        stack.shutdown().await;
    })
    .await;
}

async fn verify_chain(
    stack: &Stack,
    expected_head: Option<pb::AuditHead>,
) -> pb::VerifyAuditChainResponse {
    stack
        .client()
        .await
        .verify_audit_chain(stack.as_user(
            "admin",
            pb::VerifyAuditChainRequest {
                parent: "tenants/acme".into(),
                expected_head,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// A credential and `reveals` reveals of it: `1 + reveals` events in acme's chain.
async fn some_events(stack: &Stack, reveals: usize) {
    let created = stack
        .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
        .await;
    for _ in 0..reveals {
        stack.reveal(&created.name).await.unwrap();
    }
}

async fn exec(raw: &mut sqlx::AnyConnection, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(raw)
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_the_newest_audit_events_is_detected() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        some_events(&stack, 3).await;
        let intact = verify_chain(&stack, None).await;
        assert!(intact.valid);
        assert_eq!(intact.head.as_ref().unwrap().sequence, 4);
        let mut raw = stack.raw_database().await;
        exec(
            &mut raw,
            "DELETE FROM cred_audit_events WHERE tenant = 'acme' AND sequence = 4",
        )
        .await;
        let truncated = verify_chain(&stack, None).await;
        assert_eq!(
            (truncated.valid, truncated.first_broken_sequence),
            (false, 4)
        );
        assert!(truncated.head.is_none());
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_middle_audit_event_and_recomputing_plain_sha256_links_is_detected() {
    use coffer_credential_service::store::{AUDIT_GENESIS, NewAuditEvent, chain_hash};
    use sqlx::Row as _;
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        some_events(&stack, 3).await;
        let mut raw = stack.raw_database().await;
        // The attacker removes event 2, renumbers the rest and recomputes every link the
        // way an unkeyed chain is computed, then points the head at the new last event.
        exec(&mut raw, "DELETE FROM cred_audit_events WHERE tenant = 'acme' AND sequence = 2").await;
        exec(
            &mut raw,
            "UPDATE cred_audit_events SET sequence = sequence - 1 WHERE tenant = 'acme' AND sequence > 2",
        )
        .await;
        let rows = sqlx::query(
            "SELECT sequence, time, actor, action, credential, outcome, request_id \
             FROM cred_audit_events WHERE tenant = 'acme' ORDER BY sequence",
        )
        .fetch_all(&mut raw)
        .await
        .unwrap();
        let mut previous = AUDIT_GENESIS.to_owned();
        for row in &rows {
            let (actor, action, credential, outcome, request_id): (String, String, String, String, String) =
                (row.get(2), row.get(3), row.get(4), row.get(5), row.get(6));
            let sequence: i64 = row.get(0);
            let event = NewAuditEvent {
                tenant: "acme",
                actor: &actor,
                action: &action,
                credential: &credential,
                outcome: &outcome,
                request_id: &request_id,
                time: row.get(1),
            };
            let hash = chain_hash(&previous, sequence, &event);
            sqlx::query(
                "UPDATE cred_audit_events SET previous_hash = $1, hash = $2 \
                 WHERE tenant = 'acme' AND sequence = $3",
            )
            .bind(&previous)
            .bind(&hash)
            .bind(sequence)
            .execute(&mut raw)
            .await
            .unwrap();
            previous = hash;
        }
        sqlx::query("UPDATE cred_audit_heads SET sequence = 3, link = $1 WHERE tenant = 'acme'")
            .bind(&previous)
            .execute(&mut raw)
            .await
            .unwrap();
        let rewritten = verify_chain(&stack, None).await;
        assert_eq!((rewritten.valid, rewritten.first_broken_sequence), (false, 1));
        // Passing the rows off as a chain from before keyed links, without a head, fails too.
        exec(&mut raw, "UPDATE cred_audit_events SET mac_version = 1 WHERE tenant = 'acme'").await;
        exec(&mut raw, "DELETE FROM cred_audit_heads WHERE tenant = 'acme'").await;
        let legacy = verify_chain(&stack, None).await;
        assert_eq!((legacy.valid, legacy.first_broken_sequence), (false, 1));
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_chain_rolled_back_with_its_head_fails_against_a_later_exported_head() {
    use sqlx::Row as _;
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        some_events(&stack, 1).await;
        let mut raw = stack.raw_database().await;
        // The attacker keeps a copy of the head at sequence 2 ...
        let old_head =
            sqlx::query("SELECT sequence, link, mac FROM cred_audit_heads WHERE tenant = 'acme'")
                .fetch_one(&mut raw)
                .await
                .unwrap();
        let (old_link, old_mac): (String, String) = (old_head.get(1), old_head.get(2));
        let created = stack
            .create("second", &[("TOKEN", "ghp_another_value_5678")])
            .await;
        stack.reveal(&created.name).await.unwrap();
        // ... while the operator exports the head at sequence 4.
        let exported = verify_chain(&stack, None).await.head.unwrap();
        assert_eq!(exported.sequence, 4);
        // Rolled back consistently: events 3 and 4 gone, the old head put back.
        exec(
            &mut raw,
            "DELETE FROM cred_audit_events WHERE tenant = 'acme' AND sequence > 2",
        )
        .await;
        sqlx::query(
            "UPDATE cred_audit_heads SET sequence = 2, link = $1, mac = $2 WHERE tenant = 'acme'",
        )
        .bind(&old_link)
        .bind(&old_mac)
        .execute(&mut raw)
        .await
        .unwrap();
        assert!(
            verify_chain(&stack, None).await.valid,
            "the rollback is self-consistent"
        );
        let against = verify_chain(&stack, Some(exported.clone())).await;
        assert_eq!((against.valid, against.first_broken_sequence), (false, 3));
        // An exported head with a forged MAC is refused as such.
        let mut forged = exported;
        forged.sequence = 2;
        forged.link = old_link;
        forged.mac = "0".repeat(64);
        let forged = verify_chain(&stack, Some(forged)).await;
        assert!(!forged.valid);
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn chains_from_before_keyed_links_are_relinked_at_start_if_intact() {
    use coffer_credential_service::store::{AUDIT_GENESIS, NewAuditEvent, chain_hash};
    use sqlx::Row as _;
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        some_events(&stack, 2).await;
        // Turn the chain into what an older version wrote: unkeyed links, no head.
        let mut raw = stack.raw_database().await;
        let rows = sqlx::query(
            "SELECT sequence, time, actor, action, credential, outcome, request_id \
             FROM cred_audit_events WHERE tenant = 'acme' ORDER BY sequence",
        )
        .fetch_all(&mut raw)
        .await
        .unwrap();
        let mut previous = AUDIT_GENESIS.to_owned();
        for row in &rows {
            let (actor, action, credential, outcome, request_id): (
                String,
                String,
                String,
                String,
                String,
            ) = (row.get(2), row.get(3), row.get(4), row.get(5), row.get(6));
            let sequence: i64 = row.get(0);
            let hash = chain_hash(
                &previous,
                sequence,
                &NewAuditEvent {
                    tenant: "acme",
                    actor: &actor,
                    action: &action,
                    credential: &credential,
                    outcome: &outcome,
                    request_id: &request_id,
                    time: row.get(1),
                },
            );
            sqlx::query(
                "UPDATE cred_audit_events SET previous_hash = $1, hash = $2, mac_version = 1 \
                 WHERE tenant = 'acme' AND sequence = $3",
            )
            .bind(&previous)
            .bind(&hash)
            .bind(sequence)
            .execute(&mut raw)
            .await
            .unwrap();
            previous = hash;
        }
        exec(&mut raw, "DELETE FROM cred_audit_heads").await;
        assert!(
            !verify_chain(&stack, None).await.valid,
            "unkeyed links are never trusted"
        );
        stack.restart_credential_service().await;
        let upgraded = verify_chain(&stack, None).await;
        assert!(upgraded.valid);
        assert_eq!(upgraded.events_checked, 3);
        let legacy_left: i64 =
            sqlx::query("SELECT COUNT(*) FROM cred_audit_events WHERE mac_version = 1")
                .fetch_one(&mut raw)
                .await
                .unwrap()
                .get(0);
        assert_eq!(legacy_left, 0);
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_retired_key_version_stops_cached_data_keys_within_a_second() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github", &[("TOKEN", "ghp_a_token_value_1234")])
            .await;
        // Served from the data-key cache.
        stack.reveal(&created.name).await.unwrap();
        let version = stack.rotate_tenant_key("acme").await;
        let material = stack
            .ca
            .issue_material("operator/test", coffer_transport::dev_ca::Usage::Client)
            .unwrap();
        let channel = coffer_test_support::connect(
            stack.key_service.addr,
            material.client_config("127.0.0.1"),
        )
        .await
        .unwrap();
        pb::key_service_client::KeyServiceClient::new(channel)
            .update_key_policy(pb::UpdateKeyPolicyRequest {
                name: "tenants/acme/keys/credentials".into(),
                min_decryption_version: Some(version),
                ..Default::default()
            })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            match stack.reveal(&created.name).await {
                Err(status) => {
                    assert_ne!(status.code(), Code::Ok);
                    break;
                }
                Ok(_) => assert!(
                    started.elapsed() < std::time::Duration::from_secs(1),
                    "the retired version still decrypts after {:?}",
                    started.elapsed()
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        stack.shutdown().await;
    })
    .await;
}
