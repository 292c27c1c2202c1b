//! schemathesis (an independent, property-based API tester, installed by scripts/test) reads
//! the gateway's own `/openapi.json` and sends generated requests, valid and invalid, to the
//! live gateway in front of a real stack, authenticated as an org_admin: no answer may be a
//! server error, and every answer must be one the document describes (status, content type,
//! body schema). Bounded in examples per operation and in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::Rest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_meet_no_server_error_and_no_answer_outside_the_document() {
    let Some(schemathesis) = coffer_test_support::find_tool("schemathesis") else {
        return;
    };
    // The suite comes from one address at a few hundred requests a minute.
    let rest = Rest::start_with(|gateway| gateway.rate_limit(0).key_rate_limit(0)).await;
    let created = rest
        .send(
            "POST",
            "/v1/tenants/acme/credentials",
            r#"{"serverId": "github", "env": {"TOKEN": "t"}}"#,
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.json);
    let key = rest
        .send("POST", "/v1/tenants/acme/keys?keyId=app", "{}")
        .await;
    assert_eq!(key.status, 200, "{}", key.json);
    // The principal the generated SetRoles calls change: not the one the suite runs as.
    let bob = rest
        .send(
            "POST",
            "/v1/tenants/acme/principals",
            r#"{"principalId": "bob", "kind": "PRINCIPAL_KIND_SERVICE_ACCOUNT", "roles": ["viewer"]}"#,
        )
        .await;
    assert_eq!(bob.status, 200, "{}", bob.json);
    let credential = created.json["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let report = tempfile::tempdir().unwrap();
    // The tenant and a credential that exist, so generated requests reach the services
    // rather than stop at NOT_FOUND.
    let config = report.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\ntenant = \"acme\"\ncredential = \"{credential}\"\nkey = \"app\"\n\
             principal = \"bob\"\n"
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new(schemathesis);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{}/openapi.json", rest.addr))
        .args(["--header", &format!("Authorization: Bearer {}", rest.key)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "10", "--max-time", "60", "--seed", "1"])
        .args(["--workers", "2", "--request-timeout", "10"])
        .args(["--generation-database", "none", "--no-color"])
        // Fixed identifiers leave few distinct inputs for some operations; that is intended.
        .args(["--suppress-health-check", "filter_too_much"])
        .arg("--report-dir")
        .arg(report.path())
        // Its cache of crashes goes under the working directory: the temporary one.
        .current_dir(report.path());
    // The gateway runs on this runtime: wait for schemathesis off it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}"
    );
    // Every routed operation was tested: a run that tested nothing cannot pass for one that
    // found nothing.
    let routed = coffer_gateway::routes::Routes::coffer(coffer_gateway::routes::public)
        .unwrap()
        .iter()
        .count();
    assert!(
        text.contains(&format!("Tested: {routed}")),
        "not every one of the {routed} routes was tested:\n{text}"
    );
    assert!(
        !text.contains(&rest.key),
        "schemathesis output holds the bearer (it should sanitize it)"
    );
}
