//! Routes from protos the gateway has never seen: an annotated RPC is routed with no gateway
//! code, and an annotation that cannot work stops the build with the RPC's name.

#![allow(clippy::unwrap_used, clippy::panic)]

use coffer_gateway::routes::{Body, RouteError, Routes};
use http::Method;

/// Compiles `body` as `test/v1/test.proto` (package `test.v1`) against the vendored
/// googleapis protos and builds its routes.
fn routes_of(body: &str) -> Result<Routes, RouteError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test/v1")).unwrap();
    std::fs::write(
        dir.path().join("test/v1/test.proto"),
        format!(
            "syntax = \"proto3\";\npackage test.v1;\nimport \"google/api/annotations.proto\";\n{body}"
        ),
    )
    .unwrap();
    let protos = coffer_test_support::workspace_root().join("proto");
    let mut compiler = protox::Compiler::new([dir.path(), protos.as_path()]).unwrap();
    compiler.include_imports(true);
    compiler.open_file("test/v1/test.proto").unwrap();
    Routes::build(&compiler.descriptor_pool(), |_| true)
}

const MESSAGES: &str = r#"
message Book { string name = 1; string title = 2; int64 pages = 3; }
message GetBookRequest { string name = 1; }
message CreateBookRequest { string parent = 1; Book book = 2; }
message Empty {}
"#;

fn service(rpcs: &str) -> String {
    format!("{MESSAGES}\nservice Library {{\n{rpcs}\n}}")
}

#[test]
fn an_rpc_the_gateway_never_heard_of_is_routed_with_its_bindings() {
    let routes = routes_of(&service(
        r#"
        rpc GetBook(GetBookRequest) returns (Book) {
          option (google.api.http) = {
            get: "/v1/{name=shelves/*/books/*}"
            additional_bindings { get: "/v1/books/{name}" }
          };
        }
        rpc CreateBook(CreateBookRequest) returns (Book) {
          option (google.api.http) = { post: "/v1/{parent=shelves/*}/books" body: "book" };
        }
        rpc Unannotated(Empty) returns (Empty);
        "#,
    ))
    .unwrap();
    let get = routes
        .find(&Method::GET, "/v1/shelves/s1/books/b1")
        .unwrap();
    assert_eq!(get.route.rpc.full_name(), "test.v1.Library.GetBook");
    assert_eq!(get.bindings[0].value, "shelves/s1/books/b1");
    let other = routes.find(&Method::GET, "/v1/books/b%2F1").unwrap();
    assert_eq!(other.route.rpc.name(), "GetBook", "an additional binding");
    assert_eq!(other.bindings[0].value, "b/1");
    let create = routes.find(&Method::POST, "/v1/shelves/s1/books").unwrap();
    assert!(matches!(&create.route.body, Body::Field(f) if f.name() == "book"));
    assert_eq!(
        routes.iter().count(),
        3,
        "the unannotated RPC is not routed"
    );
}

#[test]
fn annotations_that_cannot_work_name_the_rpc_and_the_problem() {
    for (rpcs, expected) in [
        (
            r#"rpc GetBook(GetBookRequest) returns (Book) {
                 option (google.api.http) = { get: "/v1/{title=books/*}" }; }"#,
            "test.v1.Library.GetBook: the path binds title, which the request does not have",
        ),
        (
            r#"rpc GetBook(GetBookRequest) returns (Book) {
                 option (google.api.http) = { get: "/v1/{name=books/*}" body: "*" }; }"#,
            "test.v1.Library.GetBook: GET cannot carry a body",
        ),
        (
            r#"rpc CreateBook(CreateBookRequest) returns (Book) {
                 option (google.api.http) = { post: "/v1/{parent=shelves/*}/books" body: "shelf" }; }"#,
            "test.v1.Library.CreateBook: the body is shelf, which the request does not have",
        ),
        (
            r#"rpc CreateBook(CreateBookRequest) returns (Book) {
                 option (google.api.http) = { post: "/v1/{book=shelves/*}" body: "*" }; }"#,
            "test.v1.Library.CreateBook: the path binds book, which is not a single scalar",
        ),
        (
            r#"rpc GetBook(GetBookRequest) returns (Book) {
                 option (google.api.http) = { get: "/v1/{name=books/*}" }; }
               rpc GetOther(GetBookRequest) returns (Book) {
                 option (google.api.http) = { get: "/v1/{name=books/*}" }; }"#,
            "GET /v1/{name=books/*} is routed to both test.v1.Library.GetBook and test.v1.Library.GetOther",
        ),
        (
            r#"rpc GetBook(GetBookRequest) returns (Book) {
                 option (google.api.http) = { get: "/v1/{name=books/**}/x" }; }"#,
            "test.v1.Library.GetBook: path template \"/v1/{name=books/**}/x\": ** must be the last segment",
        ),
    ] {
        let error = routes_of(&service(rpcs)).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}
