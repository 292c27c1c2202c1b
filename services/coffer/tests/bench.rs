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
            report.p50 <= report.p95 && report.p95 <= report.p99,
            "{report:?}"
        );
    }
    let table = bench::render(&reports, &options);
    assert!(
        table.lines().nth(3).unwrap().trim_end().ends_with("1.00x"),
        "{table}"
    );
}
