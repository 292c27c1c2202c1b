//! `google.api.http` path templates: parsing, and matching a request path against one.
//!
//! The grammar (from `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! A request path is split into segments before anything is decoded, and a `:verb` is split
//! off its last segment (a colon in an id is sent as `%3A`). A single-segment variable's value
//! is fully percent-decoded; a multi-segment one keeps `%2F` as it is, so a decoded value never
//! gains a `/` the client did not send as one.

use std::fmt;

/// The longest template or request path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// The most segments a template or request path may have.
pub const MAX_SEGMENTS: usize = 64;

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `*`: one non-empty segment.
    One,
    /// `**`: the rest of the path, zero or more segments (last only).
    Rest,
}

/// A variable: the request field it binds and the segments `[start, end)` it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field_path: Vec<String>,
    start: usize,
    end: usize,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template {template:?}: {why}")]
pub struct TemplateError {
    template: String,
    why: &'static str,
}

/// A variable bound by a match: the request field path (`name`, `key.name`) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The field path, split at its dots.
    pub field_path: Vec<String>,
    /// The decoded value.
    pub value: String,
}

/// Why a path that matched the shape of a template cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the path has an invalid percent-encoding")]
pub struct BadEncoding;

impl PathTemplate {
    /// Parses `template`.
    ///
    /// # Errors
    /// [`TemplateError`] naming what is wrong.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |why| TemplateError {
            template: template.to_owned(),
            why,
        };
        if template.len() > MAX_PATH_LEN {
            return Err(fail("too long"));
        }
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with /"))?;
        let mut parser = Parser {
            text: rest,
            segments: Vec::new(),
            variables: Vec::new(),
        };
        parser.segments(false).map_err(fail)?;
        let verb = match parser.text.strip_prefix(':') {
            Some(verb) if is_literal(verb) => Some(verb.to_owned()),
            Some(_) => return Err(fail("the verb must be a literal")),
            None if parser.text.is_empty() => None,
            None => return Err(fail("unexpected text after the segments")),
        };
        let (segments, variables) = (parser.segments, parser.variables);
        if segments.len() > MAX_SEGMENTS {
            return Err(fail("too many segments"));
        }
        if segments[..segments.len() - 1].contains(&Segment::Rest) {
            return Err(fail("** must be the last segment"));
        }
        let mut fields: Vec<&Vec<String>> = variables.iter().map(|v| &v.field_path).collect();
        fields.sort();
        if fields.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(fail("a field is bound twice"));
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
            variables,
            verb,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The field paths of its variables, in order.
    pub fn field_paths(&self) -> impl Iterator<Item = &[String]> {
        self.variables.iter().map(|v| v.field_path.as_slice())
    }

    /// How many literal segments it has: with several templates matching one path, the one
    /// with more literals is the more specific.
    pub fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
            + usize::from(self.verb.is_some())
    }

    /// Whether two templates match exactly the same paths (so two routes on one method would
    /// be ambiguous).
    pub fn same_shape(&self, other: &Self) -> bool {
        self.segments == other.segments && self.verb == other.verb
    }

    /// Matches a request path (without query): `None` if the shape differs, else the
    /// variables' decoded values.
    ///
    /// # Errors
    /// [`BadEncoding`] if a variable's value is not valid percent-encoded UTF-8.
    pub fn matches(&self, path: &RequestPath<'_>) -> Option<Result<Vec<Binding>, BadEncoding>> {
        if path.verb != self.verb.as_deref() {
            return None;
        }
        let segments = &path.segments;
        let fixed = match self.segments.last() {
            Some(Segment::Rest) => self.segments.len() - 1,
            _ => self.segments.len(),
        };
        let shape_fits = if fixed < self.segments.len() {
            segments.len() >= fixed
        } else {
            segments.len() == fixed
        };
        if !shape_fits {
            return None;
        }
        for (want, got) in self.segments[..fixed].iter().zip(segments) {
            let fits = match want {
                Segment::Literal(text) => text == got,
                Segment::One => !got.is_empty(),
                Segment::Rest => unreachable!("** is last and not in the fixed part"),
            };
            if !fits {
                return None;
            }
        }
        Some(
            self.variables
                .iter()
                .map(|variable| {
                    let end = if variable.end > fixed {
                        segments.len()
                    } else {
                        variable.end
                    };
                    let parts = &segments[variable.start..end];
                    let single = variable.end - variable.start == 1
                        && self.segments[variable.start] != Segment::Rest;
                    let value = if single {
                        decode(parts[0], false)?
                    } else {
                        let decoded: Result<Vec<String>, BadEncoding> =
                            parts.iter().map(|p| decode(p, true)).collect();
                        decoded?.join("/")
                    };
                    Ok(Binding {
                        field_path: variable.field_path.clone(),
                        value,
                    })
                })
                .collect(),
        )
    }
}

/// One segment of a template, for documents that cannot say `{name=tenants/*}` (OpenAPI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A literal segment.
    Literal(String),
    /// A wildcard: a parameter named after the collection before it (`tenants/*` gives
    /// `tenant`), or after its field for a plain `{id}`, part of the request field `field`.
    Parameter {
        /// The parameter's name.
        name: String,
        /// The field path it fills (part of), dotted.
        field: String,
    },
}

impl PathTemplate {
    /// The template segment by segment (see [`Part`]); the verb is apart ([`Self::verb`]).
    pub fn parts(&self) -> Vec<Part> {
        let mut parts = Vec::with_capacity(self.segments.len());
        for (index, segment) in self.segments.iter().enumerate() {
            let variable = self
                .variables
                .iter()
                .find(|v| (v.start..v.end).contains(&index));
            let field = variable.map_or_else(String::new, |v| v.field_path.join("."));
            match segment {
                Segment::Literal(text) => parts.push(Part::Literal(text.clone())),
                Segment::One | Segment::Rest => {
                    let before = match (index.checked_sub(1), variable) {
                        (Some(previous), Some(v)) if previous >= v.start => {
                            match &self.segments[previous] {
                                Segment::Literal(text) => Some(text.as_str()),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    let name = match (before, variable) {
                        (Some(collection), _) => singular(collection),
                        (None, Some(v)) if v.end - v.start == 1 => field.clone(),
                        _ => format!("segment{index}"),
                    };
                    parts.push(Part::Parameter { name, field });
                }
            }
        }
        parts
    }

    /// The custom verb (`reveal` of `...:reveal`), if any.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }
}

/// A collection's element, for a parameter name: `tenants` -> `tenant`, `policies` ->
/// `policy`, `shelves` -> `shelf`, `addresses` -> `address`, `apiKeys` -> `apiKey`; a word
/// that is not a regular English plural is kept as it is.
fn singular(collection: &str) -> String {
    if let Some(stem) = collection.strip_suffix("ies") {
        return format!("{stem}y");
    }
    if let Some(stem) = collection.strip_suffix("lves") {
        return format!("{stem}lf");
    }
    for ending in ["sses", "shes", "ches", "xes"] {
        if collection.ends_with(ending) {
            return collection[..collection.len() - 2].to_owned();
        }
    }
    if collection.ends_with("us") || collection.ends_with("ss") {
        return collection.to_owned();
    }
    collection
        .strip_suffix('s')
        .unwrap_or(collection)
        .to_owned()
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A request path split for matching: its raw (still encoded) segments and its verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a> {
    segments: Vec<&'a str>,
    verb: Option<&'a str>,
}

impl<'a> RequestPath<'a> {
    /// Splits `path` (the part before `?`); `None` if it does not start with `/`, is over
    /// [`MAX_PATH_LEN`] or has over [`MAX_SEGMENTS`] segments.
    pub fn split(path: &'a str) -> Option<Self> {
        if path.len() > MAX_PATH_LEN {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        let mut segments: Vec<&str> = rest.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return None;
        }
        let mut verb = None;
        if let Some(last) = segments.last_mut()
            && let Some((segment, custom)) = last.rsplit_once(':')
        {
            *last = segment;
            verb = Some(custom);
        }
        Some(Self { segments, verb })
    }
}

struct Parser<'a> {
    text: &'a str,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    /// `Segments`; inside a variable, no variable may start.
    fn segments(&mut self, in_variable: bool) -> Result<(), &'static str> {
        loop {
            self.segment(in_variable)?;
            match self.text.strip_prefix('/') {
                Some(rest) => self.text = rest,
                None => return Ok(()),
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), &'static str> {
        if let Some(rest) = self.text.strip_prefix("**") {
            self.text = rest;
            self.segments.push(Segment::Rest);
        } else if let Some(rest) = self.text.strip_prefix('*') {
            self.text = rest;
            self.segments.push(Segment::One);
        } else if let Some(rest) = self.text.strip_prefix('{') {
            if in_variable {
                return Err("variables cannot nest");
            }
            self.text = rest;
            self.variable()?;
        } else {
            let end = self
                .text
                .find(['/', ':', '{', '}', '*', '='])
                .unwrap_or(self.text.len());
            let literal = &self.text[..end];
            if !is_literal(literal) {
                return Err("a segment must be *, **, a variable or a literal");
            }
            self.segments.push(Segment::Literal(literal.to_owned()));
            self.text = &self.text[end..];
        }
        Ok(())
    }

    fn variable(&mut self) -> Result<(), &'static str> {
        let end = self.text.find(['=', '}']).ok_or("an unclosed variable")?;
        let field_path: Vec<String> = self.text[..end].split('.').map(str::to_owned).collect();
        if !field_path.iter().all(|part| is_ident(part)) {
            return Err("a variable's field path must be identifiers joined by dots");
        }
        self.text = &self.text[end..];
        let start = self.segments.len();
        if let Some(rest) = self.text.strip_prefix('=') {
            self.text = rest;
            self.segments(true)?;
        } else {
            self.segments.push(Segment::One);
        }
        self.text = self.text.strip_prefix('}').ok_or("an unclosed variable")?;
        self.variables.push(Variable {
            field_path,
            start,
            end: self.segments.len(),
        });
        Ok(())
    }
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A literal: unreserved characters (RFC 3986) and percent-encodings, non-empty.
fn is_literal(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%'))
}

/// Percent-decodes one segment; `keep_slash` leaves `%2F` encoded (multi-segment variables).
fn decode(segment: &str, keep_slash: bool) -> Result<String, BadEncoding> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BadEncoding)?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| BadEncoding)?;
            if keep_slash && byte == b'/' {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadEncoding)
}

#[cfg(test)]
mod tests {
    #[test]
    fn collections_name_their_element() {
        for (collection, element) in [
            ("tenants", "tenant"),
            ("apiKeys", "apiKey"),
            ("policies", "policy"),
            ("shelves", "shelf"),
            ("archives", "archive"),
            ("addresses", "address"),
            ("boxes", "box"),
            ("status", "status"),
            ("data", "data"),
        ] {
            assert_eq!(super::singular(collection), element, "{collection}");
        }
    }

    use super::*;

    fn bind(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let template = PathTemplate::parse(template).unwrap();
        let path = RequestPath::split(path).unwrap();
        template.matches(&path).map(|bound| {
            bound
                .unwrap()
                .into_iter()
                .map(|b| (b.field_path.join("."), b.value))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_resource_name_variable_binds_its_segments() {
        assert_eq!(
            bind(
                "/v1/{name=tenants/*/credentials/*}",
                "/v1/tenants/acme/credentials/c1"
            ),
            Some(pairs(&[("name", "tenants/acme/credentials/c1")]))
        );
        assert_eq!(
            bind(
                "/v1/{name=tenants/*/credentials/*}",
                "/v1/tenants/acme/keys/c1"
            ),
            None
        );
        assert_eq!(
            bind(
                "/v1/{name=tenants/*/credentials/*}",
                "/v1/tenants/acme/credentials"
            ),
            None
        );
        assert_eq!(
            bind(
                "/v1/{name=tenants/*/credentials/*}",
                "/v1/tenants//credentials/c1"
            ),
            None,
            "* is one non-empty segment"
        );
    }

    #[test]
    fn a_custom_verb_must_match_and_is_not_part_of_the_value() {
        let template = "/v1/{name=tenants/*/credentials/*}:reveal";
        assert_eq!(
            bind(template, "/v1/tenants/a/credentials/c:reveal"),
            Some(pairs(&[("name", "tenants/a/credentials/c")]))
        );
        assert_eq!(bind(template, "/v1/tenants/a/credentials/c"), None);
        assert_eq!(bind(template, "/v1/tenants/a/credentials/c:validate"), None);
        assert_eq!(
            bind(
                "/v1/{name=tenants/*/credentials/*}",
                "/v1/tenants/a/credentials/c:reveal"
            ),
            None,
            "a path with a verb does not match a template without one"
        );
    }

    #[test]
    fn plain_variables_and_nested_field_paths() {
        assert_eq!(
            bind(
                "/v1/shelves/{shelf}/books/{book.id}",
                "/v1/shelves/s1/books/b%20x"
            ),
            Some(pairs(&[("shelf", "s1"), ("book.id", "b x")]))
        );
    }

    #[test]
    fn a_double_wildcard_takes_the_rest_and_keeps_encoded_slashes() {
        assert_eq!(
            bind("/v1/{path=files/**}", "/v1/files/a/b%2Fc/d"),
            Some(pairs(&[("path", "files/a/b%2Fc/d")]))
        );
        assert_eq!(
            bind("/v1/{path=files/**}", "/v1/files"),
            Some(pairs(&[("path", "files")]))
        );
        assert_eq!(
            bind("/v1/{path=**}", "/v1/a%2Fb"),
            Some(pairs(&[("path", "a%2Fb")])),
            "** is multi-segment even when it covers one"
        );
        assert_eq!(
            bind("/v1/{id}", "/v1/a%2Fb"),
            Some(pairs(&[("id", "a/b")])),
            "a single-segment variable decodes everything"
        );
    }

    #[test]
    fn bad_percent_encoding_is_an_error_not_a_miss() {
        let template = PathTemplate::parse("/v1/{id}").unwrap();
        for path in ["/v1/a%zz", "/v1/a%2", "/v1/%ff"] {
            let split = RequestPath::split(path).unwrap();
            assert_eq!(template.matches(&split), Some(Err(BadEncoding)), "{path}");
        }
    }

    #[test]
    fn malformed_templates_are_refused_with_a_reason() {
        for (template, why) in [
            ("v1/x", "must start with /"),
            ("/v1/{name=a/{b}}", "variables cannot nest"),
            ("/v1/{name", "an unclosed variable"),
            ("/v1/**/x", "** must be the last segment"),
            ("/v1/{a}/{a}", "a field is bound twice"),
            (
                "/v1/{1a}",
                "a variable's field path must be identifiers joined by dots",
            ),
            ("/v1/x:", "the verb must be a literal"),
            (
                "/v1/a b",
                "a segment must be *, **, a variable or a literal",
            ),
        ] {
            let error = PathTemplate::parse(template).unwrap_err();
            assert_eq!(error.why, why, "{template}");
        }
    }

    #[test]
    fn oversized_paths_are_not_split() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(RequestPath::split(&long), None);
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(RequestPath::split(&deep), None);
        assert_eq!(RequestPath::split("no-slash"), None);
    }

    #[test]
    fn parts_name_each_wildcard_after_its_collection() {
        let template = PathTemplate::parse("/v1/{name=tenants/*/credentials/*}:reveal").unwrap();
        let parameter = |name: &str| Part::Parameter {
            name: name.to_owned(),
            field: "name".to_owned(),
        };
        assert_eq!(
            template.parts(),
            [
                Part::Literal("v1".into()),
                Part::Literal("tenants".into()),
                parameter("tenant"),
                Part::Literal("credentials".into()),
                parameter("credential"),
            ]
        );
        assert_eq!(template.verb(), Some("reveal"));
        let plain = PathTemplate::parse("/v1/books/{book.id}").unwrap();
        assert_eq!(
            plain.parts()[2],
            Part::Parameter {
                name: "book.id".into(),
                field: "book.id".into()
            }
        );
    }

    #[test]
    fn specificity_counts_literals_and_the_verb() {
        let general = PathTemplate::parse("/v1/{name=tenants/*}").unwrap();
        let verb = PathTemplate::parse("/v1/{name=tenants/*}:x").unwrap();
        assert!(verb.literals() > general.literals());
        assert!(!verb.same_shape(&general));
        assert!(general.same_shape(&PathTemplate::parse("/v1/{parent=tenants/*}").unwrap()));
    }
}
