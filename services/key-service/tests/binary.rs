//! The production binary refuses bad configuration with EX_USAGE (64), listing every problem,
//! and never generates a root key of its own.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

#[test]
fn without_configuration_the_binary_exits_64_and_lists_every_missing_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-key-service"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "COFFER_KEY_SERVICE__DATABASE_URL: required",
        "COFFER_ROOT_KEYS or COFFER_KEY_SERVICE__ROOT_KEYS_FILE: required",
        "COFFER_KEY_SERVICE__TLS_CERT: required",
        "COFFER_KEY_SERVICE__TLS_KEY: required",
        "COFFER_KEY_SERVICE__TLS_CA: required",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn a_malformed_root_keyring_is_refused_without_echoing_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-key-service"))
        .env_clear()
        .env("COFFER_ROOT_KEYS", "1:dG9vLXNob3J0LXNlY3JldA==")
        .env("COFFER_KEY_SERVICE__DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("root key version 1: must be base64 of exactly 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("dG9vLXNob3J0LXNlY3JldA"), "{stderr}");
}
