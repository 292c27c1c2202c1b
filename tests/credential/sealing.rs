//! Sealed-box intake through the service (values sealed by PyNaCl), and HydrateConfig.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_proto::pb;
use coffer_test_support::{on_each_backend, python_with, run_interop};
use tonic::Code;

use crate::helpers::{Stack, assert_status, new_credential};

/// Seals `messages` to `public_key` with PyNaCl.
fn pynacl_seal(python: &std::path::Path, public_key: &str, messages: &[&str]) -> Vec<String> {
    let output = run_interop(
        python,
        "pynacl_seal.py",
        &[public_key],
        &serde_json::to_vec(messages).unwrap(),
    );
    serde_json::from_slice(&output).unwrap()
}

#[tokio::test]
async fn values_sealed_by_pynacl_are_stored_and_intake_errors_are_distinct() {
    let Some(python) = python_with(&["nacl"]) else {
        return;
    };
    on_each_backend(|db| {
        let python = python.clone();
        async move {
            let stack = Stack::spawn(db).await;
            let mut client = stack.client().await;
            let key = client
                .get_sealing_key(stack.as_user(
                    "admin",
                    pb::GetSealingKeyRequest {
                        parent: "tenants/acme".into(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                (key.alg.as_str(), key.encoding.as_str(), key.max_size_bytes),
                ("libsodium-sealedbox", "base64", 65_536)
            );
            assert!(key.expires_at.is_some());
            let viewer = client
                .get_sealing_key(stack.as_user(
                    "viewer",
                    pb::GetSealingKeyRequest {
                        parent: "tenants/acme".into(),
                    },
                ))
                .await;
            assert_status(viewer, Code::PermissionDenied, "permission denied");

            let sealed = pynacl_seal(
                &python,
                &key.public_key,
                &["sk-sealed-by-pynacl-0001", "rotated-secret-value-02"],
            );
            let sealed_value = |ciphertext: &str| pb::SealedValue {
                ciphertext: ciphertext.into(),
                kid: key.kid.clone(),
            };
            let mut request = new_credential("sealed", &[("PLAIN", "in the clear")]);
            request.sealed_env = [("API_KEY".to_owned(), sealed_value(&sealed[0]))].into();
            let created = client
                .create_credential(stack.as_user("admin", request))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(created.env["API_KEY"], "sk-s****************0001");
            assert_eq!(
                stack.reveal(&created.name).await.unwrap().env["API_KEY"],
                "sk-sealed-by-pynacl-0001"
            );

            let updated = client
                .update_credential(stack.as_user(
                    "admin",
                    pb::UpdateCredentialRequest {
                        name: created.name.clone(),
                        row_version: 1,
                        set_env: Default::default(),
                        unset_env: vec![],
                        set_sealed_env: [("API_KEY".to_owned(), sealed_value(&sealed[1]))].into(),
                        set_opaque: None,
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(updated.row_version, 2);
            assert_eq!(
                stack.reveal(&created.name).await.unwrap().env["API_KEY"],
                "rotated-secret-value-02"
            );

            // Each intake failure, from its own bad input.
            let other_key = coffer_crypto::sealed::SealingKeyPair::generate().unwrap();
            let wrong_key =
                STANDARD.encode(coffer_crypto::sealed::seal(other_key.public_key(), b"x").unwrap());
            let public_key: [u8; 32] = STANDARD
                .decode(&key.public_key)
                .unwrap()
                .try_into()
                .unwrap();
            let too_large = STANDARD
                .encode(coffer_crypto::sealed::seal(&public_key, &vec![b'x'; 65_537]).unwrap());
            for (value, code, message) in [
                (
                    pb::SealedValue {
                        ciphertext: sealed[0].clone(),
                        kid: "tenants/acme/sealingKeys/0000".into(),
                    },
                    Code::FailedPrecondition,
                    "unknown or expired",
                ),
                (
                    pb::SealedValue {
                        ciphertext: sealed[0].clone(),
                        kid: "0000".into(),
                    },
                    Code::FailedPrecondition,
                    "not a key of tenant acme",
                ),
                (
                    sealed_value("***not base64***"),
                    Code::InvalidArgument,
                    "not valid base64",
                ),
                (
                    sealed_value(&wrong_key),
                    Code::InvalidArgument,
                    "decryption failed",
                ),
                (
                    sealed_value(&too_large),
                    Code::InvalidArgument,
                    "over 65536 bytes",
                ),
            ] {
                let mut request = new_credential("bad", &[]);
                request.sealed_env = [("V".to_owned(), value)].into();
                assert_status(
                    client
                        .create_credential(stack.as_user("admin", request))
                        .await,
                    code,
                    message,
                );
            }
            let mut both = new_credential("bad", &[("V", "x")]);
            both.sealed_env = [("V".to_owned(), sealed_value(&sealed[0]))].into();
            assert_status(
                client.create_credential(stack.as_user("admin", both)).await,
                Code::InvalidArgument,
                "both sealed",
            );
            stack.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn hydrate_merges_values_into_a_config_and_is_audited() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create(
                "github",
                &[("TOKEN", "ghp_hydrated_value_123"), ("ORG", "acme")],
            )
            .await;
        let mut client = stack.client().await;
        let request = |who: &str, paths: &[(&str, &str)]| {
            stack.as_user(
                who,
                pb::HydrateConfigRequest {
                    name: created.name.clone(),
                    base_config: r#"{"mcpServers":{"github":{"command":"github-mcp"}}}"#.into(),
                    paths: paths
                        .iter()
                        .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
                        .collect(),
                },
            )
        };
        let hydrated = client
            .hydrate_config(request(
                "admin",
                &[
                    ("/mcpServers/github/env/GITHUB_TOKEN", "TOKEN"),
                    ("/mcpServers/github/env/ORG", "ORG"),
                ],
            ))
            .await
            .unwrap()
            .into_inner();
        let config: serde_json::Value = serde_json::from_str(&hydrated.config).unwrap();
        assert_eq!(
            config["mcpServers"]["github"]["env"]["GITHUB_TOKEN"],
            "ghp_hydrated_value_123"
        );
        assert_eq!(config["mcpServers"]["github"]["command"], "github-mcp");

        assert_status(
            client
                .hydrate_config(request("viewer", &[("/a", "TOKEN")]))
                .await,
            Code::PermissionDenied,
            "permission denied",
        );
        assert_status(
            client
                .hydrate_config(request("admin", &[("/a", "NOPE")]))
                .await,
            Code::InvalidArgument,
            "`NOPE`",
        );
        assert_status(
            client
                .hydrate_config(request("admin", &[("a", "TOKEN")]))
                .await,
            Code::InvalidArgument,
            "starts with /",
        );

        let events = client
            .list_audit_events(stack.as_user(
                "admin",
                pb::ListAuditEventsRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert!(
            events
                .iter()
                .any(|e| e.action == "hydrate" && e.outcome == "success")
        );
        stack.shutdown().await;
    })
    .await;
}
