//! Every routed RPC of the three services, called over REST through the gateway against the
//! real stack, with the proto3 JSON mapping's edge cases on the way: int64 as strings (and
//! numbers accepted), bytes as base64, enums by name and by number, timestamps and durations,
//! default values present, unknown fields refused, repeated and map fields. The test fails
//! if an RPC is routed that no call here reaches, so a new annotation needs a call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_gateway::routes::Routes;
use http::Method;
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};
use support::{Answer, Rest, assert_security_headers, send};

/// The gateway under test, and which RPCs the calls reached.
struct Client {
    rest: Rest,
    routes: Routes,
    reached: BTreeSet<String>,
}

impl Client {
    async fn start() -> Self {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        Self {
            rest: Rest::start().await,
            routes: Routes::build(&pool, coffer_gateway::routes::public).unwrap(),
            reached: BTreeSet::new(),
        }
    }

    /// `method path` with `ada`'s key, which must be routed to `rpc` and answer 200.
    async fn ok(&mut self, rpc: &str, method: &str, path: &str, body: Value) -> Value {
        let key = self.rest.key.clone();
        let answer = self.call_as(&key, rpc, method, path, body).await;
        assert_eq!(answer.status, 200, "{rpc} {path}: {}", answer.json);
        answer.json
    }

    /// `method path` with `key`, which must be routed to `rpc`; any status.
    async fn call_as(
        &mut self,
        key: &str,
        rpc: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> Answer {
        let route_path = path.split('?').next().unwrap();
        let found = self
            .routes
            .find(&Method::from_bytes(method.as_bytes()).unwrap(), route_path);
        assert!(found.is_ok(), "{method} {path} is not routed");
        let routed = found.ok().unwrap();
        assert_eq!(
            routed.route.rpc.name(),
            rpc,
            "{method} {path} goes to another RPC"
        );
        self.reached.insert(routed.route.rpc.full_name().to_owned());
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let answer = send(self.rest.addr, key, method, path, body).await;
        assert_security_headers(&answer);
        answer
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[tokio::test]
async fn every_routed_rpc_answers_over_rest_in_the_json_mapping() {
    let mut c = Client::start().await;
    keys(&mut c).await;
    principals_and_tokens(&mut c).await;
    credentials(&mut c).await;

    let routed: BTreeSet<String> = c
        .routes
        .iter()
        .map(|route| route.rpc.full_name().to_owned())
        .collect();
    let missed: Vec<_> = routed.difference(&c.reached).collect();
    assert!(
        missed.is_empty(),
        "routed but never called here: {missed:?}"
    );
    c.rest.stack.shutdown().await.unwrap();
}

async fn keys(c: &mut Client) {
    let created = c
        .ok(
            "CreateKey",
            "POST",
            "/v1/tenants/acme/keys?keyId=app",
            json!({"deletionAllowed": true}),
        )
        .await;
    assert_eq!(created["name"], "tenants/acme/keys/app");
    assert_eq!(created["state"], "KEY_STATE_ENABLED", "enums by name");
    assert_eq!(created["primaryVersion"], 1, "uint32 is a JSON number");
    assert!(created["deletionAllowed"].as_bool().unwrap());
    let created_at = created["createTime"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "timestamps in RFC 3339: {created_at}"
    );
    let read = c
        .ok("GetKey", "GET", "/v1/tenants/acme/keys/app", Value::Null)
        .await;
    assert_eq!(read["name"], created["name"]);
    let listed = c
        .ok(
            "ListKeys",
            "GET",
            "/v1/tenants/acme/keys?pageSize=10",
            Value::Null,
        )
        .await;
    assert_eq!(listed["keys"][0]["name"], "tenants/acme/keys/app");
    assert_eq!(listed["nextPageToken"], "", "default values are present");

    let plaintext = b"hello \x00\xff coffer";
    let context = json!({"purpose": "test", "tenant": "acme"});
    let sealed = c
        .ok(
            "Encrypt",
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": b64(plaintext), "encryptionContext": context}),
        )
        .await;
    assert_eq!(sealed["keyVersion"], 1);
    assert!(
        sealed["ciphertextText"]
            .as_str()
            .unwrap()
            .starts_with("coffer:v1:")
    );
    let ciphertext = sealed["ciphertext"].as_str().unwrap().to_owned();
    let opened = c
        .ok(
            "Decrypt",
            "POST",
            "/v1/tenants/acme/keys/app:decrypt",
            json!({"ciphertext": ciphertext, "encryptionContext": context}),
        )
        .await;
    assert_eq!(
        B64.decode(opened["plaintext"].as_str().unwrap()).unwrap(),
        plaintext
    );
    // The oneof's other member, the operator text form.
    let by_text = c
        .ok(
            "Decrypt",
            "POST",
            "/v1/tenants/acme/keys/app:decrypt",
            json!({"ciphertextText": sealed["ciphertextText"], "encryptionContext": context}),
        )
        .await;
    assert_eq!(by_text["plaintext"], opened["plaintext"]);
    let key = c.rest.key.clone();
    let wrong_context = c
        .call_as(
            &key,
            "Decrypt",
            "POST",
            "/v1/tenants/acme/keys/app:decrypt",
            json!({"ciphertext": ciphertext, "encryptionContext": {"purpose": "other"}}),
        )
        .await;
    assert_eq!(wrong_context.status, 400, "{}", wrong_context.json);
    assert_eq!(
        wrong_context.json["error"]["details"][0]["reason"],
        "UNDECRYPTABLE"
    );

    let data_key = c
        .ok(
            "GenerateDataKey",
            "POST",
            "/v1/tenants/acme/keys/app:generateDataKey",
            json!({}),
        )
        .await;
    let dek = B64.decode(data_key["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(dek.len(), 32);

    let rotated = c
        .ok(
            "RotateKey",
            "POST",
            "/v1/tenants/acme/keys/app:rotate",
            json!({}),
        )
        .await;
    assert_eq!(rotated["primaryVersion"], 2);
    let rewrapped = c
        .ok(
            "Rewrap",
            "POST",
            "/v1/tenants/acme/keys/app:rewrap",
            json!({"ciphertext": ciphertext, "encryptionContext": context}),
        )
        .await;
    assert_eq!(
        (
            rewrapped["keyVersion"].clone(),
            rewrapped["sourceKeyVersion"].clone()
        ),
        (json!(2), json!(1))
    );
    // Repeated message fields.
    let items = json!([
        {"ciphertext": ciphertext, "encryptionContext": context},
        {"ciphertext": data_key["ciphertext"]},
    ]);
    let batch = c
        .ok(
            "BatchDecrypt",
            "POST",
            "/v1/tenants/acme/keys/app:batchDecrypt",
            json!({"items": items}),
        )
        .await;
    assert_eq!(batch["results"].as_array().unwrap().len(), 2, "{batch}");
    let batch = c
        .ok(
            "BatchRewrap",
            "POST",
            "/v1/tenants/acme/keys/app:batchRewrap",
            json!({"items": items}),
        )
        .await;
    assert_eq!(batch["results"].as_array().unwrap().len(), 2, "{batch}");

    let policy = c
        .ok(
            "UpdateKeyPolicy",
            "PATCH",
            "/v1/tenants/acme/keys/app/policy",
            json!({"minDecryptionVersion": 2}),
        )
        .await;
    assert_eq!(policy["minDecryptionVersion"], 2);
    let retired = c
        .call_as(
            &key,
            "Decrypt",
            "POST",
            "/v1/tenants/acme/keys/app:decrypt",
            json!({"ciphertext": ciphertext, "encryptionContext": context}),
        )
        .await;
    assert_eq!(retired.status, 400, "{}", retired.json);
    let disabled = c
        .ok(
            "DisableKey",
            "POST",
            "/v1/tenants/acme/keys/app:disable",
            json!({}),
        )
        .await;
    assert_eq!(disabled["state"], "KEY_STATE_DISABLED");
    let refused = c
        .call_as(
            &key,
            "Encrypt",
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": ""}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.json["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(
        refused.json["error"]["details"][0]["reason"],
        "KEY_DISABLED"
    );
    c.ok(
        "EnableKey",
        "POST",
        "/v1/tenants/acme/keys/app:enable",
        json!({}),
    )
    .await;
    let pending = c
        .ok(
            "ScheduleKeyDeletion",
            "POST",
            "/v1/tenants/acme/keys/app:scheduleDeletion",
            json!({}),
        )
        .await;
    assert_eq!(pending["state"], "KEY_STATE_PENDING_DELETION", "{pending}");
    let cancelled = c
        .ok(
            "CancelKeyDeletion",
            "POST",
            "/v1/tenants/acme/keys/app:cancelDeletion",
            json!({}),
        )
        .await;
    assert_eq!(cancelled["state"], "KEY_STATE_ENABLED");

    // The operator and service RPCs are not there at all.
    for (method, path) in [("POST", "/v1/rootKey:rotate"), ("GET", "/v1/keyChanges")] {
        let answer = send(c.rest.addr, &key, method, path, "{}").await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.json);
    }
}

async fn principals_and_tokens(c: &mut Client) {
    let tenant = c
        .ok("GetTenant", "GET", "/v1/tenants/acme", Value::Null)
        .await;
    assert_eq!(tenant["displayName"], "Acme");
    // Enums by name, and by number.
    let user = c
        .ok(
            "CreatePrincipal",
            "POST",
            "/v1/tenants/acme/principals",
            json!({"principalId": "grace", "kind": "PRINCIPAL_KIND_USER",
                   "password": "correct horse battery staple", "roles": ["developer"]}),
        )
        .await;
    assert_eq!(user["kind"], "PRINCIPAL_KIND_USER");
    let robot = c
        .ok(
            "CreatePrincipal",
            "POST",
            "/v1/tenants/acme/principals",
            json!({"principalId": "robot", "kind": 2, "scopes": ["mcp:read", "key:read"]}),
        )
        .await;
    assert_eq!(robot["kind"], "PRINCIPAL_KIND_SERVICE_ACCOUNT");
    assert_eq!(robot["scopes"], json!(["mcp:read", "key:read"]));
    let listed = c
        .ok(
            "ListPrincipals",
            "GET",
            "/v1/tenants/acme/principals",
            Value::Null,
        )
        .await;
    assert_eq!(
        listed["principals"].as_array().unwrap().len(),
        3,
        "{listed}"
    );
    let demoted = c
        .ok(
            "SetRoles",
            "POST",
            "/v1/tenants/acme/principals/grace:setRoles",
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(demoted["roles"], json!(["viewer"]));

    let login = c
        .ok(
            "Login",
            "POST",
            "/v1/auth/login",
            json!({"tenantId": "acme", "username": "grace",
                   "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(login["tokenType"], "Bearer");
    assert!(
        login["expiresIn"].is_string(),
        "uint64 is a JSON string: {login}"
    );
    let access = login["accessToken"].as_str().unwrap().to_owned();
    // The token works as the bearer of a REST call, within its scopes.
    let as_grace = c
        .call_as(
            &access,
            "ListKeys",
            "GET",
            "/v1/tenants/acme/keys",
            Value::Null,
        )
        .await;
    assert_eq!(
        as_grace.status, 200,
        "viewer has key:read: {}",
        as_grace.json
    );
    let refreshed = c
        .ok(
            "Refresh",
            "POST",
            "/v1/auth/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_ne!(refreshed["accessToken"], login["accessToken"]);
    c.ok(
        "Revoke",
        "POST",
        "/v1/auth/revoke",
        json!({"token": refreshed["refreshToken"]}),
    )
    .await;
    let jwks = c.ok("GetJwks", "GET", "/v1/auth/jwks", Value::Null).await;
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    // A duration in, a timestamp out.
    let issued = c
        .ok(
            "CreateApiKey",
            "POST",
            "/v1/tenants/acme/apiKeys",
            json!({"principal": "tenants/acme/principals/robot", "displayName": "ci",
                   "scopes": ["mcp:read"], "ttl": "3600s"}),
        )
        .await;
    let robot_key = issued["key"].as_str().unwrap().to_owned();
    assert!(robot_key.starts_with("mcp_sk_"));
    assert!(
        issued["apiKey"]["expireTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let name = issued["apiKey"]["name"].as_str().unwrap().to_owned();
    let keys = c
        .ok(
            "ListApiKeys",
            "GET",
            "/v1/tenants/acme/apiKeys?pageSize=100",
            Value::Null,
        )
        .await;
    assert!(
        !keys.to_string().contains(&robot_key),
        "a listing never holds a key"
    );
    let exchanged = c
        .ok(
            "ExchangeApiKey",
            "POST",
            "/v1/auth/exchange",
            json!({"key": robot_key}),
        )
        .await;
    assert!(exchanged["accessToken"].is_string());
    let rolled = c
        .ok(
            "RollApiKey",
            "POST",
            &format!("/v1/{name}:roll"),
            json!({"gracePeriod": "0s"}),
        )
        .await;
    let rolled_name = rolled["apiKey"]["name"].as_str().unwrap().to_owned();
    let revoked = c
        .ok(
            "RevokeApiKey",
            "POST",
            &format!("/v1/{rolled_name}:revoke"),
            json!({}),
        )
        .await;
    assert!(revoked["revokeTime"].is_string(), "{revoked}");

    let audit = c
        .ok(
            "ListAuditEvents",
            "GET",
            "/v1/tenants/acme/auth/auditEvents",
            Value::Null,
        )
        .await;
    assert!(!audit["events"].as_array().unwrap().is_empty());
    assert!(
        audit["events"][0]["sequence"].is_string(),
        "uint64 as a string"
    );
    let chain = c
        .ok(
            "VerifyAuditChain",
            "POST",
            "/v1/tenants/acme/auth/auditEvents:verify",
            json!({}),
        )
        .await;
    assert_eq!(chain["valid"], true, "{chain}");

    let key = c.rest.key.clone();
    for (method, path) in [
        ("POST", "/v1/tenants"),
        ("POST", "/v1/auth/introspect"),
        ("POST", "/v1/apiKeys:verify"),
        ("GET", "/v1/auth/revocations"),
        ("POST", "/v1/auth/signingKeys:rotate"),
    ] {
        let answer = send(c.rest.addr, &key, method, path, "{}").await;
        assert_eq!(answer.status, 404, "{path} is not public: {}", answer.json);
    }
}

async fn credentials(c: &mut Client) {
    let created = c
        .ok(
            "CreateCredential",
            "POST",
            "/v1/tenants/acme/credentials",
            json!({"serverId": "github", "serverName": "GitHub",
                   "env": {"GITHUB_TOKEN": "ghp_e2eSECRET", "ORG": "acme"},
                   "configuredIntegrations": ["issues", "pulls"],
                   "expireTime": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let name = created["name"].as_str().unwrap().to_owned();
    assert_eq!(created["rowVersion"], "1", "uint64 as a string");
    assert_eq!(created["expireTime"], "2099-01-01T00:00:00Z");
    assert_eq!(
        created["configuredIntegrations"],
        json!(["issues", "pulls"])
    );
    assert!(!created.to_string().contains("SECRET"), "{created}");
    let read = c
        .ok("GetCredential", "GET", &format!("/v1/{name}"), Value::Null)
        .await;
    assert_eq!(read["serverId"], "github");
    let listed = c
        .ok(
            "ListCredentials",
            "GET",
            "/v1/tenants/acme/credentials?serverId=github&pageSize=5",
            Value::Null,
        )
        .await;
    assert_eq!(listed["credentials"].as_array().unwrap().len(), 1);
    // uint64 accepted as a JSON number too; a map set and a repeated unset.
    let updated = c
        .ok(
            "UpdateCredential",
            "PATCH",
            &format!("/v1/{name}"),
            json!({"rowVersion": 1, "setEnv": {"SLACK_TOKEN": "xoxb-e2eSECRET"},
                   "unsetEnv": ["ORG"]}),
        )
        .await;
    assert_eq!(updated["rowVersion"], "2");
    let stale = c
        .call_as(
            &c.rest.key.clone(),
            "UpdateCredential",
            "PATCH",
            &format!("/v1/{name}"),
            json!({"rowVersion": "1", "unsetEnv": ["SLACK_TOKEN"]}),
        )
        .await;
    assert_eq!(
        stale.status, 409,
        "a stale row version is ABORTED: {}",
        stale.json
    );
    let revealed = c
        .ok(
            "RevealCredential",
            "POST",
            &format!("/v1/{name}:reveal"),
            json!({}),
        )
        .await;
    assert_eq!(
        revealed["env"],
        json!({"GITHUB_TOKEN": "ghp_e2eSECRET", "SLACK_TOKEN": "xoxb-e2eSECRET"})
    );
    let validated = c
        .ok(
            "ValidateCredential",
            "POST",
            &format!("/v1/{name}:validate"),
            json!({"requiredKeys": ["GITHUB_TOKEN", "ORG"]}),
        )
        .await;
    assert_eq!(validated, json!({"valid": false, "missing": ["ORG"]}));
    let hydrated = c
        .ok(
            "HydrateConfig",
            "POST",
            &format!("/v1/{name}:hydrate"),
            json!({"baseConfig": "{\"mcpServers\": {}}",
                   "paths": {"/mcpServers/github/env/TOKEN": "GITHUB_TOKEN"}}),
        )
        .await;
    let config: Value = serde_json::from_str(hydrated["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["mcpServers"]["github"]["env"]["TOKEN"],
        "ghp_e2eSECRET"
    );
    let sealing = c
        .ok(
            "GetSealingKey",
            "GET",
            "/v1/tenants/acme/sealingKey",
            Value::Null,
        )
        .await;
    assert!(sealing["publicKey"].is_string() && sealing["kid"].is_string());
    c.ok(
        "RewrapCredentials",
        "POST",
        "/v1/tenants/acme/credentials:rewrap",
        json!({"maxPages": 1}),
    )
    .await;
    c.ok(
        "GetRewrapProgress",
        "GET",
        "/v1/tenants/acme/rewrapProgress",
        Value::Null,
    )
    .await;
    let audit = c
        .ok(
            "ListAuditEvents",
            "GET",
            "/v1/tenants/acme/auditEvents",
            Value::Null,
        )
        .await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"reveal"), "{actions:?}");
    let chain = c
        .ok(
            "VerifyAuditChain",
            "POST",
            "/v1/tenants/acme/auditEvents:verify",
            json!({}),
        )
        .await;
    assert_eq!(chain["valid"], true, "{chain}");

    // credential-service made its own key in acme: a bearer may read it, never use it.
    let key = c.rest.key.clone();
    let own = c
        .call_as(
            &key,
            "GetKey",
            "GET",
            "/v1/tenants/acme/keys/credentials",
            Value::Null,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.json);
    let wrapped = c
        .call_as(
            &key,
            "Decrypt",
            "POST",
            "/v1/tenants/acme/keys/credentials:decrypt",
            json!({"ciphertext": b64(b"anything")}),
        )
        .await;
    assert_eq!(wrapped.status, 403, "{}", wrapped.json);
    assert_eq!(
        wrapped.json["error"]["details"][0]["reason"],
        "RESERVED_KEY"
    );

    c.ok(
        "DeleteCredential",
        "DELETE",
        &format!("/v1/{name}"),
        Value::Null,
    )
    .await;
    let gone = c
        .call_as(
            &key,
            "GetCredential",
            "GET",
            &format!("/v1/{name}"),
            Value::Null,
        )
        .await;
    assert_eq!(gone.status, 404);
}

/// Through the gateway, key-service answers to the bearer's principal: its tenant and its
/// scopes; the gateway's own certificate grants nothing.
#[tokio::test]
async fn key_service_over_rest_answers_to_the_bearer_not_to_the_gateway() {
    let mut rest = Rest::start().await;
    let created = rest
        .send("POST", "/v1/tenants/acme/keys?keyId=app", "{}")
        .await;
    assert_eq!(created.status, 200, "{}", created.json);
    let encrypt = json!({"plaintext": b64(b"x")}).to_string();

    let anonymous = send(
        rest.addr,
        "",
        "POST",
        "/v1/tenants/acme/keys/app:encrypt",
        encrypt.clone(),
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.json);
    assert_eq!(
        anonymous.json["error"]["details"][0]["reason"],
        "UNAUTHENTICATED"
    );
    assert_eq!(
        anonymous.headers["www-authenticate"],
        r#"Bearer realm="coffer""#
    );
    let forged = send(
        rest.addr,
        "mcp_sk_forged_0000",
        "POST",
        "/v1/tenants/acme/keys/app:encrypt",
        encrypt.clone(),
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.json);
    assert_eq!(
        forged.headers["www-authenticate"],
        r#"Bearer realm="coffer", error="invalid_token""#
    );

    let reader = rest.api_key("ada", &["key:read"]).await;
    let read = send(rest.addr, &reader, "GET", "/v1/tenants/acme/keys/app", "").await;
    assert_eq!(read.status, 200, "{}", read.json);
    let denied = send(
        rest.addr,
        &reader,
        "POST",
        "/v1/tenants/acme/keys/app:encrypt",
        encrypt.clone(),
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.json);
    assert!(
        denied.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key:encrypt"),
        "the missing scope is named: {}",
        denied.json
    );
    assert_eq!(
        denied.json["error"]["details"][0]["reason"],
        "SCOPE_MISSING"
    );
    assert_eq!(
        denied.json["error"]["details"][0]["metadata"]["scope"],
        "key:encrypt"
    );
    // RFC 6750: the challenge names the scope, for a client to ask for it (step-up); the same
    // from credential-service and auth-service.
    let viewer = rest.api_key("ada", &["mcp:read"]).await;
    let reveal = "/v1/tenants/acme/credentials/0123456789abcdef0123456789abcdef:reveal";
    for (key, method, path, body, scope) in [
        (
            &reader,
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            encrypt.as_str(),
            "key:encrypt",
        ),
        (&viewer, "POST", reveal, "{}", "credential:reveal"),
        (
            &viewer,
            "GET",
            "/v1/tenants/acme/principals",
            "",
            "user:read",
        ),
    ] {
        let answer = send(rest.addr, key, method, path, body.to_owned()).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.json);
        assert_eq!(
            answer.headers["www-authenticate"],
            format!(r#"Bearer realm="coffer", error="insufficient_scope", scope="{scope}""#),
            "{path}"
        );
    }

    // Another tenant's key does not exist, whatever the scopes.
    let other = rest
        .send("POST", "/v1/tenants/globex/keys/app:encrypt", encrypt)
        .await;
    assert_eq!(other.status, 404, "{}", other.json);
    let other = rest.send("GET", "/v1/tenants/globex/keys", "").await;
    assert_eq!(other.status, 404, "{}", other.json);
    rest.stack.shutdown().await.unwrap();
}

/// The JSON mapping's refusals name the field: unknown fields, wrong types, bad base64, bad
/// enum names, malformed timestamps and durations, in the body and in the query.
#[tokio::test]
async fn malformed_json_values_are_400_naming_the_field() {
    let rest = Rest::start().await;
    let created = rest
        .send("POST", "/v1/tenants/acme/keys?keyId=app", "{}")
        .await;
    assert_eq!(created.status, 200, "{}", created.json);
    for (method, path, body, field) in [
        (
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": "not base64!"}),
            "plaintext",
        ),
        (
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": "", "keyVersion": "one"}),
            "keyVersion",
        ),
        (
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": "", "encryptionContext": {"a": 1}}),
            "encryptionContext",
        ),
        (
            "POST",
            "/v1/tenants/acme/keys/app:encrypt",
            json!({"plaintext": "", "nonsense": true}),
            "nonsense",
        ),
        (
            "POST",
            "/v1/tenants/acme/principals",
            json!({"principalId": "x", "kind": "PRINCIPAL_KIND_ROBOT"}),
            "kind",
        ),
        (
            "POST",
            "/v1/tenants/acme/credentials",
            json!({"serverId": "x", "expireTime": "tomorrow"}),
            "expireTime",
        ),
        (
            "POST",
            "/v1/tenants/acme/apiKeys",
            json!({"displayName": "x", "ttl": "a week"}),
            "ttl",
        ),
        (
            "GET",
            "/v1/tenants/acme/keys?pageSize=many",
            Value::Null,
            "pageSize",
        ),
    ] {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let answer = rest.send(method, path, body).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.json);
        assert_eq!(answer.json["error"]["status"], "INVALID_ARGUMENT");
        let violation = &answer.json["error"]["details"][0]["fieldViolations"][0];
        let named = format!("{} {}", violation["field"], violation["description"]);
        assert!(
            named.contains(field),
            "{path}: {field} not named in {}",
            answer.json
        );
    }
    rest.stack.shutdown().await.unwrap();
}
