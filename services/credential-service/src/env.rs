//! A credential's environment in the clear: zeroized on drop, keys only in `Debug`.

use std::collections::BTreeMap;

use zeroize::{Zeroize as _, Zeroizing};

use crate::{Error, Result};

/// Most entries in one environment.
pub(crate) const MAX_ENTRIES: usize = 100;
/// Most bytes of names and values together.
pub(crate) const MAX_TOTAL_BYTES: usize = 64 * 1024;
/// Longest variable name.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Variable name -> secret value.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct Env(BTreeMap<String, String>);

impl Env {
    /// Validates names, count and size.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `field`, naming the offending variable (names are not
    /// secret; values are never quoted).
    pub(crate) fn parse(
        field: &'static str,
        entries: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let env = Self(entries.into_iter().collect());
        env.check(field)?;
        Ok(env)
    }

    /// Checks the limits (after a merge too).
    ///
    /// # Errors
    /// As [`Env::parse`].
    pub(crate) fn check(&self, field: &'static str) -> Result<()> {
        if self.0.len() > MAX_ENTRIES {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_ENTRIES} entries"),
            ));
        }
        let mut total = 0;
        for (name, value) in &self.0 {
            check_name(field, name)?;
            total += name.len() + value.len();
        }
        if total > MAX_TOTAL_BYTES {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_TOTAL_BYTES} bytes in all"),
            ));
        }
        Ok(())
    }

    /// The entries.
    pub(crate) fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Sets entries and removes names.
    pub(crate) fn apply(&mut self, set: Env, unset: &[String]) {
        for name in unset {
            if let Some(mut old) = self.0.remove(name) {
                old.zeroize();
            }
        }
        let mut set = set;
        for (name, value) in std::mem::take(&mut set.0) {
            if let Some(mut old) = self.0.insert(name, value) {
                old.zeroize();
            }
        }
    }

    /// The serialized form that gets encrypted.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if serialization fails (it cannot for strings).
    pub(crate) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(&self.0)
            .map(Zeroizing::new)
            .map_err(|_| Error::Corrupt("environment"))
    }

    /// Parses the decrypted form.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map(Self)
            .map_err(|_| Error::Corrupt("environment"))
    }

    /// Moves the entries out, for a reveal response (the caller takes over zeroizing).
    pub(crate) fn into_revealed(mut self) -> std::collections::HashMap<String, String> {
        std::mem::take(&mut self.0).into_iter().collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            value.zeroize();
        }
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("names", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `[A-Za-z_][A-Za-z0-9_]{0,127}`.
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let valid = name.len() <= MAX_NAME_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("`{name}` is not a variable name ([A-Za-z_][A-Za-z0-9_]{{0,127}})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_limits_are_checked_and_debug_hides_values() {
        let env = Env::parse(
            "env",
            [("API_KEY".to_owned(), "sk-secret-value".to_owned())],
        )
        .unwrap();
        assert!(!format!("{env:?}").contains("sk-secret"));
        for bad in ["1ABC", "A-B", "", "A B"] {
            assert!(
                Env::parse("env", [(bad.to_owned(), String::new())]).is_err(),
                "{bad}"
            );
        }
        let many = (0..101).map(|i| (format!("K{i}"), String::new()));
        assert!(Env::parse("env", many).is_err());
        assert!(Env::parse("env", [("BIG".to_owned(), "x".repeat(64 * 1024))]).is_err());
    }

    #[test]
    fn apply_sets_and_unsets() {
        let mut env =
            Env::parse("env", [("A".into(), "1".into()), ("B".into(), "2".into())]).unwrap();
        env.apply(
            Env::parse(
                "set_env",
                [("B".into(), "3".into()), ("C".into(), "4".into())],
            )
            .unwrap(),
            &["A".into()],
        );
        let keys: Vec<&String> = env.entries().keys().collect();
        assert_eq!(keys, ["B", "C"]);
        assert_eq!(env.entries()["B"], "3");
        let json = env.to_json().unwrap();
        assert_eq!(Env::from_json(&json).unwrap(), env);
    }
}
