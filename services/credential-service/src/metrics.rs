//! The credential-service's counters, served by `coffer_telemetry::metrics`.

use coffer_server::metrics::{Counter, Registry};

/// Counters of security-relevant events.
#[derive(Debug, Clone, Default)]
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
}

impl Metrics {
    /// Fresh counters, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
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
        metrics
    }
}
