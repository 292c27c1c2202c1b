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
