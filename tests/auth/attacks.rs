//! Forged and altered bearers against the running service, and bad inputs to the API-key
//! RPCs. (The full JWT attack set with validly signed bad claims is in coffer-authn's tests,
//! where the test holds the signing key.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_authn::jwt::{Claims, RsaBits, SigningKey};
use coffer_proto::pb;
use coffer_test_support::on_each_backend;
use tonic::Code;

use crate::helpers::{Stack, assert_status, bearer};

fn segments(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn json_segment(segment: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn encode(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn forged_and_altered_bearers_are_unauthenticated() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack.tenant_with_user("acme", "alice", &["viewer"]).await;
        let token = stack.login("acme", "alice").await.access_token;
        let (header, payload, signature) = segments(&token);
        let kid = json_segment(&header)["kid"].as_str().unwrap().to_owned();
        let mut escalated = json_segment(&payload);
        escalated["scope"] = "org:admin credential:reveal".into();
        let n = stack
            .operator()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys[0]
            .n
            .clone();
        let hs256_input = format!(
            "{}.{payload}",
            encode(&serde_json::json!({"alg": "HS256", "kid": kid}))
        );
        let hs256_key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &URL_SAFE_NO_PAD.decode(&n).unwrap(),
        );
        let hs256 = format!(
            "{hs256_input}.{}",
            URL_SAFE_NO_PAD
                .encode(aws_lc_rs::hmac::sign(&hs256_key, hs256_input.as_bytes()).as_ref())
        );
        let claims: Claims = serde_json::from_value(json_segment(&payload)).unwrap();
        let foreign = SigningKey::generate(RsaBits::Rsa2048)
            .unwrap()
            .sign(&claims)
            .unwrap();

        let attacks = [
            (
                "alg none",
                format!(
                    "{}.{payload}.",
                    encode(&serde_json::json!({"alg": "none", "kid": kid}))
                ),
            ),
            ("HS256 with the public key", hs256),
            (
                "unknown kid",
                format!(
                    "{}.{payload}.{signature}",
                    encode(&serde_json::json!({"alg": "RS256", "kid": "nope"}))
                ),
            ),
            (
                "injected kid",
                format!(
                    "{}.{payload}.{signature}",
                    encode(&serde_json::json!({"alg": "RS256", "kid": "../../dev/null"}))
                ),
            ),
            (
                "tampered payload",
                format!("{header}.{}.{signature}", encode(&escalated)),
            ),
            ("stripped signature", format!("{header}.{payload}.")),
            ("signed by another key", foreign),
            (
                "oversized",
                format!("{header}.{}.{signature}", "A".repeat(9 * 1024)),
            ),
        ];
        let mut client = stack.client_as("gateway").await;
        for (what, forged) in attacks {
            let call = client
                .get_tenant(bearer(
                    &forged,
                    pb::GetTenantRequest {
                        name: "tenants/acme".into(),
                    },
                ))
                .await;
            let status = call.expect_err(what);
            assert_eq!(
                (status.code(), status.message()),
                (Code::Unauthenticated, "invalid credentials"),
                "{what}"
            );
        }
        // The genuine token passes the same call: the refusals above are for the forgeries.
        let genuine = client
            .get_tenant(bearer(
                &token,
                pb::GetTenantRequest {
                    name: "tenants/acme".into(),
                },
            ))
            .await;
        assert!(genuine.is_ok(), "{genuine:?}");
        stack.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn api_key_rpcs_refuse_bad_input_field_by_field() {
    on_each_backend(|db| async {
        let stack = Stack::spawn(db).await;
        stack
            .tenant_with_user("acme", "alice", &["org_admin"])
            .await;
        stack
            .tenant_with_user("globex", "gina", &["org_admin"])
            .await;
        let alice = stack.login("acme", "alice").await.access_token;
        let gina = stack.login("globex", "gina").await.access_token;
        let mut client = stack.client_as("gateway").await;

        let long_name = client
            .create_api_key(bearer(
                &alice,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    display_name: "x".repeat(201),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(long_name, Code::InvalidArgument, "display_name");
        let foreign_principal = client
            .create_api_key(bearer(
                &alice,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    principal: "tenants/globex/principals/gina".into(),
                    ..Default::default()
                },
            ))
            .await;
        assert_status(foreign_principal, Code::InvalidArgument, "principal");
        let operator_without_principal = stack
            .operator()
            .create_api_key(pb::CreateApiKeyRequest {
                parent: "tenants/acme".into(),
                ..Default::default()
            })
            .await;
        assert_status(
            operator_without_principal,
            Code::InvalidArgument,
            "principal",
        );

        let list = |page_size: u32, page_token: &str| pb::ListApiKeysRequest {
            parent: "tenants/acme".into(),
            page_size,
            page_token: page_token.into(),
        };
        assert_status(
            client.list_api_keys(bearer(&alice, list(1001, ""))).await,
            Code::InvalidArgument,
            "page_size",
        );
        assert_status(
            client
                .list_api_keys(bearer(&alice, list(10, "bad/token")))
                .await,
            Code::InvalidArgument,
            "page_token",
        );

        let key = client
            .create_api_key(bearer(
                &alice,
                pb::CreateApiKeyRequest {
                    parent: "tenants/acme".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .api_key
            .unwrap();
        // Another tenant's admin cannot see, revoke or roll it.
        let revoke = client
            .revoke_api_key(bearer(
                &gina,
                pb::RevokeApiKeyRequest {
                    name: key.name.clone(),
                },
            ))
            .await;
        assert_status(revoke, Code::NotFound, &key.name);
        let roll = client
            .roll_api_key(bearer(
                &gina,
                pb::RollApiKeyRequest {
                    name: key.name.clone(),
                    grace_period: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 0,
                    }),
                },
            ))
            .await;
        assert_status(roll, Code::NotFound, &key.name);
        let listed = client
            .list_api_keys(bearer(
                &gina,
                pb::ListApiKeysRequest {
                    parent: "tenants/globex".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.api_keys.is_empty());
        let bad_name = client
            .revoke_api_key(bearer(
                &alice,
                pb::RevokeApiKeyRequest {
                    name: "tenants/acme/keys/x".into(),
                },
            ))
            .await;
        assert_status(bad_name, Code::InvalidArgument, "name");
        let exchange = client
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                key: "mcp_sk_garbage".into(),
            })
            .await;
        assert_status(exchange, Code::Unauthenticated, "invalid credentials");
        stack.shutdown().await;
    })
    .await;
}
