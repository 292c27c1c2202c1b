//! Configuration plumbing shared by every Coffer service.
//!
//! Each setting has one name, its environment variable `COFFER_{SECTION}__{KEY}`; in a TOML
//! file the same setting is the lowercase `key` under `[section]`. The environment wins over
//! the file. A service reads everything into [`Values`] once, then parses each setting with a
//! [`Parser`], which collects every problem so the operator sees all of them at once, never
//! echoing a value (a secret pasted into the wrong variable must not reach a log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_transport::{TlsFiles, TlsMaterial};

/// The standard variable naming the OTLP/gRPC trace collector.
pub use coffer_telemetry::OTLP_ENDPOINT_VARIABLE;

/// Raw setting values keyed by environment-variable name. `Debug` shows the names only: a
/// value may be a secret (a database password, `COFFER_ROOT_KEYS`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values(
    BTreeMap<String, String>,
    std::cell::RefCell<std::collections::BTreeSet<String>>,
);

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Values {
    /// Reads `[section]` of the optional TOML `file`, then overlays every environment variable
    /// that starts with `prefix` or is one of `extra`.
    ///
    /// # Errors
    /// [`ConfigErrors`] if the file cannot be read or parsed.
    pub fn load(
        section: &str,
        prefix: &str,
        extra: &[&str],
        file: Option<&Path>,
    ) -> Result<Self, ConfigErrors> {
        let mut values = match file {
            Some(path) => read_toml(path, section, prefix).map_err(|e| ConfigErrors(vec![e]))?,
            None => BTreeMap::new(),
        };
        for (name, value) in std::env::vars() {
            if name.starts_with(prefix) || extra.contains(&name.as_str()) {
                values.insert(name, value);
            }
        }
        Ok(Self(values, Default::default()))
    }

    /// Values from a map (tests).
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Self(map, Default::default())
    }

    /// A non-empty value by full variable name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.1.borrow_mut().insert(name.to_owned());
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every variable name a parser asked for so far: a service's settings are exactly the
    /// names parsing an empty set of values asks for (the README's tables are checked
    /// against them).
    pub fn asked(&self) -> Vec<String> {
        self.1.borrow().iter().cloned().collect()
    }
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

fn read_toml(path: &Path, section: &str, prefix: &str) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut values = BTreeMap::new();
    let Some(section) = table.get(section).and_then(toml::Value::as_table) else {
        return Ok(values);
    };
    for (key, value) in section {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        values.insert(format!("{prefix}{}", key.to_ascii_uppercase()), value);
    }
    Ok(values)
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
            "[svc]\nrequest_timeout = \"10s\"\ncache_capacity = 5\n[other]\nx = 1\n",
        )
        .unwrap();
        let values = read_toml(&path, "svc", "COFFER_SVC__").unwrap();
        assert_eq!(values["COFFER_SVC__REQUEST_TIMEOUT"], "10s");
        assert_eq!(values["COFFER_SVC__CACHE_CAPACITY"], "5");
        assert_eq!(values.len(), 2);
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
