use super::*;

fn values(pairs: &[(&str, &str)]) -> Values {
    Values::from_map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

#[test]
fn every_problem_is_reported_at_once_without_echoing_values() {
    let errors = Config::from_values(&values(&[
        ("COFFER_KEY_SERVICE__LISTEN", "not-an-address"),
        ("COFFER_KEY_SERVICE__REQUEST_TIMEOUT", "hunter2"),
        ("COFFER_ROOT_KEYS", "1:c2hvcnQ="),
    ]))
    .unwrap_err();
    let text = errors.to_string();
    for expected in [
        "COFFER_KEY_SERVICE__LISTEN: invalid value",
        "COFFER_KEY_SERVICE__DATABASE_URL: required",
        "COFFER_KEY_SERVICE__REQUEST_TIMEOUT: invalid value",
        "COFFER_KEY_SERVICE__TLS_CERT: required",
        "root keys: root key version 1: must be base64 of exactly 32 bytes",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(
        !text.contains("hunter2") && !text.contains("c2hvcnQ="),
        "{text}"
    );
}

#[test]
fn a_complete_configuration_validates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = coffer_transport::DevCa::load_or_create(dir.path(), "coffer.local").unwrap();
    let files = ca
        .issue_files(
            dir.path(),
            "key-service",
            "key-service",
            coffer_transport::dev_ca::Usage::Service,
        )
        .unwrap();
    let keyring = RootKeyring::generate().unwrap();
    let keyring_text = secrecy::ExposeSecret::expose_secret(&keyring.to_text()).to_owned();
    let config = Config::from_values(&values(&[
        ("COFFER_KEY_SERVICE__DATABASE_URL", "sqlite::memory:"),
        ("COFFER_ROOT_KEYS", &keyring_text),
        ("COFFER_KEY_SERVICE__TLS_CERT", files.cert.to_str().unwrap()),
        ("COFFER_KEY_SERVICE__TLS_KEY", files.key.to_str().unwrap()),
        ("COFFER_KEY_SERVICE__TLS_CA", files.ca.to_str().unwrap()),
        ("COFFER_KEY_SERVICE__DELETION_WAITING_PERIOD", "1d"),
        ("COFFER_KEY_SERVICE__AUTHZ", "spiffe://coffer.local/ops/=*"),
    ]))
    .unwrap();
    assert_eq!(config.deletion_waiting_period, Duration::from_secs(86_400));
    assert_eq!(config.server.tls.identity().unwrap().path(), "key-service");
    assert_eq!(config.keyring.primary_version(), 1);
    assert!(config.auth_service.is_none() && config.authn.forwarders.is_empty());

    // With an auth-service, the gateway forwards bearers unless configured otherwise.
    let with_auth = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("COFFER_KEY_SERVICE__DATABASE_URL", "sqlite::memory:"),
            ("COFFER_ROOT_KEYS", keyring_text.as_str()),
            ("COFFER_KEY_SERVICE__TLS_CERT", files.cert.to_str().unwrap()),
            ("COFFER_KEY_SERVICE__TLS_KEY", files.key.to_str().unwrap()),
            ("COFFER_KEY_SERVICE__TLS_CA", files.ca.to_str().unwrap()),
            (
                "COFFER_KEY_SERVICE__AUTH_SERVICE_URL",
                "https://auth.internal:50052",
            ),
        ];
        pairs.extend_from_slice(extra);
        Config::from_values(&values(&pairs)).unwrap()
    };
    let config = with_auth(&[]);
    assert_eq!(config.auth_service.unwrap().server_name, "auth.internal");
    assert_eq!(
        config.authn.forwarders,
        vec![coffer_transport::SpiffeId::parse("spiffe://coffer.local/gateway").unwrap()]
    );
    assert!(
        with_auth(&[("COFFER_KEY_SERVICE__FORWARDERS", "none")])
            .authn
            .forwarders
            .is_empty()
    );
}

#[test]
fn root_keys_given_both_in_the_environment_and_as_a_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("root-keys");
    let keyring = RootKeyring::generate().unwrap();
    let text = secrecy::ExposeSecret::expose_secret(&keyring.to_text()).to_owned();
    std::fs::write(&file, &text).unwrap();
    let errors = Config::from_values(&values(&[
        ("COFFER_ROOT_KEYS", text.trim()),
        ("COFFER_KEY_SERVICE__ROOT_KEYS_FILE", file.to_str().unwrap()),
    ]))
    .unwrap_err()
    .to_string();
    assert!(errors.contains("both set"), "{errors}");
    assert!(!errors.contains(text.trim()), "{errors}");
}

#[test]
fn forwarders_need_an_auth_service_and_default_to_the_gateway_with_one() {
    let base = [
        ("COFFER_KEY_SERVICE__DATABASE_URL", "sqlite::memory:"),
        (
            "COFFER_ROOT_KEYS",
            "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ];
    let problems = |extra: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_values(&values(&pairs))
            .unwrap_err()
            .to_string()
    };
    let text = problems(&[(
        "COFFER_KEY_SERVICE__FORWARDERS",
        "spiffe://coffer.local/gateway",
    )]);
    assert!(
        text.contains("COFFER_KEY_SERVICE__FORWARDERS: needs AUTH_SERVICE_URL"),
        "{text}"
    );
    let text = problems(&[("COFFER_KEY_SERVICE__AUTH_SERVICE_IDENTITY", "spiffe://x/y")]);
    assert!(
        text.contains("COFFER_KEY_SERVICE__AUTH_SERVICE_IDENTITY: set without AUTH_SERVICE_URL"),
        "{text}"
    );
    let text = problems(&[
        ("COFFER_KEY_SERVICE__AUTH_SERVICE_URL", "http://auth:50052"),
        ("COFFER_KEY_SERVICE__RESERVED_KEYS", "keys/credentials"),
    ]);
    assert!(
        text.contains("COFFER_KEY_SERVICE__AUTH_SERVICE_URL: must be https://host:port")
            && text.contains("COFFER_KEY_SERVICE__RESERVED_KEYS: key pattern `keys/credentials`"),
        "{text}"
    );
}
