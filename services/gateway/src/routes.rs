//! The REST routes, built at start-up from the `google.api.http` annotations of a descriptor
//! set: an annotated RPC is reachable with no gateway code, and a route that cannot work (a
//! variable naming no field, a body on GET, two RPCs on one path) stops the start with the
//! RPC's name.

use http::Method;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MethodDescriptor, Value,
};

use crate::template::{BadEncoding, Binding, PathTemplate, RequestPath, TemplateError};

/// RPCs never routed over REST by the default rule, whatever their annotation says: those only
/// an operator certificate may call, and those the services call each other with (which the
/// gateway's own identity may be allowed, so routing them would hand that right to anyone on
/// the internet).
pub const NOT_PUBLIC: &[&str] = &[
    // Operators only.
    "coffer.v1.KeyService.RotateRootKey",
    "coffer.v1.AuthService.CreateTenant",
    "coffer.v1.AuthService.RotateSigningKey",
    // Service to service.
    "coffer.v1.KeyService.ListKeyChanges",
    "coffer.v1.AuthService.Introspect",
    "coffer.v1.AuthService.VerifyApiKey",
    "coffer.v1.AuthService.ListRevocations",
];

/// The default routing rule: every annotated RPC except [`NOT_PUBLIC`].
pub fn public(rpc: &MethodDescriptor) -> bool {
    !NOT_PUBLIC.contains(&rpc.full_name())
}

/// The `google.api.http` extension of `google.protobuf.MethodOptions`.
pub const HTTP_EXTENSION: &str = "google.api.http";

/// Where a request's JSON body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (every field not bound by the path comes from the query).
    None,
    /// `body: "*"`: the whole request message (the path binds the rest).
    Whole,
    /// `body: "field"`: that field of the request (the query fills the others).
    Field(FieldDescriptor),
}

/// One REST route: an HTTP method and path template calling one RPC.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template.
    pub template: PathTemplate,
    /// Where the body goes.
    pub body: Body,
    /// `response_body`: the response field sent as the body, if not the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// The RPC.
    pub rpc: MethodDescriptor,
}

/// A route matched by a request, with its path variables.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a Route,
    /// The path variables' values.
    pub bindings: Vec<Binding>,
}

/// Why no route answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No template matches the path (404).
    NotFound,
    /// Templates match, with other methods (405, `Allow`).
    MethodNotAllowed(Vec<Method>),
    /// A template matches but a variable is badly encoded (400).
    BadPath(BadEncoding),
}

/// Why the routes could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The descriptor set does not decode.
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// The descriptor set lacks `google/api/annotations.proto`.
    #[error("the descriptor set has no {HTTP_EXTENSION} extension")]
    NoHttpExtension,
    /// An annotation cannot work as written.
    #[error("{rpc}: {why}")]
    Invalid {
        /// The RPC's full name.
        rpc: String,
        /// What is wrong.
        why: String,
    },
    /// A path template does not parse.
    #[error("{rpc}: {source}")]
    Template {
        /// The RPC's full name.
        rpc: String,
        /// The parse error.
        source: TemplateError,
    },
    /// Two RPCs answer the same method and path.
    #[error("{method} {template} is routed to both {first} and {second}")]
    Ambiguous {
        /// The HTTP method.
        method: Method,
        /// The template.
        template: String,
        /// One RPC.
        first: String,
        /// The other.
        second: String,
    },
}

/// Every route of a descriptor set, most specific first.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// The routes of every annotated RPC of `pool` that `routed` accepts (the rule that keeps
    /// operator-only RPCs off the public surface), additional bindings included.
    ///
    /// # Errors
    /// [`RouteError`] naming the RPC whose annotation cannot work.
    pub fn build(
        pool: &DescriptorPool,
        routed: impl Fn(&MethodDescriptor) -> bool,
    ) -> Result<Self, RouteError> {
        let extension = pool
            .get_extension_by_name(HTTP_EXTENSION)
            .ok_or(RouteError::NoHttpExtension)?;
        let mut routes: Vec<Route> = Vec::new();
        for service in pool.services() {
            for rpc in service.methods() {
                let options = rpc.options();
                if !options.has_extension(&extension) || !routed(&rpc) {
                    continue;
                }
                let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                    continue;
                };
                if rpc.is_client_streaming() || rpc.is_server_streaming() {
                    return Err(invalid(&rpc, "streaming RPCs are not routed over REST"));
                }
                let mut rules = vec![rule.clone()];
                if let Some(more) = rule.get_field_by_name("additional_bindings")
                    && let Value::List(more) = more.as_ref()
                {
                    rules.extend(more.iter().filter_map(|b| b.as_message().cloned()));
                }
                for rule in &rules {
                    let route = route(&rpc, rule)?;
                    if let Some(other) = routes.iter().find(|r| {
                        r.method == route.method && r.template.same_shape(&route.template)
                    }) {
                        return Err(RouteError::Ambiguous {
                            method: route.method.clone(),
                            template: route.template.to_string(),
                            first: other.rpc.full_name().to_owned(),
                            second: rpc.full_name().to_owned(),
                        });
                    }
                    routes.push(route);
                }
            }
        }
        // Stable: among equally specific templates, the descriptor order decides.
        routes.sort_by_key(|r| std::cmp::Reverse(r.template.literals()));
        Ok(Self { routes })
    }

    /// The routes of Coffer's own protos ([`coffer_proto::FILE_DESCRIPTOR_SET`]).
    ///
    /// # Errors
    /// As [`Routes::build`].
    pub fn coffer(routed: impl Fn(&MethodDescriptor) -> bool) -> Result<Self, RouteError> {
        Self::build(
            &DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET)?,
            routed,
        )
    }

    /// Every route, most specific first.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route for `method` and `path` (the part before `?`).
    ///
    /// # Errors
    /// [`Miss`]: 404, 405 with the methods that do match, or 400 for a bad encoding.
    pub fn find(&self, method: &Method, path: &str) -> Result<Matched<'_>, Miss> {
        let path = RequestPath::split(path).ok_or(Miss::NotFound)?;
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            let Some(bound) = route.template.matches(&path) else {
                continue;
            };
            if route.method == *method {
                return match bound {
                    Ok(bindings) => Ok(Matched { route, bindings }),
                    Err(bad) => Err(Miss::BadPath(bad)),
                };
            }
            if !allowed.contains(&route.method) {
                allowed.push(route.method.clone());
            }
        }
        if allowed.is_empty() {
            Err(Miss::NotFound)
        } else {
            Err(Miss::MethodNotAllowed(allowed))
        }
    }
}

fn invalid(rpc: &MethodDescriptor, why: impl Into<String>) -> RouteError {
    RouteError::Invalid {
        rpc: rpc.full_name().to_owned(),
        why: why.into(),
    }
}

/// One `HttpRule` of `rpc` as a route, checked against the request and response messages.
fn route(rpc: &MethodDescriptor, rule: &DynamicMessage) -> Result<Route, RouteError> {
    let text = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let (method, path) = pattern(rpc, rule)?;
    let template = PathTemplate::parse(&path).map_err(|source| RouteError::Template {
        rpc: rpc.full_name().to_owned(),
        source,
    })?;
    let input = rpc.input();
    for field_path in template.field_paths() {
        let field = resolve(&input, field_path).ok_or_else(|| {
            invalid(
                rpc,
                format!(
                    "the path binds {}, which the request does not have",
                    field_path.join(".")
                ),
            )
        })?;
        if field.is_list() || field.is_map() || !is_path_scalar(&field.kind()) {
            return Err(invalid(
                rpc,
                format!(
                    "the path binds {}, which is not a single scalar",
                    field.name()
                ),
            ));
        }
    }
    let body = match text("body").as_str() {
        "" => Body::None,
        "*" => Body::Whole,
        name => Body::Field(input.get_field_by_name(name).ok_or_else(|| {
            invalid(
                rpc,
                format!("the body is {name}, which the request does not have"),
            )
        })?),
    };
    if body != Body::None && (method == Method::GET || method == Method::DELETE) {
        return Err(invalid(rpc, format!("{method} cannot carry a body")));
    }
    if let Body::Field(field) = &body
        && template
            .field_paths()
            .any(|path| path.first() == Some(&field.name().to_owned()))
    {
        return Err(invalid(
            rpc,
            "a field is bound by both the path and the body",
        ));
    }
    let response_body = match text("response_body").as_str() {
        "" => None,
        name => Some(rpc.output().get_field_by_name(name).ok_or_else(|| {
            invalid(
                rpc,
                format!("the response body is {name}, which the response does not have"),
            )
        })?),
    };
    Ok(Route {
        method,
        template,
        body,
        response_body,
        rpc: rpc.clone(),
    })
}

/// The rule's method and path (`get`, `put`, `post`, `delete`, `patch` or `custom`).
fn pattern(rpc: &MethodDescriptor, rule: &DynamicMessage) -> Result<(Method, String), RouteError> {
    for (field, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(field)
            && let Some(path) = rule
                .get_field_by_name(field)
                .and_then(|v| v.as_str().map(str::to_owned))
        {
            return Ok((method, path));
        }
    }
    if rule.has_field_by_name("custom")
        && let Some(Value::Message(custom)) =
            rule.get_field_by_name("custom").map(|v| v.into_owned())
    {
        let kind = custom
            .get_field_by_name("kind")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let path = custom
            .get_field_by_name("path")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| invalid(rpc, format!("{kind:?} is not an HTTP method")))?;
        return Ok((method, path));
    }
    Err(invalid(rpc, "the HTTP rule names no method and path"))
}

/// The field at `path` (`a.b.c`) of `message`, through singular message fields.
pub fn resolve(
    message: &prost_reflect::MessageDescriptor,
    path: &[String],
) -> Option<FieldDescriptor> {
    fields_along(message, path)?.pop()
}

/// Every field along `path` of `message` (each part a proto or a JSON field name), through
/// singular message fields; `None` if a part names no field or passes through a list or map.
pub fn fields_along(
    message: &prost_reflect::MessageDescriptor,
    path: &[String],
) -> Option<Vec<FieldDescriptor>> {
    let mut message = message.clone();
    let mut fields = Vec::with_capacity(path.len());
    for (i, name) in path.iter().enumerate() {
        let field = message
            .get_field_by_name(name)
            .or_else(|| message.get_field_by_json_name(name))?;
        if i + 1 < path.len() {
            match field.kind() {
                Kind::Message(inner) if !field.is_list() && !field.is_map() => message = inner,
                _ => return None,
            }
        }
        fields.push(field);
    }
    (!fields.is_empty()).then_some(fields)
}

/// Whether a path variable can fill a field of this kind (a string, a number, a bool or an
/// enum by name).
fn is_path_scalar(kind: &Kind) -> bool {
    !matches!(kind, Kind::Message(_) | Kind::Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coffer() -> Routes {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        Routes::build(&pool, |_| true).unwrap()
    }

    fn rpc(routes: &Routes, method: Method, path: &str) -> (String, Vec<(String, String)>) {
        let matched = routes.find(&method, path).unwrap();
        (
            matched.route.rpc.name().to_owned(),
            matched
                .bindings
                .into_iter()
                .map(|b| (b.field_path.join("."), b.value))
                .collect(),
        )
    }

    #[test]
    fn every_annotated_coffer_rpc_is_routed() {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        let extension = pool.get_extension_by_name(HTTP_EXTENSION).unwrap();
        let annotated: Vec<String> = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .filter(|m| m.options().has_extension(&extension))
            .map(|m| m.full_name().to_owned())
            .collect();
        assert!(
            annotated.len() >= 40,
            "the three services' RPCs: {}",
            annotated.len()
        );
        let routes = coffer();
        for name in &annotated {
            assert!(
                routes.iter().any(|r| r.rpc.full_name() == name),
                "{name} is annotated but not routed"
            );
        }
    }

    #[test]
    fn credential_paths_reach_their_rpcs_with_the_name_bound() {
        let routes = coffer();
        let name = || vec![("name".to_owned(), "tenants/acme/credentials/c1".to_owned())];
        assert_eq!(
            rpc(&routes, Method::GET, "/v1/tenants/acme/credentials/c1"),
            ("GetCredential".to_owned(), name())
        );
        assert_eq!(
            rpc(
                &routes,
                Method::POST,
                "/v1/tenants/acme/credentials/c1:reveal"
            ),
            ("RevealCredential".to_owned(), name())
        );
        assert_eq!(
            rpc(&routes, Method::PATCH, "/v1/tenants/acme/credentials/c1"),
            ("UpdateCredential".to_owned(), name())
        );
        assert_eq!(
            rpc(&routes, Method::GET, "/v1/tenants/acme/credentials"),
            (
                "ListCredentials".to_owned(),
                vec![("parent".to_owned(), "tenants/acme".to_owned())]
            )
        );
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_the_methods_that_work() {
        let routes = coffer();
        match routes.find(&Method::PUT, "/v1/tenants/acme/credentials/c1") {
            Err(Miss::MethodNotAllowed(mut allowed)) => {
                allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                assert_eq!(allowed, [Method::DELETE, Method::GET, Method::PATCH]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            routes
                .find(&Method::GET, "/v1/tenants/acme/nothing-here")
                .unwrap_err(),
            Miss::NotFound
        );
        assert_eq!(
            routes
                .find(&Method::GET, "/v1/tenants/acme/credentials/c1:unknownverb")
                .unwrap_err(),
            Miss::NotFound
        );
        assert_eq!(
            routes
                .find(&Method::GET, "/v1/tenants/acme/credentials/%ff")
                .unwrap_err(),
            Miss::BadPath(BadEncoding)
        );
    }

    #[test]
    fn the_routing_rule_keeps_rpcs_off_the_surface() {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        let routes = Routes::build(&pool, |m| m.name() != "GetCredential").unwrap();
        assert!(routes.iter().all(|r| r.rpc.name() != "GetCredential"));
        match routes.find(&Method::GET, "/v1/tenants/acme/credentials/c1") {
            Err(Miss::MethodNotAllowed(allowed)) => assert!(!allowed.contains(&Method::GET)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operator_and_service_rpcs_are_not_public() {
        let pool = DescriptorPool::decode(coffer_proto::FILE_DESCRIPTOR_SET).unwrap();
        let routes = Routes::build(&pool, public).unwrap();
        for name in NOT_PUBLIC {
            let exists = pool
                .services()
                .flat_map(|s| s.methods().collect::<Vec<_>>())
                .any(|m| m.full_name() == *name);
            assert!(exists, "{name} is no RPC: the list is stale");
            assert!(
                routes.iter().all(|r| r.rpc.full_name() != *name),
                "{name} is routed"
            );
        }
        assert!(routes.iter().any(|r| r.rpc.name() == "Encrypt"));
    }

    #[test]
    fn bodies_follow_the_annotation() {
        let routes = coffer();
        let create = routes
            .find(&Method::POST, "/v1/tenants/acme/credentials")
            .unwrap();
        assert_eq!(create.route.body, Body::Whole);
        let get = routes
            .find(&Method::GET, "/v1/tenants/acme/credentials/c1")
            .unwrap();
        assert_eq!(get.route.body, Body::None);
    }
}
