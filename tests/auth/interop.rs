//! Independent implementations agree: PyJWT verifies issued tokens against GetJwks, and
//! Python's bcrypt verifies the stored password hashes.

use std::process::Command;

use coffer_proto::pb;
use coffer_test_support::{on_each_backend, python_with, workspace_root};
use sqlx::{Connection as _, Row as _};

use crate::helpers::{PASSWORD, Stack};

#[tokio::test]
async fn pyjwt_verifies_issued_tokens_and_python_bcrypt_verifies_stored_hashes() {
    let Some(python) = python_with(&["jwt", "cryptography", "bcrypt"]) else {
        return;
    };
    on_each_backend(|db| {
        let python = python.clone();
        async move {
            let stack = Stack::spawn(db).await;
            stack
                .tenant_with_user("acme", "alice", &["developer"])
                .await;
            let token = stack.login("acme", "alice").await.access_token;
            let keys = stack
                .operator()
                .get_jwks(pb::GetJwksRequest {})
                .await
                .unwrap()
                .into_inner()
                .keys;
            let jwks = serde_json::json!({ "keys": keys.iter().map(|k| serde_json::json!({
                "kty": k.kty, "kid": k.kid, "alg": k.alg, "use": k.r#use, "n": k.n, "e": k.e,
            })).collect::<Vec<_>>() });

            sqlx::any::install_default_drivers();
            let key = stack
                .operator()
                .create_api_key(pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    principal: "tenants/acme/principals/alice".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .key;
            let secret_part = coffer_crypto::apikey::ApiKey::parse(&key)
                .unwrap()
                .expose_secret_part()
                .to_owned();
            let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
                .await
                .unwrap();
            let password_hash: String =
                sqlx::query("SELECT password_hash FROM auth_principals WHERE id = 'alice'")
                    .fetch_one(&mut raw)
                    .await
                    .unwrap()
                    .get(0);
            let key_hash: String = sqlx::query("SELECT secret_hash FROM auth_api_keys")
                .fetch_one(&mut raw)
                .await
                .unwrap()
                .get(0);

            let dir = tempfile::tempdir().unwrap();
            let write = |name: &str, contents: &[u8]| {
                std::fs::write(dir.path().join(name), contents).unwrap()
            };
            write("jwks.json", &serde_json::to_vec(&jwks).unwrap());
            write("token", token.as_bytes());
            write("issuer", b"https://coffer.local");
            write("audience", b"coffer");
            write(
                "bcrypt.json",
                &serde_json::to_vec(&[[PASSWORD, &password_hash], [&secret_part, &key_hash]])
                    .unwrap(),
            );
            let output = Command::new(&python)
                .arg(workspace_root().join("scripts/interop/pyjwt_check.py"))
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let verified: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.path().join("verified.json")).unwrap())
                    .unwrap();
            assert_eq!(verified["sub"], "alice");
            assert_eq!(verified["tenant"], "acme");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("bcrypt.txt")).unwrap(),
                "match mismatch\nmatch mismatch",
                "password and API-key hashes"
            );
            stack.shutdown().await;
        }
    })
    .await;
}
