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
const LEGACY_LABEL: &[u8] = b"coffer/audit/v1";

/// The link of event `sequence` after `previous` (a hex link, or [`GENESIS`]).
pub fn link(key: &AuditKey, previous: &str, sequence: i64, fields: &[&[u8]]) -> String {
    let sequence = sequence.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![LINK_LABEL, previous.as_bytes(), &sequence];
    parts.extend_from_slice(fields);
    mac(key, &parts)
}

/// The unkeyed link of chains written before keyed ones: SHA-256 (hex) over
/// `"coffer/audit/v1" || previous || sequence || fields...`, every part length-prefixed.
/// Anyone with write access can recompute it, so verifiers accept it only as a chain's prefix;
/// it is never written any more.
pub fn legacy_link(previous: &str, sequence: i64, fields: &[&[u8]]) -> String {
    use sha2::Digest as _;
    let sequence = sequence.to_be_bytes();
    let mut hasher = Sha256::new();
    for part in [LEGACY_LABEL, previous.as_bytes(), &sequence]
        .into_iter()
        .chain(fields.iter().copied())
    {
        hasher.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
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

/// A chain's head: the last event's sequence and link, and their [`head_mac`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last event's sequence.
    pub sequence: i64,
    /// The last event's link.
    pub link: String,
    /// The head's MAC.
    pub mac: String,
}

impl Head {
    /// A head a client sends back (an exported one), checked for shape only.
    ///
    /// # Errors
    /// Why it is malformed (a positive sequence, links and MACs of 64 hex characters).
    pub fn parse(sequence: u64, link: &str, mac: &str) -> Result<Self, &'static str> {
        let hex64 = |text: &str| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(link) || !hex64(mac) {
            return Err("link and mac are 64 hex characters");
        }
        let sequence = i64::try_from(sequence)
            .ok()
            .filter(|s| *s > 0)
            .ok_or("sequence must be positive")?;
        Ok(Self {
            sequence,
            link: link.to_ascii_lowercase(),
            mac: mac.to_ascii_lowercase(),
        })
    }
}

/// What a chain walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Events checked.
    pub checked: u64,
    /// The first sequence the chain cannot vouch for, if any: an event whose link is wrong,
    /// or the first one missing after the last intact event.
    pub first_broken: Option<i64>,
}

/// Walks one chain event by event, oldest first (the caller pages through storage), and
/// judges it against its stored head and, optionally, a head exported earlier.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    chain: String,
    expected: Option<Head>,
    next: i64,
    previous: String,
    checked: u64,
}

impl<'k> ChainVerifier<'k> {
    /// Starts a walk of `chain` under `key`; with `expected`, an exported head the chain
    /// must still contain.
    ///
    /// # Errors
    /// The verdict at once, if `expected` does not carry this key's MAC.
    pub fn new(key: &'k AuditKey, chain: &str, expected: Option<Head>) -> Result<Self, Verdict> {
        if let Some(head) = &expected
            && !same(&head.mac, &head_mac(key, chain, head.sequence, &head.link))
        {
            return Err(Verdict {
                checked: 0,
                first_broken: Some(head.sequence.max(1)),
            });
        }
        Ok(Self {
            key,
            chain: chain.to_owned(),
            expected,
            next: 1,
            previous: GENESIS.to_owned(),
            checked: 0,
        })
    }

    /// The key links are recomputed under.
    pub fn key(&self) -> &AuditKey {
        self.key
    }

    /// The sequence of the last event accepted (0 before the first): page on after it.
    pub fn last(&self) -> i64 {
        self.next - 1
    }

    /// Takes the next event: its sequence, its stored previous link and link, and the link
    /// recomputed from its fields (`None` for an event that cannot be keyed, which never
    /// holds).
    ///
    /// # Errors
    /// The verdict, at the first event that does not hold.
    pub fn event(
        &mut self,
        sequence: i64,
        previous: &str,
        link: &str,
        recomputed: Option<&str>,
    ) -> Result<(), Verdict> {
        self.checked += 1;
        let holds = sequence == self.next
            && previous == self.previous
            && recomputed.is_some_and(|r| same(link, r))
            && !self
                .expected
                .as_ref()
                .is_some_and(|head| head.sequence == sequence && !same(&head.link, link));
        if !holds {
            return Err(self.broken(self.next));
        }
        self.previous = link.to_owned();
        self.next += 1;
        Ok(())
    }

    /// Ends the walk with the chain's stored head (`None` if it has none).
    pub fn finish(self, head: Option<&Head>) -> Verdict {
        let last = self.last();
        if self
            .expected
            .as_ref()
            .is_some_and(|head| head.sequence > last)
        {
            return self.broken(last + 1);
        }
        let holds = match head {
            None => last == 0,
            Some(head) => {
                head.sequence == last
                    && same(&head.link, &self.previous)
                    && same(
                        &head.mac,
                        &head_mac(self.key, &self.chain, head.sequence, &head.link),
                    )
            }
        };
        if !holds {
            // The newest events are gone (the head is ahead), or the head was changed.
            let at = head.map_or(last + 1, |head| head.sequence.min(last) + 1);
            return self.broken(at);
        }
        Verdict {
            checked: self.checked,
            first_broken: None,
        }
    }

    fn broken(&self, at: i64) -> Verdict {
        Verdict {
            checked: self.checked,
            first_broken: Some(at),
        }
    }
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
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_bytes(&[byte; 32]).unwrap()
    }

    /// The legacy format is fixed by the rows already stored: this vector was computed
    /// independently (Python's hashlib over the same length-prefixed parts).
    #[test]
    fn legacy_links_keep_their_stored_format() {
        let time = 1_700_000_000_i64.to_be_bytes();
        let fields: [&[u8]; 7] = [
            &time,
            b"acme",
            b"alice",
            b"reveal",
            b"tenants/acme/credentials/x",
            b"success",
            b"",
        ];
        assert_eq!(
            legacy_link(GENESIS, 1, &fields),
            "572b32a2f6ee797f69600ced0fe35cbe8ce00ab9b9de62afd9174c0fca3897ba"
        );
        assert_ne!(
            legacy_link(GENESIS, 2, &fields),
            legacy_link(GENESIS, 1, &fields)
        );
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

    fn chain(key: &AuditKey, n: i64) -> Vec<(i64, String, String)> {
        let mut previous = GENESIS.to_owned();
        (1..=n)
            .map(|sequence| {
                let this = link(key, &previous, sequence, &[b"e"]);
                let event = (sequence, previous.clone(), this.clone());
                previous = this;
                event
            })
            .collect()
    }

    fn walk(
        key: &AuditKey,
        events: &[(i64, String, String)],
        head: Option<&Head>,
        expected: Option<Head>,
    ) -> Verdict {
        let mut verifier = match ChainVerifier::new(key, "acme", expected) {
            Ok(verifier) => verifier,
            Err(verdict) => return verdict,
        };
        for (sequence, previous, this) in events {
            let recomputed = link(key, previous, *sequence, &[b"e"]);
            if let Err(verdict) = verifier.event(*sequence, previous, this, Some(&recomputed)) {
                return verdict;
            }
        }
        verifier.finish(head)
    }

    fn head_of(key: &AuditKey, events: &[(i64, String, String)]) -> Head {
        let (sequence, _, link) = events.last().unwrap().clone();
        Head {
            sequence,
            mac: head_mac(key, "acme", sequence, &link),
            link,
        }
    }

    #[test]
    fn a_walk_catches_changes_truncation_rollback_and_forged_heads() {
        let key = key(1);
        let events = chain(&key, 5);
        let head = head_of(&key, &events);
        assert_eq!(walk(&key, &events, Some(&head), None).first_broken, None);
        assert_eq!(walk(&key, &[], None, None).first_broken, None);
        // The newest event deleted: the head is ahead.
        assert_eq!(
            walk(&key, &events[..4], Some(&head), None).first_broken,
            Some(5)
        );
        // A middle event deleted: the next one no longer links.
        let gap: Vec<_> = [&events[..2], &events[3..]].concat();
        assert_eq!(walk(&key, &gap, Some(&head), None).first_broken, Some(3));
        // Events without a head, or with a head under another key.
        assert_eq!(walk(&key, &events, None, None).first_broken, Some(6));
        let foreign = head_of(&self::key(2), &events);
        assert_eq!(
            walk(&key, &events, Some(&foreign), None).first_broken,
            Some(6)
        );
        // Rolled back to 3 events with the head of then: consistent, but not against the
        // head exported at 5.
        let old_head = head_of(&key, &events[..3]);
        assert_eq!(
            walk(&key, &events[..3], Some(&old_head), None).first_broken,
            None
        );
        assert_eq!(
            walk(&key, &events[..3], Some(&old_head), Some(head.clone())).first_broken,
            Some(4)
        );
        // An exported head with another MAC is refused before the walk.
        let mut forged = head;
        forged.mac = GENESIS.to_owned();
        assert_eq!(
            walk(&key, &events, None, Some(forged)).first_broken,
            Some(5)
        );
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
