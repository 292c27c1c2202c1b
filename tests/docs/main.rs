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
