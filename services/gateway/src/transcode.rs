//! REST request to gRPC request message, and gRPC response message to JSON, by the proto3
//! JSON mapping.
//!
//! The path variables, the query parameters and the body are assembled into one JSON object
//! (each value in the JSON form of its field: a query's `page_size=5` becomes `"pageSize": "5"`,
//! which the mapping accepts for every number), and `prost-reflect` decodes that object into
//! the request message. So int64 as strings, bytes as base64, enums by name or number,
//! timestamps, durations and field masks are the mapping library's job, not ours, and a path or
//! query value is checked exactly as the same value in a body would be.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};

use crate::routes::{Body, Route};
use crate::template::Binding;

/// The most query parameters one request may carry.
pub const MAX_QUERY_PARAMETERS: usize = 64;
/// The deepest a field path (`a.b.c`) in a query may go.
pub const MAX_FIELD_DEPTH: usize = 8;
/// The deepest a JSON body may nest (objects and arrays).
pub const MAX_JSON_DEPTH: usize = 32;

/// Why a request cannot become its RPC's request message (400, naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Invalid {
    /// The field (its JSON path), or `body` / `query` for the whole.
    pub field: String,
    /// What is wrong, without echoing the value.
    pub why: String,
}

impl Invalid {
    fn new(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            why: why.into(),
        }
    }
}

/// The request message of `route` from its path variables, its query string (without `?`,
/// still percent-encoded) and its body (empty for none).
///
/// # Errors
/// [`Invalid`] naming the field: malformed JSON, a wrong type, an unknown field or query
/// parameter, a body where the route takes none, a path value the body contradicts.
pub fn request(
    route: &Route,
    bindings: &[Binding],
    query: &str,
    body: &[u8],
) -> Result<DynamicMessage, Invalid> {
    let input = route.rpc.input();
    let mut json = match &route.body {
        Body::None => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                return Err(Invalid::new("body", "this method takes no body"));
            }
            Map::new()
        }
        Body::Whole => match parse_body(body)? {
            Value::Object(object) => object,
            Value::Null => Map::new(),
            _ => return Err(Invalid::new("body", "must be a JSON object")),
        },
        Body::Field(field) => {
            let mut object = Map::new();
            let value = parse_body(body)?;
            if !value.is_null() {
                object.insert(field.json_name().to_owned(), value);
            }
            object
        }
    };
    for binding in bindings {
        let (path, field) = json_path(&input, &binding.field_path)
            .ok_or_else(|| Invalid::new(binding.field_path.join("."), "not a request field"))?;
        let value = scalar(&field, &binding.value);
        put(&mut json, &path, value, Conflict::Refuse)?;
    }
    if !query.is_empty() {
        query_into(route, bindings, &input, query, &mut json)?;
    }
    let mut track = serde_path_to_error::Track::new();
    let decoded = DynamicMessage::deserialize_with_options(
        input,
        serde_path_to_error::Deserializer::new(Value::Object(json), &mut track),
        &DeserializeOptions::new().deny_unknown_fields(true),
    );
    decoded.map_err(|error| {
        let field = track.path().to_string();
        let field = if field.is_empty() || field == "." {
            "body".to_owned()
        } else {
            field
        };
        Invalid::new(field, mapping_error(&error.to_string()))
    })
}

/// The JSON body of a response: the whole message, or the route's `response_body` field.
/// Every field is written, defaults included, so a client sees the full shape its schema
/// describes; int64 as strings, enums by name.
pub fn response(route: &Route, message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new().skip_default_fields(false);
    let serialized = match &route.response_body {
        Some(field) => {
            let value = message.get_field(field);
            let mut wrapper = DynamicMessage::new(route.rpc.output());
            wrapper.set_field(field, value.into_owned());
            wrapper
                .serialize_with_options(serde_json::value::Serializer, &options)
                .map(|whole| whole.get(field.json_name()).cloned().unwrap_or(Value::Null))
        }
        None => message.serialize_with_options(serde_json::value::Serializer, &options),
    };
    // Serializing a well-formed message into a JSON value cannot fail; should it, the client
    // gets an empty object rather than a panic.
    serialized.unwrap_or_else(|_| Value::Object(Map::new()))
}

fn parse_body(body: &[u8]) -> Result<Value, Invalid> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    if json_depth_exceeds(body, MAX_JSON_DEPTH) {
        return Err(Invalid::new(
            "body",
            format!("nests deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        Invalid::new(
            "body",
            format!(
                "not valid JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })
}

/// Whether `body` opens more than `limit` objects or arrays at once (outside strings), checked
/// before parsing so a deep document costs no recursion.
fn json_depth_exceeds(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn query_into(
    route: &Route,
    bindings: &[Binding],
    input: &MessageDescriptor,
    query: &str,
    json: &mut Map<String, Value>,
) -> Result<(), Invalid> {
    // One over the limit is enough to refuse: a long query is not decoded past it.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .take(MAX_QUERY_PARAMETERS + 1)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.len() > MAX_QUERY_PARAMETERS {
        return Err(Invalid::new(
            "query",
            format!("more than {MAX_QUERY_PARAMETERS} parameters"),
        ));
    }
    for (name, value) in pairs {
        let parts: Vec<String> = name.split('.').map(str::to_owned).collect();
        if parts.len() > MAX_FIELD_DEPTH {
            return Err(Invalid::new(name, "too deep a field path"));
        }
        let (path, field) =
            json_path(input, &parts).ok_or_else(|| Invalid::new(&name, "no such field"))?;
        let top = &path[0];
        let in_path = bindings.iter().any(|b| {
            json_path(input, &b.field_path).is_some_and(|(bound, _)| bound.starts_with(&path))
        });
        let in_body = match &route.body {
            Body::Whole => true,
            Body::Field(body) => body.json_name() == top,
            Body::None => false,
        };
        if in_path || in_body {
            return Err(Invalid::new(
                &name,
                if in_path {
                    "is set by the path, not the query"
                } else {
                    "is set by the body, not the query"
                },
            ));
        }
        if field.is_map() || (matches!(field.kind(), Kind::Message(_)) && !is_string_form(&field)) {
            return Err(Invalid::new(&name, "cannot be set from the query"));
        }
        let value = scalar(&field, &value);
        let conflict = if field.is_list() {
            Conflict::Append
        } else {
            Conflict::Refuse
        };
        put(json, &path, value, conflict)?;
    }
    Ok(())
}

/// Well-known message types whose JSON form is a string (so a query or path can hold one).
fn is_string_form(field: &FieldDescriptor) -> bool {
    match field.kind() {
        Kind::Message(message) => matches!(
            message.full_name(),
            "google.protobuf.Timestamp"
                | "google.protobuf.Duration"
                | "google.protobuf.FieldMask"
                | "google.protobuf.StringValue"
                | "google.protobuf.BytesValue"
                | "google.protobuf.Int64Value"
                | "google.protobuf.UInt64Value"
                | "google.protobuf.Int32Value"
                | "google.protobuf.UInt32Value"
                | "google.protobuf.BoolValue"
                | "google.protobuf.DoubleValue"
                | "google.protobuf.FloatValue"
        ),
        _ => true,
    }
}

/// A path or query value as the JSON the mapping expects for `field`: a bool as a JSON bool
/// when it is one, everything else as a string (numbers, enums, int64, bytes, timestamps,
/// durations, field masks all accept their string form).
fn scalar(field: &FieldDescriptor, text: &str) -> Value {
    let is_bool = match field.kind() {
        Kind::Bool => true,
        Kind::Message(m) => m.full_name() == "google.protobuf.BoolValue",
        _ => false,
    };
    match (is_bool, text) {
        (true, "true") => Value::Bool(true),
        (true, "false") => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

/// The JSON names along `path` (proto or JSON field names accepted) and the last field,
/// through singular message fields.
fn json_path(
    message: &MessageDescriptor,
    path: &[String],
) -> Option<(Vec<String>, FieldDescriptor)> {
    let fields = crate::routes::fields_along(message, path)?;
    let names = fields.iter().map(|f| f.json_name().to_owned()).collect();
    Some((names, fields.last()?.clone()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflict {
    /// A value already there (from the body or an earlier parameter) is an error unless equal.
    Refuse,
    /// Repeated fields: each parameter adds an element.
    Append,
}

fn put(
    object: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    conflict: Conflict,
) -> Result<(), Invalid> {
    let dotted = path.join(".");
    let (last, through) = path
        .split_last()
        .ok_or_else(|| Invalid::new("query", "empty name"))?;
    let mut object = object;
    for name in through {
        let entry = object
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        object = entry
            .as_object_mut()
            .ok_or_else(|| Invalid::new(&dotted, "conflicts with a value set elsewhere"))?;
    }
    match (object.get_mut(last), conflict) {
        (None, Conflict::Append) => {
            object.insert(last.clone(), Value::Array(vec![value]));
        }
        (None, Conflict::Refuse) => {
            object.insert(last.clone(), value);
        }
        (Some(Value::Array(items)), Conflict::Append) => items.push(value),
        (Some(existing), Conflict::Refuse) if *existing == value => {}
        (Some(_), _) => {
            return Err(Invalid::new(
                &dotted,
                "is given twice, with different values",
            ));
        }
    }
    Ok(())
}

/// The mapping library's message, which names the field and the expected type; a value that
/// the message quotes is cut out, so no input is echoed.
fn mapping_error(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for piece in message.split('"') {
        if !quoted {
            out.push_str(piece);
        } else {
            out.push_str("\"…\"");
        }
        quoted = !quoted;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Routes;
    use http::Method;
    use prost_reflect::DescriptorPool;

    fn routes() -> Routes {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        Routes::build(&pool, |_| true).unwrap()
    }

    fn transcode(method: Method, path: &str, query: &str, body: &str) -> Result<Value, Invalid> {
        let routes = routes();
        let matched = routes.find(&method, path).unwrap();
        let message = request(matched.route, &matched.bindings, query, body.as_bytes())?;
        Ok(message
            .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
            .unwrap())
    }

    #[test]
    fn path_query_and_body_make_one_request() {
        let list = transcode(
            Method::GET,
            "/v1/tenants/acme/credentials",
            "page_size=5&serverId=s1",
            "",
        )
        .unwrap();
        assert_eq!(
            list,
            serde_json::json!({"parent": "tenants/acme", "pageSize": 5, "serverId": "s1"})
        );
        let create = transcode(
            Method::POST,
            "/v1/tenants/acme/credentials",
            "",
            r#"{"serverId": "s1", "env": {"API_KEY": "x"}}"#,
        )
        .unwrap();
        assert_eq!(create["parent"], "tenants/acme");
        assert_eq!(create["env"]["API_KEY"], "x");
    }

    #[test]
    fn bad_input_names_the_field_and_echoes_no_value() {
        let unknown = transcode(
            Method::POST,
            "/v1/tenants/acme/credentials",
            "",
            r#"{"serverId": "s1", "bogus": "sk-secret"}"#,
        )
        .unwrap_err();
        assert!(unknown.why.contains("bogus"), "{unknown}");
        assert!(!unknown.to_string().contains("sk-secret"), "{unknown}");
        let wrong_type = transcode(
            Method::GET,
            "/v1/tenants/acme/credentials",
            "page_size=many-sk-secret",
            "",
        )
        .unwrap_err();
        assert_eq!(wrong_type.field, "pageSize", "{wrong_type}");
        assert!(
            !wrong_type.to_string().contains("sk-secret"),
            "{wrong_type}"
        );
        let query_unknown =
            transcode(Method::GET, "/v1/tenants/acme/credentials", "nope=1", "").unwrap_err();
        assert_eq!(query_unknown.field, "nope");
        let malformed = transcode(
            Method::POST,
            "/v1/tenants/acme/credentials",
            "",
            "{\"serverId\":",
        )
        .unwrap_err();
        assert_eq!(malformed.field, "body");
        let no_body = transcode(Method::GET, "/v1/tenants/acme/credentials", "", "{}").unwrap_err();
        assert_eq!(no_body.why, "this method takes no body");
    }

    #[test]
    fn the_path_cannot_be_overridden_by_the_query_or_contradicted_by_the_body() {
        let by_query = transcode(
            Method::GET,
            "/v1/tenants/acme/credentials",
            "parent=tenants/other",
            "",
        )
        .unwrap_err();
        assert_eq!(by_query.field, "parent");
        let by_body = transcode(
            Method::POST,
            "/v1/tenants/acme/credentials",
            "",
            r#"{"parent": "tenants/other"}"#,
        )
        .unwrap_err();
        assert_eq!(by_body.field, "parent");
        assert!(
            transcode(
                Method::POST,
                "/v1/tenants/acme/credentials",
                "",
                r#"{"parent": "tenants/acme", "serverId": "s"}"#,
            )
            .is_ok(),
            "the same value twice is fine"
        );
    }

    #[test]
    fn limits_on_depth_and_count() {
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        let refused =
            transcode(Method::POST, "/v1/tenants/acme/credentials", "", &deep).unwrap_err();
        assert!(refused.why.contains("deeper"), "{refused}");
        let many: Vec<String> = (0..=MAX_QUERY_PARAMETERS)
            .map(|i| format!("serverId={i}"))
            .collect();
        let refused = transcode(
            Method::GET,
            "/v1/tenants/acme/credentials",
            &many.join("&"),
            "",
        )
        .unwrap_err();
        assert_eq!(refused.field, "query");
        assert!(!json_depth_exceeds(
            br#"{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#,
            4
        ));
    }

    #[test]
    fn responses_carry_every_field_in_the_json_mapping() {
        let routes = routes();
        let matched = routes
            .find(&Method::GET, "/v1/tenants/acme/credentials/c1")
            .unwrap();
        let message = DynamicMessage::new(matched.route.rpc.output());
        let json = response(matched.route, &message);
        let object = json.as_object().unwrap();
        assert!(object.contains_key("name"), "{json}");
        assert!(object.contains_key("serverId"), "{json}");
    }

    #[test]
    fn quoted_values_are_cut_from_mapping_errors() {
        assert_eq!(
            mapping_error(r#"invalid type: string "sk-live-123", expected i32"#),
            r#"invalid type: string "…", expected i32"#
        );
    }
}
