//! An MCP server protected by Coffer, in a few lines of `coffer_resource_server`: Streamable
//! HTTP (JSON answers, no SSE stream) at `/mcp` with two tools, `whoami` (who the token speaks
//! for) and `echo`. Every request needs a Coffer token for this server with `mcp:read`;
//! `echo` also needs `mcp:write` (a 403 with `insufficient_scope` otherwise, so a client can
//! step up).
//!
//! ```text
//! coffer up --oauth-resource http://127.0.0.1:3001/mcp
//! cargo run -p coffer-resource-server --example mcp_server -- \
//!     127.0.0.1:3001 http://127.0.0.1:3001/mcp http://127.0.0.1:8080
//! ```
//! Arguments: the listen address, this server's resource URI, Coffer's issuer (the gateway's
//! URL). With `COFFER_RS_CLIENT_ID` and `COFFER_RS_CLIENT_SECRET` (a resource server's
//! client: `coffer oauth create-client --resource-server URI`) it also asks Coffer about every
//! token, so a revocation reaches it within a second. It prints `listening on ADDR` once it
//! accepts connections.

// A program's own output.
#![allow(clippy::print_stdout)]

use axum::body::{Body, Bytes};
use axum::extract::Extension;
use axum::http::{Response, StatusCode, header};
use axum::routing::post;
use coffer_authn::Scope;
use coffer_authn::jwt::Verified;
use coffer_resource_server::{Refusal, ResourceServer};
use serde_json::{Value, json};

/// The protocol revisions this server speaks (the stateful lifecycle).
const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(resource), Some(issuer)) = (args.next(), args.next(), args.next())
    else {
        return Err("usage: mcp_server LISTEN RESOURCE_URI COFFER_ISSUER".into());
    };
    let mut protection = ResourceServer::new(&resource, &issuer)?;
    if let (Ok(id), Ok(secret)) = (
        std::env::var("COFFER_RS_CLIENT_ID"),
        std::env::var("COFFER_RS_CLIENT_SECRET"),
    ) {
        protection = protection.introspect(&id, &secret.into());
    }
    let for_handler = protection.clone();
    let app = axum::Router::new()
        .route(
            "/mcp",
            post(move |token: Extension<Verified>, body: Bytes| {
                let protection = for_handler.clone();
                async move { mcp(&protection, &token, &body) }
            }),
        )
        // Everything, the metadata document included, goes through the protection.
        .layer(protection.layer(&[Scope::McpRead]));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// One JSON-RPC message.
fn mcp(protection: &ResourceServer, token: &Verified, body: &[u8]) -> Response<Body> {
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return json_rpc(&json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "parse error"}}));
    };
    let id = message.get("id").cloned();
    let method = message["method"].as_str().unwrap_or_default();
    let Some(id) = id else {
        // A notification (`notifications/initialized`, ...): accepted, no answer.
        return status(StatusCode::ACCEPTED);
    };
    let result = match method {
        "initialize" => {
            let asked = message["params"]["protocolVersion"]
                .as_str()
                .unwrap_or_default();
            let version = VERSIONS
                .into_iter()
                .find(|v| *v == asked)
                .unwrap_or(VERSIONS[0]);
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "coffer-example", "version": "0.1.0"},
            })
        }
        "ping" => json!({}),
        "tools/list" => json!({"tools": [
            {"name": "whoami", "description": "Who the access token speaks for",
             "inputSchema": {"type": "object", "properties": {}}},
            {"name": "echo", "description": "Echoes its text (needs mcp:write)",
             "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                             "required": ["text"]}},
        ]}),
        "tools/call" => match message["params"]["name"].as_str() {
            Some("whoami") => {
                let principal = &token.principal;
                text(&format!(
                    "{} in tenant {} with {}",
                    principal.subject, principal.tenant, principal.scopes
                ))
            }
            Some("echo") => {
                if !token.principal.scopes.contains(Scope::McpWrite) {
                    let needed = [Scope::McpRead, Scope::McpWrite].into_iter().collect();
                    return protection.refuse(&Refusal::Insufficient(needed));
                }
                text(
                    message["params"]["arguments"]["text"]
                        .as_str()
                        .unwrap_or_default(),
                )
            }
            _ => {
                return json_rpc(&json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32602, "message": "unknown tool"}}));
            }
        },
        _ => {
            return json_rpc(&json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not found"}}));
        }
    };
    json_rpc(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn text(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn json_rpc(body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}
