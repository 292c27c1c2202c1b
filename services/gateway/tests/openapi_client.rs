//! A client generated from the gateway's own `/openapi.json` by an independent generator
//! (openapi-python-client, installed by scripts/test) works against the live gateway: the
//! script `clients/openapi_python_client.py` creates, reads, lists and reveals a credential and
//! encrypts and decrypts with a key through the generated, typed calls, and gets a missing
//! credential back as the documented error model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::Rest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_document_works() {
    let Some(generator) = coffer_test_support::find_tool("openapi-python-client") else {
        return;
    };
    let Some(python) = coffer_test_support::python_with(&["httpx", "attrs", "dateutil"]) else {
        return;
    };
    let rest = Rest::start().await;
    let document = support::send(rest.addr, "", "GET", "/openapi.json", "").await;
    assert_eq!(document.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, document.json.to_string()).unwrap();
    // No post-generation formatting hooks: they would need ruff, which the client does not.
    let config = dir.path().join("generator.yaml");
    std::fs::write(&config, "post_hooks: []\n").unwrap();
    let package = dir.path().join("coffer_client");
    let script = coffer_test_support::workspace_root()
        .join("services/gateway/tests/clients/openapi_python_client.py");
    let (addr, key, root) = (rest.addr, rest.key.clone(), dir.path().to_owned());
    let (generated, ran) = tokio::task::spawn_blocking(move || {
        let generated = std::process::Command::new(generator)
            .arg("generate")
            .arg("--path")
            .arg(&spec)
            .args(["--meta", "none", "--overwrite"])
            .arg("--output-path")
            .arg(&package)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let ran = std::process::Command::new(python)
            .arg(&script)
            .env("PYTHONPATH", &root)
            .env("COFFER_REST_URL", format!("http://{addr}"))
            .env("COFFER_REST_KEY", key)
            .output()
            .unwrap();
        (generated, ran)
    })
    .await
    .unwrap();
    let text = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    assert!(
        generated.status.success() && !text(&generated).contains("Warning"),
        "the generator had trouble with the document:\n{}",
        text(&generated)
    );
    assert!(ran.status.success(), "{}", text(&ran));
    assert!(
        text(&ran).contains("every call as documented"),
        "{}",
        text(&ran)
    );
}
