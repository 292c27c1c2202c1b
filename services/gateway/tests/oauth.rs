//! The OAuth 2.1 authorization server end to end: the real stack with the gateway's URL as
//! issuer and audience, a user signing in and consenting through the HTML forms (cookies and
//! CSRF tokens as a browser keeps them), the token endpoint, and Coffer's REST API accepting
//! the token. Then each misuse the MCP authorization specification names, refused with the
//! right error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use coffer_crypto::RootKeyring;
use coffer_gateway::oauth::Issuer;
use coffer_gateway::routes::Routes;
use coffer_gateway::server::Gateway;
use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_test_support::connect;
use coffer_transport::DevCa;
use coffer_transport::dev_ca::Usage;
use prost_reflect::DescriptorPool;
use sha2::{Digest as _, Sha256};
use support::{Answer, request};

const REDIRECT: &str = "http://127.0.0.1:3000/callback";
const MCP: &str = "http://127.0.0.1:1/mcp";
const PASSWORD: &str = "correct horse battery";

struct Server {
    addr: SocketAddr,
    issuer: String,
    client_id: String,
    operator: AuthServiceClient<tonic::transport::Channel>,
    /// auth-service's clock (manual): advancing it expires codes, requests and sessions.
    /// The other services keep the system clock, so a token issued after an advance is
    /// "from the future" to them: a test advances only after its last token use.
    clock: coffer_server::Clock,
    _stack: coffer_stack::Stack,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With client metadata documents allowed from these test hosts.
    async fn start_with(allowance: Option<coffer_auth_service::TestAllowance>) -> Self {
        Self::start_tweaked(allowance, |_| {}).await
    }

    /// With `tweak` applied to auth-service's configuration last.
    async fn start_tweaked(
        allowance: Option<coffer_auth_service::TestAllowance>,
        tweak: impl FnOnce(&mut coffer_auth_service::Config) + Send + 'static,
    ) -> Self {
        coffer_test_support::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let ca = DevCa::generate("coffer.local").unwrap();
        let certificates = coffer_stack::Certificates::issue(&ca).unwrap();
        let (a, k, c) = (issuer.clone(), issuer.clone(), issuer.clone());
        let clock = coffer_server::Clock::manual();
        let auth_clock = clock.clone();
        let stack = coffer_stack::Stack::builder(RootKeyring::generate().unwrap(), certificates)
            .databases(coffer_stack::Databases::sqlite_in(dir.path()))
            .auth_service(move |config| {
                config.bcrypt_cost = 4;
                config.clock = auth_clock;
                config.tokens.issuer.clone_from(&a);
                config.tokens.audience = a;
                config.oauth.resources = vec![coffer_auth_service::Resource::parse(MCP).unwrap()];
                config.oauth.document_test_allowance = allowance;
                tweak(config);
            })
            .key_service(move |config| {
                config.authn.issuer.clone_from(&k);
                config.authn.audience = k;
            })
            .credential_service(move |config| {
                config.authn.issuer.clone_from(&c);
                config.authn.audience = c;
            })
            .spawn()
            .await
            .unwrap();
        let operator_tls = ca
            .issue_material("operator/test", Usage::Client)
            .unwrap()
            .client_config("127.0.0.1");
        let mut operator = AuthServiceClient::new(
            connect(stack.auth_service.addr, operator_tls)
                .await
                .unwrap(),
        );
        operator
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme".into(),
            })
            .await
            .unwrap();
        operator
            .create_principal(pb::CreatePrincipalRequest {
                parent: "tenants/acme".into(),
                principal_id: "alice".into(),
                kind: pb::PrincipalKind::User as i32,
                password: PASSWORD.into(),
                roles: vec!["developer".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let client_id = operator
            .create_client(pb::CreateClientRequest {
                client_name: "Conformance <client>".into(),
                redirect_uris: vec![REDIRECT.into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .client
            .unwrap()
            .client_id;

        let gateway_tls = ca
            .issue_material("gateway", Usage::Client)
            .unwrap()
            .client_config("127.0.0.1");
        let mut upstreams = HashMap::new();
        for (service, service_addr) in [
            ("coffer.v1.KeyService", stack.key_service.addr),
            ("coffer.v1.AuthService", stack.auth_service.addr),
            ("coffer.v1.CredentialService", stack.credential_service.addr),
        ] {
            upstreams.insert(
                service.to_owned(),
                connect(service_addr, gateway_tls.clone()).await.unwrap(),
            );
        }
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        let routes = Routes::build(&pool, coffer_gateway::routes::public).unwrap();
        let gateway = Gateway::new(routes, upstreams).issuer(Issuer::parse(&issuer).unwrap());
        tokio::spawn(gateway.serve(listener, std::future::pending()));
        Self {
            addr,
            issuer,
            client_id,
            operator,
            clock,
            _stack: stack,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, cookies: &Jar) -> Answer {
        let cookie = cookies.header();
        let mut headers = vec![];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        request(self.addr, "GET", path, &headers, Bytes::new()).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)], cookies: &Jar) -> Answer {
        let body = encode(form);
        let cookie = cookies.header();
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if !cookie.is_empty() {
            headers.push(("cookie", cookie.as_str()));
        }
        request(self.addr, "POST", path, &headers, Bytes::from(body)).await
    }

    /// The authorization request of `client_id` for `resource` with a fresh PKCE pair:
    /// its query and the verifier.
    fn authorization(&self, client_id: &str, scope: &str, resource: &str) -> (String, String) {
        let verifier = URL_SAFE_NO_PAD.encode(coffer_test_support::random_hex(32));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let query = encode(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "xyz-state"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ]);
        (format!("/oauth/authorize?{query}"), verifier)
    }

    /// Signs `alice` in and allows: the redirect's query parameters.
    async fn consent(&self, path: &str, cookies: &mut Jar) -> HashMap<String, String> {
        let page = self.get(path, cookies).await;
        if page.status == 303 {
            // A remembered consent: the code at once.
            return redirect_query(&page);
        }
        assert_eq!(page.status, 200, "{}", page.text);
        cookies.keep(&page);
        let csrf = hidden(&page.text, "csrf");
        let handle = hidden(&page.text, "request");
        let consent = if cookies.has("__Host-coffer_session") {
            page
        } else {
            assert!(page.text.contains("Sign in"), "{}", page.text);
            let signed_in = self
                .post_form(
                    "/oauth/login",
                    &[
                        ("request", &handle),
                        ("csrf", &csrf),
                        ("tenant", "acme"),
                        ("username", "alice"),
                        ("password", PASSWORD),
                    ],
                    cookies,
                )
                .await;
            cookies.keep(&signed_in);
            signed_in
        };
        if consent.status == 303 {
            return redirect_query(&consent);
        }
        assert_eq!(consent.status, 200, "{}", consent.text);
        assert!(consent.text.contains("Allow"), "{}", consent.text);
        // The consent page names the client (escaped), its id and where it sends you.
        assert!(
            consent.text.contains("Conformance &lt;client&gt;")
                || consent.text.contains("Document client"),
            "{}",
            consent.text
        );
        assert!(consent.text.contains("mcp_cl_") || consent.text.contains("/client.json"));
        assert!(consent.text.contains("127.0.0.1"));
        let csp = consent.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("form-action 'self' http://127.0.0.1:3000"),
            "{csp}"
        );
        let allowed = self
            .post_form(
                "/oauth/consent",
                &[
                    ("request", &hidden(&consent.text, "request")),
                    ("csrf", &csrf),
                    ("decision", "allow"),
                ],
                cookies,
            )
            .await;
        assert_eq!(allowed.status, 303, "{}", allowed.text);
        redirect_query(&allowed)
    }

    async fn token(&self, form: &[(&str, &str)]) -> Answer {
        self.post_form("/oauth/token", form, &Jar::default()).await
    }

    async fn code_tokens(&self, code: &str, verifier: &str) -> Answer {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", &self.client_id),
        ])
        .await
    }

    /// A REST call with `token`: its status.
    async fn rest(&self, token: &str) -> u16 {
        let authorization = format!("Bearer {token}");
        request(
            self.addr,
            "GET",
            "/v1/tenants/acme/credentials",
            &[("authorization", authorization.as_str())],
            Bytes::new(),
        )
        .await
        .status
    }
}

/// The browser's cookies.
#[derive(Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn keep(&mut self, answer: &Answer) {
        for value in answer.headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
                assert!(text.contains(attribute), "{text} lacks {attribute}");
            }
            assert!(text.starts_with("__Host-") && !text.contains("Domain"));
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.insert(name.to_owned(), value.to_owned());
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the page has the hidden field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    // As a browser reads the attribute.
    html[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn redirect_query(answer: &Answer) -> HashMap<String, String> {
    let location = answer.headers["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn discovery_documents_name_this_issuer_exactly() {
    let server = Server::start().await;
    let jar = Jar::default();
    let metadata = server
        .get("/.well-known/oauth-authorization-server", &jar)
        .await;
    assert_eq!(metadata.status, 200);
    assert!(
        metadata.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let m = &metadata.json;
    assert_eq!(m["issuer"], server.issuer.as_str());
    assert_eq!(
        m["authorization_endpoint"],
        format!("{}/oauth/authorize", server.issuer)
    );
    assert_eq!(
        m["token_endpoint"],
        format!("{}/oauth/token", server.issuer)
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert!(
        m["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "offline_access")
    );
    for grant in ["authorization_code", "refresh_token", "client_credentials"] {
        assert!(
            m["grant_types_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == grant)
        );
    }
    let prm = server
        .get("/.well-known/oauth-protected-resource", &jar)
        .await;
    assert_eq!(prm.json["resource"], server.issuer.as_str());
    assert_eq!(prm.json["authorization_servers"][0], server.issuer.as_str());
    assert_eq!(
        prm.json["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    // The REST API's 401 points at that document.
    let refused = request(
        server.addr,
        "GET",
        "/v1/tenants/acme/credentials",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(refused.status, 401);
    let challenge = refused.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
            server.issuer
        )),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_user_signs_in_consents_and_the_token_works_until_misused() {
    let server = Server::start().await;
    let mut jar = Jar::default();
    let (path, verifier) =
        server.authorization(&server.client_id, "mcp:read offline_access", &server.issuer);
    let redirect = server.consent(&path, &mut jar).await;
    assert_eq!(redirect["state"], "xyz-state");
    assert_eq!(redirect["iss"], server.issuer.as_str());
    let code = &redirect["code"];

    let tokens = server.code_tokens(code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert_eq!(tokens.headers["cache-control"], "no-store");
    assert!(
        tokens.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(tokens.json["token_type"], "Bearer");
    assert_eq!(tokens.json["scope"], "mcp:read offline_access");
    let access = tokens.json["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_owned();
    // The token is for Coffer's REST API: accepted there, with the consented scope only.
    assert_eq!(server.rest(&access).await, 200);

    // Refresh: rotated; the spent one presented again revokes the family.
    let refreshed = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let next = refreshed.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    // Login's refresh RPC will not turn a client's refresh token into a Coffer session.
    let escalated = request(
        server.addr,
        "POST",
        "/v1/auth/refresh",
        &[("content-type", "application/json")],
        Bytes::from(serde_json::json!({ "refreshToken": next }).to_string()),
    )
    .await;
    assert_eq!(escalated.status, 401, "{}", escalated.json);
    let still = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(
        still.status, 200,
        "the refused attempt spent nothing: {}",
        still.json
    );
    let next = still.json["refresh_token"].as_str().unwrap().to_owned();
    let reused = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(
        (reused.status, reused.json["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let after = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(
        after.json["error"], "invalid_grant",
        "the family is revoked"
    );

    // The code a second time: refused, and the token its first use issued is revoked.
    let again = server.code_tokens(code, &verifier).await;
    assert_eq!(again.json["error"], "invalid_grant");
    // The services see the revocation through their feed, within its one-second bound.
    let mut status = 200;
    for _ in 0..30 {
        status = server.rest(&access).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "the reused code's token is still accepted after 3 s"
    );

    // The consent is remembered: the next authorization redirects at once.
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let page = server.get(&path, &jar).await;
    assert_eq!(page.status, 303, "{}", page.text);
    let code = redirect_query(&page)["code"].clone();
    let tokens = server.code_tokens(&code, &verifier).await;
    assert_eq!(tokens.status, 200);
    assert!(
        tokens.json.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );

    // The user's grants: the operator sees them over gRPC; the user on a page, where one
    // button withdraws the grant, and its refresh tokens stop working at once.
    let (path, verifier) =
        server.authorization(&server.client_id, "mcp:read offline_access", &server.issuer);
    let code = server.consent(&path, &mut jar).await["code"].clone();
    let refresh = server.code_tokens(&code, &verifier).await.json["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = server
        .operator
        .clone()
        .list_grants(pb::ListGrantsRequest {
            parent: "tenants/acme/principals/alice".into(),
            session: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_id, server.client_id);
    assert_eq!(listed[0].scopes, vec!["mcp:read".to_owned()]);
    let page = server.get("/oauth/grants", &jar).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("Conformance &lt;client&gt;"),
        "{}",
        page.text
    );
    let revoked = server
        .post_form(
            "/oauth/grants/revoke",
            &[
                ("grant", &hidden(&page.text, "grant")),
                ("csrf", &hidden(&page.text, "csrf")),
            ],
            &jar,
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    let refused = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(refused.json["error"], "invalid_grant");
    let page = server.get("/oauth/grants", &jar).await;
    assert!(
        page.text.contains("not allowed any application"),
        "{}",
        page.text
    );
    // Without a sign-in there is no list.
    assert_eq!(
        server.get("/oauth/grants", &Jar::default()).await.status,
        401
    );
}

#[tokio::test]
async fn codes_requests_and_sign_ins_expire() {
    let server = Server::start().await;
    let mut jar = Jar::default();
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let code = server.consent(&path, &mut jar).await["code"].clone();
    // A code lives five minutes: just before, it would still be good (not spent here);
    // after, it is refused, bound to nothing.
    server.clock.advance(5 * 60 + 1);
    let expired = server.code_tokens(&code, &verifier).await;
    assert_eq!(
        (expired.status, expired.json["error"].as_str()),
        (400, Some("invalid_grant")),
        "{}",
        expired.json
    );

    // A pending request waits ten minutes for its user: the sign-in page's form after
    // that is refused as expired, and so is the consent of a signed-in session.
    let mut fresh = Jar::default();
    let (path, _) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let page = server.get(&path, &fresh).await;
    assert_eq!(page.status, 200, "{}", page.text);
    fresh.keep(&page);
    server.clock.advance(10 * 60 + 1);
    let late = server
        .post_form(
            "/oauth/login",
            &[
                ("request", &hidden(&page.text, "request")),
                ("csrf", &hidden(&page.text, "csrf")),
                ("tenant", "acme"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            &fresh,
        )
        .await;
    assert_eq!(late.status, 401, "{}", late.text);
    assert!(late.text.contains("expired"), "{}", late.text);

    // The first browser's sign-in (30 minutes) has outlived its session: a new
    // authorization asks it to sign in again instead of showing the consent page.
    server.clock.advance(30 * 60);
    let (path, _) = server.authorization(&server.client_id, "mcp:admin", &server.issuer);
    let page = server.get(&path, &jar).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Sign in to Coffer"), "{}", page.text);
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused_by_coffer() {
    let server = Server::start().await;
    let mut jar = Jar::default();
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", MCP);
    let redirect = server.consent(&path, &mut jar).await;
    let tokens = server.code_tokens(&redirect["code"], &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let access = tokens.json["access_token"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["client_id"], server.client_id.as_str());
    assert_eq!(server.rest(access).await, 401);

    // The MCP server's own client introspects it (RFC 7662): active, for that resource.
    let created = server
        .operator
        .clone()
        .create_client(pb::CreateClientRequest {
            client_name: "the MCP server".into(),
            resource_server: MCP.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rs_id = created.client.unwrap().client_id;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{rs_id}:{}", created.client_secret))
    );
    let introspect = |token: String, authorization: String| async move {
        request(
            server.addr,
            "POST",
            "/oauth/introspect",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", authorization.as_str()),
            ],
            Bytes::from(encode(&[("token", &token)])),
        )
        .await
    };
    let active = introspect(access.to_owned(), basic.clone()).await;
    assert_eq!(active.status, 200, "{}", active.json);
    assert_eq!(active.json["active"], true);
    assert_eq!(active.json["aud"], MCP);
    assert_eq!(active.json["client_id"], server.client_id.as_str());
    assert_eq!(active.json["scope"], "mcp:read");
    // Anyone else may not introspect: a public client is refused.
    let public = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", server.client_id))
    );
    let refused = introspect(access.to_owned(), public).await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Revoked by its client (RFC 7009): introspection says so at once.
    let revoked = server
        .post_form(
            "/oauth/revoke",
            &[("token", access), ("client_id", &server.client_id)],
            &Jar::default(),
        )
        .await;
    assert_eq!(revoked.status, 200);
    let inactive = introspect(access.to_owned(), basic).await;
    assert_eq!(inactive.json, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn misuse_is_refused_with_the_right_error() {
    let server = Server::start().await;
    let mut jar = Jar::default();

    // Plain PKCE, a missing resource, an unknown scope: redirected errors with state and iss.
    let (path, _) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    for (change, error) in [
        (
            ("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (("&resource=", "&ignored="), "invalid_target"),
        (("scope=mcp%3Aread", "scope=mcp%3Aroot"), "invalid_scope"),
    ] {
        let bad = path.replace(change.0, change.1);
        assert_ne!(bad, path, "{change:?}");
        let answer = server.get(&bad, &jar).await;
        assert_eq!(answer.status, 303, "{change:?}: {}", answer.text);
        let query = redirect_query(&answer);
        assert_eq!(query["error"], error, "{change:?}");
        assert_eq!(query["state"], "xyz-state");
        assert_eq!(query["iss"], server.issuer.as_str());
    }
    // A redirect URI that is not the client's, or an unknown client: shown, never redirected.
    for bad in [
        path.replace("3000%2Fcallback", "3001%2Fcallback"),
        path.replace(&server.client_id, "mcp_cl_unknown"),
    ] {
        let answer = server.get(&bad, &jar).await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert!(answer.headers.get("location").is_none());
    }

    // A form without its CSRF token.
    let page = server.get(&path, &jar).await;
    jar.keep(&page);
    let forged = server
        .post_form(
            "/oauth/login",
            &[
                ("request", &hidden(&page.text, "request")),
                ("csrf", "x"),
                ("tenant", "acme"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            &jar,
        )
        .await;
    assert_eq!(forged.status, 403);
    let no_cookie = server
        .post_form(
            "/oauth/consent",
            &[
                ("request", &hidden(&page.text, "request")),
                ("csrf", &hidden(&page.text, "csrf")),
                ("decision", "allow"),
            ],
            &Jar::default(),
        )
        .await;
    assert_eq!(no_cookie.status, 403);

    // A wrong password: the same page again, for the same request and naming the same
    // client, and nothing signed in.
    let wrong = server
        .post_form(
            "/oauth/login",
            &[
                ("request", &hidden(&page.text, "request")),
                ("csrf", &hidden(&page.text, "csrf")),
                ("client_name", &hidden(&page.text, "client_name")),
                ("shown_resource", &hidden(&page.text, "shown_resource")),
                ("tenant", "acme"),
                ("username", "alice"),
                ("password", "not the password"),
            ],
            &jar,
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(
        wrong
            .text
            .contains("Wrong organization, username or password")
    );
    assert!(
        wrong
            .text
            .contains("<strong>Conformance &lt;client&gt;</strong>"),
        "{}",
        wrong.text
    );
    assert!(
        wrong
            .text
            .contains(&format!("access to <code>{MCP}</code>"))
            || wrong
                .text
                .contains(&format!("access to <code>{}</code>", server.issuer)),
        "{}",
        wrong.text
    );
    assert_eq!(
        hidden(&wrong.text, "request"),
        hidden(&page.text, "request")
    );
    assert!(wrong.headers.get("set-cookie").is_none());

    // Wrong verifier; the code of another client; a redirect URI that differs.
    let other = server
        .operator
        .clone()
        .create_client(pb::CreateClientRequest {
            client_name: "other".into(),
            redirect_uris: vec![REDIRECT.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap()
        .client_id;
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let code = server.consent(&path, &mut jar).await["code"].clone();
    let wrong = server.code_tokens(&code, &format!("{verifier}x")).await;
    assert_eq!(wrong.json["error"], "invalid_grant", "{}", wrong.json);
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let code = server.consent(&path, &mut jar).await["code"].clone();
    let stolen = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &other),
        ])
        .await;
    assert_eq!(stolen.json["error"], "invalid_grant", "{}", stolen.json);
    let (path, verifier) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    let code = server.consent(&path, &mut jar).await["code"].clone();
    let moved = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:3000/other"),
            ("code_verifier", &verifier),
            ("client_id", &server.client_id),
        ])
        .await;
    assert_eq!(moved.json["error"], "invalid_grant", "{}", moved.json);
    // An unknown client at the token endpoint; an unknown grant type.
    let unknown = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
        ])
        .await;
    assert_eq!(
        (unknown.status, unknown.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let grant = server
        .token(&[("grant_type", "password"), ("client_id", &server.client_id)])
        .await;
    assert_eq!(grant.json["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn dynamic_registration_needs_an_application_type_and_safe_redirects() {
    let server = Server::start().await;
    let register = |body: serde_json::Value| async move {
        request(
            server.addr,
            "POST",
            "/oauth/register",
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await
    };
    let registered = register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "client_name": "SDK client",
        "application_type": "native",
        "token_endpoint_auth_method": "none",
    }))
    .await;
    assert_eq!(registered.status, 201, "{}", registered.json);
    assert!(
        registered.json["client_id"]
            .as_str()
            .unwrap()
            .starts_with("mcp_cl_")
    );
    assert_eq!(registered.json["token_endpoint_auth_method"], "none");
    for (body, error) in [
        (
            serde_json::json!({"redirect_uris": [REDIRECT]}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": ["http://evil.example/cb"], "application_type": "native"}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "application_type": "web"}),
            "invalid_redirect_uri",
        ),
    ] {
        let refused = register(body.clone()).await;
        assert_eq!(
            (refused.status, refused.json["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
    }
}

/// An HTTPS server on 127.0.0.1 with a certificate of `ca`, serving client metadata
/// documents: `/client.json` (valid), `/wrong.json` (another client_id) and
/// `/redirect.json` (a redirect to the same document at `localhost`, a loopback name the
/// allowance does not cover). Returns its `host:port` and its pages.
async fn document_server(ca: &DevCa) -> (String, coffer_test_support::Pages) {
    use coffer_test_support::Page;
    let (addr, served) = coffer_test_support::serve_https(ca).await;
    let host = addr.to_string();
    let document = |client_id: String| client_document(&client_id);
    let mut pages = served.lock().unwrap();
    pages.insert(
        "/client.json".to_owned(),
        document(format!("https://{host}/client.json")),
    );
    pages.insert(
        "/wrong.json".to_owned(),
        document("https://other.example/client.json".to_owned()),
    );
    pages.insert(
        "/redirect.json".to_owned(),
        Page {
            status: 302,
            headers: vec![(
                "location".into(),
                format!("https://localhost:{}/client.json", addr.port()),
            )],
            body: String::new(),
        },
    );
    drop(pages);
    (host, served)
}

/// A valid client metadata document for `client_id`.
fn client_document(client_id: &str) -> coffer_test_support::Page {
    coffer_test_support::Page {
        status: 200,
        headers: vec![("cache-control".into(), "max-age=60".into())],
        body: serde_json::json!({
            "client_id": client_id,
            "client_name": "Document client",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        })
        .to_string(),
    }
}

#[tokio::test]
async fn a_client_metadata_document_identifies_a_client_and_bad_ones_are_refused() {
    let ca = DevCa::generate("coffer.local").unwrap();
    let (host, pages) = document_server(&ca).await;
    let server = Server::start_with(Some(coffer_auth_service::TestAllowance {
        hosts: vec![host.clone()],
        ca_pem: ca.cert_pem().as_bytes().to_vec(),
    }))
    .await;
    let metadata = server
        .get("/.well-known/oauth-authorization-server", &Jar::default())
        .await;
    assert_eq!(metadata.json["client_id_metadata_document_supported"], true);

    // The document's URL is the client id: the whole flow with it.
    let client_id = format!("https://{host}/client.json");
    let mut jar = Jar::default();
    let (path, verifier) =
        server.authorization(&client_id, "mcp:read offline_access", &server.issuer);
    let page = server.get(&path, &jar).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Document client"), "{}", page.text);
    let redirect = server.consent(&path, &mut jar).await;
    let tokens = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &redirect["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    assert!(tokens.json["refresh_token"].is_string());

    // Refused, each shown (never redirected): a document naming another client_id; a URL
    // that resolves to loopback outside the allowance, or the cloud metadata address; a
    // redirect to a loopback name; plain http (not a document URL, so an unknown client).
    let port = host.rsplit(':').next().unwrap();
    for (bad, why) in [
        (format!("https://{host}/wrong.json"), "not exactly the URL"),
        (
            format!("https://localhost:{port}/client.json"),
            "not a public address",
        ),
        (
            "https://169.254.169.254/latest/meta-data".to_owned(),
            "not a public address",
        ),
        (
            format!("https://{host}/redirect.json"),
            "not a public address",
        ),
        (format!("http://{host}/client.json"), "unknown client_id"),
    ] {
        let (path, _) = server.authorization(&bad, "mcp:read", &server.issuer);
        let answer = server.get(&path, &Jar::default()).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
        assert!(answer.headers.get("location").is_none(), "{bad}");
        assert!(answer.text.contains(why), "{bad}: {}", answer.text);
    }

    // A refused URL is remembered for 30 s: fixed at once, it is still refused with the
    // same answer (no new fetch); after that, fetched again and accepted.
    let fixed = format!("https://{host}/wrong.json");
    pages
        .lock()
        .unwrap()
        .insert("/wrong.json".to_owned(), client_document(&fixed));
    let (path, _) = server.authorization(&fixed, "mcp:read", &server.issuer);
    let remembered = server.get(&path, &Jar::default()).await;
    assert_eq!(remembered.status, 400, "{}", remembered.text);
    assert!(remembered.text.contains("not exactly the URL"));
    server.clock.advance(31);
    let (path, _) = server.authorization(&fixed, "mcp:read", &server.issuer);
    let fetched = server.get(&path, &Jar::default()).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert!(fetched.text.contains("Document client"), "{}", fetched.text);
}

#[tokio::test]
async fn service_clients_use_client_credentials_with_a_secret_or_a_signed_assertion() {
    let server = Server::start().await;
    let mut operator = server.operator.clone();
    operator
        .create_principal(pb::CreatePrincipalRequest {
            parent: "tenants/acme".into(),
            principal_id: "robot".into(),
            kind: pb::PrincipalKind::ServiceAccount as i32,
            scopes: vec!["mcp:read".into(), "mcp:write".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let client = |method: pb::TokenEndpointAuthMethod, jwks: String| {
        let mut operator = operator.clone();
        async move {
            operator
                .create_client(pb::CreateClientRequest {
                    client_name: "robot".into(),
                    grant_types: vec!["client_credentials".into()],
                    token_endpoint_auth_method: method.into(),
                    principal: "tenants/acme/principals/robot".into(),
                    scopes: vec!["mcp:read".into()],
                    jwks,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // client_secret_basic: a token for the MCP server with the client's scope.
    let secret = client(
        pb::TokenEndpointAuthMethod::ClientSecretBasic,
        String::new(),
    )
    .await;
    let id = secret.client.unwrap().client_id;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", secret.client_secret))
    );
    let grant = |authorization: String, form: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if !authorization.is_empty() {
            headers.push(("authorization", authorization.as_str()));
        }
        request(
            server.addr,
            "POST",
            "/oauth/token",
            &headers,
            Bytes::from(encode(&pairs)),
        )
        .await
    };
    let issued = grant(
        basic.clone(),
        vec![
            ("grant_type", "client_credentials".into()),
            ("resource", MCP.into()),
        ],
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.json);
    assert_eq!(issued.json["scope"], "mcp:read");
    assert!(issued.json.get("refresh_token").is_none());
    let missing = grant(basic, vec![("grant_type", "client_credentials".into())]).await;
    assert_eq!(missing.json["error"], "invalid_target");

    // private_key_jwt (RFC 7523): an assertion signed with the registered key, once.
    let key = coffer_authn::jwt::SigningKey::generate(coffer_authn::jwt::RsaBits::Rsa2048).unwrap();
    let jwks = serde_json::json!({"keys": [key.jwk()]}).to_string();
    let signed = client(pb::TokenEndpointAuthMethod::PrivateKeyJwt, jwks).await;
    assert!(signed.client_secret.is_empty());
    let id = signed.client.unwrap().client_id;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let assertion = |audience: String, jti: &str| {
        key.sign_json(&serde_json::json!({
            "iss": id, "sub": id, "aud": audience, "jti": jti,
            "iat": now, "exp": now + 60,
        }))
        .unwrap()
    };
    let token_endpoint = format!("{}/oauth/token", server.issuer);
    let form = |assertion: String| {
        vec![
            ("grant_type", "client_credentials".into()),
            ("resource", MCP.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion", assertion),
        ]
    };
    let once = assertion(token_endpoint.clone(), "jti-1");
    let issued = grant(String::new(), form(once.clone())).await;
    assert_eq!(issued.status, 200, "{}", issued.json);
    assert_eq!(issued.json["scope"], "mcp:read");
    let replayed = grant(String::new(), form(once)).await;
    assert_eq!(
        (replayed.status, replayed.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        replayed.json["error_description"]
            .as_str()
            .unwrap()
            .contains("used before")
    );
    let elsewhere = grant(
        String::new(),
        form(assertion("https://other.example/token".into(), "jti-2")),
    )
    .await;
    assert_eq!(
        elsewhere.json["error"], "invalid_client",
        "{}",
        elsewhere.json
    );
    let other_key =
        coffer_authn::jwt::SigningKey::generate(coffer_authn::jwt::RsaBits::Rsa2048).unwrap();
    let forged = other_key
        .sign_json(&serde_json::json!({
            "iss": id, "sub": id, "aud": token_endpoint, "jti": "jti-3",
            "iat": now, "exp": now + 60,
        }))
        .unwrap();
    let forged = grant(String::new(), form(forged)).await;
    assert_eq!(forged.json["error"], "invalid_client", "{}", forged.json);
}

/// The code an authenticator app holding `secret` (base32) shows at unix time `at`.
fn totp_code(secret: &str, at: i64) -> String {
    coffer_crypto::totp::TotpSecret::from_base32(secret)
        .unwrap()
        .code(at)
}

#[tokio::test]
async fn two_step_sign_in_is_set_up_from_the_account_page_and_then_asked_for() {
    use coffer_crypto::totp::STEP;
    let server = Server::start().await;
    let mut jar = Jar::default();
    let (path, _) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    server.consent(&path, &mut jar).await;

    // The account page offers it; enrolling shows the key as a QR code (inline SVG with a
    // label, no XML prolog) and as text.
    let account = server.get("/oauth/grants", &jar).await;
    assert_eq!(account.status, 200, "{}", account.text);
    assert!(
        account
            .text
            .contains("Off: signing in asks only for your password")
    );
    let csrf = hidden(&account.text, "csrf");
    let refused = server
        .post_form("/oauth/totp/enroll", &[("csrf", "forged")], &jar)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let enroll = server
        .post_form("/oauth/totp/enroll", &[("csrf", &csrf)], &jar)
        .await;
    assert_eq!(enroll.status, 200, "{}", enroll.text);
    assert!(
        enroll
            .text
            .contains("<svg class=\"qr\" role=\"img\" aria-label=")
            && enroll.text.contains("</svg>")
            && !enroll.text.contains("<?xml"),
        "{}",
        enroll.text
    );
    let secret = hidden(&enroll.text, "secret");
    assert_eq!(secret.len(), 32);
    assert!(enroll.text.contains(&format!("<code>{secret}</code>")));
    assert_eq!(hidden(&enroll.text, "account"), "acme/alice");
    assert_eq!(enroll.headers["cache-control"], "no-store");

    // A mistyped code shows the same key again; the right one turns it on and shows the
    // recovery codes once.
    let now = server.clock.now();
    let confirm = |code: String| confirm_enrollment(&server, &enroll.text, code, &jar);
    let mistyped = confirm(totp_code(&secret, now + 10 * STEP)).await;
    assert_eq!(mistyped.status, 400, "{}", mistyped.text);
    assert!(mistyped.text.contains("not the code the app shows"));
    assert_eq!(hidden(&mistyped.text, "secret"), secret);
    assert!(mistyped.text.contains("<svg class=\"qr\""));
    let confirmed = confirm(totp_code(&secret, now)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let recovery: Vec<String> = confirmed
        .text
        .split("<li><code>")
        .skip(1)
        .map(|item| item.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{}", confirmed.text);
    // A page without a form may load its stylesheet and post nowhere.
    let csp = confirmed.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("style-src 'self'") && csp.contains("form-action 'none'"),
        "{csp}"
    );
    assert_eq!(confirmed.headers["cache-control"], "no-store");
    let account = server.get("/oauth/grants", &jar).await;
    assert!(
        account.text.contains("10 recovery codes left"),
        "{}",
        account.text
    );

    // A new browser: the right password leads to the code page, with no session yet.
    let mut browser = Jar::default();
    let (factor, verifier) = server.password_step(&mut browser).await;
    assert_eq!(factor.status, 200, "{}", factor.text);
    assert!(factor.text.contains("Enter your code"), "{}", factor.text);
    assert!(factor.text.contains("autocomplete=\"one-time-code\""));
    assert!(factor.headers.get_all("set-cookie").iter().count() == 0);
    let csp = factor.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:3000"),
        "{csp}"
    );
    let post_code = |factor: &Answer, code: &str, browser: &Jar| {
        let fields = [
            ("request", hidden(&factor.text, "request")),
            ("csrf", hidden(&factor.text, "csrf")),
            ("client_name", hidden(&factor.text, "client_name")),
            ("redirect_origin", hidden(&factor.text, "redirect_origin")),
            ("code", code.to_owned()),
        ];
        let cookies = browser.header();
        post_fields(&server, "/oauth/login/factor", fields, cookies)
    };
    // A wrong code: the same page again, naming the client, and still no session.
    let wrong = post_code(&factor, "000000", &browser).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(wrong.text.contains("not right"), "{}", wrong.text);
    assert!(
        wrong.text.contains("Conformance &lt;client&gt;"),
        "{}",
        wrong.text
    );
    assert_eq!(
        hidden(&wrong.text, "request"),
        hidden(&factor.text, "request")
    );
    assert!(wrong.headers.get_all("set-cookie").iter().count() == 0);
    // The enrollment's code was spent; the next step's (within the one-step window) signs
    // in: the consent is remembered, so straight back to the client with a code.
    let spent = post_code(&wrong, &totp_code(&secret, now), &browser).await;
    assert_eq!(spent.status, 401, "{}", spent.text);
    let signed_in = post_code(&wrong, &totp_code(&secret, now + STEP), &browser).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    browser.keep(&signed_in);
    assert!(browser.has("__Host-coffer_session"));
    let code = redirect_query(&signed_in)["code"].clone();
    let tokens = server.code_tokens(&code, &verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.json);
    let token = tokens.json["access_token"].as_str().unwrap();
    assert_eq!(server.rest(token).await, 200);

    // Five wrong codes end the request: after them even a good recovery code is refused
    // for it. They also count as failed logins, which now lock the account.
    let mut third = Jar::default();
    let (factor, _) = server.password_step(&mut third).await;
    assert_eq!(factor.status, 200, "{}", factor.text);
    for wrong in ["111111", "222222", "333333", "444444", "555555"] {
        let refused = post_code(&factor, wrong, &third).await;
        assert_eq!(refused.status, 401, "{}", refused.text);
    }
    let ended = post_code(&factor, &recovery[0], &third).await;
    assert_eq!(ended.status, 401, "{}", ended.text);
    let (locked, _) = server.password_step(&mut Jar::default()).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
}

impl Server {
    /// A new authorization in `browser`, signed in with alice's password: the answer (the
    /// code page, for a user with two-step sign-in) and the PKCE verifier.
    async fn password_step(&self, browser: &mut Jar) -> (Answer, String) {
        let (path, verifier) = self.authorization(&self.client_id, "mcp:read", &self.issuer);
        let page = self.get(&path, browser).await;
        browser.keep(&page);
        let answer = self
            .post_form(
                "/oauth/login",
                &[
                    ("request", &hidden(&page.text, "request")),
                    ("csrf", &hidden(&page.text, "csrf")),
                    ("tenant", "acme"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
                browser,
            )
            .await;
        (answer, verifier)
    }
}

/// Posts the enrollment page's form back with `code`.
async fn confirm_enrollment(server: &Server, enroll: &str, code: String, jar: &Jar) -> Answer {
    let fields = [
        ("csrf", hidden(enroll, "csrf")),
        ("secret", hidden(enroll, "secret")),
        ("uri", hidden(enroll, "uri")),
        ("account", hidden(enroll, "account")),
        ("code", code),
    ];
    post_fields(server, "/oauth/totp/confirm", fields, jar.header()).await
}

/// Posts owned form fields with a cookie header.
async fn post_fields<const N: usize>(
    server: &Server,
    path: &str,
    fields: [(&str, String); N],
    cookies: String,
) -> Answer {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if !cookies.is_empty() {
        headers.push(("cookie", cookies.as_str()));
    }
    request(
        server.addr,
        "POST",
        path,
        &headers,
        Bytes::from(encode(&fields)),
    )
    .await
}

#[tokio::test]
async fn concurrent_guesses_check_no_more_than_five_codes() {
    use coffer_crypto::totp::STEP;
    // Six failures would lock the login: five are all a request may cause.
    let server = Server::start_tweaked(None, |config| config.lockout.max_failures = 6).await;
    let mut jar = Jar::default();
    let (path, _) = server.authorization(&server.client_id, "mcp:read", &server.issuer);
    server.consent(&path, &mut jar).await;
    let account = server.get("/oauth/grants", &jar).await;
    let csrf = hidden(&account.text, "csrf");
    let enroll = server
        .post_form("/oauth/totp/enroll", &[("csrf", &csrf)], &jar)
        .await;
    let secret = hidden(&enroll.text, "secret");
    let confirmed = confirm_enrollment(
        &server,
        &enroll.text,
        totp_code(&secret, server.clock.now()),
        &jar,
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);

    // Twelve wrong codes at once for one request.
    let mut browser = Jar::default();
    let (factor, _) = server.password_step(&mut browser).await;
    assert!(factor.text.contains("Enter your code"), "{}", factor.text);
    let body = encode(&[
        ("request", &hidden(&factor.text, "request")),
        ("csrf", &hidden(&factor.text, "csrf")),
        ("code", "000000"),
    ]);
    let cookies = browser.header();
    let guesses: Vec<_> = (0..12)
        .map(|_| {
            let (addr, body, cookies) = (server.addr, body.clone(), cookies.clone());
            tokio::spawn(async move {
                let headers = [
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("cookie", cookies.as_str()),
                ];
                request(
                    addr,
                    "POST",
                    "/oauth/login/factor",
                    &headers,
                    Bytes::from(body),
                )
                .await
                .status
            })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.await.unwrap(), 401);
    }
    // Only five were checked (each a failed login): the account is not locked, and the
    // next step's code signs in through a new request.
    let mut fresh = Jar::default();
    let (factor, _) = server.password_step(&mut fresh).await;
    assert_eq!(factor.status, 200, "{}", factor.text);
    let fields = [
        ("request", hidden(&factor.text, "request")),
        ("csrf", hidden(&factor.text, "csrf")),
        ("code", totp_code(&secret, server.clock.now() + STEP)),
    ];
    let signed_in = post_fields(&server, "/oauth/login/factor", fields, fresh.header()).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
}
