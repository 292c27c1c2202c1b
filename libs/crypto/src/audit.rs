//! Keyed audit chains.
//!
//! Each event's link is `HMAC-SHA256(audit key, "coffer/audit/v2" || previous link ||
//! sequence || fields...)`, every part length-prefixed, so nobody without the audit key can
//! recompute a chain after changing, removing or reordering events (an unkeyed hash chain can
//! be rebuilt by anyone with write access to the rows). The chain's head, the last sequence
//! and link, is MACed too (`"coffer/audit-head/v1" || chain || sequence || link`) and kept
//! apart from the events, so deleting the newest events is caught as well; exported heads let
//! an operator prove later that the chain still contains what it contained then.
//!
//! Links and MACs are lowercase hex (64 characters).

use hkdf::hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::keys::AuditKey;

/// The previous link of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const LINK_LABEL: &[u8] = b"coffer/audit/v2";
const HEAD_LABEL: &[u8] = b"coffer/audit-head/v1";

/// The link of event `sequence` after `previous` (a hex link, or [`GENESIS`]).
pub fn link(key: &AuditKey, previous: &str, sequence: i64, fields: &[&[u8]]) -> String {
    let sequence = sequence.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![LINK_LABEL, previous.as_bytes(), &sequence];
    parts.extend_from_slice(fields);
    mac(key, &parts)
}

/// The MAC of a chain's head: `chain` (e.g. the tenant) is at `sequence` with `link`.
pub fn head_mac(key: &AuditKey, chain: &str, sequence: i64, link: &str) -> String {
    let sequence = sequence.to_be_bytes();
    mac(
        key,
        &[HEAD_LABEL, chain.as_bytes(), &sequence, link.as_bytes()],
    )
}

/// Whether two links or MACs are equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn mac(key: &AuditKey, parts: &[&[u8]]) -> String {
    // HMAC takes keys of any length, so keying cannot fail; an all-zero MAC would only fail
    // every comparison.
    let Ok(mut mac) = <Hmac<Sha256> as hkdf::hmac::KeyInit>::new_from_slice(key.expose_secret())
    else {
        return GENESIS.to_owned();
    };
    for part in parts {
        mac.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn links_depend_on_the_key_the_predecessor_the_sequence_and_every_field() {
        let first = link(&key(1), GENESIS, 1, &[b"alice", b"reveal"]);
        assert_eq!(first.len(), 64);
        assert!(same(
            &first,
            &link(&key(1), GENESIS, 1, &[b"alice", b"reveal"])
        ));
        for other in [
            link(&key(2), GENESIS, 1, &[b"alice", b"reveal"]),
            link(&key(1), &first, 1, &[b"alice", b"reveal"]),
            link(&key(1), GENESIS, 2, &[b"alice", b"reveal"]),
            link(&key(1), GENESIS, 1, &[b"alicer", b"eveal"]),
            link(&key(1), GENESIS, 1, &[b"alice", b"reveal", b""]),
        ] {
            assert!(!same(&first, &other));
        }
    }

    #[test]
    fn head_macs_bind_chain_sequence_and_link() {
        let link = link(&key(1), GENESIS, 1, &[b"x"]);
        let head = head_mac(&key(1), "acme", 1, &link);
        assert!(same(&head, &head_mac(&key(1), "acme", 1, &link)));
        assert!(!same(&head, &head_mac(&key(1), "acme2", 1, &link)));
        assert!(!same(&head, &head_mac(&key(1), "acme", 2, &link)));
        assert!(!same(&head, &head_mac(&key(2), "acme", 1, &link)));
        assert!(!same(&head, &head_mac(&key(1), "acme", 1, GENESIS)));
        assert!(!same(&head, &head[..63]));
    }
}
