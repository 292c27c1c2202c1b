//! Regression tests for denial of service found in the security review: forged API keys
//! locking a real key out, and one client starving the bcrypt pool for everyone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use coffer_crypto::apikey::{ApiKey, ApiKeyId};
use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{PASSWORD, Stack, assert_status, create_key};

async fn exchange(
    client: &mut crate::helpers::Client,
    key: &str,
) -> Result<pb::TokenResponse, tonic::Status> {
    client
        .exchange_api_key(pb::ExchangeApiKeyRequest { key: key.into() })
        .await
        .map(tonic::Response::into_inner)
}

/// A stack that blocks a source after 5 failures, alice (org_admin) of acme with her access
/// token, a gateway client and an `mcp:read` API key of hers with its public id.
struct Forging {
    stack: Stack,
    alice: String,
    gateway: crate::helpers::Client,
    key: String,
    id: ApiKeyId,
}

impl Forging {
    async fn start(db: coffer_test_support::TestDatabase) -> Self {
        let stack = Stack::spawn_with(db, |config| config.lockout.source_max_failures = 5).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut gateway = stack.client_as("gateway").await;
        let key = create_key(&mut gateway, &alice, "mcp:read").await.key;
        // Key ids are public (ListApiKeys, hints); the checksum is forgeable.
        let id = ApiKeyId::parse(ApiKey::parse(&key).unwrap().id().as_str()).unwrap();
        Self {
            stack,
            alice,
            gateway,
            key,
            id,
        }
    }
}

/// A well-formed key for `id` with a wrong secret.
fn forge(id: &ApiKeyId) -> String {
    ApiKey::generate_with_id(id)
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn forged_keys_for_a_known_id_do_not_lock_out_the_real_key_but_block_their_source() {
    on_each_backend(|db| async {
        let Forging {
            stack,
            alice,
            mut gateway,
            key,
            id,
        } = Forging::start(db).await;
        let forged = || forge(&id);

        let mut mallory = stack.client_as("mallory").await;
        for _ in 0..5 {
            assert_status(
                exchange(&mut mallory, &forged()).await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        // The source is blocked, whatever it presents, on every replica.
        assert_status(
            exchange(&mut mallory, &forged()).await,
            Code::ResourceExhausted,
            "try again later",
        );
        assert_status(
            exchange(&mut mallory, &key).await,
            Code::ResourceExhausted,
            "try again later",
        );
        let (mut replica, _) = stack
            .second_instance(|c| c.lockout.source_max_failures = 5)
            .await;
        let mut mallory_there =
            crate::helpers::client_for(&stack.ca, replica.addr, "mallory").await;
        assert_status(
            exchange(&mut mallory_there, &key).await,
            Code::ResourceExhausted,
            "try again later",
        );
        // The key's legitimate users are not: here and on the replica.
        exchange(&mut gateway, &key).await.unwrap();
        let mut gateway_there =
            crate::helpers::client_for(&stack.ca, replica.addr, "gateway").await;
        exchange(&mut gateway_there, &key).await.unwrap();

        // An introspector verifying for its own callers: the forger behind it is blocked, the
        // introspector and its other callers are not.
        let mut introspector = stack.client_as("credential-service").await;
        let verify_for = |client: &'static str, key: String| pb::VerifyApiKeyRequest {
            key,
            client: client.into(),
        };
        for _ in 0..5 {
            assert_status(
                introspector
                    .verify_api_key(verify_for("spiffe://coffer.local/eve", forged()))
                    .await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        assert_status(
            introspector
                .verify_api_key(verify_for("spiffe://coffer.local/eve", forged()))
                .await,
            Code::ResourceExhausted,
            "try again later",
        );
        let fresh = create_key(&mut gateway, &alice, "mcp:read").await.key;
        introspector
            .verify_api_key(verify_for("spiffe://coffer.local/app", fresh.clone()))
            .await
            .unwrap();
        introspector
            .verify_api_key(verify_for("", fresh))
            .await
            .unwrap();
        replica.stop().await.unwrap();
        stack.shutdown().await;
    })
    .await;
}

/// An ExchangeApiKey call that says it comes from `address` (`x-forwarded-for`).
fn exchange_from(address: &str, key: &str) -> tonic::Request<pb::ExchangeApiKeyRequest> {
    let mut request = tonic::Request::new(pb::ExchangeApiKeyRequest { key: key.into() });
    request
        .metadata_mut()
        .insert("x-forwarded-for", address.parse().unwrap());
    request
}

#[tokio::test]
async fn behind_the_gateway_each_client_address_is_its_own_source_and_nobody_else_may_say_so() {
    on_each_backend(|db| async {
        let Forging {
            stack,
            mut gateway,
            key,
            id,
            ..
        } = Forging::start(db).await;
        let forged = || forge(&id);

        // One REST client forging keys through the gateway blocks itself...
        for _ in 0..5 {
            assert_status(
                gateway
                    .exchange_api_key(exchange_from("203.0.113.7", &forged()))
                    .await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        assert_status(
            gateway
                .exchange_api_key(exchange_from("203.0.113.7", &key))
                .await,
            Code::ResourceExhausted,
            "try again later",
        );
        // ...not the other clients behind the gateway, nor the gateway itself.
        gateway
            .exchange_api_key(exchange_from("203.0.113.8", &key))
            .await
            .unwrap();
        exchange(&mut gateway, &key).await.unwrap();

        // A caller that is not a forwarder cannot shed its failures by naming addresses.
        let mut mallory = stack.client_as("mallory").await;
        for n in 0..5 {
            assert_status(
                mallory
                    .exchange_api_key(exchange_from(&format!("198.51.100.{n}"), &forged()))
                    .await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        assert_status(
            mallory
                .exchange_api_key(exchange_from("198.51.100.99", &forged()))
                .await,
            Code::ResourceExhausted,
            "try again later",
        );
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn one_identity_flooding_login_does_not_starve_another_identitys_first_exchange() {
    on_each_backend(|db| async {
        // A pool of two slots at a cost that holds a slot for tens of milliseconds.
        let stack = Stack::spawn_with(db, |config| {
            config.bcrypt_cost = 10;
            config.bcrypt_concurrency = 2;
            config.bcrypt_per_source = 1;
        })
        .await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let mut gateway = stack.client_as("gateway").await;
        let key = create_key(&mut gateway, &alice, "mcp:read").await.key;

        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let mut flood = Vec::new();
        for _ in 0..8 {
            let mut flooder = stack.client_as("flooder").await;
            let (stop, refused) = (Arc::clone(&stop), Arc::clone(&refused));
            flood.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let login = flooder
                        .login(pb::LoginRequest {
                            tenant_id: "acme".into(),
                            username: "alice".into(),
                            password: PASSWORD.into(),
                            ..Default::default()
                        })
                        .await;
                    if matches!(&login, Err(s) if s.code() == Code::ResourceExhausted) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Wait (bounded) until the flood is saturating its share of the pool.
        for _ in 0..500 {
            if refused.load(Ordering::Relaxed) > 10 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            refused.load(Ordering::Relaxed) > 10,
            "the flood never saturated"
        );
        // Another identity's first use of its key (a bcrypt check) still goes through.
        let mut app = stack.client_as("some-app").await;
        for _ in 0..5 {
            let fresh = create_key(&mut gateway, &alice, "mcp:read").await.key;
            exchange(&mut app, &fresh).await.unwrap();
        }
        exchange(&mut app, &key).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for task in flood {
            task.await.unwrap();
        }
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_leaked_certificate_of_another_service_cannot_pose_as_key_service() {
    use coffer_crypto::RootKeyring;
    use coffer_test_support::{Backend, TestDatabase};
    use coffer_transport::DevCa;
    use coffer_transport::dev_ca::Usage;

    let ca = DevCa::generate("coffer.local").unwrap();
    let key_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    // A key-service answering with credential-service's certificate (same CA, and it names
    // 127.0.0.1 like every dev certificate).
    let impostor = coffer_key_service::Config::new(
        secrecy::SecretString::from(key_db.url().to_owned()),
        RootKeyring::generate().unwrap(),
        ca.issue_material("credential-service", Usage::Service)
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coffer_key_service::serve(impostor, listener, async {
        let _ = stopped.await;
    }));

    let auth_db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let config = crate::helpers::config(&ca, &auth_db, addr);
    let refused = crate::helpers::spawn_auth(&ca, config).await;
    let Err(error) = refused else {
        panic!("auth-service trusted an impostor key-service")
    };
    assert!(
        matches!(error, coffer_auth_service::Error::KeyServiceConnect(_)),
        "{error:?}"
    );
    // Told which SPIFFE ID to expect, the same server is accepted.
    let mut config = crate::helpers::config(&ca, &auth_db, addr);
    config.key_service.identity =
        coffer_transport::SpiffeId::parse("spiffe://coffer.local/credential-service").unwrap();
    let (mut auth, _) = crate::helpers::spawn_auth(&ca, config).await.unwrap();
    auth.stop().await.unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn guessing_passwords_from_one_source_blocks_that_source_not_the_user() {
    on_each_backend(|db| async {
        let stack = Stack::spawn_with(db, |config| config.lockout.source_max_failures = 5).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let login = |username: &str, password: &str| pb::LoginRequest {
            tenant_id: "acme".into(),
            username: username.into(),
            password: password.into(),
            ..Default::default()
        };
        let mut mallory = stack.client_as("mallory").await;
        // Spread over many accounts, so no account lockout (3 in the test config) is reached.
        for user in ["bob", "carol", "dave", "erin", "frank"] {
            assert_status(
                mallory.login(login(user, "wrong password!!")).await,
                Code::Unauthenticated,
                "invalid credentials",
            );
        }
        assert_status(
            mallory.login(login("alice", PASSWORD)).await,
            Code::ResourceExhausted,
            "try again later",
        );
        let mut gateway = stack.client_as("gateway").await;
        gateway.login(login("alice", PASSWORD)).await.unwrap();
        stack.shutdown().await;
    })
    .await;
}
