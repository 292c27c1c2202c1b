//! Merging secrets into a JSON config at JSON pointers (RFC 6901).

use serde_json::{Map, Value};

use crate::env::Env;
use crate::{Error, Result};

/// Largest base config accepted.
pub const MAX_CONFIG_BYTES: usize = 65_536;

/// `base` with `env[variable]` written at each `pointer`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a base that is not a JSON object, a malformed pointer, a
/// pointer through a non-object, or a variable the credential lacks.
pub fn hydrate(
    base: &str,
    paths: &std::collections::HashMap<String, String>,
    env: &Env,
) -> Result<String> {
    if base.len() > MAX_CONFIG_BYTES {
        return Err(Error::invalid(
            "base_config",
            format!("at most {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    let mut config: Value = if base.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(base)
            .map_err(|e| Error::invalid("base_config", format!("not JSON: {e}")))?
    };
    if !config.is_object() {
        return Err(Error::invalid("base_config", "must be a JSON object"));
    }
    let mut ordered: Vec<(&String, &String)> = paths.iter().collect();
    ordered.sort();
    for (pointer, variable) in ordered {
        let value = env.entries().get(variable).ok_or_else(|| {
            Error::invalid(
                "paths",
                format!("{pointer}: the credential has no variable `{variable}`"),
            )
        })?;
        set(&mut config, pointer, Value::String(value.clone()))?;
    }
    serde_json::to_string(&config).map_err(|_| Error::Corrupt("config"))
}

fn set(root: &mut Value, pointer: &str, value: Value) -> Result<()> {
    let invalid = |why: &str| Error::invalid("paths", format!("{pointer}: {why}"));
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| invalid("a JSON pointer starts with /"))?;
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| invalid("empty pointer"))?;
    let mut node = root;
    for token in parents {
        let object = node
            .as_object_mut()
            .ok_or_else(|| invalid("passes through a value that is not an object"))?;
        node = object
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node.as_object_mut()
        .ok_or_else(|| invalid("its parent is not an object"))?
        .insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn values_land_at_their_pointers_creating_objects() {
        let env = Env::parse(
            "env",
            [
                ("TOKEN".into(), "ghp_x".into()),
                ("ORG".into(), "acme".into()),
            ],
        )
        .unwrap();
        let paths = HashMap::from([
            (
                "/mcpServers/github/env/GITHUB_TOKEN".to_owned(),
                "TOKEN".to_owned(),
            ),
            ("/org~1name".to_owned(), "ORG".to_owned()),
        ]);
        let out = hydrate(
            r#"{"mcpServers":{"github":{"command":"gh-mcp"}}}"#,
            &paths,
            &env,
        )
        .unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["mcpServers"]["github"]["env"]["GITHUB_TOKEN"], "ghp_x");
        assert_eq!(out["mcpServers"]["github"]["command"], "gh-mcp");
        assert_eq!(out["org/name"], "acme");
    }

    #[test]
    fn bad_configs_and_pointers_are_named() {
        let env = Env::parse("env", [("A".into(), "1".into())]).unwrap();
        let one = |p: &str| HashMap::from([(p.to_owned(), "A".to_owned())]);
        assert!(
            hydrate("[1]", &one("/a"), &env)
                .unwrap_err()
                .to_string()
                .contains("base_config")
        );
        assert!(
            hydrate("{", &one("/a"), &env)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(
            hydrate("{}", &one("a"), &env)
                .unwrap_err()
                .to_string()
                .contains("starts with /")
        );
        assert!(
            hydrate(r#"{"a":1}"#, &one("/a/b"), &env)
                .unwrap_err()
                .to_string()
                .contains("not an object")
        );
        let missing = HashMap::from([("/x".to_owned(), "NOPE".to_owned())]);
        assert!(
            hydrate("{}", &missing, &env)
                .unwrap_err()
                .to_string()
                .contains("`NOPE`")
        );
    }
}
