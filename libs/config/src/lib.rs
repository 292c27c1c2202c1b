//! Configuration plumbing shared by every Coffer service.
//!
//! Each setting has one name, its environment variable `COFFER_{SECTION}__{KEY}`; in a TOML
//! file the same setting is the lowercase `key` under `[section]`. The environment wins over
//! the file. A service reads everything into [`Values`] once, then parses each setting with a
//! [`Parser`], which collects every problem so the operator sees all of them at once, never
//! echoing a value (a secret pasted into the wrong variable must not reach a log).
//!
//! Configuration is strict ([`load`]): a `COFFER_*` variable or a TOML key that no Coffer
//! program reads is refused at start, with a "did you mean" for a near miss, so a misspelled
//! `COFFER_KEY_SERVICE__LISTNE` is not silently ignored while the default applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_transport::{TlsFiles, TlsMaterial};

/// The standard variable naming the OTLP/gRPC trace collector.
pub use coffer_telemetry::OTLP_ENDPOINT_VARIABLE;

/// Every Coffer service's TOML section and variable prefix. One environment (or one TOML file)
/// may configure them all, so a service ignores the others' settings rather than refusing them.
pub const SERVICES: &[(&str, &str)] = &[
    ("key_service", "COFFER_KEY_SERVICE__"),
    ("auth_service", "COFFER_AUTH_SERVICE__"),
    ("credential_service", "COFFER_CREDENTIAL_SERVICE__"),
    ("gateway", "COFFER_GATEWAY__"),
];

/// The project's `COFFER_*` variables that are no service's setting: key-service's keyring
/// (which every process of a shared environment sees), the CLI's bearer, `coffer up`'s
/// database, and the switches of the test script.
pub const OTHER_VARIABLES: &[&str] = &[
    "COFFER_ROOT_KEYS",
    "COFFER_API_KEY",
    "COFFER_UP_DATABASE_URL",
    "COFFER_REQUIRE_POSTGRES",
    "COFFER_REQUIRE_TOOLS",
    "COFFER_TEST_POSTGRES_URL",
];

/// Where a value came from, for the message that refuses an unknown one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Environment,
    File {
        path: PathBuf,
        section: String,
        key: String,
    },
}

/// Raw setting values keyed by environment-variable name. `Debug` shows the names only: a
/// value may be a secret (a database password, `COFFER_ROOT_KEYS`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values {
    values: BTreeMap<String, String>,
    origins: BTreeMap<String, Origin>,
    /// Problems found while loading: `COFFER_*` variables of no Coffer program, unknown TOML
    /// sections.
    strays: Vec<Stray>,
    asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stray {
    /// A `COFFER_*` variable that is no service's and no other known variable.
    Variable(String),
    /// A TOML section of no service.
    Section { path: PathBuf, section: String },
    /// A TOML value outside any section.
    TopLevel { path: PathBuf, key: String },
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Values {
    /// Reads `[section]` of the optional TOML `file`, then overlays every environment variable
    /// that starts with `prefix` or is one of `extra`. Other services' sections and variables
    /// are skipped; anything else `COFFER_*` is kept as a problem for [`load`] to report.
    ///
    /// # Errors
    /// [`ConfigErrors`] if the file cannot be read or parsed.
    pub fn load(
        section: &str,
        prefix: &str,
        extra: &[&str],
        file: Option<&Path>,
    ) -> Result<Self, ConfigErrors> {
        let mut loaded = Self::default();
        if let Some(path) = file {
            loaded
                .read_toml(path, section, prefix)
                .map_err(|e| ConfigErrors(vec![e]))?;
        }
        for (name, value) in std::env::vars() {
            if name.starts_with(prefix) || extra.contains(&name.as_str()) {
                loaded.origins.insert(name.clone(), Origin::Environment);
                loaded.values.insert(name, value);
            } else if name.starts_with("COFFER_")
                && !SERVICES.iter().any(|(_, other)| name.starts_with(other))
                && !OTHER_VARIABLES.contains(&name.as_str())
            {
                loaded.strays.push(Stray::Variable(name));
            }
        }
        Ok(loaded)
    }

    /// Values from a map (tests).
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Self {
            origins: map
                .keys()
                .map(|name| (name.clone(), Origin::Environment))
                .collect(),
            values: map,
            ..Self::default()
        }
    }

    /// A non-empty value by full variable name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every variable name a parser asked for so far: a service's settings are exactly the
    /// names parsing an empty set of values asks for (the README's tables are checked
    /// against them).
    pub fn asked(&self) -> Vec<String> {
        self.asked.borrow().iter().cloned().collect()
    }

    /// One problem for every value no parser asked for (of those `known` names), and for
    /// every stray found while loading, each with a "did you mean" where a known name is close.
    pub fn unknown(&self, known: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for stray in &self.strays {
            problems.push(match stray {
                Stray::Variable(name) => {
                    let candidates = known
                        .iter()
                        .map(String::as_str)
                        .chain(OTHER_VARIABLES.iter().copied());
                    format!(
                        "{name}: not a Coffer setting{}",
                        did_you_mean(name, candidates)
                    )
                }
                Stray::Section { path, section } => {
                    let sections: Vec<String> =
                        SERVICES.iter().map(|(s, _)| format!("[{s}]")).collect();
                    format!(
                        "{}: [{section}] is not a Coffer section{}",
                        path.display(),
                        did_you_mean(&format!("[{section}]"), sections.iter().map(String::as_str))
                    )
                }
                Stray::TopLevel { path, key } => format!(
                    "{}: `{key}` is outside any section; settings go under [{}]",
                    path.display(),
                    SERVICES
                        .iter()
                        .map(|(s, _)| *s)
                        .collect::<Vec<_>>()
                        .join("], [")
                ),
            });
        }
        for (name, origin) in &self.origins {
            if known.contains(name) {
                continue;
            }
            problems.push(match origin {
                Origin::Environment => format!(
                    "{name}: unknown setting{}",
                    did_you_mean(name, known.iter().map(String::as_str))
                ),
                Origin::File { path, section, key } => {
                    let keys: Vec<String> = known
                        .iter()
                        .filter_map(|k| toml_key(k, name, key))
                        .collect();
                    format!(
                        "{}: [{section}] {key}: unknown setting{}",
                        path.display(),
                        did_you_mean(key, keys.iter().map(String::as_str))
                    )
                }
            });
        }
        problems
    }

    fn read_toml(&mut self, path: &Path, section: &str, prefix: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, entry) in &table {
            let stray = match entry.as_table() {
                Some(_) if name == section => continue,
                Some(_) if SERVICES.iter().any(|(other, _)| other == name) => continue,
                Some(_) => Stray::Section {
                    path: path.to_owned(),
                    section: name.clone(),
                },
                None => Stray::TopLevel {
                    path: path.to_owned(),
                    key: name.clone(),
                },
            };
            self.strays.push(stray);
        }
        let Some(settings) = table.get(section).and_then(toml::Value::as_table) else {
            return Ok(());
        };
        for (key, value) in settings {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let name = format!("{prefix}{}", key.to_ascii_uppercase());
            self.origins.insert(
                name.clone(),
                Origin::File {
                    path: path.to_owned(),
                    section: section.to_owned(),
                    key: key.clone(),
                },
            );
            self.values.insert(name, value);
        }
        Ok(())
    }
}

/// Reads a service's settings from the optional TOML `file` and the environment (see
/// [`Values::load`]), parses them with `parse`, and refuses every value no Coffer program
/// reads: all problems, parse errors and unknown names alike, are listed at once.
///
/// The service's settings are the names `parse` asks for, with the values given and with none
/// (so a setting asked only when another is valid still counts as known).
///
/// # Errors
/// [`ConfigErrors`] listing every problem.
pub fn load<T>(
    section: &str,
    prefix: &str,
    extra: &[&str],
    file: Option<&Path>,
    parse: impl Fn(&Values) -> Result<T, ConfigErrors>,
) -> Result<T, ConfigErrors> {
    let values = Values::load(section, prefix, extra, file)?;
    let parsed = parse(&values);
    let empty = Values::default();
    // Only the names it asks for matter; the result of parsing nothing is irrelevant.
    let _ = parse(&empty);
    let mut known = values.asked();
    known.extend(empty.asked());
    let unknown = values.unknown(&known);
    match parsed {
        Ok(config) if unknown.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(unknown)),
        Err(mut errors) => {
            errors.0.extend(unknown);
            Err(errors)
        }
    }
}

/// `; did you mean X?` for the candidate closest to `name`, if one is close enough to be a
/// typo (an edit distance of at most a third of the name, and at most 3), else nothing.
fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let limit = (name.len() / 3).clamp(1, 3);
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| format!("; did you mean {candidate}?"))
        .unwrap_or_default()
}

/// The TOML key of the known variable `known`, when it is in the same section as the unknown
/// `name` (whose TOML key is `key`).
fn toml_key(known: &str, name: &str, key: &str) -> Option<String> {
    let prefix = name.strip_suffix(&key.to_ascii_uppercase())?;
    known.strip_prefix(prefix).map(str::to_ascii_lowercase)
}

/// Parses settings of one service, collecting every problem.
pub struct Parser<'a> {
    values: &'a Values,
    prefix: &'static str,
    errors: Vec<String>,
}

impl<'a> Parser<'a> {
    /// A parser for the settings named `{prefix}{KEY}`.
    pub fn new(values: &'a Values, prefix: &'static str) -> Self {
        Self {
            values,
            prefix,
            errors: Vec::new(),
        }
    }

    /// The value of `{prefix}{key}`, if set and non-empty.
    pub fn value(&self, key: &str) -> Option<String> {
        self.values
            .get(&format!("{}{key}", self.prefix))
            .map(str::to_owned)
    }

    /// The value of a variable outside the prefix (e.g. `COFFER_ROOT_KEYS`).
    pub fn global(&self, name: &str) -> Option<String> {
        self.values.get(name).map(str::to_owned)
    }

    /// Records a problem with `{prefix}{key}`.
    pub fn error(&mut self, key: &str, why: &str) {
        self.errors.push(format!("{}{key}: {why}", self.prefix));
    }

    /// Records a problem in the caller's own words.
    pub fn push(&mut self, message: String) {
        self.errors.push(message);
    }

    /// The prefix, for messages naming variables.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// A required setting.
    pub fn required(&mut self, key: &str) -> Option<String> {
        let value = self.value(key);
        if value.is_none() {
            self.error(key, "required");
        }
        value
    }

    /// A setting parsed by `parse`, `default` when unset. An unparsable value is reported as
    /// "invalid value", without echoing it.
    pub fn parse<T>(
        &mut self,
        key: &str,
        default: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.value(key).unwrap_or_else(|| default.to_owned());
        let parsed = parse(&raw);
        if parsed.is_none() {
            self.error(key, "invalid value");
        }
        parsed
    }

    /// A setting parsed by `parse`, `default` when unset: the default is a typed value, so
    /// it is written once, beside the setting's constructor default. An unparsable value is
    /// reported as "invalid value", without echoing it.
    pub fn or<T>(&mut self, key: &str, default: T, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        match self.value(key) {
            None => Some(default),
            Some(raw) => {
                let parsed = parse(&raw);
                if parsed.is_none() {
                    self.error(key, "invalid value");
                }
                parsed
            }
        }
    }

    /// An optional setting parsed by `parse`: `Some(None)` when unset, `None` (with the
    /// problem recorded) when unparsable.
    pub fn optional<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.value(key) {
            None => Some(None),
            Some(raw) => {
                let parsed = parse(&raw);
                if parsed.is_none() {
                    self.error(key, "invalid value");
                }
                parsed.map(Some)
            }
        }
    }

    /// The TLS material from `{prefix}TLS_CERT`, `TLS_KEY` and `TLS_CA` (all required).
    pub fn tls(&mut self) -> Option<TlsMaterial> {
        let cert = self.required("TLS_CERT");
        let key = self.required("TLS_KEY");
        let ca = self.required("TLS_CA");
        let files = TlsFiles {
            cert: PathBuf::from(cert?),
            key: PathBuf::from(key?),
            ca: PathBuf::from(ca?),
        };
        TlsMaterial::load(&files)
            .map_err(|e| self.errors.push(format!("TLS: {e}")))
            .ok()
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, if set: must be an http(s) URL. Unset is fine.
    pub fn otlp_endpoint(&mut self) -> Option<String> {
        let endpoint = self.global(OTLP_ENDPOINT_VARIABLE)?;
        if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            Some(endpoint)
        } else {
            self.push(format!(
                "{OTLP_ENDPOINT_VARIABLE}: must be an http:// or https:// URL"
            ));
            None
        }
    }

    /// Whether no problem was found so far.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every problem found.
    pub fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }
}

/// Every configuration problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses `250ms`, `30s`, `5m`, `2h`, `7d` or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let amount: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(amount)),
        "s" => amount,
        "m" => amount.checked_mul(60)?,
        "h" => amount.checked_mul(3600)?,
        "d" => amount.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// The host of `https://host:port[/...]`, for verifying a dependency's certificate.
pub fn https_host(url: &str) -> Option<String> {
    let authority = url.strip_prefix("https://")?.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_https_urls() {
        assert_eq!(
            https_host("https://127.0.0.1:50051").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            https_host("https://kms.internal:443/").as_deref(),
            Some("kms.internal")
        );
        assert_eq!(https_host("https://[::1]:50051").as_deref(), Some("::1"));
        assert_eq!(https_host("https://"), None);
        assert_eq!(https_host("http://kms:1"), None);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn toml_sections_map_to_variable_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.toml");
        std::fs::write(
            &path,
            "[key_service]\nrequest_timeout = \"10s\"\ncache_capacity = 5\n[auth_service]\nx = 1\n",
        )
        .unwrap();
        let mut values = Values::default();
        values
            .read_toml(&path, "key_service", "COFFER_KEY_SERVICE__")
            .unwrap();
        assert_eq!(values.values["COFFER_KEY_SERVICE__REQUEST_TIMEOUT"], "10s");
        assert_eq!(values.values["COFFER_KEY_SERVICE__CACHE_CAPACITY"], "5");
        assert_eq!(
            values.values.len(),
            2,
            "another service's section is skipped"
        );
        assert!(values.strays.is_empty());
    }

    #[test]
    fn unknown_settings_are_refused_with_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.toml");
        std::fs::write(
            &path,
            "timeout = 1\n[key_servce]\nx = 1\n[key_service]\nlistne = \"0.0.0.0:1\"\nzzz = 2\n",
        )
        .unwrap();
        let mut values = Values::default();
        values
            .read_toml(&path, "key_service", "COFFER_KEY_SERVICE__")
            .unwrap();
        values.origins.insert(
            "COFFER_KEY_SERVICE__REQUEST_TIMOUT".to_owned(),
            Origin::Environment,
        );
        values
            .strays
            .push(Stray::Variable("COFFER_ROOT_KEY".to_owned()));
        let known = [
            "COFFER_KEY_SERVICE__LISTEN".to_owned(),
            "COFFER_KEY_SERVICE__REQUEST_TIMEOUT".to_owned(),
        ];
        let file = path.display();
        assert_eq!(
            values.unknown(&known),
            vec![
                format!(
                    "{file}: [key_servce] is not a Coffer section; did you mean [key_service]?"
                ),
                format!(
                    "{file}: `timeout` is outside any section; settings go under [key_service], \
                     [auth_service], [credential_service], [gateway]"
                ),
                "COFFER_ROOT_KEY: not a Coffer setting; did you mean COFFER_ROOT_KEYS?".to_owned(),
                format!("{file}: [key_service] listne: unknown setting; did you mean listen?"),
                "COFFER_KEY_SERVICE__REQUEST_TIMOUT: unknown setting; did you mean \
                 COFFER_KEY_SERVICE__REQUEST_TIMEOUT?"
                    .to_owned(),
                format!("{file}: [key_service] zzz: unknown setting"),
            ]
        );
        assert!(
            values
                .unknown(&known)
                .iter()
                .all(|p| !p.contains("0.0.0.0"))
        );
    }

    #[test]
    fn load_lists_parse_errors_and_unknown_names_together() {
        let parse = |values: &Values| -> Result<String, ConfigErrors> {
            let mut p = Parser::new(values, "COFFER_KEY_SERVICE__");
            let listen = p.required("LISTEN");
            match listen {
                Some(listen) if p.is_ok() => Ok(listen),
                _ => Err(p.into_errors()),
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.toml");
        std::fs::write(&path, "[key_service]\nlistne = \"x\"\n").unwrap();
        let errors = load(
            "key_service",
            "COFFER_KEY_SERVICE__",
            &[],
            Some(&path),
            parse,
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0], "COFFER_KEY_SERVICE__LISTEN: required");
        assert!(errors[1].ends_with("[key_service] listne: unknown setting; did you mean listen?"));
        std::fs::write(&path, "[key_service]\nlisten = \"x\"\n").unwrap();
        assert_eq!(
            load(
                "key_service",
                "COFFER_KEY_SERVICE__",
                &[],
                Some(&path),
                parse
            )
            .unwrap(),
            "x"
        );
    }

    #[test]
    fn debug_shows_names_never_values() {
        let values = Values::from_map(BTreeMap::from([(
            "COFFER_ROOT_KEYS".to_owned(),
            "1:c2VjcmV0".to_owned(),
        )]));
        let shown = format!("{values:?}");
        assert!(
            shown.contains("COFFER_ROOT_KEYS") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }

    #[test]
    fn problems_accumulate_without_echoing_values() {
        let values = Values::from_map(BTreeMap::from([(
            "COFFER_SVC__TIMEOUT".to_owned(),
            "hunter2".to_owned(),
        )]));
        let mut parser = Parser::new(&values, "COFFER_SVC__");
        assert!(parser.parse("TIMEOUT", "1s", parse_duration).is_none());
        assert!(parser.required("DATABASE_URL").is_none());
        assert_eq!(
            parser.parse("OTHER", "5s", parse_duration),
            Some(Duration::from_secs(5))
        );
        let errors = parser.into_errors().to_string();
        assert_eq!(
            errors,
            "COFFER_SVC__TIMEOUT: invalid value\nCOFFER_SVC__DATABASE_URL: required"
        );
    }
}
