//! `coffer bench`: throughput and latency of the key-service over real mTLS, against a baseline
//! measured in the same run.
//!
//! The baseline is `grpc.health.v1.Health/Check` on the same server and connections: mTLS,
//! HTTP/2 and protobuf, but no authorization, database or cryptography. Every other workload is
//! reported as a ratio to it, so results compare across machines. Each workload first runs for
//! a warm-up (a tenth of `duration`, not measured), then `concurrency` loops spread over
//! `connections` connections for `duration` (and at most [`MAX_OPS_PER_WORKER`] calls per
//! loop).
//!
//! By default the stack runs in this process (a throwaway `coffer up`); with [`Target`] the
//! load comes from this process and the stack is another one (a `coffer up` started apart), so
//! the two do not share a runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use coffer_proto::pb;
use coffer_proto::pb::key_service_client::KeyServiceClient;
use coffer_transport::TlsMaterial;
use tonic::transport::Endpoint;
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
    /// state from the database, as before the cache). Only for the in-process stack.
    pub record_cache_ttl: Option<Duration>,
    /// HTTP/2 connections the callers share (round robin), at least one.
    pub connections: usize,
    /// A stack running in another process, instead of one started here.
    pub target: Option<Target>,
}

/// A key-service running in another process, reached as its operator.
#[derive(Debug, Clone)]
pub struct Target {
    /// The data directory of its `coffer up` (for the operator certificate).
    pub data_dir: PathBuf,
    /// Its address.
    pub key_service: SocketAddr,
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
    /// 99.9th percentile latency.
    pub p999: Duration,
}

/// Starts a throwaway dev stack, runs every workload, and returns the reports, baseline first.
///
/// # Errors
/// If the stack cannot start or a call fails.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    if let Some(target) = &options.target {
        let operator = crate::layout::operator_files(&target.data_dir);
        return measure(&operator, target.key_service, options).await;
    }
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
    let outcome = measure(&running.layout.operator, running.key_service_addr, options).await;
    running.shutdown().await?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    outcome
}

async fn measure(
    operator: &coffer_transport::TlsFiles,
    key_service: SocketAddr,
    options: &Options,
) -> anyhow::Result<Vec<Report>> {
    let material = TlsMaterial::load(operator).context("loading the operator certificate")?;
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        channels.push(
            Endpoint::from_shared(format!("https://{key_service}"))?
                .tls_config(material.client_config(&key_service.ip().to_string()))?
                .connect()
                .await
                .with_context(|| format!("cannot reach key-service at {key_service}"))?,
        );
    }
    let channel = channels[0].clone();
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

    let health: Vec<_> = channels.iter().cloned().map(HealthClient::new).collect();
    let clients: Vec<_> = channels.into_iter().map(KeyServiceClient::new).collect();
    let mut reports = vec![
        workload(
            "Health/Check (baseline)",
            options,
            &health,
            |mut client| async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(drop)
            },
        )
        .await?,
    ];
    let get = pb::GetKeyRequest { name: name.clone() };
    reports.push(
        workload("GetKey", options, &clients, move |mut c| {
            let request = get.clone();
            async move { c.get_key(request).await.map(drop) }
        })
        .await?,
    );
    let encrypt = pb::EncryptRequest {
        name: name.clone(),
        plaintext,
        ..Default::default()
    };
    reports.push(
        workload("Encrypt", options, &clients, move |mut c| {
            let request = encrypt.clone();
            async move { c.encrypt(request).await.map(drop) }
        })
        .await?,
    );
    let decrypt = pb::DecryptRequest {
        name: name.clone(),
        input: Some(pb::decrypt_request::Input::Ciphertext(ciphertext)),
        ..Default::default()
    };
    reports.push(
        workload("Decrypt", options, &clients, move |mut c| {
            let request = decrypt.clone();
            async move { c.decrypt(request).await.map(drop) }
        })
        .await?,
    );
    let generate = pb::GenerateDataKeyRequest {
        name,
        ..Default::default()
    };
    reports.push(
        workload("GenerateDataKey", options, &clients, move |mut c| {
            let request = generate.clone();
            async move { c.generate_data_key(request).await.map(drop) }
        })
        .await?,
    );
    Ok(reports)
}

/// Runs `send` from `options.concurrency` loops, loop `i` on `clients[i % clients.len()]`:
/// a warm-up of a tenth of the duration (not measured), then the measured `duration`.
async fn workload<C, F, Fut>(
    name: &'static str,
    options: &Options,
    clients: &[C],
    send: F,
) -> anyhow::Result<Report>
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let send = Arc::new(send);
    let warm_up = options.duration / 10;
    let begin = Instant::now() + warm_up;
    let deadline = begin + options.duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency.max(1) {
        let (send, client) = (Arc::clone(&send), clients[worker % clients.len()].clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < begin {
                send(client.clone()).await?;
            }
            while Instant::now() < deadline && latencies.len() < MAX_OPS_PER_WORKER {
                let sent = Instant::now();
                send(client.clone()).await?;
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
    Ok(report(name, latencies, begin.elapsed()))
}

/// The report of `latencies` measured over `elapsed`.
fn report(name: &'static str, mut latencies: Vec<Duration>, elapsed: Duration) -> Report {
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    Report {
        name,
        calls: latencies.len(),
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(0.50),
        p95: percentile(0.95),
        p99: percentile(0.99),
        p999: percentile(0.999),
    }
}

/// The in-process cost of the key-service workloads' cryptography, on one thread with no RPC:
/// AES-256-GCM seal and open of the same payload under the same envelope format, and SHA-256 of
/// it. An Encrypt can approach the seal rate only as far as the RPC (the baseline) allows.
///
/// # Errors
/// If the OS RNG fails.
pub fn crypto_baselines(options: &Options) -> anyhow::Result<Vec<Report>> {
    use coffer_crypto::{Aad, TenantKey, envelope};
    use sha2::Digest as _;
    let key = TenantKey::generate()?;
    let aad = Aad::new("coffer/bench").field(b"tenant").field(b"key");
    let plaintext = vec![0x5a; options.payload];
    let sealed = envelope::seal(&key, 1, &aad, &plaintext)?;
    let seal = local("AES-256-GCM seal", options.duration, || {
        envelope::seal(&key, 1, &aad, &plaintext).map(drop)
    })?;
    let open = local("AES-256-GCM open", options.duration, || {
        envelope::Envelope::parse(&sealed)
            .and_then(|sealed| sealed.open(&key, &aad))
            .map(drop)
    })?;
    let digest = local("SHA-256", options.duration, || {
        std::hint::black_box(sha2::Sha256::digest(&plaintext));
        Ok::<(), coffer_crypto::Error>(())
    })?;
    Ok(vec![seal, open, digest])
}

/// Runs `op` in a loop on this thread for `duration` (at most [`MAX_OPS_PER_WORKER`] times).
fn local<E>(
    name: &'static str,
    duration: Duration,
    mut op: impl FnMut() -> Result<(), E>,
) -> anyhow::Result<Report>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < duration && latencies.len() < MAX_OPS_PER_WORKER {
        let began = Instant::now();
        op()?;
        latencies.push(began.elapsed());
    }
    Ok(report(name, latencies, started.elapsed()))
}

/// Renders the reports as a table with each throughput as a ratio to the first (the baseline).
pub fn render(reports: &[Report], options: &Options) -> String {
    let baseline = reports.first().map_or(1.0, |r| r.throughput);
    let mut out = format!(
        "coffer bench: {} callers over {} connections, {:?} per workload after a {:?} warm-up, \
         {} B payloads, mTLS on 127.0.0.1, stack {}\n\n\
         {:<26} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
        options.concurrency,
        options.connections.max(1),
        options.duration,
        options.duration / 10,
        options.payload,
        if options.target.is_some() {
            "in another process"
        } else {
            "in this process"
        },
        "workload",
        "calls",
        "calls/s",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "vs base"
    );
    for report in reports {
        out.push_str(&format!(
            "{:<26} {:>9} {:>10.0} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2}x\n",
            report.name,
            report.calls,
            report.throughput,
            report.p50,
            report.p95,
            report.p99,
            report.p999,
            report.throughput / baseline
        ));
    }
    out
}

/// Renders the in-process cryptography rows, and each key-service workload's throughput as a
/// ratio to the cryptography it runs (Encrypt and GenerateDataKey to a seal, Decrypt to an
/// open): how far the RPC around it is from the cryptography alone.
pub fn render_crypto(crypto: &[Report], workloads: &[Report]) -> String {
    let mut out = format!(
        "\nin-process cryptography (one thread, no RPC)\n{:<26} {:>10} {:>9} {:>9}\n",
        "operation", "ops/s", "p50", "p99"
    );
    for report in crypto {
        out.push_str(&format!(
            "{:<26} {:>10.0} {:>9.2?} {:>9.2?}\n",
            report.name, report.throughput, report.p50, report.p99
        ));
    }
    let rate = |name: &str| crypto.iter().find(|r| r.name == name).map(|r| r.throughput);
    for (workload, operation) in [
        ("Encrypt", "AES-256-GCM seal"),
        ("Decrypt", "AES-256-GCM open"),
        ("GenerateDataKey", "AES-256-GCM seal"),
    ] {
        let measured = workloads.iter().find(|r| r.name == workload);
        if let (Some(measured), Some(rate)) = (measured, rate(operation)) {
            out.push_str(&format!(
                "{workload} runs at {:.3}x of one thread's {operation} rate\n",
                measured.throughput / rate
            ));
        }
    }
    out
}

/// Writes `DIR/coffer-bench.json` and `DIR/coffer-bench.md`: every row with its ratio to the
/// baseline, the options, the machine's core count and the commit (from `git`, if available),
/// so a run can be compared with later ones. Returns the two paths.
///
/// # Errors
/// If the directory or a file cannot be written.
pub fn write_results(
    dir: &std::path::Path,
    options: &Options,
    workloads: &[Report],
    crypto: &[Report],
) -> anyhow::Result<[PathBuf; 2]> {
    let baseline = workloads.first().map_or(1.0, |r| r.throughput);
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let row = |r: &Report| {
        serde_json::json!({
            "name": r.name,
            "calls": r.calls,
            "per_second": r.throughput,
            "p50_us": micros(r.p50),
            "p95_us": micros(r.p95),
            "p99_us": micros(r.p99),
            "p999_us": micros(r.p999),
            "vs_baseline": r.throughput / baseline,
        })
    };
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        );
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let json = serde_json::json!({
        "commit": commit,
        "cores": cores,
        "seconds_per_workload": options.duration.as_secs_f64(),
        "callers": options.concurrency,
        "connections": options.connections.max(1),
        "payload_bytes": options.payload,
        "stack": if options.target.is_some() { "another process" } else { "this process" },
        "rpc": workloads.iter().map(row).collect::<Vec<_>>(),
        "crypto_in_process": crypto.iter().map(row).collect::<Vec<_>>(),
    });
    let mut markdown = format!(
        "coffer bench at {commit}, {cores} cores, {} callers over {} connections, {} B, stack in {}\n\n\
         | workload | calls/s | p50 | p99 | p99.9 | vs baseline |\n|---|---|---|---|---|---|\n",
        options.concurrency,
        options.connections.max(1),
        options.payload,
        if options.target.is_some() {
            "another process"
        } else {
            "this process"
        },
    );
    for r in workloads {
        markdown.push_str(&format!(
            "| {} | {:.0} | {:.2?} | {:.2?} | {:.2?} | {:.2}x |\n",
            r.name,
            r.throughput,
            r.p50,
            r.p99,
            r.p999,
            r.throughput / baseline
        ));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths = [dir.join("coffer-bench.json"), dir.join("coffer-bench.md")];
    std::fs::write(&paths[0], serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", paths[0].display()))?;
    std::fs::write(&paths[1], markdown)
        .with_context(|| format!("writing {}", paths[1].display()))?;
    Ok(paths)
}
