//! Signing keys: stored only encrypted, published as a JWKS, rotated with overlap, picked up
//! by every replica; no key-service, no start.

use std::time::Duration;

use coffer_authn::jwks::{Jwk, Jwks};
use coffer_authn::jwt::Verifier;
use coffer_proto::pb;
use coffer_test_support::{Backend, TestDatabase, on_each_backend};
use sqlx::{Connection as _, Row as _};
use tonic::Code;

use crate::helpers::{Client, Stack, assert_status, bearer, config, spawn_auth};

async fn jwks(client: &mut Client) -> Jwks {
    let keys = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    Jwks {
        keys: keys
            .into_iter()
            .map(|k| Jwk {
                kty: k.kty,
                kid: k.kid,
                alg: k.alg,
                use_: k.r#use,
                n: k.n,
                e: k.e,
            })
            .collect(),
    }
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_verify_against_the_published_jwks_and_keys_are_stored_encrypted() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let tokens = stack.login("acme", "alice").await;
        let published = jwks(&mut stack.operator()).await;
        assert_eq!(published.keys.len(), 1);
        assert_eq!(kid_of(&tokens.access_token), published.keys[0].kid);
        let verifier = Verifier::new(
            "https://coffer.local",
            "coffer",
            &published,
            Duration::from_secs(5),
        )
        .unwrap();
        let verified = verifier.verify(&tokens.access_token).unwrap();
        assert_eq!(
            (
                verified.principal.tenant.as_str(),
                verified.principal.subject.as_str()
            ),
            ("acme", "alice")
        );
        assert_eq!(verified.claims.exp - verified.claims.iat, 15 * 60);

        sqlx::any::install_default_drivers();
        let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
            .await
            .unwrap();
        let row = sqlx::query("SELECT encrypted_private FROM auth_signing_keys")
            .fetch_one(&mut raw)
            .await
            .unwrap();
        let stored: String = row.get(0);
        assert!(
            stored.starts_with("coffer:v1:"),
            "the private key is key-service ciphertext"
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire_on_every_replica() {
    on_each_backend(|db| async {
        let clock = coffer_server::Clock::manual();
        let stack = Stack::spawn_with(db, |config| {
            config.tokens.access_token_ttl = Duration::from_secs(2);
            config.tokens.leeway = Duration::ZERO;
            config.clock = clock.clone();
        })
        .await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let old = stack.login("acme", "alice").await.access_token;
        let old_kid = kid_of(&old);
        let (mut replica, mut replica_client) = stack
            .second_instance(|config| {
                config.tokens.access_token_ttl = Duration::from_secs(2);
                config.tokens.leeway = Duration::ZERO;
                config.clock = clock.clone();
            })
            .await;

        let rotated = stack
            .operator()
            .rotate_signing_key(pb::RotateSigningKeyRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_ne!(rotated.kid, old_kid);
        assert_eq!(
            rotated.published_kids,
            vec![rotated.kid.clone(), old_kid.clone()]
        );
        let denied = stack
            .client_as("gateway")
            .await
            .rotate_signing_key(pb::RotateSigningKeyRequest {})
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");

        // New tokens use the new key; the old token still works as a bearer.
        let new = stack.login("acme", "alice").await.access_token;
        assert_eq!(kid_of(&new), rotated.kid);
        let get = pb::GetTenantRequest {
            name: "tenants/acme".into(),
        };
        assert!(
            stack
                .client_as("gateway")
                .await
                .get_tenant(bearer(&old, get.clone()))
                .await
                .is_ok()
        );

        // The replica picks the rotation up within its reload interval (200 ms here).
        let mut picked_up = false;
        for _ in 0..100 {
            if jwks(&mut replica_client).await.keys.len() == 2 {
                picked_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(picked_up, "the replica never published the new key");
        assert!(
            replica_client
                .get_tenant(bearer(&new, get.clone()))
                .await
                .is_ok()
        );

        // Once every token the old key signed has expired, it leaves the JWKS (both replicas
        // share the manual clock: no sleeping through the token lifetime).
        clock.advance(3);
        let mut gone = false;
        for _ in 0..100 {
            let keys = jwks(&mut stack.operator()).await.keys;
            if keys.len() == 1 && keys[0].kid == rotated.kid {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the retired key stayed published");
        assert_status(
            stack
                .client_as("gateway")
                .await
                .get_tenant(bearer(&old, get))
                .await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        replica.stop().await.unwrap();
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn without_key_service_the_auth_service_refuses_to_start() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let ca = coffer_transport::DevCa::generate("coffer.local").unwrap();
    // Nothing listens on this port: bind and drop a listener to find a free one.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = spawn_auth(&ca, config(&ca, &db, unused)).await;
    assert!(
        matches!(
            refused,
            Err(coffer_auth_service::Error::KeyServiceConnect(_))
        ),
        "{:?}",
        refused.err()
    );
}
