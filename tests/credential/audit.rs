//! The audit log: every change, reveal and denial recorded, the chain verifiable, tampering
//! found, and no reveal without its event.

use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, new_credential};

#[tokio::test]
async fn every_action_is_recorded_and_tampering_is_found() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack.create("s", &[("A", "value")]).await;
        stack.reveal(&created.name).await.unwrap();
        let mut client = stack.client().await;
        // A viewer's reveal attempt is denied, and recorded.
        let _ = client
            .reveal_credential(stack.as_user(
                "viewer",
                pb::RevealCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await;
        client
            .delete_credential(stack.as_user(
                "admin",
                pb::DeleteCredentialRequest {
                    name: created.name.clone(),
                },
            ))
            .await
            .unwrap();

        let mut request = stack.as_user(
            "admin",
            pb::ListAuditEventsRequest {
                parent: "tenants/acme".into(),
                ..Default::default()
            },
        );
        request
            .metadata_mut()
            .insert("x-request-id", "req-42".parse().unwrap());
        let events = client
            .list_audit_events(request)
            .await
            .unwrap()
            .into_inner()
            .events;
        let summary: Vec<(u64, &str, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.sequence,
                    e.action.as_str(),
                    e.actor.as_str(),
                    e.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "create", "ada", "success"),
                (2, "reveal", "ada", "success"),
                (3, "credential:reveal", "vic", "denied"),
                (4, "delete", "ada", "success"),
            ]
        );
        assert!(events.iter().all(|e| e.credential == created.name));
        assert_eq!(events[1].previous_hash, events[0].hash);
        for event in &events {
            assert!(
                !format!("{event:?}").contains("value\""),
                "no secret in the log"
            );
        }

        let verify = || {
            let mut client = client.clone();
            let request = stack.as_user(
                "admin",
                pb::VerifyAuditChainRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            );
            async move {
                client
                    .verify_audit_chain(request)
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        let intact = verify().await;
        assert_eq!(
            (
                intact.valid,
                intact.events_checked,
                intact.first_broken_sequence
            ),
            (true, 4, 0)
        );

        // Rewrite one event's actor: the chain breaks exactly there.
        let mut raw = stack.raw_database().await;
        sqlx::query(
            "UPDATE cred_audit_events SET actor = 'mallory' WHERE tenant = 'acme' AND sequence = 2",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        let broken = verify().await;
        assert_eq!((broken.valid, broken.first_broken_sequence), (false, 2));

        // Another tenant's log is its own, and untouched.
        let other = client
            .verify_audit_chain(stack.as_user(
                "other",
                pb::VerifyAuditChainRequest {
                    parent: "tenants/globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((other.valid, other.events_checked), (true, 0));
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn no_reveal_without_its_audit_event() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack
            .create("s", &[("A", "never-shown-without-audit")])
            .await;
        let mut raw = stack.raw_database().await;
        sqlx::query("ALTER TABLE cred_audit_events RENAME TO cred_audit_events_gone")
            .execute(&mut raw)
            .await
            .unwrap();
        let refused = stack.reveal(&created.name).await.unwrap_err();
        assert!(
            matches!(refused.code(), Code::Internal | Code::Unavailable),
            "{refused:?}"
        );
        assert!(!refused.message().contains("never-shown"));
        stack.shutdown().await;
    })
    .await;
}

/// Concurrent reveals in two tenants share group commits (see `Store::audit`): each tenant
/// still gets one linear, verifiable chain holding exactly its own events.
#[tokio::test]
async fn concurrent_events_keep_one_linear_chain() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        let created = stack.create("s", &[("A", "value")]).await;
        let mut theirs = new_credential("t", &[("B", "theirs")]);
        theirs.parent = "tenants/globex".into();
        let other = stack
            .client()
            .await
            .create_credential(stack.as_user("other", theirs))
            .await
            .unwrap()
            .into_inner();
        let mut reveals = tokio::task::JoinSet::new();
        for i in 0..30 {
            let mut client = stack.client().await;
            let (who, name) = if i % 3 == 0 {
                ("other", other.name.clone())
            } else {
                ("admin", created.name.clone())
            };
            let request = stack.as_user(who, pb::RevealCredentialRequest { name });
            reveals.spawn(async move { client.reveal_credential(request).await });
        }
        while let Some(outcome) = reveals.join_next().await {
            outcome.unwrap().unwrap();
        }
        for (who, tenant, events) in [("admin", "acme", 21), ("other", "globex", 11)] {
            let verified = stack
                .client()
                .await
                .verify_audit_chain(stack.as_user(
                    who,
                    pb::VerifyAuditChainRequest {
                        parent: format!("tenants/{tenant}"),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            // One create and its reveals per tenant.
            assert_eq!(
                (verified.valid, verified.events_checked),
                (true, events),
                "{tenant}"
            );
        }
        // Every reveal's event went out in a group, and each group was timed.
        let metrics = stack.metrics().await;
        let value = |name: &str| {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        };
        assert_eq!(value("coffer_credential_audit_group_events_sum"), 30.0);
        let groups = value("coffer_credential_audit_group_events_count");
        assert!((1.0..=30.0).contains(&groups), "{groups} groups");
        assert_eq!(
            value("coffer_credential_audit_group_duration_seconds_count"),
            groups
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn audit_rpcs_page_and_refuse_bad_input() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        for i in 0..3 {
            stack.create(&format!("s{i}"), &[("A", "v")]).await;
        }
        let mut client = stack.client().await;
        let list = |page_token: &str, page_size: u32| {
            stack.as_user(
                "admin",
                pb::ListAuditEventsRequest {
                    parent: "tenants/acme".into(),
                    page_size,
                    page_token: page_token.into(),
                },
            )
        };
        let first = client
            .list_audit_events(list("", 2))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            first.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [1, 2]
        );
        let second = client
            .list_audit_events(list(&first.next_page_token, 2))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            second.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [3]
        );
        assert!(second.next_page_token.is_empty());
        let bad_token = client.list_audit_events(list("abc", 2)).await;
        assert_eq!(bad_token.unwrap_err().code(), Code::InvalidArgument);
        let too_big = client.list_audit_events(list("", 1001)).await;
        assert_eq!(too_big.unwrap_err().code(), Code::InvalidArgument);
        let viewer_log = client
            .list_audit_events(stack.as_user(
                "viewer",
                pb::ListAuditEventsRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert!(viewer_log.is_ok(), "viewers have org:read");
        let other_tenant = client
            .verify_audit_chain(stack.as_user(
                "admin",
                pb::VerifyAuditChainRequest {
                    parent: "tenants/globex".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_eq!(other_tenant.unwrap_err().code(), Code::NotFound);
        let bad_parent = client
            .verify_audit_chain(stack.as_user(
                "admin",
                pb::VerifyAuditChainRequest {
                    parent: "globex".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_eq!(bad_parent.unwrap_err().code(), Code::InvalidArgument);
        stack.shutdown().await;
    })
    .await;
}
