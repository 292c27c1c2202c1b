//! Keyset pagination, the same for every List RPC: a request's `page_size` (0 for the
//! default), the store asked for one row more than that, and the extra row, if it came, turned
//! into the next page's token.
//!
//! Page tokens are opaque (base64url) and bound to the list they were issued for: the RPC, the
//! parent and the filter. A token reused with another parent or filter is refused
//! (INVALID_ARGUMENT on `page_token`) instead of silently paging through a different list.
//! The binding is a correctness check, not an access control: the tenant always comes from the
//! caller's credential.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// Page size when a request gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size a request asks for: 0 means [`DEFAULT_PAGE_SIZE`].
///
/// # Errors
/// Above [`MAX_PAGE_SIZE`]: why, for an INVALID_ARGUMENT on `page_size`.
pub fn page_size(requested: u32) -> Result<u32, String> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(format!("at most {MAX_PAGE_SIZE}")),
    }
}

/// The page tokens of one list: one RPC over one parent with one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    binding: [u8; 8],
}

/// Why a page token was refused, for an INVALID_ARGUMENT on `page_token`.
pub const FOREIGN_TOKEN: &str =
    "not a token from a previous page of this list (same parent and filter)";

/// The token format's first byte.
const TOKEN_VERSION: u8 = 1;
/// Longest page token accepted: every position is a short key or a sequence number, so a
/// longer token is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 512;

impl Cursor {
    /// The tokens of `list` (the RPC name) over `parent` with the filter values `filter`.
    pub fn new(list: &str, parent: &str, filter: &[&str]) -> Self {
        let mut hash = Sha256::new();
        for part in std::iter::once(list)
            .chain(std::iter::once(parent))
            .chain(filter.iter().copied())
        {
            // Length-prefixed, so no two different lists share an encoding.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut binding = [0u8; 8];
        binding.copy_from_slice(&digest[..8]);
        Self { binding }
    }

    /// The token of the page after `position` (the last row's key).
    pub fn token(&self, position: &str) -> String {
        let mut bytes = Vec::with_capacity(1 + self.binding.len() + position.len());
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.binding);
        bytes.extend_from_slice(position.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position `token` stands for; `None` for an empty token (the first page).
    ///
    /// # Errors
    /// [`FOREIGN_TOKEN`] for a token that is malformed or was issued for another list.
    pub fn position(&self, token: &str) -> Result<Option<String>, &'static str> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(FOREIGN_TOKEN);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| FOREIGN_TOKEN)?;
        match bytes.split_first() {
            Some((&TOKEN_VERSION, rest))
                if rest.len() > self.binding.len()
                    && rest[..self.binding.len()] == self.binding =>
            {
                String::from_utf8(rest[self.binding.len()..].to_vec())
                    .map(Some)
                    .map_err(|_| FOREIGN_TOKEN)
            }
            _ => Err(FOREIGN_TOKEN),
        }
    }

    /// The sequence number a token of a sequence-ordered list (an audit log) stands for: the
    /// last row's sequence, 0 for the first page.
    ///
    /// # Errors
    /// [`FOREIGN_TOKEN`].
    pub fn sequence(&self, token: &str) -> Result<i64, &'static str> {
        match self.position(token)? {
            None => Ok(0),
            Some(position) => position.parse::<i64>().map_err(|_| FOREIGN_TOKEN),
        }
    }
}

/// Splits `rows`, fetched with a limit of `page_size + 1`, into the page and the next page's
/// token: `token` of the page's last row when more rows follow, `None` on the last page.
pub fn split_page<T>(
    mut rows: Vec<T>,
    page_size: u32,
    token: impl FnOnce(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let page_size = page_size as usize;
    if rows.len() <= page_size {
        return (rows, None);
    }
    rows.truncate(page_size);
    let next = rows.last().map(token);
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1), Ok(1));
        assert_eq!(page_size(MAX_PAGE_SIZE), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(MAX_PAGE_SIZE + 1), Err("at most 1000".to_owned()));
    }

    #[test]
    fn tokens_are_bound_to_their_list_parent_and_filter() {
        let acme = Cursor::new("ListCredentials", "tenants/acme", &["github", ""]);
        let token = acme.token("c1");
        assert_eq!(acme.position(&token), Ok(Some("c1".to_owned())));
        assert_eq!(acme.position(""), Ok(None));
        for other in [
            Cursor::new("ListCredentials", "tenants/globex", &["github", ""]),
            Cursor::new("ListCredentials", "tenants/acme", &["slack", ""]),
            Cursor::new("ListCredentials", "tenants/acme", &["", "github"]),
            Cursor::new("ListApiKeys", "tenants/acme", &["github", ""]),
        ] {
            assert_eq!(other.position(&token), Err(FOREIGN_TOKEN));
        }
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        for garbage in ["c1", "!!", &URL_SAFE_NO_PAD.encode([1u8; 9]), &long] {
            assert_eq!(acme.position(garbage), Err(FOREIGN_TOKEN), "{garbage}");
        }
        let log = Cursor::new("ListAuditEvents", "tenants/acme", &[]);
        assert_eq!(log.sequence(&log.token("42")), Ok(42));
        assert_eq!(log.sequence(""), Ok(0));
        assert_eq!(log.sequence(&log.token("x")), Err(FOREIGN_TOKEN));
    }

    #[test]
    fn the_extra_row_becomes_the_token() {
        let token = |row: &u32| row.to_string();
        assert_eq!(
            split_page(vec![1, 2, 3], 2, token),
            (vec![1, 2], Some("2".into()))
        );
        assert_eq!(split_page(vec![1, 2], 2, token), (vec![1, 2], None));
        assert_eq!(split_page(vec![1], 2, token), (vec![1], None));
        assert_eq!(split_page(Vec::new(), 2, token), (Vec::new(), None));
    }
}
