//! Two-step sign-in: TOTP enrollment, Login with a code or a recovery code, replay, removal,
//! who may do what, secrets only encrypted at rest, and failing closed without key-service.

use coffer_crypto::totp::{STEP, TotpSecret};
use coffer_proto::pb;
use coffer_server::Clock;
use coffer_test_support::on_each_backend;
use sqlx::{Connection as _, Row as _};
use tonic::Code;

use crate::helpers::{Client, PASSWORD, Stack, assert_status, bearer};

fn login(code: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        tenant_id: "acme".into(),
        username: "alice".into(),
        password: PASSWORD.into(),
        second_factor: code.into(),
    }
}

/// The code an authenticator app holding `secret` (base32) shows at `now`.
fn code(secret: &str, now: i64) -> String {
    TotpSecret::from_base32(secret).unwrap().code(now)
}

/// Enrolls and confirms alice's factor with her bearer `token`: the secret and the
/// recovery codes.
async fn enable(client: &mut Client, token: &str, clock: &Clock) -> (String, Vec<String>) {
    let enrollment = client
        .enroll_totp(bearer(token, pb::EnrollTotpRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let confirmed = client
        .confirm_totp(bearer(
            token,
            pb::ConfirmTotpRequest {
                code: code(&enrollment.secret, clock.now()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    (enrollment.secret, confirmed.recovery_codes)
}

/// Who acted in the audit chain's `action` events, oldest first (read from the database).
async fn audit_actors(stack: &Stack, action: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
        .await
        .unwrap();
    let actors =
        sqlx::query("SELECT actor FROM auth_audit_chain WHERE action = $1 ORDER BY sequence")
            .bind(action)
            .fetch_all(&mut raw)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
    raw.close().await.unwrap();
    actors
}

#[tokio::test]
async fn an_enrolled_user_logs_in_with_a_code_or_a_recovery_code_each_accepted_once() {
    on_each_backend(|db| async {
        let clock = Clock::manual();
        let stack = Stack::spawn_with(db, |config| {
            config.clock = clock.clone();
            // Enough for this test's deliberate failures; lockout has its own tests.
            config.lockout.max_failures = 20;
        })
        .await;
        stack
            .tenant_with_user("acme", "alice", &["developer"])
            .await;
        let token = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("cli").await;

        // Nothing to confirm before an enrollment.
        let early = client
            .confirm_totp(bearer(
                &token,
                pb::ConfirmTotpRequest {
                    code: "123456".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(early, Code::FailedPrecondition, "no enrollment is pending");

        let enrollment = client
            .enroll_totp(bearer(&token, pb::EnrollTotpRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(enrollment.account, "acme/alice");
        assert_eq!(enrollment.secret.len(), 32, "160 bits in base32");
        assert!(
            enrollment
                .uri
                .starts_with("otpauth://totp/Coffer%3Aacme%2Falice?secret="),
            "{}",
            enrollment.uri
        );
        // Until confirmed, the password alone still signs in.
        client.login(login("")).await.unwrap();

        // A wrong code does not confirm it.
        let wrong = client
            .confirm_totp(bearer(
                &token,
                pb::ConfirmTotpRequest {
                    code: code(&enrollment.secret, clock.now() + 10 * STEP),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(wrong, Code::InvalidArgument, "code");
        let now = clock.now();
        let confirmed = client
            .confirm_totp(bearer(
                &token,
                pb::ConfirmTotpRequest {
                    code: code(&enrollment.secret, now),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let recovery = confirmed.recovery_codes;
        assert_eq!(recovery.len(), 10);
        assert!(
            recovery
                .iter()
                .all(|c| c.len() == 19 && c.matches('-').count() == 3)
        );
        let distinct: std::collections::HashSet<_> = recovery.iter().collect();
        assert_eq!(distinct.len(), 10);

        // Enabled: a second enrollment is refused, and Login asks for the factor.
        let again = client
            .enroll_totp(bearer(&token, pb::EnrollTotpRequest::default()))
            .await;
        assert_status(again, Code::FailedPrecondition, "already enabled");
        let missing = client.login(login("")).await.unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);
        assert_eq!(
            coffer_server::status::reason(&missing).as_deref(),
            Some(coffer_auth_service::SECOND_FACTOR_REQUIRED)
        );
        // The code that confirmed the enrollment is spent: not even within its 30 s.
        let replayed = client.login(login(&code(&enrollment.secret, now))).await;
        assert_status(replayed, Code::Unauthenticated, "invalid credentials");
        let wrong_password = client
            .login(pb::LoginRequest {
                password: "wrong password!!".into(),
                ..login(&code(&enrollment.secret, now))
            })
            .await;
        assert_status(wrong_password, Code::Unauthenticated, "invalid credentials");

        // The next step's code works once.
        clock.advance(STEP);
        let current = code(&enrollment.secret, clock.now());
        let tokens = client.login(login(&current)).await.unwrap().into_inner();
        assert!(!tokens.access_token.is_empty());
        assert_status(
            client.login(login(&current)).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        // A code of a step before the last accepted one is refused too (window, no replay).
        assert_status(
            client
                .login(login(&code(&enrollment.secret, clock.now() - STEP)))
                .await,
            Code::Unauthenticated,
            "invalid credentials",
        );

        // A recovery code, typed however, works once.
        let typed = recovery[0].to_ascii_uppercase().replace('-', " ");
        client.login(login(&typed)).await.unwrap();
        assert_status(
            client.login(login(&recovery[0])).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        let status = client
            .get_totp(bearer(&token, pb::GetTotpRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(status.enabled);
        assert_eq!(status.recovery_codes_left, 9);
        assert_eq!(status.confirm_time.unwrap().seconds, now);

        // At rest: the secret only as key-service ciphertext, recovery codes only as hashes.
        sqlx::any::install_default_drivers();
        let mut raw = sqlx::AnyConnection::connect(&stack.database.url_in("coffer_auth"))
            .await
            .unwrap();
        let stored: String = sqlx::query("SELECT secret_ciphertext FROM auth_totp_factors")
            .fetch_one(&mut raw)
            .await
            .unwrap()
            .get(0);
        assert!(!stored.contains(&enrollment.secret));
        let hex: String = TotpSecret::from_base32(&enrollment.secret)
            .unwrap()
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!stored.contains(&hex));
        for row in sqlx::query("SELECT code_hash FROM auth_recovery_codes")
            .fetch_all(&mut raw)
            .await
            .unwrap()
        {
            let hash: String = row.get(0);
            assert_eq!(hash.len(), 64);
            assert!(
                recovery
                    .iter()
                    .all(|code| !hash.contains(&code.replace('-', "")))
            );
        }
        raw.close().await.unwrap();
        // Enabling joined the audit chain.
        assert_eq!(
            audit_actors(&stack, "second_factor.enable").await,
            ["alice"]
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn wrong_codes_count_toward_the_login_lockout() {
    on_each_backend(|db| async {
        let clock = Clock::manual();
        let stack = Stack::spawn_with(db, |config| config.clock = clock.clone()).await;
        stack
            .tenant_with_user("acme", "alice", &["developer"])
            .await;
        let token = stack.login("acme", "alice").await.access_token;
        let mut client = stack.client_as("cli").await;
        let (secret, _) = enable(&mut client, &token, &clock).await;
        clock.advance(STEP);
        // The right password with wrong codes: three failures lock the login (the test
        // configuration's limit), and then even the right code is refused.
        for wrong in ["000000", "111111", "222222"] {
            let refused = client.login(login(wrong)).await;
            assert_status(refused, Code::Unauthenticated, "invalid credentials");
        }
        let locked = client.login(login(&code(&secret, clock.now()))).await;
        assert_status(locked, Code::ResourceExhausted, "too many failed logins");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn only_the_user_enrolls_and_removing_needs_a_code_or_an_admin() {
    on_each_backend(|db| async {
        let clock = Clock::manual();
        let stack = Stack::spawn_with(db, |config| config.clock = clock.clone()).await;
        stack
            .tenant_with_user("acme", "alice", &["developer"])
            .await;
        stack.create_user("acme", "bob", &["developer"]).await;
        stack.create_user("acme", "root", &["org_admin"]).await;
        stack.tenant_with_user("other", "eve", &["org_admin"]).await;
        let alice = stack.login("acme", "alice").await.access_token;
        let bob = stack.login("acme", "bob").await.access_token;
        let admin = stack.login("acme", "root").await.access_token;
        let eve = stack.login("other", "eve").await.access_token;
        let mut client = stack.client_as("cli").await;

        // An operator cannot enroll anyone: the secret is the user's.
        let operator = stack
            .operator()
            .enroll_totp(pb::EnrollTotpRequest::default())
            .await;
        assert_status(operator, Code::PermissionDenied, "");
        // Nor can an API key of hers (or a token exchanged for one): a leaked key would lock
        // her out.
        let key = crate::helpers::create_key(&mut client, &alice, "user:token")
            .await
            .key;
        assert_status(
            client
                .enroll_totp(bearer(&key, pb::EnrollTotpRequest::default()))
                .await,
            Code::PermissionDenied,
            "",
        );
        let exchanged = client
            .exchange_api_key(pb::ExchangeApiKeyRequest { key: key.clone() })
            .await
            .unwrap()
            .into_inner()
            .access_token;
        assert_status(
            client
                .enroll_totp(bearer(&exchanged, pb::EnrollTotpRequest::default()))
                .await,
            Code::PermissionDenied,
            "",
        );
        let (secret, _) = enable(&mut client, &alice, &clock).await;

        // Another user of the tenant neither sees nor removes it; another tenant's admin
        // finds nothing.
        let parent = "tenants/acme/principals/alice".to_owned();
        let peek = client
            .get_totp(bearer(
                &bob,
                pb::GetTotpRequest {
                    parent: parent.clone(),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(peek, Code::NotFound, "");
        let remove = |token: &str, code: &str| {
            bearer(
                token,
                pb::RemoveTotpRequest {
                    parent: parent.clone(),
                    code: code.into(),
                    ..Default::default()
                },
            )
        };
        assert_status(
            client.remove_totp(remove(&bob, "")).await,
            Code::PermissionDenied,
            "",
        );
        assert_status(
            client.remove_totp(remove(&eve, "")).await,
            Code::NotFound,
            "",
        );

        // The user: only with a current code.
        assert_status(
            client.remove_totp(remove(&alice, "")).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        clock.advance(STEP);
        let removed = client
            .remove_totp(remove(&alice, &code(&secret, clock.now())))
            .await
            .unwrap()
            .into_inner();
        assert!(!removed.enabled);
        client.login(login("")).await.unwrap();

        // The tenant's admin, for a user who lost the device: no code.
        clock.advance(STEP);
        enable(&mut client, &alice, &clock).await;
        let removed = client
            .remove_totp(remove(&admin, ""))
            .await
            .unwrap()
            .into_inner();
        assert!(!removed.enabled && removed.recovery_codes_left == 0);
        client.login(login("")).await.unwrap();

        assert_eq!(
            audit_actors(&stack, "second_factor.remove").await,
            ["alice", "root"]
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn without_key_service_no_code_is_accepted() {
    let clock = Clock::manual();
    let db = coffer_test_support::TestDatabase::create(coffer_test_support::Backend::Sqlite)
        .await
        .unwrap();
    let mut stack = Stack::spawn_with(db, |config| config.clock = clock.clone()).await;
    stack
        .tenant_with_user("acme", "alice", &["developer"])
        .await;
    let token = stack.login("acme", "alice").await.access_token;
    let mut client = stack.client_as("cli").await;
    let (secret, _) = enable(&mut client, &token, &clock).await;
    clock.advance(STEP);
    stack.key_service.stop().await;
    // The secret cannot be decrypted: the login fails UNAVAILABLE, and never signs in
    // without the check.
    let refused = client.login(login(&code(&secret, clock.now()))).await;
    assert_status(refused, Code::Unavailable, "");
    stack.auth.stop().await.unwrap();
}
