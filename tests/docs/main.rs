//! The README's configuration tables against the settings the services actually read: every
//! setting is documented, and every documented `COFFER_*` variable is a setting (a renamed or
//! removed one cannot linger in the docs). A service's settings are exactly the names its
//! parser asks for when given no values at all.

// The whole crate is test code: helpers fail loudly, like the tests that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use coffer_config::Values;

/// (variable prefix, every name the service's configuration reads).
fn services() -> Vec<(&'static str, BTreeSet<String>)> {
    let key = Values::default();
    let _ = coffer_key_service::Config::from_values(&key);
    let auth = Values::default();
    let _ = coffer_auth_service::Config::from_values(&auth);
    let credential = Values::default();
    let _ = coffer_credential_service::Config::from_values(&credential);
    let gateway = Values::default();
    let _ = coffer_gateway::Config::from_values(&gateway);
    vec![
        ("COFFER_KEY_SERVICE__", key.asked().into_iter().collect()),
        ("COFFER_AUTH_SERVICE__", auth.asked().into_iter().collect()),
        (
            "COFFER_CREDENTIAL_SERVICE__",
            credential.asked().into_iter().collect(),
        ),
        ("COFFER_GATEWAY__", gateway.asked().into_iter().collect()),
    ]
}

fn readme() -> String {
    std::fs::read_to_string(coffer_test_support::workspace_root().join("README.md")).unwrap()
}

/// The names a README line documents: full `COFFER_X__KEY` names, and `__KEY` shorthands on a
/// line that names the service's prefix.
fn documented(readme: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in readme.lines() {
        let mentions_prefix = line.contains(prefix);
        for (at, _) in line.match_indices("__") {
            let start = line[..at]
                .rfind(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .map_or(0, |i| i + 1);
            let head = &line[start..at + 2];
            let key: String = line[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if key.is_empty() {
                continue;
            }
            if head == prefix || (mentions_prefix && head == "__") {
                names.insert(format!("{prefix}{key}"));
            }
        }
    }
    names
}

#[test]
fn every_setting_is_in_the_readme() {
    let readme = readme();
    for (prefix, settings) in services() {
        let documented = documented(&readme, prefix);
        for name in &settings {
            let global = !name.starts_with(prefix);
            let found = if global {
                readme.contains(name.as_str())
            } else {
                documented.contains(name)
            };
            assert!(found, "{name} is read by the service but not in the README");
        }
    }
}

#[test]
fn every_documented_variable_is_a_setting() {
    let readme = readme();
    for (prefix, settings) in services() {
        for name in documented(&readme, prefix) {
            assert!(
                settings.contains(&name),
                "the README documents {name}, which the service does not read"
            );
        }
    }
}

/// deploy/envoy/envoy.yaml (not run in CI, which has no Envoy) against the descriptor set and
/// the gateway's own rules: it transcodes exactly the services that have REST routes, refuses
/// every RPC the gateway keeps off REST before routing, sends each service's RPCs to a cluster
/// that checks that service's SPIFFE ID, and adds the gateway's security headers.
#[test]
fn the_envoy_example_matches_the_descriptor_set_and_the_gateways_rules() {
    let Some(python) = coffer_test_support::python_with(&["yaml"]) else {
        return;
    };
    let file = coffer_test_support::workspace_root().join("deploy/envoy/envoy.yaml");
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manager = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let transcoder = &manager["http_filters"][0]["typed_config"];
    let host = &manager["route_config"]["virtual_hosts"][0];

    let routes = coffer_gateway::routes::Routes::coffer(coffer_gateway::routes::public).unwrap();
    let routed: BTreeSet<String> = routes
        .iter()
        .map(|route| route.rpc.parent_service().full_name().to_owned())
        .collect();
    let transcoded: BTreeSet<String> = transcoder["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(transcoded, routed, "the transcoded services");

    let envoy_routes = host["routes"].as_array().unwrap();
    let refused: BTreeSet<String> = envoy_routes
        .iter()
        .filter(|r| r["direct_response"]["status"] == 404)
        .map(|r| r["match"]["path"].as_str().unwrap().to_owned())
        .collect();
    let not_public: BTreeSet<String> = coffer_gateway::routes::NOT_PUBLIC
        .iter()
        .map(|name| {
            let (service, method) = name.rsplit_once('.').unwrap();
            format!("/{service}/{method}")
        })
        .collect();
    assert_eq!(refused, not_public, "the RPCs refused before routing");
    let first_forwarded = envoy_routes
        .iter()
        .position(|r| r.get("route").is_some())
        .unwrap();
    assert!(
        envoy_routes[first_forwarded..]
            .iter()
            .all(|r| r.get("route").is_some()),
        "every refusal comes before the first forwarding route"
    );

    let clusters = config["static_resources"]["clusters"].as_array().unwrap();
    for service in &routed {
        let route = envoy_routes
            .iter()
            .find(|r| r["match"]["prefix"] == format!("/{service}/"))
            .unwrap_or_else(|| panic!("no route for {service}"));
        let cluster = clusters
            .iter()
            .find(|c| c["name"] == route["route"]["cluster"])
            .unwrap_or_else(|| panic!("no cluster for {service}"));
        let tls = &cluster["transport_socket"]["typed_config"]["common_tls_context"];
        // coffer.v1.KeyService -> key-service
        let short = service
            .trim_start_matches("coffer.v1.")
            .trim_end_matches("Service");
        let name = format!("{}-service", short.to_ascii_lowercase());
        assert_eq!(
            tls["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            format!("spiffe://coffer.local/{name}"),
            "{service}'s cluster checks its SPIFFE ID"
        );
        assert_eq!(
            tls["tls_certificates"][0]["certificate_chain"]["filename"],
            "/etc/coffer/certs/gateway.pem"
        );
    }

    let added: BTreeSet<(String, String)> = host["response_headers_to_add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["header"]["key"].as_str().unwrap().to_ascii_lowercase(),
                h["header"]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let gateway: BTreeSet<(String, String)> = coffer_gateway::server::SECURITY_HEADERS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(added, gateway, "the security headers");
}
