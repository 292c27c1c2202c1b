//! The one rule for the ids inside resource names (`tenants/{tenant}/...`), shared by every
//! service, so an id is safe in a resource name, a SPIFFE path, an HKDF `info` and a log line
//! alike.

/// Longest id in a resource name.
pub const MAX_ID_LEN: usize = 64;

/// The rule [`is_valid_id`] checks, for error messages.
pub const ID_PATTERN: &str = "[a-z0-9_-]{1,64}";

/// Whether `id` may name a tenant, principal or key: `[a-z0-9_-]{1,64}`, so it is safe in a
/// resource name, a SPIFFE path, an HKDF `info` and a log line alike.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        for good in ["a", "acme", "team_1-b", &"x".repeat(MAX_ID_LEN)] {
            assert!(is_valid_id(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a.b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
