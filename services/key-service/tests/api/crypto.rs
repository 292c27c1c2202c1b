//! Encrypt, Decrypt, GenerateDataKey, Rewrap and the batch forms, with their bad inputs and
//! tampering.

use coffer_proto::pb;
use coffer_proto::pb::{batch_decrypt_result, batch_rewrap_result};
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{assert_status, context_map, spawn_app};

const KEY: &str = "tenants/acme/keys/db";

#[tokio::test]
async fn encrypt_then_decrypt_roundtrips_in_binary_and_text_form() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let context = [("server", "github"), ("purpose", "token")];
        let response = app
            .client()
            .encrypt(pb::EncryptRequest {
                name: KEY.into(),
                plaintext: b"ghp_secret".to_vec(),
                encryption_context: context_map(&context),
                key_version: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.key_version, 1);
        assert!(response.ciphertext_text.starts_with("coffer:v1:"));
        assert!(!response.ciphertext.windows(10).any(|w| w == b"ghp_secret"));

        let decrypted = app
            .decrypt(KEY, &response.ciphertext, &context)
            .await
            .unwrap();
        assert_eq!(
            (decrypted.plaintext.as_slice(), decrypted.key_version),
            (&b"ghp_secret"[..], 1)
        );

        let from_text = app
            .client()
            .decrypt(pb::DecryptRequest {
                name: KEY.into(),
                input: Some(pb::decrypt_request::Input::CiphertextText(
                    response.ciphertext_text,
                )),
                encryption_context: context_map(&[("purpose", "token"), ("server", "github")]),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(from_text.plaintext, b"ghp_secret");
    })
    .await;
}

#[tokio::test]
async fn size_and_shape_limits_are_invalid_argument_naming_the_field() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let encrypt = |plaintext: Vec<u8>, context: Vec<(String, String)>| {
            let mut client = app.client();
            async move {
                client
                    .encrypt(pb::EncryptRequest {
                        name: KEY.into(),
                        plaintext,
                        encryption_context: context.into_iter().collect(),
                        key_version: None,
                    })
                    .await
            }
        };
        assert!(encrypt(vec![7; 64 * 1024], vec![]).await.is_ok());
        assert_status(
            encrypt(vec![7; 64 * 1024 + 1], vec![]).await,
            Code::InvalidArgument,
            "plaintext",
        );
        let too_many = (0..33).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_status(
            encrypt(b"x".to_vec(), too_many).await,
            Code::InvalidArgument,
            "encryption_context",
        );
        assert_status(
            encrypt(b"x".to_vec(), vec![(String::new(), "v".into())]).await,
            Code::InvalidArgument,
            "encryption_context",
        );
        let version_too_high = app
            .client()
            .encrypt(pb::EncryptRequest {
                name: KEY.into(),
                key_version: Some(2),
                ..Default::default()
            })
            .await;
        assert_status(version_too_high, Code::InvalidArgument, "key_version");

        let neither = app
            .client()
            .decrypt(pb::DecryptRequest {
                name: KEY.into(),
                ..Default::default()
            })
            .await;
        // Both forms at once cannot be expressed: `input` is a oneof.
        assert_status(
            neither,
            Code::InvalidArgument,
            "required: set ciphertext or ciphertext_text",
        );
        let bad_text = app
            .client()
            .decrypt(pb::DecryptRequest {
                name: KEY.into(),
                input: Some(pb::decrypt_request::Input::CiphertextText(
                    "vault:v1:AAAA".into(),
                )),
                ..Default::default()
            })
            .await;
        assert_status(bad_text, Code::InvalidArgument, "ciphertext_text");
        assert_status(
            app.decrypt(KEY, b"short", &[]).await,
            Code::InvalidArgument,
            "does not decrypt",
        );
    })
    .await;
}

#[tokio::test]
async fn every_changed_byte_of_a_ciphertext_fails_cleanly() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let ciphertext = app.encrypt(KEY, b"credential", &[("a", "b")]).await;
        for index in 0..ciphertext.len() {
            let mut tampered = ciphertext.clone();
            tampered[index] ^= 0x01;
            let status = app
                .decrypt(KEY, &tampered, &[("a", "b")])
                .await
                .unwrap_err();
            assert!(
                matches!(
                    status.code(),
                    Code::InvalidArgument | Code::FailedPrecondition
                ),
                "byte {index}: {status:?}"
            );
            assert!(!status.message().contains("credential"));
        }
        // Truncated and extended forms too.
        assert!(
            app.decrypt(KEY, &ciphertext[..ciphertext.len() - 1], &[("a", "b")])
                .await
                .is_err()
        );
        let mut extended = ciphertext.clone();
        extended.push(0);
        assert!(app.decrypt(KEY, &extended, &[("a", "b")]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn another_context_tenant_or_key_cannot_decrypt() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        for name in [KEY, "tenants/acme/keys/other", "tenants/evil/keys/db"] {
            app.create_key(name).await;
        }
        let ciphertext = app.encrypt(KEY, b"secret", &[("server", "github")]).await;
        assert!(
            app.decrypt(KEY, &ciphertext, &[("server", "github")])
                .await
                .is_ok()
        );
        for (name, context) in [
            (KEY, vec![("server", "gitlab")]),
            (KEY, vec![]),
            (KEY, vec![("server", "github"), ("extra", "x")]),
            ("tenants/acme/keys/other", vec![("server", "github")]),
            ("tenants/evil/keys/db", vec![("server", "github")]),
        ] {
            assert_status(
                app.decrypt(name, &ciphertext, &context).await,
                Code::InvalidArgument,
                "does not decrypt",
            );
        }
    })
    .await;
}

#[tokio::test]
async fn generated_data_keys_unwrap_with_decrypt() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let context = context_map(&[("credential", "c-1")]);
        let generated = app
            .client()
            .generate_data_key(pb::GenerateDataKeyRequest {
                name: KEY.into(),
                encryption_context: context.clone(),
                wrapped_only: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(generated.plaintext.len(), 32);
        let unwrapped = app
            .decrypt(KEY, &generated.ciphertext, &[("credential", "c-1")])
            .await
            .unwrap();
        assert_eq!(unwrapped.plaintext, generated.plaintext);
        assert!(
            app.decrypt(KEY, &generated.ciphertext, &[("credential", "c-2")])
                .await
                .is_err()
        );

        let wrapped_only = app
            .client()
            .generate_data_key(pb::GenerateDataKeyRequest {
                name: KEY.into(),
                encryption_context: context,
                wrapped_only: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(wrapped_only.plaintext.is_empty());
        let unwrapped = app
            .decrypt(KEY, &wrapped_only.ciphertext, &[("credential", "c-1")])
            .await
            .unwrap();
        assert_eq!(unwrapped.plaintext.len(), 32);
        // Every changed byte of a wrapped key fails too.
        for index in 0..wrapped_only.ciphertext.len() {
            let mut tampered = wrapped_only.ciphertext.clone();
            tampered[index] ^= 0x80;
            assert!(
                app.decrypt(KEY, &tampered, &[("credential", "c-1")])
                    .await
                    .is_err(),
                "byte {index}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn batch_decrypt_answers_each_item_on_its_own() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let good = app.encrypt(KEY, b"one", &[("i", "1")]).await;
        let mut tampered = app.encrypt(KEY, b"two", &[]).await;
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let items = vec![
            pb::BatchItem {
                ciphertext: good.clone(),
                encryption_context: context_map(&[("i", "1")]),
            },
            pb::BatchItem {
                ciphertext: tampered,
                encryption_context: context_map(&[]),
            },
            pb::BatchItem {
                ciphertext: good,
                encryption_context: context_map(&[("", "bad")]),
            },
        ];
        let results = app
            .client()
            .batch_decrypt(pb::BatchDecryptRequest {
                name: KEY.into(),
                items,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results.len(), 3);
        match &results[0].result {
            Some(batch_decrypt_result::Result::Ok(ok)) => assert_eq!(ok.plaintext, b"one"),
            other => panic!("item 0: {other:?}"),
        }
        match &results[1].result {
            Some(batch_decrypt_result::Result::Error(e)) => {
                assert_eq!(e.code, Code::InvalidArgument as i32);
                // A google.rpc.Status with the same details a lone call would carry.
                let status = coffer_server::status::from_rpc_status(e);
                assert_eq!(
                    coffer_server::status::reason(&status).as_deref(),
                    Some("UNDECRYPTABLE")
                );
            }
            other => panic!("item 1: {other:?}"),
        }
        match &results[2].result {
            Some(batch_decrypt_result::Result::Error(e)) => {
                assert!(e.message.contains("encryption_context"))
            }
            other => panic!("item 2: {other:?}"),
        }

        let empty = app
            .client()
            .batch_decrypt(pb::BatchDecryptRequest {
                name: KEY.into(),
                items: vec![],
            })
            .await;
        assert_status(empty, Code::InvalidArgument, "items");
        let too_many = vec![pb::BatchItem::default(); 1001];
        let too_many = app
            .client()
            .batch_decrypt(pb::BatchDecryptRequest {
                name: KEY.into(),
                items: too_many,
            })
            .await;
        assert_status(too_many, Code::InvalidArgument, "items");
    })
    .await;
}

#[tokio::test]
async fn rewrap_and_batch_rewrap_move_ciphertexts_to_the_primary_version() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;
        let first = app.encrypt(KEY, b"alpha", &[("k", "v")]).await;
        let second = app.encrypt(KEY, b"beta", &[]).await;
        app.rotate(KEY).await;

        let rewrapped = app
            .client()
            .rewrap(pb::RewrapRequest {
                name: KEY.into(),
                ciphertext: first.clone(),
                encryption_context: context_map(&[("k", "v")]),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (rewrapped.source_key_version, rewrapped.key_version),
            (1, 2)
        );
        assert_eq!(
            app.decrypt(KEY, &rewrapped.ciphertext, &[("k", "v")])
                .await
                .unwrap()
                .plaintext,
            b"alpha"
        );
        assert_status(
            app.client()
                .rewrap(pb::RewrapRequest {
                    name: KEY.into(),
                    ciphertext: first.clone(),
                    encryption_context: context_map(&[]),
                })
                .await,
            Code::InvalidArgument,
            "does not decrypt",
        );

        let items = vec![
            pb::BatchItem {
                ciphertext: first,
                encryption_context: context_map(&[("k", "v")]),
            },
            pb::BatchItem {
                ciphertext: vec![0; 10],
                encryption_context: context_map(&[]),
            },
            pb::BatchItem {
                ciphertext: second,
                encryption_context: context_map(&[]),
            },
        ];
        let results = app
            .client()
            .batch_rewrap(pb::BatchRewrapRequest {
                name: KEY.into(),
                items,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let versions: Vec<Option<u32>> = results
            .iter()
            .map(|r| match &r.result {
                Some(batch_rewrap_result::Result::Ok(ok)) => Some(ok.key_version),
                _ => None,
            })
            .collect();
        assert_eq!(versions, vec![Some(2), None, Some(2)]);
        let Some(batch_rewrap_result::Result::Ok(moved)) = &results[2].result else {
            unreachable!()
        };
        assert_eq!(
            app.decrypt(KEY, &moved.ciphertext, &[])
                .await
                .unwrap()
                .plaintext,
            b"beta"
        );
    })
    .await;
}
