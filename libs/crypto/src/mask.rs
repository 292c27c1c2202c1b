//! Masked display of secret values: at most the first 4 and the last 4 characters, and none at
//! all for values under 16 characters, so a masked value never shows more than 8 characters of
//! the secret (`sk-p********************7f2a`; short values `********`).

/// Values shorter than this (in characters) are masked entirely.
pub const MIN_PARTIAL_LEN: usize = 16;
/// Characters shown at each end of a long value.
pub const SHOWN: usize = 4;
/// What a short value becomes.
pub const FULL_MASK: &str = "********";

/// Masks `value` (counting characters, not bytes, so multi-byte text is never split).
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count < MIN_PARTIAL_LEN {
        return FULL_MASK.to_owned();
    }
    let head: String = value.chars().take(SHOWN).collect();
    let tail: String = value.chars().skip(count - SHOWN).collect();
    format!("{head}{}{tail}", "*".repeat(count - 2 * SHOWN))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn masks_follow_the_documented_examples() {
        assert_eq!(
            mask("sk-proj-abcdefghijklmnop7f2a"),
            "sk-p********************7f2a"
        );
        assert_eq!(mask("short"), "********");
        assert_eq!(mask(""), "********");
        assert_eq!(mask("exactly-15-char"), "********");
        assert_eq!(mask("exactly-16-chars"), "exac********hars");
        assert_eq!(mask("ключ-ключ-ключ-ключ"), "ключ***********ключ");
    }

    proptest! {
        #[test]
        fn a_masked_value_never_shows_more_than_eight_characters(value in "\\PC{0,64}") {
            let masked = mask(&value);
            let shown = masked.chars().filter(|c| *c != '*').count();
            prop_assert!(shown <= 2 * SHOWN);
            // Characters are shown only from the two ends, in place.
            if value.chars().count() >= MIN_PARTIAL_LEN {
                let chars: Vec<char> = value.chars().collect();
                let masked_chars: Vec<char> = masked.chars().collect();
                prop_assert_eq!(masked_chars.len(), chars.len());
                for (i, (m, c)) in masked_chars.iter().zip(&chars).enumerate() {
                    if i >= SHOWN && i < chars.len() - SHOWN {
                        prop_assert_eq!(*m, '*');
                    } else {
                        prop_assert_eq!(m, c);
                    }
                }
            } else {
                prop_assert_eq!(masked.as_str(), FULL_MASK);
            }
        }
    }
}
