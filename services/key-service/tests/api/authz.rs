//! mTLS and the authorization table: who can connect, and who may call what.

use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_test_support::{connect, on_each_backend};
use coffer_transport::dev_ca::Usage;
use coffer_transport::{DevCa, TlsMaterial};
use secrecy::SecretString;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{Options, assert_status, create_key_request, spawn_app, spawn_with};

const KEY: &str = "tenants/acme/keys/db";

#[tokio::test]
async fn a_client_without_a_certificate_cannot_call_anything() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(app.ca.cert_pem()))
            .domain_name("127.0.0.1");
        // The handshake itself may or may not report the refusal (TLS 1.3 sends it after the
        // client's Finished); either the connection or the first call must fail.
        if let Ok(channel) = connect(app.addr, tls).await {
            let call = KeyServiceClient::new(channel)
                .get_key(pb::GetKeyRequest { name: KEY.into() })
                .await;
            let status = call.expect_err("a call without a client certificate succeeded");
            assert_ne!(status.code(), Code::NotFound);
        }
    })
    .await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_cannot_call_anything() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let stranger_ca = DevCa::generate("coffer.local").unwrap();
        let issued = stranger_ca
            .issue("operator/mallory", Usage::Client)
            .unwrap();
        // Trust the real server, but present a certificate the server's CA never issued.
        let material = TlsMaterial::from_pem(
            issued.cert_pem,
            issued.key_pem,
            app.ca.cert_pem().to_owned(),
        );
        if let Ok(channel) = connect(app.addr, material.client_config("127.0.0.1")).await {
            let call = KeyServiceClient::new(channel)
                .get_key(pb::GetKeyRequest { name: KEY.into() })
                .await;
            let status = call.expect_err("a foreign certificate was accepted");
            assert_ne!(status.code(), Code::NotFound);
        }
        let _ = SecretString::from(String::new());
    })
    .await;
}

#[tokio::test]
async fn identities_get_exactly_the_rpcs_the_table_allows() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        app.create_key(KEY).await;

        let mut stranger = app.client_as("some-runtime").await;
        let denied = stranger
            .get_key(pb::GetKeyRequest { name: KEY.into() })
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");
        let denied = stranger
            .get_key(pb::GetKeyRequest {
                name: "tenants/x/keys/none".into(),
            })
            .await;
        assert_status(denied, Code::PermissionDenied, "permission denied");

        let own = "tenants/acme/keys/credentials";
        app.create_key(own).await;
        let mut service = app.client_as("credential-service").await;
        let encrypted = service
            .encrypt(pb::EncryptRequest {
                name: own.into(),
                plaintext: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let decrypted = service
            .decrypt(pb::DecryptRequest {
                name: own.into(),
                input: Some(pb::decrypt_request::Input::Ciphertext(encrypted.ciphertext)),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decrypted.plaintext, b"x");
        for denied in [
            service
                .rotate_root_key(pb::RotateRootKeyRequest {})
                .await
                .map(|_| ()),
            service
                .rotate_key(pb::RotateKeyRequest { name: KEY.into() })
                .await
                .map(|_| ()),
            service
                .schedule_key_deletion(pb::ScheduleKeyDeletionRequest { name: KEY.into() })
                .await
                .map(|_| ()),
            service
                .list_keys(pb::ListKeysRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ] {
            assert_status(denied, Code::PermissionDenied, "permission denied");
        }

        let mut another_operator = app.client_as("operator/alice").await;
        assert!(
            another_operator
                .rotate_key(pb::RotateKeyRequest { name: KEY.into() })
                .await
                .is_ok()
        );
    })
    .await;
}

#[tokio::test]
async fn each_service_identity_is_denied_the_other_services_keys() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let signing = "tenants/coffer-system/keys/auth-signing";
        let credentials = "tenants/acme/keys/credentials";
        let mut auth = app.client_as("auth-service").await;
        let mut credential = app.client_as("credential-service").await;
        // Each service sets up and uses its own key.
        let mut sealed = Vec::new();
        for (client, name) in [(&mut auth, signing), (&mut credential, credentials)] {
            client
                .create_key(create_key_request(name, false))
                .await
                .unwrap();
            let ciphertext = client
                .encrypt(pb::EncryptRequest {
                    name: name.into(),
                    plaintext: b"secret".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .ciphertext;
            let data_key = client
                .generate_data_key(pb::GenerateDataKeyRequest {
                    name: name.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .ciphertext;
            sealed.push((name, ciphertext, data_key));
        }
        // credential-service cannot decrypt the JWT signing key (nor forge tokens with it);
        // auth-service cannot unwrap credential data keys.
        for (client, (name, ciphertext, data_key)) in
            [(&mut credential, &sealed[0]), (&mut auth, &sealed[1])]
        {
            for ciphertext in [ciphertext, data_key] {
                assert_status(
                    client
                        .decrypt(pb::DecryptRequest {
                            name: (*name).into(),
                            input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext.clone())),
                            ..Default::default()
                        })
                        .await,
                    Code::PermissionDenied,
                    "permission denied",
                );
            }
            for denied in [
                client
                    .encrypt(pb::EncryptRequest {
                        name: (*name).into(),
                        plaintext: b"x".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ()),
                client
                    .rewrap(pb::RewrapRequest {
                        name: (*name).into(),
                        ciphertext: ciphertext.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ()),
                client
                    .get_key(pb::GetKeyRequest {
                        name: (*name).into(),
                    })
                    .await
                    .map(|_| ()),
            ] {
                assert_status(denied, Code::PermissionDenied, "permission denied");
            }
        }
        // Operators keep every key.
        let decrypted = app.decrypt(signing, &sealed[0].1, &[]).await.unwrap();
        assert_eq!(decrypted.plaintext, b"secret");
    })
    .await;
}

#[tokio::test]
async fn health_reports_serving_to_any_certified_client() {
    on_each_backend(|db| async {
        let app = spawn_app(db).await;
        let material = app.ca.issue_material("monitoring", Usage::Client).unwrap();
        let channel = connect(app.addr, material.client_config("127.0.0.1"))
            .await
            .unwrap();
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "coffer.v1.KeyService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status, ServingStatus::Serving as i32);
    })
    .await;
}

/// A forwarder's (the gateway's) calls are decided by the bearer it forwards: without one they
/// are UNAUTHENTICATED, and while auth-service cannot be reached to check one they fail closed
/// with UNAVAILABLE; its certificate alone never reaches a key. Calls by certificate go on.
#[tokio::test]
async fn a_forwarders_calls_fail_closed_while_auth_service_is_unreachable() {
    on_each_backend(|db| async {
        // A port nothing listens on: bound, then released.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let options = Options {
            auth_service: Some(format!("https://{dead}")),
            ..Options::new()
        };
        let app = spawn_with(db, options).await.unwrap();
        app.create_key(KEY).await;
        let encrypt = || pb::EncryptRequest {
            name: KEY.into(),
            plaintext: b"x".to_vec(),
            ..Default::default()
        };
        let mut gateway = app.client_as("gateway").await;
        assert_status(
            gateway.encrypt(encrypt()).await,
            Code::Unauthenticated,
            "invalid credentials",
        );
        for _ in 0..2 {
            assert_status(
                gateway
                    .encrypt(coffer_test_support::bearer(
                        "mcp_sk_AbCdEf012345_0000000000000000000000000000000000000000000000000",
                        encrypt(),
                    ))
                    .await,
                Code::Unavailable,
                "a dependency is unavailable",
            );
        }
        // The table's callers do not depend on auth-service.
        app.client().encrypt(encrypt()).await.unwrap();
    })
    .await;
}
