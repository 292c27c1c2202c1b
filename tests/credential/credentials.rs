//! Every RPC on credentials: happy paths, bad inputs, scopes and tenants.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, assert_status, new_credential};

const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn a_credential_lives_masked_and_reveals_only_on_request() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("github-1", &[("GITHUB_TOKEN", TOKEN), ("ORG", "acme")])
            .await;
        assert!(created.name.starts_with("tenants/acme/credentials/"));
        assert_eq!(
            created.env["GITHUB_TOKEN"],
            "ghp_********************************wxyz"
        );
        assert_eq!(created.env["ORG"], "********");
        assert_eq!(
            (created.row_version, created.created_by.as_str()),
            (1, "ada")
        );
        assert_eq!(created.configured_integrations, vec!["issues"]);

        let mut client = stack.client().await;
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
        assert_eq!(fetched, created);

        let revealed = stack.reveal(&created.name).await.unwrap();
        assert_eq!(revealed.env["GITHUB_TOKEN"], TOKEN);
        assert_eq!(revealed.row_version, 1);

        let validated = client
            .validate_credential(stack.as_user(
                "viewer",
                pb::ValidateCredentialRequest {
                    name: created.name.clone(),
                    required_keys: vec!["GITHUB_TOKEN".into(), "MISSING".into(), "ORG".into()],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (validated.valid, validated.missing),
            (false, vec!["MISSING".to_owned()])
        );

        let updated = client
            .update_credential(stack.as_user(
                "developer",
                pb::UpdateCredentialRequest {
                    name: created.name.clone(),
                    row_version: 1,
                    set_env: [("ORG".to_owned(), "globex-and-more-chars".to_owned())].into(),
                    unset_env: vec!["GITHUB_TOKEN".into()],
                    set_sealed_env: Default::default(),
                    set_opaque: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.row_version, 2);
        assert_eq!(updated.updated_by, "dev");
        assert_eq!(updated.env.len(), 1);
        assert_eq!(updated.env["ORG"], "glob*************hars");

        // A stale version changes nothing.
        let stale = client
            .update_credential(stack.as_user(
                "developer",
                pb::UpdateCredentialRequest {
                    name: created.name.clone(),
                    row_version: 1,
                    set_env: [("ORG".to_owned(), "overwritten".to_owned())].into(),
                    unset_env: vec![],
                    set_sealed_env: Default::default(),
                    set_opaque: None,
                },
            ))
            .await;
        assert_status(stale, Code::Aborted, "re-read and retry");
        assert_eq!(
            stack.reveal(&created.name).await.unwrap().env["ORG"],
            "globex-and-more-chars"
        );

        client
            .delete_credential(stack.as_user(
                "developer",
                pb::DeleteCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await
            .unwrap();
        let gone = client
            .get_credential(stack.as_user(
                "viewer",
                pb::GetCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await;
        assert_status(gone, Code::NotFound, &created.name);
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn lists_page_and_filter_masked() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        for (server, n) in [("a", 3), ("b", 2)] {
            for i in 0..n {
                stack
                    .create(server, &[("KEY", &format!("value-number-{i}-long-enough"))])
                    .await;
            }
        }
        let mut client = stack.client().await;
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_credentials(stack.as_user(
                    "viewer",
                    pb::ListCredentialsRequest {
                        parent: "tenants/acme".into(),
                        page_size: 2,
                        page_token: token.clone(),
                        server_id: "a".into(),
                        template_id: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            for credential in &page.credentials {
                assert_eq!(credential.server_id, "a");
                assert!(credential.env["KEY"].contains('*'));
            }
            seen.extend(page.credentials.into_iter().map(|c| c.name));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen.len(), 3);
        let all = client
            .list_credentials(stack.as_user(
                "viewer",
                pb::ListCredentialsRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.credentials.len(), 5);
        let too_big = client
            .list_credentials(stack.as_user(
                "viewer",
                pb::ListCredentialsRequest {
                    parent: "tenants/acme".into(),
                    page_size: 1001,
                    ..Default::default()
                },
            ))
            .await;
        assert_status(too_big, Code::InvalidArgument, "page_size");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn scopes_and_tenants_are_enforced() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack.create("github-1", &[("GITHUB_TOKEN", TOKEN)]).await;
        let mut client = stack.client().await;
        let reveal = |who: &str| {
            stack.as_user(
                who,
                pb::RevealCredentialRequest {
                    name: created.name.clone(),
                },
            )
        };
        assert_status(
            client.reveal_credential(reveal("viewer")).await,
            Code::PermissionDenied,
            "permission denied",
        );
        assert_status(
            client.reveal_credential(reveal("developer")).await,
            Code::PermissionDenied,
            "permission denied",
        );
        assert_status(
            client.reveal_credential(reveal("other")).await,
            Code::NotFound,
            &created.name,
        );
        let write = client
            .create_credential(stack.as_user("viewer", new_credential("x", &[])))
            .await;
        assert_status(write, Code::PermissionDenied, "permission denied");
        let other_tenant = client
            .get_credential(stack.as_user(
                "other",
                pb::GetCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await;
        assert_status(other_tenant, Code::NotFound, &created.name);
        let anonymous = client
            .get_credential(pb::GetCredentialRequest {
                name: created.name.clone(),
            })
            .await;
        assert_status(anonymous, Code::Unauthenticated, "invalid credentials");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_inputs_name_their_field() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let mut client = stack.client().await;
        let create = |request: pb::CreateCredentialRequest| {
            let request = stack.as_user("admin", request);
            let mut client = client.clone();
            async move { client.create_credential(request).await }
        };
        assert_status(
            create(new_credential("", &[])).await,
            Code::InvalidArgument,
            "server_id",
        );
        assert_status(
            create(new_credential("a b", &[])).await,
            Code::InvalidArgument,
            "server_id",
        );
        assert_status(
            create(new_credential("s", &[("1BAD", "x")])).await,
            Code::InvalidArgument,
            "`1BAD`",
        );
        let big = "x".repeat(64 * 1024);
        assert_status(
            create(new_credential("s", &[("BIG", &big)])).await,
            Code::InvalidArgument,
            "env",
        );
        let mut long_name = new_credential("s", &[]);
        long_name.server_name = "n".repeat(201);
        assert_status(
            create(long_name).await,
            Code::InvalidArgument,
            "server_name",
        );
        let mut other_parent = new_credential("s", &[]);
        other_parent.parent = "tenants/ACME".into();
        assert_status(create(other_parent).await, Code::InvalidArgument, "parent");

        let bad_name = client
            .get_credential(stack.as_user(
                "admin",
                pb::GetCredentialRequest {
                    name: "tenants/acme/credentials/nope".into(),
                },
            ))
            .await;
        assert_status(bad_name, Code::InvalidArgument, "name");
        let missing = "tenants/acme/credentials/00000000000000000000000000000000";
        let unknown = client
            .get_credential(stack.as_user(
                "admin",
                pb::GetCredentialRequest {
                    name: missing.into(),
                },
            ))
            .await;
        assert_status(unknown, Code::NotFound, missing);
        let created = stack.create("s", &[("A", "1")]).await;
        let bad_unset = client
            .update_credential(stack.as_user(
                "admin",
                pb::UpdateCredentialRequest {
                    name: created.name.clone(),
                    row_version: 1,
                    set_env: Default::default(),
                    unset_env: vec!["no such-name".into()],
                    set_sealed_env: Default::default(),
                    set_opaque: None,
                },
            ))
            .await;
        assert_status(bad_unset, Code::InvalidArgument, "unset_env");
        let bad_required = client
            .validate_credential(stack.as_user(
                "admin",
                pb::ValidateCredentialRequest {
                    name: created.name,
                    required_keys: vec!["-".into()],
                },
            ))
            .await;
        assert_status(bad_required, Code::InvalidArgument, "required_keys");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused_and_audit_events_are_named() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut expired = new_credential("s", &[("A", "b")]);
        expired.expire_time = Some(prost_types::Timestamp {
            seconds: now - 60,
            nanos: 0,
        });
        let refused = stack
            .client()
            .await
            .create_credential(stack.as_user("admin", expired))
            .await;
        assert_status(
            refused,
            Code::InvalidArgument,
            "invalid expire_time: must be in the future",
        );
        let mut later = new_credential("s", &[("A", "b")]);
        later.expire_time = Some(prost_types::Timestamp {
            seconds: now + 3600,
            nanos: 0,
        });
        let created = stack
            .client()
            .await
            .create_credential(stack.as_user("admin", later))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.expire_time.unwrap().seconds, now + 3600);
        let events = stack
            .client()
            .await
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
        let first = events.first().unwrap();
        assert_eq!(
            first.name,
            format!("tenants/acme/auditEvents/{}", first.sequence)
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_page_token_is_refused_with_another_filter_or_parent() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        for server in ["a", "b", "c"] {
            stack.create(server, &[("A", "b")]).await;
        }
        let list = |server_id: &str, page_token: &str| pb::ListCredentialsRequest {
            parent: "tenants/acme".into(),
            page_size: 1,
            page_token: page_token.into(),
            server_id: server_id.into(),
            ..Default::default()
        };
        let mut client = stack.client().await;
        let first = client
            .list_credentials(stack.as_user("admin", list("", "")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.credentials.len(), 1);
        let token = first.next_page_token;
        assert!(!token.is_empty());
        // The same list goes on.
        let second = client
            .list_credentials(stack.as_user("admin", list("", &token)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.credentials.len(), 1);
        assert_ne!(second.credentials[0].name, first.credentials[0].name);
        // Another filter, or a made-up token: refused, naming the field.
        assert_status(
            client
                .list_credentials(stack.as_user("admin", list("b", &token)))
                .await,
            Code::InvalidArgument,
            "invalid page_token: not a token from a previous page of this list",
        );
        assert_status(
            client
                .list_credentials(stack.as_user("admin", list("", "c0ffee")))
                .await,
            Code::InvalidArgument,
            "invalid page_token",
        );
        stack.shutdown().await;
    })
    .await;
}
