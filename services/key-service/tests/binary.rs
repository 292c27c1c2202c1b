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

#[test]
fn misspelled_settings_are_refused_with_a_suggestion_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coffer.toml");
    std::fs::write(
        &file,
        "[key_service]\nrequest_timout = \"10s\"\n[auth_service]\nlisten = \"x\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-key-service"))
        .arg(&file)
        .env_clear()
        .env("COFFER_KEY_SERVICE__LISTNE", "127.0.0.1:1")
        .env("COFFER_ROOT_KEY", "1:c2VjcmV0")
        .env("COFFER_AUTH_SERVICE__LISTEN", "another service's setting")
        .env("COFFER_REQUIRE_POSTGRES", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "COFFER_KEY_SERVICE__LISTNE: unknown setting; did you mean COFFER_KEY_SERVICE__LISTEN?",
        "COFFER_ROOT_KEY: not a Coffer setting; did you mean COFFER_ROOT_KEYS?",
        "[key_service] request_timout: unknown setting; did you mean request_timeout?",
        // Listed with the other problems, not instead of them.
        "COFFER_KEY_SERVICE__DATABASE_URL: required",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("AUTH_SERVICE") && !stderr.contains("REQUIRE_POSTGRES"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c2VjcmV0"),
        "values are never echoed: {stderr}"
    );
}

#[tokio::test]
async fn a_wrong_root_key_for_a_known_version_exits_64_naming_the_version() {
    use coffer_crypto::RootKeyring;
    use coffer_transport::dev_ca::Usage;
    use secrecy::ExposeSecret as _;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let ca = coffer_transport::DevCa::load_or_create(dir.path(), "coffer.local").unwrap();
    let files = ca
        .issue_files(dir.path(), "key-service", "key-service", Usage::Service)
        .unwrap();
    // A database written under one root key 1 (its check value is recorded at start-up,
    // which is over once the server accepts a connection).
    let config = coffer_key_service::Config::new(
        secrecy::SecretString::from(url.clone()),
        RootKeyring::generate().unwrap(),
        ca.issue_material("key-service", Usage::Service).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coffer_key_service::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let operator = ca.issue_material("operator/test", Usage::Client).unwrap();
    coffer_test_support::connect(addr, operator.client_config("127.0.0.1"))
        .await
        .unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let wrong = RootKeyring::generate().unwrap().to_text();
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-key-service"))
        .env_clear()
        .env("COFFER_ROOT_KEYS", wrong.expose_secret().trim())
        .env("COFFER_KEY_SERVICE__DATABASE_URL", &url)
        .env("COFFER_KEY_SERVICE__LISTEN", "127.0.0.1:0")
        .env("COFFER_KEY_SERVICE__TLS_CERT", &files.cert)
        .env("COFFER_KEY_SERVICE__TLS_KEY", &files.key)
        .env("COFFER_KEY_SERVICE__TLS_CA", &files.ca)
        // Even at trace level the log carries no SQL (sqlx's statement log is off).
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    for sql in ["SELECT", "INSERT", "_sqlx_migrations", "kms_"] {
        assert!(!stderr.contains(sql), "`{sql}` in the log:\n{stderr}");
    }
    assert!(
        stderr.contains("root key version 1 does not match"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong.expose_secret().trim()), "{stderr}");
}

/// An unreachable database is EX_UNAVAILABLE (69), and the message says where and why, without
/// the credentials in the URL.
#[test]
fn an_unreachable_database_exits_69_naming_the_host_and_the_cause() {
    use coffer_transport::dev_ca::Usage;
    use secrecy::ExposeSecret as _;

    let dir = tempfile::tempdir().unwrap();
    let ca = coffer_transport::DevCa::load_or_create(dir.path(), "coffer.local").unwrap();
    let files = ca
        .issue_files(dir.path(), "key-service", "key-service", Usage::Service)
        .unwrap();
    let keyring = coffer_crypto::RootKeyring::generate().unwrap().to_text();
    // Port 1 on loopback: nothing listens there.
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-key-service"))
        .env_clear()
        .env("COFFER_ROOT_KEYS", keyring.expose_secret().trim())
        .env(
            "COFFER_KEY_SERVICE__DATABASE_URL",
            "postgres://coffer:hunter2@127.0.0.1:1/coffer",
        )
        .env("COFFER_KEY_SERVICE__LISTEN", "127.0.0.1:0")
        .env("COFFER_KEY_SERVICE__TLS_CERT", &files.cert)
        .env("COFFER_KEY_SERVICE__TLS_KEY", &files.key)
        .env("COFFER_KEY_SERVICE__TLS_CA", &files.ca)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the database at 127.0.0.1:1/coffer")
            && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
