//! `coffer bench`: throughput and latency of the key-service over real mTLS, against a baseline
//! measured in the same run.
//!
//! The baseline is `grpc.health.v1.Health/Check` on the same server and connection: mTLS,
//! HTTP/2 and protobuf, but no authorization, database or cryptography. Every other workload is
//! reported as a ratio to it, so results compare across machines. Each workload runs
//! `concurrency` loops for `duration` (and at most [`MAX_OPS_PER_WORKER`] calls per loop).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_transport::TlsMaterial;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::up;

/// Upper bound on calls per worker loop, so a run always ends.
pub const MAX_OPS_PER_WORKER: usize = 1_000_000;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long each workload runs.
    pub duration: Duration,
    /// Concurrent callers per workload.
    pub concurrency: usize,
    /// Plaintext size for Encrypt/Decrypt, in bytes.
    pub payload: usize,
    /// key-service's key-record cache TTL, if not the default (`0s` reads every call's key
    /// state from the database, as before the cache).
    pub record_cache_ttl: Option<Duration>,
}

/// The measurements of one workload.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was measured.
    pub name: &'static str,
    /// Completed calls.
    pub calls: usize,
    /// Calls per second.
    pub throughput: f64,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Starts a throwaway dev stack, runs every workload, and returns the reports, baseline first.
///
/// # Errors
/// If the stack cannot start or a call fails.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let dir = std::env::temp_dir().join(format!("coffer-bench-{}", std::process::id()));
    let running = up::start(&up::Options {
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".parse()?,
        auth_listen: "127.0.0.1:0".parse()?,
        credential_listen: "127.0.0.1:0".parse()?,
        shutdown_grace_period: Duration::from_secs(5),
        record_cache_ttl: options.record_cache_ttl,
    })
    .await?;
    let outcome = measure(&running, options).await;
    running.shutdown().await?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    outcome
}

async fn measure(running: &up::Running, options: &Options) -> anyhow::Result<Vec<Report>> {
    let material = TlsMaterial::load(&running.layout.operator)?;
    let channel = Endpoint::from_shared(format!("https://{}", running.key_service_addr))?
        .tls_config(material.client_config("127.0.0.1"))?
        .connect()
        .await?;
    let kms = KeyServiceClient::new(channel.clone());
    let key_id = format!("k{}", std::process::id());
    let name = format!("tenants/bench/keys/{key_id}");
    kms.clone()
        .create_key(pb::CreateKeyRequest {
            parent: "tenants/bench".into(),
            key_id,
            key: None,
        })
        .await?;
    let plaintext = vec![0x5a; options.payload];
    let ciphertext = kms
        .clone()
        .encrypt(pb::EncryptRequest {
            name: name.clone(),
            plaintext: plaintext.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .ciphertext;

    let health = HealthClient::new(channel.clone());
    let mut reports = vec![
        workload("Health/Check (baseline)", options, move || {
            let mut client = health.clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(drop)
            }
        })
        .await?,
    ];
    let get = pb::GetKeyRequest { name: name.clone() };
    reports.push(
        workload(
            "GetKey",
            options,
            call(
                &kms,
                get,
                |mut c, r| async move { c.get_key(r).await.map(drop) },
            ),
        )
        .await?,
    );
    let encrypt = pb::EncryptRequest {
        name: name.clone(),
        plaintext,
        ..Default::default()
    };
    reports.push(
        workload(
            "Encrypt",
            options,
            call(&kms, encrypt, |mut c, r| async move {
                c.encrypt(r).await.map(drop)
            }),
        )
        .await?,
    );
    let decrypt = pb::DecryptRequest {
        name: name.clone(),
        input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext)),
        ..Default::default()
    };
    reports.push(
        workload(
            "Decrypt",
            options,
            call(&kms, decrypt, |mut c, r| async move {
                c.decrypt(r).await.map(drop)
            }),
        )
        .await?,
    );
    let generate = pb::GenerateDataKeyRequest {
        name,
        ..Default::default()
    };
    reports.push(
        workload(
            "GenerateDataKey",
            options,
            call(&kms, generate, |mut c, r| async move {
                c.generate_data_key(r).await.map(drop)
            }),
        )
        .await?,
    );
    Ok(reports)
}

/// A call factory: each invocation sends a clone of `request` with a clone of `client`.
fn call<R, F, Fut>(
    client: &KeyServiceClient<Channel>,
    request: R,
    send: F,
) -> impl Fn() -> Fut + Clone + Send + Sync + 'static
where
    R: Clone + Send + Sync + 'static,
    F: Fn(KeyServiceClient<Channel>, R) -> Fut + Clone + Send + Sync + 'static,
{
    let client = client.clone();
    move || send(client.clone(), request.clone())
}

async fn workload<F, Fut>(name: &'static str, options: &Options, call: F) -> anyhow::Result<Report>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let deadline = Instant::now() + options.duration;
    let started = Instant::now();
    let call = Arc::new(call);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let call = Arc::clone(&call);
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline && latencies.len() < MAX_OPS_PER_WORKER {
                let sent = Instant::now();
                call().await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, tonic::Status>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(worker) = workers.join_next().await {
        latencies.extend(
            worker
                .context("bench worker")?
                .with_context(|| format!("{name} failed"))?,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    Ok(Report {
        name,
        calls: latencies.len(),
        throughput: latencies.len() as f64 / elapsed,
        p50: percentile(0.50),
        p95: percentile(0.95),
        p99: percentile(0.99),
    })
}

/// Renders the reports as a table with each throughput as a ratio to the first (the baseline).
pub fn render(reports: &[Report], options: &Options) -> String {
    let baseline = reports.first().map_or(1.0, |r| r.throughput);
    let mut out = format!(
        "coffer bench: {} callers, {:?} per workload, {} B payloads, mTLS on 127.0.0.1\n\n\
         {:<26} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}\n",
        options.concurrency,
        options.duration,
        options.payload,
        "workload",
        "calls",
        "calls/s",
        "p50",
        "p95",
        "p99",
        "vs base"
    );
    for report in reports {
        out.push_str(&format!(
            "{:<26} {:>9} {:>10.0} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2}x\n",
            report.name,
            report.calls,
            report.throughput,
            report.p50,
            report.p95,
            report.p99,
            report.throughput / baseline
        ));
    }
    out
}
