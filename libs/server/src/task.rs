//! Background tasks: every periodic loop of every service runs through [`every`], and every
//! other long-lived task through [`spawn`]. Both return a [`Task`] that aborts the loop when
//! dropped, so a service whose start-up fails half-way leaves nothing running, and a served
//! service stops its loops by dropping their handles.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// A running background task; dropping it aborts the task.
#[derive(Debug)]
#[must_use = "dropping a Task stops it"]
pub struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When the first run of a periodic task happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once (a poll whose first answer the service needs soon).
    Now,
    /// After one period (housekeeping whose first run start-up has just done).
    AfterPeriod,
}

/// Runs `run` every `period` (each wait drawn between 90% and 110% of it, so replicas started
/// together do not poll in lockstep), until the returned [`Task`] is dropped.
///
/// A failure is logged at WARN once per outage with its cause chain, repeats at DEBUG, and the
/// recovery at INFO: a dependency that is down for an hour writes two lines, not 14,400.
pub fn every<F, Fut, E>(name: &'static str, period: Duration, start: Start, mut run: F) -> Task
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + 'static,
{
    spawn(async move {
        if start == Start::AfterPeriod {
            tokio::time::sleep(jittered(period)).await;
        }
        let mut failing = false;
        loop {
            match run().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(task = name, "recovered");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(task = name, error = %coffer_telemetry::error_chain(&error), "failed; retrying");
                }
                Err(error) => {
                    tracing::debug!(task = name, error = %coffer_telemetry::error_chain(&error), "still failing");
                }
            }
            tokio::time::sleep(jittered(period)).await;
        }
    })
}

/// Runs `future` in the background until the returned [`Task`] is dropped.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Task {
    Task(tokio::spawn(future))
}

/// `period` times a random factor in [0.9, 1.1).
fn jittered(period: Duration) -> Duration {
    // The OS RNG; should it fail, no jitter is the safe answer.
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    let permille = 900 + u64::from(random % 200);
    let nanos = period.as_nanos().saturating_mul(u128::from(permille)) / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let waited = jittered(Duration::from_millis(1000));
            assert!(
                (Duration::from_millis(900)..Duration::from_millis(1100)).contains(&waited),
                "{waited:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_periodic_task_runs_until_its_handle_is_dropped() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let task = every("test", Duration::from_secs(1), Start::Now, move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // Failures do not stop the loop.
                Err::<(), _>(std::io::Error::other("down"))
            }
        });
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let seen = runs.load(Ordering::SeqCst);
        assert!((3..=5).contains(&seen), "{seen} runs in 3.5 s");
        drop(task);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            seen,
            "ran after its handle was dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_period_waits_before_the_first_run() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let _task = every(
            "test",
            Duration::from_secs(10),
            Start::AfterPeriod,
            move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), std::io::Error>(())
                }
            },
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
