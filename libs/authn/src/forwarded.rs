//! Forwarders: service identities that call on behalf of clients outside the mesh (the REST
//! gateway). A forwarder names its client's address in the `x-forwarded-for` metadata; that
//! address is believed only from a forwarder, so the per-source limits fall on each client
//! behind the gateway, not on the gateway as a whole (which would let one client's forged keys
//! lock out everyone), and no other caller can pose as someone else by setting the header.
//!
//! The default forwarder of trust domain `td` is `spiffe://td/gateway`.

use std::net::IpAddr;

use coffer_transport::SpiffeId;

/// The metadata key a forwarder puts its client's address in (the gateway sets it from the
/// TCP peer, never copying a client's own header).
pub const CLIENT_ADDRESS: &str = "x-forwarded-for";

/// The default forwarders of `trust_domain`: its gateway.
pub fn default_for(trust_domain: &str) -> Vec<SpiffeId> {
    SpiffeId::new(trust_domain, "gateway").into_iter().collect()
}

/// Parses a comma-separated list of SPIFFE IDs, or `none` (an empty setting is an unset one,
/// which means the default).
///
/// # Errors
/// The first entry that is not a SPIFFE ID, and why.
pub fn parse(text: &str) -> Result<Vec<SpiffeId>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| SpiffeId::parse(entry).map_err(|e| format!("`{entry}`: {e}")))
        .collect()
}

/// Who a request comes from, for the per-source limits: the peer's SPIFFE ID, followed by
/// its client's address when the peer is one of `forwarders` and names a valid IP address.
/// `None` without a peer identity.
pub fn source(
    headers: &http::HeaderMap,
    peer: Option<&SpiffeId>,
    forwarders: &[SpiffeId],
) -> Option<String> {
    let peer = peer?;
    Some(match forwarded_client(headers, peer, forwarders) {
        Some(address) => format!("{peer} {address}"),
        None => peer.as_str().to_owned(),
    })
}

/// The client address `peer` names, if it is one of `forwarders` (anyone else's header is
/// ignored).
pub fn forwarded_client(
    headers: &http::HeaderMap,
    peer: &SpiffeId,
    forwarders: &[SpiffeId],
) -> Option<IpAddr> {
    forwarders
        .contains(peer)
        .then(|| client_address(headers))
        .flatten()
}

/// The forwarded client address, if the header holds exactly one IP address (the gateway
/// never sends a list; anything else is ignored rather than trusted in part).
pub fn client_address(headers: &http::HeaderMap) -> Option<IpAddr> {
    headers
        .get(CLIENT_ADDRESS)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(address: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(CLIENT_ADDRESS, address.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_forwarder_may_name_its_client() {
        let gateway = SpiffeId::parse("spiffe://td/gateway").unwrap();
        let app = SpiffeId::parse("spiffe://td/app").unwrap();
        let forwarders = default_for("td");
        assert_eq!(forwarders, vec![gateway.clone()]);
        let from = headers("203.0.113.7");
        assert_eq!(
            source(&from, Some(&gateway), &forwarders).as_deref(),
            Some("spiffe://td/gateway 203.0.113.7")
        );
        // Anyone else setting the header is still only itself.
        assert_eq!(
            source(&from, Some(&app), &forwarders).as_deref(),
            Some("spiffe://td/app")
        );
        assert_eq!(source(&from, None, &forwarders), None);
        // A forwarder without a (valid, single) address is itself.
        for bad in [
            "",
            "203.0.113.7, 10.0.0.1",
            "not-an-address",
            "203.0.113.7 x",
        ] {
            assert_eq!(
                source(&headers(bad), Some(&gateway), &forwarders).as_deref(),
                Some("spiffe://td/gateway"),
                "{bad:?}"
            );
        }
        assert_eq!(
            source(&headers("2001:db8::1"), Some(&gateway), &forwarders).as_deref(),
            Some("spiffe://td/gateway 2001:db8::1")
        );
    }

    #[test]
    fn forwarder_lists_parse_and_name_a_bad_entry() {
        assert_eq!(parse("none").unwrap(), Vec::<SpiffeId>::new());
        assert_eq!(
            parse(" spiffe://td/gateway , spiffe://td/edge")
                .unwrap()
                .len(),
            2
        );
        let error = parse("spiffe://td/gateway, https://x").unwrap_err();
        assert!(error.contains("`https://x`"), "{error}");
    }
}
