//! The harness's core: a [`Row`] is one operation, [`drive`] runs it from N concurrent workers
//! for a fixed time after a warm-up and returns a [`Report`]; [`local`] times an in-process
//! operation on one thread. Nothing here knows which service a row calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Upper bound on calls per worker, so a run always ends.
pub const MAX_OPS_PER_WORKER: usize = 1_000_000;

/// What one call of a row's caller did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One operation, to be counted.
    Done,
    /// The row ran out of inputs (each call needs one it cannot reuse): this worker stops.
    Exhausted,
}

/// One call's future.
pub type CallFuture = Pin<Box<dyn Future<Output = anyhow::Result<Step>> + Send>>;
/// A worker's way to make calls (its own connection or client, prepared by [`Row::open`]).
pub type Caller = Box<dyn FnMut() -> CallFuture + Send>;
type OpenFuture = Pin<Box<dyn Future<Output = anyhow::Result<Caller>> + Send>>;

/// One operation to measure: a group (who serves it), a name, and how each worker opens its
/// caller. Rows are built by the suites (see `rows`, `openbao`); adding one needs no change
/// here.
#[derive(Clone)]
pub struct Row {
    /// Who serves it: `key-service`, `OpenBao (HTTP)`, ...
    pub group: &'static str,
    /// The operation, e.g. `Encrypt 32 B`.
    pub name: String,
    /// The in-process baseline (a [`local`] report's name) this operation's cryptography is,
    /// if any: the report shows the ratio to it too.
    pub crypto: Option<String>,
    /// The shortest measured time, whatever the run's duration (for rows whose calls take
    /// longer than a short run).
    pub at_least: Duration,
    open: Arc<dyn Fn(usize) -> OpenFuture + Send + Sync>,
}

impl Row {
    /// A row whose worker `i` gets its caller from `open(i)` (untimed).
    pub fn new<F, Fut>(group: &'static str, name: impl Into<String>, open: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Caller>> + Send + 'static,
    {
        Self {
            group,
            name: name.into(),
            crypto: None,
            at_least: Duration::ZERO,
            open: Arc::new(move |worker| Box::pin(open(worker))),
        }
    }

    /// A row of gRPC calls: worker `i` calls `call` with a clone of `clients[i % len]` (the
    /// connections are shared round robin).
    ///
    /// # Panics
    /// If `clients` is empty.
    pub fn grpc<C, F, Fut>(
        group: &'static str,
        name: impl Into<String>,
        clients: Vec<C>,
        call: F,
    ) -> Self
    where
        C: Clone + Send + Sync + 'static,
        F: Fn(C) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        assert!(!clients.is_empty(), "a gRPC row needs a connection");
        let clients = Arc::new(clients);
        Self::new(group, name, move |worker| {
            let client = clients[worker % clients.len()].clone();
            let call = call.clone();
            async move {
                let caller: Caller = Box::new(move || {
                    let call = call(client.clone());
                    Box::pin(async move {
                        call.await?;
                        Ok(Step::Done)
                    })
                });
                Ok(caller)
            }
        })
    }

    /// The same row, measured for at least `duration`.
    #[must_use]
    pub fn at_least(mut self, duration: Duration) -> Self {
        self.at_least = duration;
        self
    }

    /// The same row, reported as a ratio to the in-process baseline `name` too.
    #[must_use]
    pub fn crypto(mut self, name: impl Into<String>) -> Self {
        self.crypto = Some(name.into());
        self
    }
}

/// The measurements of one operation at one concurrency.
#[derive(Debug, Clone)]
pub struct Report {
    /// Who serves it.
    pub group: String,
    /// What was measured.
    pub name: String,
    /// Concurrent workers (1 for in-process rows).
    pub concurrency: usize,
    /// Completed operations.
    pub calls: usize,
    /// Operations per second.
    pub throughput: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// 99.9th percentile latency.
    pub p999: Duration,
    /// The in-process baseline it is compared with, if any.
    pub crypto: Option<String>,
}

/// Runs `row` from `concurrency` workers: a warm-up of a tenth of `duration` (not measured),
/// then `duration` or the row's [`Row::at_least`] (or until every worker is
/// [`Step::Exhausted`]); every worker makes at least one measured call.
///
/// # Errors
/// If a worker cannot open its caller or a call fails.
pub async fn drive(row: &Row, concurrency: usize, duration: Duration) -> anyhow::Result<Report> {
    let duration = duration.max(row.at_least);
    let mut callers = Vec::new();
    for worker in 0..concurrency.max(1) {
        callers.push(
            (row.open)(worker)
                .await
                .with_context(|| format!("{} {}: opening worker {worker}", row.group, row.name))?,
        );
    }
    let begin = Instant::now() + duration / 10;
    let deadline = begin + duration;
    let mut workers = tokio::task::JoinSet::new();
    for mut caller in callers {
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < begin {
                if caller().await? == Step::Exhausted {
                    return Ok(latencies);
                }
            }
            // At least one measured call, even when a slow call of the warm-up ran past the
            // whole window.
            while (Instant::now() < deadline || latencies.is_empty())
                && latencies.len() < MAX_OPS_PER_WORKER
            {
                let sent = Instant::now();
                if caller().await? == Step::Exhausted {
                    break;
                }
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(worker) = workers.join_next().await {
        latencies.extend(
            worker
                .context("bench worker")?
                .with_context(|| format!("{} {} failed", row.group, row.name))?,
        );
    }
    // Until the last worker stopped: earlier if all ran out of inputs, later if calls begun
    // in the window ended after it (they are counted, so their time is too).
    let elapsed = Instant::now().saturating_duration_since(begin);
    Ok(report(
        row.group,
        &row.name,
        concurrency.max(1),
        latencies,
        elapsed,
        row.crypto.clone(),
    ))
}

/// Runs `op` in a loop on this thread for `duration` (at most [`MAX_OPS_PER_WORKER`] times).
///
/// # Errors
/// The first failure of `op`.
pub fn local<E>(
    name: impl Into<String>,
    duration: Duration,
    mut op: impl FnMut() -> Result<(), E>,
) -> anyhow::Result<Report>
where
    E: Into<anyhow::Error>,
{
    let name = name.into();
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < duration && latencies.len() < MAX_OPS_PER_WORKER {
        let began = Instant::now();
        op().map_err(Into::into)
            .with_context(|| format!("in-process {name}"))?;
        latencies.push(began.elapsed());
    }
    Ok(report(
        "in-process",
        &name,
        1,
        latencies,
        started.elapsed(),
        None,
    ))
}

/// The report of `latencies` measured over `elapsed`.
fn report(
    group: &str,
    name: &str,
    concurrency: usize,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
    crypto: Option<String>,
) -> Report {
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    Report {
        group: group.to_owned(),
        name: name.to_owned(),
        concurrency,
        calls: latencies.len(),
        throughput: if elapsed.is_zero() {
            0.0
        } else {
            latencies.len() as f64 / elapsed.as_secs_f64()
        },
        p50: percentile(0.50),
        p99: percentile(0.99),
        p999: percentile(0.999),
        crypto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let latencies = (1..=1000).rev().map(Duration::from_micros).collect();
        let report = report("g", "op", 4, latencies, Duration::from_secs(2), None);
        assert_eq!(report.calls, 1000);
        assert!((report.throughput - 500.0).abs() < 1e-9);
        assert_eq!(report.p50, Duration::from_micros(501));
        assert_eq!(report.p99, Duration::from_micros(990));
        assert_eq!(report.p999, Duration::from_micros(999));
    }

    #[tokio::test]
    async fn an_exhausted_row_ends_its_workers_early_and_counts_only_real_calls() {
        let budget = Arc::new(std::sync::atomic::AtomicUsize::new(7));
        let row = Row::new("g", "limited", move |_| {
            let budget = Arc::clone(&budget);
            async move {
                let caller: Caller = Box::new(move || {
                    let left = budget.fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    );
                    Box::pin(async move {
                        Ok(if left.is_ok() {
                            Step::Done
                        } else {
                            Step::Exhausted
                        })
                    })
                });
                Ok(caller)
            }
        });
        // A long duration: the workers stop when the seven inputs are used, not at the end.
        let started = Instant::now();
        let report = drive(&row, 3, Duration::from_secs(30)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(report.calls <= 7, "{report:?}");
    }
}
