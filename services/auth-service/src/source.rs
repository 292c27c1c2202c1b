//! Where a request comes from, for the per-source limits.
//!
//! A source is the mTLS peer's SPIFFE ID. An introspector (credential-service, the gateway)
//! that verifies an API key on behalf of its own caller names that caller in
//! `VerifyApiKeyRequest.client`, and the source is then `{introspector} for {client}`: the
//! forged keys of one of its callers count against that caller, never against the
//! introspector as a whole (which would lock out everyone behind it). Only introspectors
//! may name a client; anyone else is its own source.

use std::fmt;

use coffer_transport::SpiffeId;

use crate::{Error, Result};

/// Longest `client` an introspector may name.
pub(crate) const MAX_CLIENT_LEN: usize = 256;

/// A request's source (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Source(String);

impl Source {
    /// The peer itself.
    pub(crate) fn peer(peer: &SpiffeId) -> Self {
        Self(peer.as_str().to_owned())
    }

    /// A client an introspector speaks for; an empty `client` is the introspector itself.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `client` for more than [`MAX_CLIENT_LEN`] bytes or
    /// anything but printable ASCII.
    pub(crate) fn on_behalf_of(introspector: &SpiffeId, client: &str) -> Result<Self> {
        if client.is_empty() {
            return Ok(Self::peer(introspector));
        }
        if client.len() > MAX_CLIENT_LEN
            || !client.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(Error::invalid(
                "client",
                format!("at most {MAX_CLIENT_LEN} printable ASCII characters"),
            ));
        }
        Ok(Self(format!("{introspector} for {client}")))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn introspectors_name_their_clients_within_limits() {
        let gateway = SpiffeId::parse("spiffe://td/gateway").unwrap();
        assert_eq!(
            Source::on_behalf_of(&gateway, "").unwrap(),
            Source::peer(&gateway)
        );
        let client = Source::on_behalf_of(&gateway, "spiffe://td/app 203.0.113.7").unwrap();
        assert_eq!(
            client.to_string(),
            "spiffe://td/gateway for spiffe://td/app 203.0.113.7"
        );
        assert!(Source::on_behalf_of(&gateway, &"x".repeat(MAX_CLIENT_LEN + 1)).is_err());
        assert!(Source::on_behalf_of(&gateway, "a\nb").is_err());
    }
}
