//! Merging secrets into a JSON config at JSON pointers (RFC 6901).
//!
//! A request is parsed into a [`Plan`] before anything is revealed: the base config and every
//! pointer are checked against the limits below, so a hostile request is refused before it
//! costs a decryption or an audit event. Then, with the values in hand, the size of the
//! result is computed *before* it is built, so no request can make the server build a
//! response larger than [`MAX_OUTPUT_BYTES`] (one variable referenced by many paths would
//! otherwise multiply a small request into a huge answer). Depth limits keep every recursive
//! walk (serialization, drop) far from the stack's end.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::env::Env;
use crate::{Error, Result};

/// Largest base config accepted, in bytes.
pub(crate) const MAX_CONFIG_BYTES: usize = 65_536;
/// Deepest nesting of objects and arrays in the base config.
pub(crate) const MAX_CONFIG_DEPTH: usize = 32;
/// Most paths in one request.
pub(crate) const MAX_PATHS: usize = 256;
/// Longest JSON pointer, in bytes.
pub(crate) const MAX_POINTER_BYTES: usize = 1024;
/// Most reference tokens (segments) in one pointer.
pub(crate) const MAX_POINTER_DEPTH: usize = 32;
/// Largest hydrated config returned, in bytes.
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// A validated HydrateConfig request: the parsed base config and where each variable goes.
#[derive(Debug)]
pub(crate) struct Plan {
    base: Value,
    base_len: usize,
    /// (pointer as given, its unescaped tokens, variable), sorted by pointer.
    writes: Vec<(String, Vec<String>, String)>,
}

impl Plan {
    /// Parses and checks a base config and its paths (pointer -> variable name).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `base_config` (too large, not JSON, not an object, too
    /// deep) or `paths` (too many, a pointer too long, too deep or malformed).
    pub(crate) fn parse(base: &str, paths: &HashMap<String, String>) -> Result<Self> {
        if base.len() > MAX_CONFIG_BYTES {
            return Err(Error::invalid(
                "base_config",
                format!("at most {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        if paths.len() > MAX_PATHS {
            return Err(Error::invalid(
                "paths",
                format!("at most {MAX_PATHS} paths"),
            ));
        }
        // serde_json's own recursion limit (128) bounds the parse; ours is stricter.
        let base: Value = if base.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(base)
                .map_err(|e| Error::invalid("base_config", format!("not JSON: {e}")))?
        };
        if !base.is_object() {
            return Err(Error::invalid("base_config", "must be a JSON object"));
        }
        if depth(&base) > MAX_CONFIG_DEPTH {
            return Err(Error::invalid(
                "base_config",
                format!("nested at most {MAX_CONFIG_DEPTH} levels deep"),
            ));
        }
        let mut writes = paths
            .iter()
            .map(|(pointer, variable)| Ok((pointer.clone(), tokens(pointer)?, variable.clone())))
            .collect::<Result<Vec<_>>>()?;
        writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let base_len = serde_json::to_vec(&base)
            .map_err(|_| Error::Corrupt("config"))?
            .len();
        Ok(Self {
            base,
            base_len,
            writes,
        })
    }

    /// The variable names the plan reads.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.writes.iter().map(|(_, _, variable)| variable.as_str())
    }

    /// The base config with `env`'s values written at their pointers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `paths` for a variable the credential lacks, a pointer
    /// through a non-object, or a result larger than [`MAX_OUTPUT_BYTES`] (checked before the
    /// result is built).
    pub(crate) fn apply(self, env: &Env) -> Result<String> {
        let mut bound = self.base_len;
        for (pointer, tokens, variable) in &self.writes {
            let value = env.entries().get(variable).ok_or_else(|| {
                Error::invalid(
                    "paths",
                    format!(
                        "{}: the credential has no variable `{variable}`",
                        shown(pointer)
                    ),
                )
            })?;
            // Each new member costs at most `"token":{` per segment, the quoted value and a
            // comma: an upper bound, whatever is shared or overwritten.
            let members: usize = tokens.iter().map(|t| json_string_len(t) + 3).sum();
            bound = bound.saturating_add(members + json_string_len(value) + 1);
        }
        if bound > MAX_OUTPUT_BYTES {
            return Err(Error::invalid(
                "paths",
                format!("the hydrated config would exceed {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        let mut config = self.base;
        for (pointer, tokens, variable) in &self.writes {
            // Present: checked in the loop above.
            let value = env.entries().get(variable).cloned().unwrap_or_default();
            set(&mut config, pointer, tokens, Value::String(value))?;
        }
        serde_json::to_string(&config).map_err(|_| Error::Corrupt("config"))
    }
}

/// The unescaped reference tokens of `pointer`, within the limits.
fn tokens(pointer: &str) -> Result<Vec<String>> {
    let invalid = |why: String| Error::invalid("paths", format!("{}: {why}", shown(pointer)));
    if pointer.len() > MAX_POINTER_BYTES {
        return Err(invalid(format!(
            "a pointer is at most {MAX_POINTER_BYTES} bytes"
        )));
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| invalid("a JSON pointer starts with /".into()))?;
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    if tokens.len() > MAX_POINTER_DEPTH {
        return Err(invalid(format!(
            "a pointer has at most {MAX_POINTER_DEPTH} segments"
        )));
    }
    Ok(tokens)
}

fn set(root: &mut Value, pointer: &str, tokens: &[String], value: Value) -> Result<()> {
    let invalid = |why: &str| Error::invalid("paths", format!("{}: {why}", shown(pointer)));
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

/// The nesting depth of `value` (a scalar is 0), walked without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0_usize)];
    while let Some((node, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match node {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// The length of `text` as a JSON string, quotes included (serde_json's escaping).
fn json_string_len(text: &str) -> usize {
    2 + text
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// A pointer as quoted in an error: pointers are not secret, but may be long.
fn shown(pointer: &str) -> String {
    const SHOWN: usize = 64;
    if pointer.len() <= SHOWN {
        return pointer.to_owned();
    }
    let end = (0..=SHOWN)
        .rev()
        .find(|i| pointer.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}...", &pointer[..end])
}

#[cfg(test)]
mod tests;
