//! Zero-knowledge credentials: a client-encrypted blob stored (still envelope-encrypted at
//! rest) and returned as is; masking, validation, reveal and hydrate refuse with a reason.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;
use tonic::Code;

use crate::helpers::{Stack, assert_status, new_credential};

const BLOB: &[u8] = b"client-side-ciphertext:0123456789abcdef";

#[tokio::test]
async fn opaque_entries_are_stored_and_returned_but_never_read() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let mut client = stack.client().await;
        let opaque = |blob: &[u8]| pb::OpaqueEntry {
            blob: blob.to_vec(),
            metadata: [("alg".to_owned(), "age-x25519".to_owned())].into(),
        };
        let mut request = new_credential("zk", &[]);
        request.opaque = Some(opaque(BLOB));
        let created = client
            .create_credential(stack.as_user("admin", request))
            .await
            .unwrap()
            .into_inner();
        assert!(created.zero_knowledge && created.env.is_empty());
        assert_eq!(created.opaque.as_ref().unwrap().blob, BLOB);
        let fetched = client
            .get_credential(stack.as_user(
                "viewer",
                pb::GetCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched.opaque, created.opaque);

        assert_status(
            stack.reveal(&created.name).await,
            Code::FailedPrecondition,
            "zero-knowledge",
        );
        let validate = client
            .validate_credential(stack.as_user(
                "admin",
                pb::ValidateCredentialRequest {
                    name: created.name.clone(),
                    required_keys: vec!["A".into()],
                },
            ))
            .await;
        assert_status(validate, Code::FailedPrecondition, "zero-knowledge");
        let hydrate = client
            .hydrate_config(stack.as_user(
                "admin",
                pb::HydrateConfigRequest {
                    name: created.name.clone(),
                    base_config: "{}".into(),
                    paths: Default::default(),
                },
            ))
            .await;
        assert_status(hydrate, Code::FailedPrecondition, "zero-knowledge");
        let update = |set_env: Vec<(&str, &str)>,
                      set_opaque: Option<pb::OpaqueEntry>,
                      version: u64,
                      name: &str| {
            stack.as_user(
                "admin",
                pb::UpdateCredentialRequest {
                    name: name.to_owned(),
                    row_version: version,
                    set_env: set_env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    unset_env: vec![],
                    set_sealed_env: Default::default(),
                    set_opaque,
                },
            )
        };
        assert_status(
            client
                .update_credential(update(vec![("A", "x")], None, 1, &created.name))
                .await,
            Code::FailedPrecondition,
            "zero-knowledge",
        );
        let replaced = client
            .update_credential(update(
                vec![],
                Some(opaque(b"v2-ciphertext")),
                1,
                &created.name,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (replaced.row_version, replaced.opaque.unwrap().blob),
            (2, b"v2-ciphertext".to_vec())
        );

        let plain = stack.create("plain", &[("A", "1")]).await;
        assert_status(
            client
                .update_credential(update(vec![], Some(opaque(b"x")), 1, &plain.name))
                .await,
            Code::FailedPrecondition,
            "not zero-knowledge",
        );
        let mut both = new_credential("both", &[("A", "1")]);
        both.opaque = Some(opaque(BLOB));
        assert_status(
            client.create_credential(stack.as_user("admin", both)).await,
            Code::InvalidArgument,
            "opaque",
        );
        let mut empty = new_credential("empty", &[]);
        empty.opaque = Some(opaque(b""));
        assert_status(
            client
                .create_credential(stack.as_user("admin", empty))
                .await,
            Code::InvalidArgument,
            "opaque",
        );

        // Still envelope-encrypted at rest.
        let mut raw = stack.raw_database().await;
        for row in sqlx::query("SELECT ciphertext FROM cred_credentials")
            .fetch_all(&mut raw)
            .await
            .unwrap()
        {
            let bytes: Vec<u8> = row.get(0);
            assert!(!bytes.windows(13).any(|w| w == b"v2-ciphertext"));
        }
        stack.shutdown().await;
    })
    .await;
}
