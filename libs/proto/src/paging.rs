//! Keyset pagination, the same for every List RPC: a request's `page_size` (0 for the
//! default), the store asked for one row more than that, and the extra row, if it came, turned
//! into the next page's token.

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

/// The position a page token of a sequence-ordered list (an audit log) stands for: the
/// sequence of the last row of the previous page, 0 for the first page.
///
/// # Errors
/// A token that is not one (why, for an INVALID_ARGUMENT on `page_token`).
pub fn sequence_after(token: &str) -> Result<i64, &'static str> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse::<i64>()
        .map_err(|_| "not a token from a previous page")
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
    fn sequence_tokens() {
        assert_eq!(sequence_after(""), Ok(0));
        assert_eq!(sequence_after("42"), Ok(42));
        assert!(sequence_after("x").is_err() && sequence_after("1.5").is_err());
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
