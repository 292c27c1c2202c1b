//! `coffer bench` runs every workload against a real stack and reports sane numbers. Speed
//! itself is never asserted: that is what the benchmark prints, not what a test checks.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use coffer::bench;

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_completes_calls_and_reports_ordered_percentiles() {
    let options = bench::Options {
        duration: Duration::from_millis(200),
        concurrency: 2,
        payload: 1024,
        record_cache_ttl: None,
        connections: 2,
        target: None,
    };
    let reports = bench::run(&options).await.unwrap();
    let names: Vec<&str> = reports.iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "Health/Check (baseline)",
            "GetKey",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey"
        ]
    );
    for report in &reports {
        assert!(report.calls > 0, "{report:?}");
        assert!(
            report.p50 <= report.p95 && report.p95 <= report.p99 && report.p99 <= report.p999,
            "{report:?}"
        );
    }
    let crypto = bench::crypto_baselines(&options).unwrap();
    let names: Vec<&str> = crypto.iter().map(|r| r.name).collect();
    assert_eq!(names, ["AES-256-GCM seal", "AES-256-GCM open", "SHA-256"]);
    assert!(
        crypto.iter().all(|r| r.calls > 0 && r.p50 <= r.p99),
        "{crypto:?}"
    );
    let ratios = bench::render_crypto(&crypto, &reports);
    assert_eq!(ratios.matches(" rate\n").count(), 3, "{ratios}");
    let dir = tempfile::tempdir().unwrap();
    let [json, markdown] = bench::write_results(dir.path(), &options, &reports, &crypto).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(json["rpc"].as_array().unwrap().len(), reports.len());
    assert_eq!(json["rpc"][0]["vs_baseline"], 1.0);
    assert_eq!(json["crypto_in_process"].as_array().unwrap().len(), 3);
    assert!(json["cores"].as_u64().unwrap() >= 1 && json["commit"].is_string());
    let markdown = std::fs::read_to_string(markdown).unwrap();
    assert_eq!(
        markdown.lines().filter(|l| l.starts_with("| ")).count(),
        reports.len() + 1,
        "{markdown}"
    );
    let table = bench::render(&reports, &options);
    assert!(
        table.lines().nth(3).unwrap().trim_end().ends_with("1.00x"),
        "{table}"
    );
}

/// With `target`, the harness measures a stack it did not start (here one started apart in
/// this test, as `coffer up` would be in another process).
#[tokio::test(flavor = "multi_thread")]
async fn a_running_stack_can_be_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let running = coffer::up::start(&coffer::up::Options {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        auth_listen: "127.0.0.1:0".parse().unwrap(),
        credential_listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace_period: Duration::from_secs(5),
        record_cache_ttl: None,
    })
    .await
    .unwrap();
    let options = bench::Options {
        duration: Duration::from_millis(100),
        concurrency: 1,
        payload: 32,
        record_cache_ttl: None,
        connections: 1,
        target: Some(bench::Target {
            data_dir: dir.path().join("data"),
            key_service: running.key_service_addr,
        }),
    };
    let reports = bench::run(&options).await.unwrap();
    assert_eq!(reports.len(), 5);
    assert!(reports.iter().all(|r| r.calls > 0), "{reports:?}");
    assert!(bench::render(&reports, &options).contains("stack in another process"));
    running.shutdown().await.unwrap();
}
