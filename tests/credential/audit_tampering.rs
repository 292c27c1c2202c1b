//! Regression tests: the audit chain cannot be rewritten, truncated or rolled back without
//! VerifyAuditChain saying so (the attacks of the security review, on the raw rows).

use coffer_crypto::audit::{GENESIS, legacy_link};
use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use sqlx::Row as _;

use crate::helpers::Stack;

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

/// Recomputes acme's links the way an unkeyed chain is computed (plain SHA-256), as an
/// attacker with write access to the rows can; sets `mac_version` too. Returns the last link.
async fn relink_with_sha256(raw: &mut sqlx::AnyConnection, mac_version: i64) -> String {
    let rows = sqlx::query(
        "SELECT sequence, time, actor, action, credential, outcome, request_id \
         FROM cred_audit_events WHERE tenant = 'acme' ORDER BY sequence",
    )
    .fetch_all(&mut *raw)
    .await
    .unwrap();
    let mut previous = GENESIS.to_owned();
    for row in &rows {
        let text = |i: usize| row.get::<String, _>(i);
        let (actor, action, credential, outcome, request_id) =
            (text(2), text(3), text(4), text(5), text(6));
        let sequence: i64 = row.get(0);
        let time = row.get::<i64, _>(1).to_be_bytes();
        let fields: [&[u8]; 7] = [
            &time,
            b"acme",
            actor.as_bytes(),
            action.as_bytes(),
            credential.as_bytes(),
            outcome.as_bytes(),
            request_id.as_bytes(),
        ];
        let hash = legacy_link(&previous, sequence, &fields);
        sqlx::query(
            "UPDATE cred_audit_events SET previous_hash = $1, hash = $2, mac_version = $3 \
             WHERE tenant = 'acme' AND sequence = $4",
        )
        .bind(&previous)
        .bind(&hash)
        .bind(mac_version)
        .bind(sequence)
        .execute(&mut *raw)
        .await
        .unwrap();
        previous = hash;
    }
    previous
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
        let previous = relink_with_sha256(&mut raw, 2).await;
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
    on_each_backend(|db| async {
        let mut stack = Stack::spawn(db).await;
        some_events(&stack, 2).await;
        // Turn the chain into what an older version wrote: unkeyed links, no head.
        let mut raw = stack.raw_database().await;
        relink_with_sha256(&mut raw, 1).await;
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
