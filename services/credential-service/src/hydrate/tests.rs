use std::collections::HashMap;

use super::*;

fn env(entries: &[(&str, &str)]) -> Env {
    Env::parse(
        "env",
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .unwrap()
}

fn one(pointer: &str) -> HashMap<String, String> {
    HashMap::from([(pointer.to_owned(), "A".to_owned())])
}

fn hydrate(base: &str, paths: &HashMap<String, String>, env: &Env) -> Result<String> {
    Plan::parse(base, paths)?.apply(env)
}

#[track_caller]
fn assert_invalid(result: Result<impl std::fmt::Debug>, field: &str, needle: &str) {
    match result {
        Err(Error::InvalidArgument(coffer_server::names::Invalid { field: f, reason })) => {
            assert_eq!(f, field);
            assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}

#[test]
fn values_land_at_their_pointers_creating_objects() {
    let env = env(&[("TOKEN", "ghp_x"), ("ORG", "acme")]);
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
    let env = env(&[("A", "1")]);
    assert_invalid(hydrate("[1]", &one("/a"), &env), "base_config", "object");
    assert_invalid(hydrate("{", &one("/a"), &env), "base_config", "not JSON");
    assert_invalid(hydrate("{}", &one("a"), &env), "paths", "starts with /");
    assert_invalid(
        hydrate(r#"{"a":1}"#, &one("/a/b"), &env),
        "paths",
        "not an object",
    );
    let missing = HashMap::from([("/x".to_owned(), "NOPE".to_owned())]);
    assert_invalid(hydrate("{}", &missing, &env), "paths", "`NOPE`");
}

#[test]
fn path_count_is_limited_at_256() {
    let env = env(&[("A", "1")]);
    let paths = |n: usize| -> HashMap<String, String> {
        (0..n).map(|i| (format!("/k{i}"), "A".to_owned())).collect()
    };
    assert!(hydrate("{}", &paths(MAX_PATHS), &env).is_ok());
    assert_invalid(hydrate("{}", &paths(MAX_PATHS + 1), &env), "paths", "256");
}

#[test]
fn pointer_depth_is_limited_at_32_segments() {
    let env = env(&[("A", "1")]);
    let at = "/a".repeat(MAX_POINTER_DEPTH);
    let out: Value = serde_json::from_str(&hydrate("{}", &one(&at), &env).unwrap()).unwrap();
    assert_eq!(out.pointer(&at).unwrap(), "1");
    let over = "/a".repeat(MAX_POINTER_DEPTH + 1);
    assert_invalid(hydrate("{}", &one(&over), &env), "paths", "32 segments");
}

#[test]
fn a_pointer_of_fifty_thousand_segments_is_refused_without_building_anything() {
    let env = env(&[("A", "1")]);
    let attack = "/a".repeat(50_000);
    assert_invalid(hydrate("{}", &one(&attack), &env), "paths", "1024 bytes");
}

#[test]
fn pointer_length_is_limited_at_1024_bytes() {
    let env = env(&[("A", "1")]);
    let at = format!("/{}", "x".repeat(MAX_POINTER_BYTES - 1));
    assert!(hydrate("{}", &one(&at), &env).is_ok());
    let over = format!("/{}", "x".repeat(MAX_POINTER_BYTES));
    let result = hydrate("{}", &one(&over), &env);
    assert_invalid(result, "paths", "1024 bytes");
    // The error quotes a prefix of the pointer only.
    let Err(error) = hydrate("{}", &one(&over), &env) else {
        unreachable!()
    };
    assert!(error.to_string().len() < 200);
}

#[test]
fn base_config_size_is_limited_at_64_kib() {
    let env = env(&[("A", "1")]);
    let sized = |n: usize| format!(r#"{{"p":"{}"}}"#, "x".repeat(n - 8));
    assert_eq!(sized(MAX_CONFIG_BYTES).len(), MAX_CONFIG_BYTES);
    assert!(hydrate(&sized(MAX_CONFIG_BYTES), &one("/a"), &env).is_ok());
    assert_invalid(
        hydrate(&sized(MAX_CONFIG_BYTES + 1), &one("/a"), &env),
        "base_config",
        "65536 bytes",
    );
}

#[test]
fn base_config_depth_is_limited_at_32_levels() {
    let env = env(&[("A", "1")]);
    let nested = |levels: usize| {
        format!(
            "{}{}",
            r#"{"a":"#.repeat(levels - 1) + "{",
            "}".repeat(levels)
        )
    };
    assert_eq!(depth(&serde_json::from_str(&nested(3)).unwrap()), 3);
    assert!(hydrate(&nested(MAX_CONFIG_DEPTH), &one("/b"), &env).is_ok());
    assert_invalid(
        hydrate(&nested(MAX_CONFIG_DEPTH + 1), &one("/b"), &env),
        "base_config",
        "32 levels",
    );
    // Arrays count as levels too; deeper than serde_json's own limit is still our error.
    let arrays = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    assert_invalid(hydrate(&arrays, &one("/b"), &env), "base_config", "");
}

#[test]
fn output_size_is_checked_before_the_config_is_built() {
    // 3,000 paths at one 60 KiB value was the 180 MB answer; 256 paths at it are still
    // 15 MB, refused from the computed size.
    let big = "v".repeat(60 * 1024);
    let env = env(&[("BIG", &big)]);
    let many: HashMap<String, String> = (0..MAX_PATHS)
        .map(|i| (format!("/k{i}"), "BIG".to_owned()))
        .collect();
    assert_invalid(hydrate("{}", &many, &env), "paths", "1048576 bytes");
    // At the bound: 63 paths at a 16 KiB value make 1,032,760 bytes and are returned; 64
    // would make 1,049,153 and are refused.
    let value = "w".repeat(16 * 1024);
    let env = Env::parse("env", [("V".to_owned(), value)]).unwrap();
    let paths = |n: usize| -> HashMap<String, String> {
        (0..n)
            .map(|i| (format!("/{i:03}"), "V".to_owned()))
            .collect()
    };
    let out = hydrate("{}", &paths(63), &env).unwrap();
    assert_eq!(out.len(), 1_032_760);
    assert_invalid(hydrate("{}", &paths(64), &env), "paths", "exceed");
}

#[test]
fn json_string_length_matches_serde_json() {
    for text in [
        "",
        "plain",
        "quo\"te",
        "back\\slash",
        "\n\t\r\u{1}\u{1f}",
        "é✓",
    ] {
        assert_eq!(
            json_string_len(text),
            serde_json::to_string(text).unwrap().len(),
            "{text:?}"
        );
    }
}
