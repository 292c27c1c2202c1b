//! One service running in this process: its addresses and how to stop it. The one handle for
//! `coffer up` (through the composition root) and every test that starts a server.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Listeners;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A service running in this process.
#[derive(Debug)]
pub struct Service<E> {
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its `/metrics` address, if it serves one.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), E>>>,
}

/// How a service ended, short of a clean stop.
#[derive(Debug)]
pub enum Ended<E> {
    /// It failed.
    Failed(E),
    /// It returned without being asked to.
    Stopped,
    /// Its task panicked or was cancelled.
    Task,
    /// It outlasted the grace period (and was abandoned).
    Grace,
}

impl<E: Send + 'static> Service<E> {
    /// Runs `serve(listeners, shutdown)` in the background; resolves once the service has
    /// finished its start-up (it signals [`Listeners::ready`] right before it accepts), or
    /// with its start-up error.
    ///
    /// # Errors
    /// [`Ended::Failed`] with the service's start-up error; [`Ended::Stopped`] or
    /// [`Ended::Task`] if it ended otherwise before serving.
    pub async fn spawn<F, Fut>(mut listeners: Listeners, serve: F) -> Result<Self, Ended<E>>
    where
        F: FnOnce(Listeners, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let addr = listeners.grpc.local_addr().ok();
        let metrics_addr = listeners
            .metrics
            .as_ref()
            .and_then(|metrics| metrics.local_addr().ok());
        let (ready, started) = tokio::sync::oneshot::channel();
        listeners.ready = Some(ready);
        let (stop, mut stopped) = watch::channel(false);
        let shutdown = Box::pin(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        let mut task = tokio::spawn(serve(listeners, shutdown));
        tokio::select! {
            // Readiness first: a start-up that succeeded is never mistaken for an end.
            biased;
            Ok(()) = started => {}
            outcome = &mut task => {
                return Err(match outcome {
                    Ok(Err(error)) => Ended::Failed(error),
                    Ok(Ok(())) => Ended::Stopped,
                    Err(_) => Ended::Task,
                });
            }
        }
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(Self {
            addr,
            metrics_addr,
            stop,
            task: Some(task),
        })
    }

    /// Sends the stop signal without waiting; the handle resolves when the drain is over.
    ///
    /// # Panics
    /// If the service was already stopped through this handle.
    #[allow(clippy::expect_used)]
    pub fn signal_shutdown(&mut self) -> JoinHandle<Result<(), E>> {
        let _ = self.stop.send(true);
        self.task.take().expect("the service is still running")
    }

    /// Stops the service and waits for its drain.
    ///
    /// # Errors
    /// How it ended, when not cleanly.
    pub async fn stop(&mut self) -> Result<(), Ended<E>> {
        self.stop_within(Duration::MAX).await
    }

    /// Stops the service and waits for its drain, at most `grace`.
    ///
    /// # Errors
    /// How it ended, when not cleanly.
    pub async fn stop_within(&mut self, grace: Duration) -> Result<(), Ended<E>> {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        let task = async move {
            match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(Ended::Failed(error)),
                Err(_) => Err(Ended::Task),
            }
        };
        if grace == Duration::MAX {
            return task.await;
        }
        tokio::time::timeout(grace, task)
            .await
            .unwrap_or(Err(Ended::Grace))
    }

    /// Resolves when the service ends on its own (never, while it runs as it should).
    pub async fn stopped(&mut self) -> Ended<E> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let ended = match task.await {
            Ok(Ok(())) => Ended::Stopped,
            Ok(Err(error)) => Ended::Failed(error),
            Err(_) => Ended::Task,
        };
        self.task = None;
        ended
    }
}
