//! `coffer bench` end to end, as a user runs it: the real binary, a `coffer up` child stack on
//! SQLite and on PostgreSQL, OpenBao when `bao` is installed, and every output file checked
//! for form (never for speed: no timing assertions).

use std::path::PathBuf;
use std::process::Command;

/// The workspace's `.venv/bin/bao` (installed by scripts/test), if present.
fn bao() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/bao");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("COFFER_REQUIRE_TOOLS").is_none(),
        "COFFER_REQUIRE_TOOLS is set but OpenBao is not installed (scripts/test installs it)"
    );
    eprintln!("bao not installed: the harness runs without OpenBao");
    None
}

/// The PostgreSQL server of the test suite, if reachable (a failure when required).
fn postgres() -> Option<String> {
    let url = std::env::var("COFFER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    assert!(
        reachable || std::env::var_os("COFFER_REQUIRE_POSTGRES").is_none(),
        "COFFER_REQUIRE_POSTGRES is set but PostgreSQL is unreachable"
    );
    reachable.then_some(url)
}

#[test]
fn a_short_run_writes_well_formed_results_for_every_row() {
    let out = tempfile::tempdir().unwrap();
    let postgres = postgres();
    let bao = bao();
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .current_dir(out.path())
        .args([
            "bench",
            "--duration",
            "100ms",
            "--concurrency",
            "1,2",
            "--connections",
            "2",
            "--passes",
            "2",
        ])
        .args([
            "--backend",
            if postgres.is_some() {
                "sqlite,postgres"
            } else {
                "sqlite"
            },
        ])
        .arg("--out")
        .arg(out.path().join("results"));
    if let Some(url) = &postgres {
        command.args(["--postgres-url", url]);
    }
    match &bao {
        Some(bao) => command.arg("--bao").arg(bao),
        None => command.arg("--no-openbao"),
    };
    let run = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "coffer bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("results/coffer-bench.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["callers"], serde_json::json!([1, 2]));
    assert_eq!(json["passes"], 2);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), if postgres.is_some() { 2 } else { 1 });
    let expected = [
        "Health/Check (no-op RPC)",
        "indexed read (in-process sqlx)",
        "durable commit (in-process sqlx)",
        "Encrypt 32 B",
        "Encrypt 4 KiB",
        "Decrypt 32 B",
        "GenerateDataKey",
        "BatchDecrypt 100 x 32 B",
        "VerifyApiKey (cached)",
        "VerifyApiKey (uncached: bcrypt)",
        "ExchangeApiKey (RSA sign)",
        "GetCredential (masked)",
        "RevealCredential (audited)",
        "HydrateConfig (audited)",
        "no-op route (/healthz)",
        "no-op RPC via REST (/readyz)",
        // The gateway's, beside credential-service's and key-service's own.
        "GetCredential (masked)",
        "Encrypt 32 B",
        "token endpoint: client_credentials (REST)",
        "token endpoint: refresh_token (REST)",
        "resource server verify (libs/resource-server)",
    ];
    for run in runs {
        let rows = run["rows"].as_array().unwrap();
        assert_eq!(rows.len(), expected.len() * 2, "every row at both levels");
        for name in expected {
            for callers in [1, 2] {
                let row = rows
                    .iter()
                    .find(|r| r["name"] == name && r["callers"] == callers)
                    .unwrap_or_else(|| panic!("{name} at {callers} in {run}"));
                assert!(row["calls"].as_u64().unwrap() > 0, "{row}");
                assert!(row["vs_noop"].as_f64().unwrap() > 0.0, "{row}");
                assert!(row["p99_us"].as_f64().unwrap() >= row["p50_us"].as_f64().unwrap());
            }
        }
        let memory = &run["memory_kib"];
        assert!(memory["idle"].as_u64().unwrap() > 0, "{memory}");
        assert!(memory["peak"].as_u64().unwrap() >= memory["idle"].as_u64().unwrap());
        for later in ["after", "after_connections_closed"] {
            assert!(memory[later].as_u64().unwrap() > 0, "{memory}");
        }
        let passes = memory["after_each_pass"].as_array().unwrap();
        assert_eq!(passes.len(), 2, "{memory}");
        assert_eq!(passes[0], memory["after"], "{memory}");
        assert!(
            passes.iter().all(|kib| kib.as_u64().unwrap() > 0),
            "{memory}"
        );
        let svg = std::fs::read_to_string(out.path().join(format!(
            "results/coffer-bench-{}.svg",
            run["backend"].as_str().unwrap()
        )))
        .unwrap();
        let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let bars = document
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .count();
        assert!(bars >= expected.len() * 2 * 2, "two panels of bars: {bars}");
    }
    let crypto: Vec<&str> = json["crypto_in_process"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in [
        "AES-256-GCM seal 32 B",
        "RSA-2048 verify",
        "JWT verify, first use (libs/authn)",
        "bcrypt verify, cost 12",
    ] {
        assert!(crypto.contains(&name), "{name} in {crypto:?}");
    }
    let peers = json["peers"].as_array().unwrap();
    let notes = json["notes"].to_string();
    if bao.is_some() {
        assert_eq!(
            peers.len(),
            3 * 2 * 2,
            "three operations, HTTP and TLS, two levels"
        );
        assert!(notes.contains("in memory"), "{notes}");
        assert!(stdout.contains("x OpenBao (TLS)"), "{stdout}");
    } else {
        assert!(peers.is_empty());
        assert!(notes.contains("OpenBao left out"), "{notes}");
    }
    let markdown = std::fs::read_to_string(out.path().join("results/coffer-bench.md")).unwrap();
    assert!(
        markdown.contains("| group | operation | calls/s @1 | calls/s @2 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| key-service | Encrypt 32 B |"),
        "{markdown}"
    );
    assert!(
        stdout.contains("coffer up resident memory: idle"),
        "{stdout}"
    );
    assert!(stdout.contains("after each of 2 passes"), "{stdout}");
}
