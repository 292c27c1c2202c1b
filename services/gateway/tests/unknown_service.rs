//! An RPC the gateway has never heard of, end to end: a test-only proto (`test.v1.Library`,
//! compiled here, in no crate of the workspace) served by a real gRPC server that knows only
//! that proto, and reached over REST through the gateway with no gateway code for it. The
//! body, path and query bindings arrive in the request message; the answer comes back in the
//! JSON mapping (int64 as a string, enums by name); the server's status becomes the JSON error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use coffer_gateway::routes::Routes;
use coffer_gateway::server::Gateway;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use serde_json::json;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const PROTO: &str = r#"
syntax = "proto3";
package test.v1;
import "google/api/annotations.proto";

enum Genre { GENRE_UNSPECIFIED = 0; GENRE_FICTION = 1; GENRE_POETRY = 2; }
message Book { string name = 1; string title = 2; int64 pages = 3; Genre genre = 4; }
message CreateBookRequest { string parent = 1; Book book = 2; string request_id = 3; }

service Library {
  rpc CreateBook(CreateBookRequest) returns (Book) {
    option (google.api.http) = { post: "/v1/{parent=shelves/*}/books" body: "book" };
  }
}
"#;

fn pool() -> DescriptorPool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test/v1")).unwrap();
    std::fs::write(dir.path().join("test/v1/library.proto"), PROTO).unwrap();
    let protos = coffer_test_support::workspace_root().join("proto");
    let mut compiler = protox::Compiler::new([dir.path(), protos.as_path()]).unwrap();
    compiler.include_imports(true);
    compiler.open_file("test/v1/library.proto").unwrap();
    compiler.descriptor_pool()
}

/// A server-side codec: requests decoded as `input`, responses encoded as they are.
#[derive(Clone)]
struct ServerCodec {
    input: MessageDescriptor,
}

struct Encode;
struct Decode(MessageDescriptor);

impl Codec for ServerCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = Encode;
    type Decoder = Decode;
    fn encoder(&mut self) -> Encode {
        Encode
    }
    fn decoder(&mut self) -> Decode {
        Decode(self.input.clone())
    }
}

impl Encoder for Encode {
    type Item = DynamicMessage;
    type Error = tonic::Status;
    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|_| tonic::Status::internal("encode"))
    }
}

impl Decoder for Decode {
    type Item = DynamicMessage;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|_| tonic::Status::internal("decode"))
    }
}

/// `CreateBook`: the book as sent, named under its shelf; a book without a title is refused.
#[derive(Clone)]
struct CreateBook(MessageDescriptor);

impl tonic::server::UnaryService<DynamicMessage> for CreateBook {
    type Response = DynamicMessage;
    type Future = Pin<
        Box<dyn Future<Output = Result<tonic::Response<DynamicMessage>, tonic::Status>> + Send>,
    >;
    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let book_type = self.0.clone();
        Box::pin(async move {
            let request = request.into_inner();
            let parent = request
                .get_field_by_name("parent")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            let request_id = request
                .get_field_by_name("request_id")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            let mut book = request
                .get_field_by_name("book")
                .unwrap()
                .as_message()
                .cloned()
                .unwrap_or_else(|| DynamicMessage::new(book_type));
            if book.get_field_by_name("title").unwrap().as_str() == Some("") {
                return Err(tonic::Status::invalid_argument("a book needs a title"));
            }
            book.set_field_by_name(
                "name",
                Value::String(format!("{parent}/books/{request_id}")),
            );
            Ok(tonic::Response::new(book))
        })
    }
}

/// The whole server: `test.v1.Library` and nothing else.
#[derive(Clone)]
struct Library {
    input: MessageDescriptor,
    output: MessageDescriptor,
}

impl tonic::server::NamedService for Library {
    const NAME: &'static str = "test.v1.Library";
}

impl<B> tower::Service<http::Request<B>> for Library
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if request.uri().path() != "/test.v1.Library/CreateBook" {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ServerCodec { input: this.input });
            Ok(grpc.unary(CreateBook(this.output), request).await)
        })
    }
}

#[tokio::test]
async fn a_rest_call_reaches_an_rpc_the_gateway_never_heard_of_and_comes_back_as_json() {
    let pool = pool();
    let rpc = pool
        .get_service_by_name("test.v1.Library")
        .unwrap()
        .methods()
        .next()
        .unwrap();
    let library = Library {
        input: rpc.input(),
        output: rpc.output(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(library)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{server_addr}"))
        .unwrap()
        .connect_lazy();
    let routes = Routes::build(&pool, |_| true).unwrap();
    let upstreams = HashMap::from([("test.v1.Library".to_owned(), channel)]);
    let addr = support::serve(Gateway::new(routes, upstreams)).await;

    let created = support::send(
        addr,
        "",
        "POST",
        "/v1/shelves/poetry/books?requestId=b7",
        json!({"title": "Leaves of Grass", "pages": "312", "genre": "GENRE_POETRY"}).to_string(),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.json);
    assert_eq!(
        created.json,
        json!({
            "name": "shelves/poetry/books/b7",
            "title": "Leaves of Grass",
            "pages": "312",
            "genre": "GENRE_POETRY",
        })
    );
    // The server's refusal, as the JSON error.
    let refused = support::send(
        addr,
        "",
        "POST",
        "/v1/shelves/poetry/books",
        json!({"pages": 1}).to_string(),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.json["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(refused.json["error"]["message"], "a book needs a title");
    // The gateway's own OpenAPI document knows the new path.
    let document = support::send(addr, "", "GET", "/openapi.json", "").await;
    assert!(
        document.json["paths"]["/v1/shelves/{shelf}/books"]["post"].is_object(),
        "{}",
        document.json["paths"]
    );
}
