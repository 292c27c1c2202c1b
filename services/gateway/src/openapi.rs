//! The OpenAPI 3.1 document of the routes, generated from the same descriptors: every routed
//! path and method, request and response schemas in the proto3 JSON mapping (int64 as string,
//! bytes as base64, enums by name, well-known types in their JSON forms), the proto comments as
//! descriptions, and the two bearer schemes (a JWT access token, an `mcp_sk_` API key).
//!
//! A resource-name variable (`{name=tenants/*/credentials/*}`) becomes one path parameter per
//! wildcard (`/v1/tenants/{tenant}/credentials/{credential}`): a parameter cannot hold a `/`,
//! and a client that fills them in sends exactly the path the route matches.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::pages::escape;
use crate::routes::{Body, Route, Routes};
use crate::template::Part;

/// The schema every error answer has.
const ERROR_SCHEMA: &str = "Error";

/// The document for `routes`.
pub fn document(routes: &Routes) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in routes.iter() {
        let (path, parameters) = openapi_path(route);
        let base = format!("{}_{}", route.rpc.parent_service().name(), route.rpc.name());
        let seen = operation_ids.entry(base.clone()).or_insert(0);
        let operation_id = if *seen == 0 {
            base
        } else {
            format!("{base}_{seen}")
        };
        *seen += 1;
        let operation = operation(route, operation_id, parameters, &mut schemas);
        paths
            .entry(path)
            .or_default()
            .insert(route.method.as_str().to_ascii_lowercase(), operation);
    }
    let mut components = schemas.finish();
    components.insert(ERROR_SCHEMA.to_owned(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Coffer REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Secrets infrastructure for MCP deployments: credentials, keys and \
                tokens over REST and JSON, transcoded to the services' gRPC. Every error has \
                the shape of the Error schema (Google's JSON error format).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An RS256 access token from auth-service (Login, \
                        ExchangeApiKey, Refresh).",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "mcp_sk_",
                    "description": "An API key (`mcp_sk_...`) sent as the bearer.",
                },
            },
        },
        "security": [{"bearerJwt": []}, {"apiKey": []}],
    })
}

fn operation(
    route: &Route,
    operation_id: String,
    mut parameters: Vec<Value>,
    schemas: &mut Schemas,
) -> Value {
    let input = route.rpc.input();
    let bound: BTreeSet<String> = route
        .template
        .field_paths()
        .filter_map(|path| path.first().cloned())
        .collect();
    let mut operation = Map::new();
    operation.insert("operationId".into(), Value::from(operation_id));
    operation.insert("tags".into(), json!([route.rpc.parent_service().name()]));
    if let Some(text) = comments(route.rpc.parent_file(), route.rpc.path()) {
        let summary = text.lines().next().unwrap_or_default().to_owned();
        operation.insert("summary".into(), Value::from(summary));
        operation.insert("description".into(), Value::from(text));
    }
    match &route.body {
        Body::Whole => {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {
                    "schema": schemas.reference(&input)}}}),
            );
        }
        Body::Field(field) => {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {
                    "schema": schemas.field(field)}}}),
            );
            parameters.extend(query_parameters(&input, &bound, Some(field), schemas));
        }
        Body::None => parameters.extend(query_parameters(&input, &bound, None, schemas)),
    }
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    let response = match &route.response_body {
        Some(field) => schemas.field(field),
        None => schemas.reference(&route.rpc.output()),
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": {"description": "OK", "content": {"application/json": {"schema": response}}},
            "default": {"description": "An error (see the Error schema).",
                "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")}}}},
        }),
    );
    Value::Object(operation)
}

/// The OpenAPI path of a route's template and its path parameters.
fn openapi_path(route: &Route) -> (String, Vec<Value>) {
    let mut parameters = Vec::new();
    let mut path = String::new();
    for part in route.template.parts() {
        path.push('/');
        match part {
            Part::Literal(text) => path.push_str(&text),
            Part::Parameter { name, field } => {
                path.push_str(&format!("{{{name}}}"));
                parameters.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": format!("A segment of the request's `{field}`."),
                    "schema": {"type": "string"},
                }));
            }
        }
    }
    if let Some(verb) = route.template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    (path, parameters)
}

/// The query parameters of a request: its top-level fields that the path and body leave,
/// that a query can carry (scalars, repeated scalars, string-form well-known types).
fn query_parameters(
    input: &MessageDescriptor,
    bound: &BTreeSet<String>,
    body: Option<&FieldDescriptor>,
    schemas: &mut Schemas,
) -> Vec<Value> {
    input
        .fields()
        .filter(|field| !bound.contains(field.name()))
        .filter(|field| body.is_none_or(|body| body.name() != field.name()))
        .filter(|field| !field.is_map())
        .filter(|field| match field.kind() {
            Kind::Message(message) => string_form(&message).is_some(),
            _ => true,
        })
        .map(|field| {
            let mut parameter = json!({
                "name": field.json_name(),
                "in": "query",
                "schema": schemas.field(&field),
            });
            if let Some(text) = comments(field.parent_file(), field.path()) {
                parameter["description"] = Value::from(text);
            }
            parameter
        })
        .collect()
}

/// The schemas referenced so far, and those still to write.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
    pending: Vec<MessageDescriptor>,
}

impl Schemas {
    /// A `$ref` to `message`'s schema (or its inline JSON form, for well-known types).
    fn reference(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.done.contains_key(&name) && !self.pending.iter().any(|m| m.full_name() == name) {
            self.pending.push(message.clone());
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// The schema of a field's JSON value.
    fn field(&mut self, field: &FieldDescriptor) -> Value {
        let one = self.kind(&field.kind());
        let mut schema = if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                kind => kind,
            };
            json!({"type": "object", "additionalProperties": self.kind(&value)})
        } else if field.is_list() {
            json!({"type": "array", "items": one})
        } else {
            one
        };
        if let Some(text) = comments(field.parent_file(), field.path()) {
            // Beside a `$ref`, OpenAPI 3.1 (JSON Schema 2020-12) keeps the description.
            schema["description"] = Value::from(text);
        }
        schema
    }

    fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"})
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(en) => {
                let names: Vec<String> = en.values().map(|v| v.name().to_owned()).collect();
                json!({"type": "string", "enum": names})
            }
            Kind::Message(message) => self.reference(message),
        }
    }

    /// Writes every pending schema (and those they reference) and returns them all.
    fn finish(mut self) -> Map<String, Value> {
        while let Some(message) = self.pending.pop() {
            let name = message.full_name().to_owned();
            if self.done.contains_key(&name) {
                continue;
            }
            // Reserve the name first: a message that refers to itself must not loop.
            self.done.insert(name.clone(), Value::Null);
            let mut properties = Map::new();
            for field in message.fields() {
                properties.insert(field.json_name().to_owned(), self.field(&field));
            }
            let mut schema = json!({"type": "object", "properties": properties,
                "additionalProperties": false});
            if let Some(text) = comments(message.parent_file(), message.path()) {
                schema["description"] = Value::from(text);
            }
            self.done.insert(name, schema);
        }
        self.done.into_iter().collect()
    }
}

/// A well-known type's JSON form, inline.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    if let Some(schema) = string_form(message) {
        return Some(schema);
    }
    Some(match message.full_name() {
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
        "google.protobuf.Any" => json!({"type": "object",
            "properties": {"@type": {"type": "string"}}, "required": ["@type"]}),
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": ["integer", "null"]})
        }
        _ => return None,
    })
}

/// Well-known types whose JSON form is a string, with its format.
fn string_form(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => {
            json!({"type": ["string", "null"], "contentEncoding": "base64"})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": ["string", "null"], "pattern": "^-?[0-9]+$"})
        }
        _ => return None,
    })
}

/// `/docs`: the document for a person, rendered here as plain HTML (no script, no style, no
/// external asset, so the gateway's strict Content-Security-Policy holds): every operation
/// with its method, path, summary, description and parameters.
pub fn html(document: &Value) -> String {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Coffer REST API</title></head><body>\n<h1>Coffer REST API</h1>\n",
    );
    page.push_str(&format!(
        "<p>{} The machine-readable document is <a href=\"/openapi.json\">/openapi.json</a>.</p>\n",
        escape(document["info"]["description"].as_str().unwrap_or_default())
    ));
    let empty = Map::new();
    let paths = document["paths"].as_object().unwrap_or(&empty);
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap_or(&empty) {
            page.push_str(&format!(
                "<h2 id=\"{id}\"><code>{} {}</code></h2>\n",
                escape(&method.to_ascii_uppercase()),
                escape(path),
                id = escape(operation["operationId"].as_str().unwrap_or_default()),
            ));
            if let Some(text) = operation["description"].as_str() {
                page.push_str(&format!("<pre>{}</pre>\n", escape(text)));
            }
            if let Some(parameters) = operation["parameters"].as_array() {
                page.push_str("<ul>\n");
                for parameter in parameters {
                    page.push_str(&format!(
                        "<li><code>{}</code> ({}){}</li>\n",
                        escape(parameter["name"].as_str().unwrap_or_default()),
                        escape(parameter["in"].as_str().unwrap_or_default()),
                        parameter["description"]
                            .as_str()
                            .map(|d| format!(": {}", escape(d)))
                            .unwrap_or_default(),
                    ));
                }
                page.push_str("</ul>\n");
            }
            if operation.get("requestBody").is_some() {
                page.push_str("<p>Takes a JSON body.</p>\n");
            }
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// `{"error": {"code", "status", "message", "details"}}`.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Google's JSON error format, with the google.rpc details the services \
            attach (ErrorInfo reasons, BadRequest field violations).",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "status", "message", "details"],
            "properties": {
                "code": {"type": "integer", "description": "The HTTP status."},
                "status": {"type": "string", "description": "The google.rpc.Code name."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object",
                    "properties": {"@type": {"type": "string"}}}},
            },
        }},
    })
}

/// The leading comment of the element at `path` in `file`'s source info, trimmed.
fn comments(file: prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let text: Vec<&str> = text.lines().map(str::trim).collect();
    let text = text.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coffer() -> Value {
        document(&Routes::coffer(crate::routes::public).unwrap())
    }

    #[test]
    fn every_route_is_a_documented_operation() {
        let routes = Routes::coffer(crate::routes::public).unwrap();
        let doc = document(&routes);
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, routes.iter().count());
        let get = &doc["paths"]["/v1/tenants/{tenant}/credentials/{credential}"]["get"];
        assert_eq!(get["operationId"], "CredentialService_GetCredential");
        assert!(get["description"].as_str().unwrap().len() > 10, "{get}");
        assert!(
            doc["paths"]["/v1/tenants/{tenant}/credentials/{credential}:reveal"]["post"]
                .is_object()
        );
        assert!(doc["paths"].get("/v1/rootKey:rotate").is_none());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = coffer();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but missing"
            );
        }
    }

    #[test]
    fn the_docs_page_lists_every_operation_and_escapes_text() {
        let doc = coffer();
        let page = html(&doc);
        assert!(page.contains("<code>GET /v1/tenants/{tenant}/credentials/{credential}</code>"));
        assert!(page.contains("id=\"CredentialService_GetCredential\""));
        assert!(!page.contains("<script"), "no script");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let operations = page.matches("<h2 ").count();
        let routes = Routes::coffer(crate::routes::public)
            .unwrap()
            .iter()
            .count();
        assert_eq!(operations, routes);
    }

    #[test]
    fn schemas_follow_the_json_mapping() {
        let doc = coffer();
        let schemas = &doc["components"]["schemas"];
        let credential = &schemas["coffer.v1.Credential"]["properties"];
        assert_eq!(
            credential["rowVersion"]["type"], "string",
            "int64 as a string"
        );
        assert_eq!(credential["createTime"]["format"], "date-time");
        assert_eq!(credential["env"]["type"], "object");
        let encrypt = &schemas["coffer.v1.EncryptRequest"]["properties"];
        assert_eq!(encrypt["plaintext"]["contentEncoding"], "base64");
    }
}
