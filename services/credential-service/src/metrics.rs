//! The credential-service's counters and histograms, served by `coffer_server::metrics`.

use coffer_server::metrics::{Counter, Histogram, LATENCY_BUCKETS, Registry};

/// Counters of security-relevant events, and how audit group commits go.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// Stored credentials that failed to decrypt (tampering or a broken key chain).
    pub(crate) decrypt_failures: Counter,
    /// Values revealed or hydrated in the clear.
    pub(crate) reveals: Counter,
    /// Calls refused for a missing scope.
    pub(crate) denied: Counter,
    /// Denials not written to the audit log (unknown credential, or over the per-principal
    /// budget).
    pub(crate) denied_unaudited: Counter,
    /// The store's audit group commits.
    pub(crate) audit_groups: AuditGroupMetrics,
}

/// How the standalone audit events (reveals, hydrations, denials) are committed: how many
/// share each group transaction, and how long one takes. With every caller of a tenant
/// waiting on its chain, events per second is at most their ratio.
#[derive(Debug, Clone)]
pub(crate) struct AuditGroupMetrics {
    /// Events per group transaction.
    pub(crate) events: Histogram,
    /// Seconds per group transaction, from asking for a connection to the commit.
    pub(crate) seconds: Histogram,
}

/// Buckets of events per group: 1 to [`crate::store`]'s batch limit, doubling.
const GROUP_SIZE_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

impl Metrics {
    /// Fresh counters, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            decrypt_failures: Counter::default(),
            reveals: Counter::default(),
            denied: Counter::default(),
            denied_unaudited: Counter::default(),
            audit_groups: AuditGroupMetrics {
                events: Histogram::new(GROUP_SIZE_BUCKETS),
                seconds: Histogram::new(LATENCY_BUCKETS),
            },
        };
        registry.register(
            "coffer_credential_decrypt_failures",
            "Stored credentials that failed to decrypt",
            metrics.decrypt_failures.clone(),
        );
        registry.register(
            "coffer_credential_reveals",
            "Credentials revealed or hydrated",
            metrics.reveals.clone(),
        );
        registry.register(
            "coffer_credential_denied",
            "Calls refused for a missing scope",
            metrics.denied.clone(),
        );
        registry.register(
            "coffer_credential_denied_unaudited",
            "Denials not written to the audit log (unknown credential or over the per-principal budget)",
            metrics.denied_unaudited.clone(),
        );
        registry.register(
            "coffer_credential_audit_group_events",
            "Audit events committed per group transaction",
            metrics.audit_groups.events.clone(),
        );
        registry.register(
            "coffer_credential_audit_group_duration_seconds",
            "Time one audit group transaction took, from asking for a connection to its commit",
            metrics.audit_groups.seconds.clone(),
        );
        metrics
    }
}
