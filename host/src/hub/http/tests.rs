//! Every route in process, against the router (`tower::ServiceExt::oneshot`):
//! each one's success, and each error code a request can meet, with its
//! status. The WebSockets' own traffic is tested end to end (`tests/e2e`);
//! here only their refusals.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value as Json, json};
use tower::ServiceExt as _;

use super::router;
use crate::hub::service::{Hub, HubConfig, UploadQuota};
use crate::hub::store::LimitSettings;
use crate::sandbox::bench_support::guest_example_bytes;

struct Hubbed {
    hub: Arc<Hub>,
    alice: String,
    reader: String,
    bob: String,
    worker: String,
}

fn config(data_dir: Option<std::path::PathBuf>) -> HubConfig {
    HubConfig::for_tests(data_dir)
}

async fn hub_in(data_dir: Option<std::path::PathBuf>) -> Hubbed {
    hub_with(config(data_dir)).await
}

async fn hub_with(config: HubConfig) -> Hubbed {
    let hub = Hub::open(&config).await.unwrap();
    let store = hub.store().clone();
    Hubbed {
        alice: store
            .create_token("alice", false, None)
            .await
            .unwrap()
            .token,
        reader: store.create_token("alice", true, None).await.unwrap().token,
        bob: store.create_token("bob", false, None).await.unwrap().token,
        worker: store.create_worker_token().await.unwrap().token,
        hub,
    }
}

async fn hub() -> Hubbed {
    hub_in(None).await
}

/// Sends one request; answers the status and the body (JSON, or the bytes
/// as a JSON string when they are not JSON).
async fn call(
    hub: &Arc<Hub>,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Json) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router(hub.clone())
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

impl Hubbed {
    /// Sends one request with `token`.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Json) {
        call(&self.hub, method, uri, Some(token), body).await
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, Json) {
        self.send(Method::GET, uri, token, Body::empty()).await
    }

    async fn post(&self, uri: &str, token: &str) -> (StatusCode, Json) {
        self.send(Method::POST, uri, token, Body::empty()).await
    }

    async fn delete(&self, uri: &str, token: &str) -> (StatusCode, Json) {
        self.send(Method::DELETE, uri, token, Body::empty()).await
    }

    /// Registers a worker's node `name` with one output for `token`'s account.
    async fn register(&self, token: &str, name: &str, output: &str) {
        let registration = json!({"name": name, "outputs": [output]}).to_string();
        let uri = "/api/remote_nodes/register";
        let (status, body) = self.send(Method::POST, uri, token, registration).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Asserts an error answer: its status and its code.
#[track_caller]
fn refused((status, body): (StatusCode, Json), want: StatusCode, code: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (want, Some(code)),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| !message.is_empty())
    );
}

fn wasm(name: &str) -> Vec<u8> {
    guest_example_bytes(name)
}

/// Uploads `name` for `token`'s account and answers the node's name.
async fn upload(hub: &Arc<Hub>, token: &str, name: &str) -> String {
    let (status, body) = call(hub, Method::POST, "/api/nodes", Some(token), wasm(name)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["node"]["name"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_needs_no_token_and_metrics_are_not_on_the_api_listener() {
    let t = hub().await;
    assert_eq!(
        call(&t.hub, Method::GET, "/healthz", None, Body::empty()).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    // Metrics name every account's nodes: only `hub --metrics ADDR` serves them.
    for token in [None, Some(t.alice.as_str())] {
        let (status, _) = call(&t.hub, Method::GET, "/metrics", token, Body::empty()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_revoked_or_expired_token_is_refused_within_the_recheck_period() {
    use crate::hub::store::{TokenKind, unix_seconds};
    let t = hub_with(HubConfig {
        token_recheck: Duration::from_millis(100),
        exosphere_lease: crate::hub::service::EXOSPHERE_LEASE,
        history: Default::default(),
        ..config(None)
    })
    .await;
    let store = t.hub.store().clone();
    let carol = store.create_token("carol", false, None).await.unwrap();
    let (status, _) = t.get("/api/remote_nodes", &carol.token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(store.revoke_token(TokenKind::Api, carol.id).await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    refused(
        t.get("/api/remote_nodes", &carol.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let expired = store
        .create_token("carol", false, Some(unix_seconds() - 1))
        .await
        .unwrap();
    refused(
        t.get("/api/remote_nodes", &expired.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A token let in and remembered stops working when it expires, even
    // inside the recheck period.
    let t = hub_with(HubConfig {
        token_recheck: Duration::from_secs(3600),
        exosphere_lease: crate::hub::service::EXOSPHERE_LEASE,
        history: Default::default(),
        ..config(None)
    })
    .await;
    let store = t.hub.store().clone();
    let brief = store
        .create_token("carol", false, Some(unix_seconds() + 1))
        .await
        .unwrap();
    let (status, _) = t.get("/api/remote_nodes", &brief.token).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refused(
        t.get("/api/remote_nodes", &brief.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn a_revoked_worker_token_is_refused() {
    use crate::hub::store::TokenKind;
    let t = hub().await;
    let store = t.hub.store().clone();
    let id = store.tokens(TokenKind::Worker).await.unwrap()[0].id;
    assert!(store.revoke_token(TokenKind::Worker, id).await.unwrap());
    let uri = format!("/api/hosted/components/{}", "0".repeat(64));
    refused(
        t.get(&uri, &t.worker).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn an_account_holds_a_bounded_number_of_registrations_and_connections() {
    use crate::hub::registry::MAX_REGISTRATIONS;
    use crate::hub::service::workers::MAX_CONNECTIONS_PER_ACCOUNT;
    let t = hub().await;
    for n in 0..MAX_REGISTRATIONS {
        t.register(&t.alice, &format!("node-{n}"), "out").await;
    }
    let registration = json!({"name": "one-more", "outputs": ["out"]}).to_string();
    let uri = "/api/remote_nodes/register";
    refused(
        t.send(Method::POST, uri, &t.alice, registration.clone())
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
    );
    // A refresh of a held name, and another account, still register.
    t.register(&t.alice, "node-0", "out").await;
    let (status, registered) = t.send(Method::POST, uri, &t.bob, registration).await;
    assert_eq!(status, StatusCode::OK);

    let (_, alice_registered) = t
        .send(
            Method::POST,
            uri,
            &t.alice,
            json!({"name": "node-1", "outputs": ["out"]}).to_string(),
        )
        .await;
    let query = |registered: &Json| format!("auth={}", registered["token"].as_str().unwrap());
    let alice = t.hub.authenticate(Some(&t.alice)).await.unwrap().account;
    let links: Vec<_> = (0..MAX_CONNECTIONS_PER_ACCOUNT)
        .map(|_| t.hub.worker_connected(alice, Default::default()))
        .collect();
    let refused_link = t.hub.accept_worker(Some(&query(&alice_registered))).await;
    assert!(
        matches!(&refused_link, Err(err) if err.code() == "quota_exceeded"),
        "{refused_link:?}"
    );
    assert!(t.hub.accept_worker(Some(&query(&registered))).await.is_ok());
    let (first, _) = &links[0];
    t.hub.disconnected(*first, "worker");
    assert!(
        t.hub
            .accept_worker(Some(&query(&alice_registered)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_account_route_refuses_a_missing_or_unknown_token() {
    let t = hub().await;
    let routes = [
        (Method::POST, "/api/remote_nodes/register"),
        (Method::GET, "/api/remote_nodes"),
        (Method::POST, "/api/remote_nodes/hello/execute"),
        (Method::POST, "/api/nodes"),
        (Method::GET, "/api/nodes"),
        (Method::GET, "/api/nodes/hello"),
        (Method::DELETE, "/api/nodes/hello"),
        (Method::GET, "/api/nodes/hello/logs"),
        (Method::GET, "/api/nodes/hello/versions"),
        (Method::POST, "/api/nodes/hello/rollback"),
        (Method::GET, "/api/events"),
        (Method::GET, "/api/nodes/hello/config"),
        (Method::PUT, "/api/nodes/hello/config/key"),
        (Method::DELETE, "/api/nodes/hello/config/key"),
        (Method::GET, "/api/uploads/ab"),
        (Method::GET, "/api/secrets"),
        (Method::PUT, "/api/secrets/key"),
        (Method::DELETE, "/api/secrets/key"),
    ];
    for (method, uri) in routes {
        let missing = call(&t.hub, method.clone(), uri, None, Body::empty()).await;
        assert_eq!(missing.1["error"], "Missing Authorization header", "{uri}");
        refused(missing, StatusCode::UNAUTHORIZED, "unauthorized");
        let forged = t
            .send(method.clone(), uri, "nh_forged", Body::empty())
            .await;
        assert_eq!(forged.1["error"], "Invalid API token", "{uri}");
        refused(forged, StatusCode::UNAUTHORIZED, "unauthorized");
        // A hosted-worker token opens no account route.
        let worker = t.send(method, uri, &t.worker, Body::empty()).await;
        refused(worker, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn read_only_tokens_change_nothing() {
    let t = hub().await;
    let registration = json!({"name": "hello", "inputs": [], "outputs": ["greeting"]});
    let routes = [
        (
            Method::POST,
            "/api/remote_nodes/register",
            registration.to_string(),
        ),
        (Method::POST, "/api/nodes", String::new()),
        (Method::DELETE, "/api/nodes/hello", String::new()),
        (
            Method::PUT,
            "/api/secrets/key",
            json!({"value": "v"}).to_string(),
        ),
        (Method::DELETE, "/api/secrets/key", String::new()),
    ];
    for (method, uri, body) in routes {
        let answer = t.send(method, uri, &t.reader, body).await;
        refused(answer, StatusCode::FORBIDDEN, "read_only_token");
    }
    // It may list and read.
    let (status, _) = t.get("/api/remote_nodes", &t.reader).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn registering_lists_the_node_and_a_worker_less_node_is_unavailable() {
    let t = hub().await;
    let registration = json!({"name": "greeter", "inputs": ["name"], "outputs": ["greeting"]});
    let (status, body) = t
        .send(
            Method::POST,
            "/api/remote_nodes/register",
            &t.alice,
            registration.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "registered");
    assert!(body["websocket_url"].as_str().unwrap().starts_with("ws://"));
    assert!(!body["token"].as_str().unwrap().is_empty());

    let (status, body) = t.get("/api/remote_nodes", &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"nodes": [{"name": "greeter", "inputs": ["name"], "outputs": ["greeting"]}]})
    );
    let (_, theirs) = t.get("/api/remote_nodes", &t.bob).await;
    assert_eq!(
        theirs,
        json!({"nodes": []}),
        "another account's nodes are invisible"
    );

    let execute = "/api/remote_nodes/greeter/execute";
    let no_worker = t.post(execute, &t.alice).await;
    refused(no_worker, StatusCode::SERVICE_UNAVAILABLE, "no_worker");
    let unknown = t.post(execute, &t.bob).await;
    refused(unknown, StatusCode::NOT_FOUND, "unknown_node");
}

#[tokio::test]
async fn malformed_requests_are_invalid_requests() {
    let t = hub().await;
    let register = "/api/remote_nodes/register";
    for body in [
        "not json",
        r#"{"name": "a/b", "outputs": ["x"]}"#,
        r#"{"name": "x", "outputs": []}"#,
    ] {
        let answer = t.send(Method::POST, register, &t.alice, body).await;
        refused(answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let no_name = t.send(Method::POST, register, &t.alice, "{}").await;
    assert_eq!(no_name.1["error"], "Missing or invalid name");
    let no_output = t
        .send(
            Method::POST,
            register,
            &t.alice,
            r#"{"name": "x", "outputs": []}"#,
        )
        .await;
    assert_eq!(no_output.1["error"], "At least one output required");

    upload(&t.hub, &t.alice, "hello").await;
    let execute = "/api/remote_nodes/hello/execute";
    for body in ["[1]", r#"{"inputs": {}, "timeout_ms": 0}"#] {
        let answer = t.send(Method::POST, execute, &t.alice, body).await;
        refused(answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let bad_name = t
        .send(
            Method::PUT,
            "/api/secrets/a%20b",
            &t.alice,
            json!({"value": "v"}).to_string(),
        )
        .await;
    refused(bad_name, StatusCode::BAD_REQUEST, "invalid_request");
    let bad_body = t
        .send(Method::PUT, "/api/secrets/key", &t.alice, "{}")
        .await;
    refused(bad_body, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn an_uploaded_node_is_listed_shown_run_logged_and_deleted() {
    let t = hub().await;
    assert_eq!(upload(&t.hub, &t.alice, "hello").await, "hello");

    let (status, body) = t.get("/api/nodes", &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nodes"][0]["name"], "hello");
    let (status, body) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"]["concurrency"], 4);
    assert_eq!(
        body["lane"],
        json!({"running": 0, "waiting": 0, "hubs": 1, "concurrency_here": 4, "queue_here": 64})
    );
    assert_eq!(body["hosted_workers"], 0);

    let sha256 = body["sha256"].as_str().unwrap().to_owned();
    let (status, body) = t.get(&format!("/api/uploads/{sha256}"), &t.alice).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("ready")),
        "{body}"
    );

    let (status, body) = t
        .send(
            Method::POST,
            "/api/remote_nodes/hello/execute",
            &t.alice,
            json!({"inputs": {"name": "Ada"}}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["outputs"],
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
    let uuid = body["uuid"].as_str().unwrap().to_owned();

    let (status, body) = t.get("/api/nodes/hello/logs", &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"][0]["uuid"], uuid);
    assert_eq!(body["events"][0]["outcome"], "ok");

    // Another account sees none of it.
    for uri in ["/api/nodes/hello", "/api/nodes/hello/logs"] {
        let answer = t.get(uri, &t.bob).await;
        refused(answer, StatusCode::NOT_FOUND, "unknown_node");
    }
    let theirs = t.get(&format!("/api/uploads/{sha256}"), &t.bob).await;
    refused(theirs, StatusCode::NOT_FOUND, "unknown_upload");
    let theirs = t.delete("/api/nodes/hello", &t.bob).await;
    refused(theirs, StatusCode::NOT_FOUND, "unknown_node");

    let (status, body) = t.delete("/api/nodes/hello", &t.alice).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"deleted": "hello"}))
    );
    let gone = t.post("/api/remote_nodes/hello/execute", &t.alice).await;
    refused(gone, StatusCode::NOT_FOUND, "unknown_node");
}

#[tokio::test]
async fn uploads_that_are_not_nodes_are_refused_with_their_code() {
    let t = hub().await;
    for (bytes, code) in [
        (Vec::new(), "empty_file"),
        (b"#!/bin/sh\n".to_vec(), "not_wasm"),
        (wat::parse_str("(module)").unwrap(), "core_module"),
    ] {
        let answer = t.send(Method::POST, "/api/nodes", &t.alice, bytes).await;
        refused(answer, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let huge = vec![0u8; crate::hub::service::catalog::MAX_UPLOAD_BYTES + 1];
    let answer = t.send(Method::POST, "/api/nodes", &t.alice, huge).await;
    refused(answer, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let unknown = t.get("/api/uploads/00", &t.alice).await;
    refused(unknown, StatusCode::NOT_FOUND, "unknown_upload");
}

#[tokio::test]
async fn a_name_is_either_registered_or_uploaded() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "hello").await;
    let registration = json!({"name": "hello", "outputs": ["greeting"]}).to_string();
    let taken = t
        .send(
            Method::POST,
            "/api/remote_nodes/register",
            &t.alice,
            registration,
        )
        .await;
    refused(taken, StatusCode::CONFLICT, "name_taken");

    t.register(&t.alice, "echo", "value").await;
    let taken = t
        .send(Method::POST, "/api/nodes", &t.alice, wasm("echo"))
        .await;
    refused(taken, StatusCode::UNPROCESSABLE_ENTITY, "name_taken");
}

#[tokio::test]
async fn a_node_that_fails_answers_502_with_its_code_and_a_slow_one_504() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "node-error").await;
    let failed = t
        .post("/api/remote_nodes/node-error/execute", &t.alice)
        .await;
    refused(failed, StatusCode::BAD_GATEWAY, "guest_error");

    upload(&t.hub, &t.alice, "spin-loop").await;
    let slow = t
        .send(
            Method::POST,
            "/api/remote_nodes/spin-loop/execute",
            &t.alice,
            json!({"timeout_ms": 50}).to_string(),
        )
        .await;
    refused(slow, StatusCode::GATEWAY_TIMEOUT, "timeout");
    let (_, logs) = t.get("/api/nodes/node-error/logs", &t.alice).await;
    assert_eq!(logs["events"][0]["outcome"], "guest_error");
}

#[tokio::test]
async fn a_full_lane_answers_429() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "spin-loop").await;
    let alice = t.hub.store().account_id("alice").await.unwrap();
    let limits = LimitSettings {
        concurrency: Some(1),
        queue: Some(0),
        timeout_ms: Some(2_000),
        // Fuel enough that only the deadline ends the loop.
        fuel: Some(u64::MAX / 2),
        ..LimitSettings::default()
    };
    t.hub.store().set_limits(alice, &limits).await.unwrap();
    let hub = t.hub.clone();
    let token = t.alice.clone();
    let running = tokio::spawn(async move {
        call(
            &hub,
            Method::POST,
            "/api/remote_nodes/spin-loop/execute",
            Some(&token),
            Body::empty(),
        )
        .await
    });
    for _ in 0..200 {
        let (_, node) = t.get("/api/nodes/spin-loop", &t.alice).await;
        if node["lane"]["running"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let full = t
        .post("/api/remote_nodes/spin-loop/execute", &t.alice)
        .await;
    refused(full, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    // Another account's lane is its own.
    upload(&t.hub, &t.bob, "hello").await;
    let (status, _) = t.post("/api/remote_nodes/hello/execute", &t.bob).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = running.await.unwrap();
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_GATEWAY, &json!("deadline")),
        "{body}"
    );
}

#[tokio::test]
async fn secrets_are_stored_listed_by_name_and_deleted() {
    let t = hub().await;
    let (status, body) = t
        .send(
            Method::PUT,
            "/api/secrets/api-key",
            &t.alice,
            json!({"value": "sk-1"}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"name": "api-key", "status": "stored"})
        )
    );
    let (status, body) = t.get("/api/secrets", &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["secrets"][0]["name"], "api-key");
    assert!(
        !body.to_string().contains("sk-1"),
        "no value is ever returned"
    );
    let (_, theirs) = t.get("/api/secrets", &t.bob).await;
    assert_eq!(theirs, json!({"secrets": []}));
    let theirs = t.delete("/api/secrets/api-key", &t.bob).await;
    refused(theirs, StatusCode::NOT_FOUND, "unknown_secret");
    let huge = json!({"value": "x".repeat(crate::hub::secrets::MAX_SECRET_BYTES + 1)}).to_string();
    let answer = t
        .send(Method::PUT, "/api/secrets/big", &t.alice, huge)
        .await;
    refused(answer, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let (status, body) = t.delete("/api/secrets/api-key", &t.alice).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"deleted": "api-key"}))
    );
}

#[tokio::test]
async fn a_secret_sealed_under_another_key_is_unavailable() {
    let dir = std::env::temp_dir().join(format!("node-host-routes-secret-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (alice, path) = {
        let t = hub_in(Some(dir.clone())).await;
        upload(&t.hub, &t.alice, "secrets").await;
        let (status, _) = t
            .send(
                Method::PUT,
                "/api/secrets/api-key",
                &t.alice,
                json!({"value": "sk"}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        (t.alice, dir.join("secrets.key"))
    };
    std::fs::remove_file(&path).unwrap();
    let hub = Hub::open(&config(Some(dir.clone()))).await.unwrap();
    let answer = call(
        &hub,
        Method::POST,
        "/api/remote_nodes/secrets/execute",
        Some(&alice),
        Body::empty(),
    )
    .await;
    refused(
        answer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "secret_unavailable",
    );
    drop(hub);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn hosted_worker_routes_take_worker_tokens_only() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "hello").await;
    let (_, node) = t.get("/api/nodes/hello", &t.alice).await;
    let uri = format!(
        "/api/hosted/components/{}",
        node["sha256"].as_str().unwrap()
    );
    let (status, body) = t.get(&uri, &t.worker).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().starts_with("\0asm"));
    let account = t.get(&uri, &t.alice).await;
    refused(account, StatusCode::UNAUTHORIZED, "unauthorized");
    let missing = call(&t.hub, Method::GET, &uri, None, Body::empty()).await;
    refused(missing, StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown = t.get("/api/hosted/components/00", &t.worker).await;
    refused(unknown, StatusCode::NOT_FOUND, "unknown_component");
    let socket = t.get("/api/hosted/ws", &t.alice).await;
    refused(socket, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn a_worker_socket_needs_a_signed_token() {
    let t = hub().await;
    let missing = call(&t.hub, Method::GET, "/ws", None, Body::empty()).await;
    // Not an upgrade request either: the token is checked first.
    refused(missing, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = call(&t.hub, Method::GET, "/ws?auth=forged", None, Body::empty()).await;
    refused(forged, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn callers_that_go_away_give_their_place_back() {
    let t = hub().await;
    t.register(&t.alice, "slow", "out").await;
    t.register(&t.bob, "slow", "out").await;
    let alice = t.hub.authenticate(Some(&t.alice)).await.unwrap().account;
    let bob = t.hub.authenticate(Some(&t.bob)).await.unwrap().account;
    // Alice's worker never answers; bob's answers what it gets.
    let nodes = || std::iter::once("slow".to_owned()).collect();
    let (_silent, _alice_events) = t.hub.worker_connected(alice, nodes());
    let (bobs_link, mut bob_events) = t.hub.worker_connected(bob, nodes());

    let callers: Vec<_> = (0..1_000)
        .map(|_| {
            let (hub, token) = (t.hub.clone(), t.alice.clone());
            tokio::spawn(async move {
                call(
                    &hub,
                    Method::POST,
                    "/api/remote_nodes/slow/execute",
                    Some(&token),
                    Body::empty(),
                )
                .await
            })
        })
        .collect();
    for _ in 0..1_000 {
        if t.hub.pending_events(alice) == 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(t.hub.pending_events(alice), 1_000);
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        let _ = caller.await;
    }
    assert_eq!(
        t.hub.pending_events(alice),
        0,
        "every abandoned entry is released"
    );
    let metrics = t.hub.metrics().render();
    assert!(metrics.contains("node_host_hub_in_flight 0"), "{metrics}");
    assert!(
        metrics.contains(r#"node_host_hub_events_total{node="slow",outcome="abandoned"} 1000"#),
        "{metrics}"
    );

    let hub = t.hub.clone();
    let answering = tokio::spawn(async move {
        let event: Json = serde_json::from_str(&bob_events.recv().await.unwrap()).unwrap();
        let reply = json!({"node": "slow", "outputs": {"out": 1}, "uuid": event["uuid"]});
        hub.worker_frame(bobs_link, &reply.to_string());
    });
    let (status, body) = t.post("/api/remote_nodes/slow/execute", &t.bob).await;
    assert_eq!(
        (status, &body["outputs"]),
        (StatusCode::OK, &json!({"out": 1})),
        "{body}"
    );
    answering.await.unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("node-host-routes-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Files under `dir` whose names hold `sha256`.
fn files_of(dir: &std::path::Path, sha256: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(sha256))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_refused_upload_leaves_nothing_behind() {
    let dir = temp_dir("refused");
    let t = hub_in(Some(dir.clone())).await;
    t.register(&t.alice, "echo", "value").await;
    // Compiled, then refused: its name is a worker's.
    let taken = t
        .send(Method::POST, "/api/nodes", &t.alice, wasm("echo"))
        .await;
    refused(taken, StatusCode::UNPROCESSABLE_ENTITY, "name_taken");
    let sha256 = crate::sandbox::sha256_hex(&wasm("echo"));
    assert_eq!(
        files_of(&dir.join("components"), &sha256),
        Vec::<String>::new()
    );
    assert_eq!(
        files_of(&dir.join("compiled"), &sha256),
        Vec::<String>::new()
    );
    // An accepted one is kept, compiled.
    upload(&t.hub, &t.alice, "hello").await;
    let sha256 = crate::sandbox::sha256_hex(&wasm("hello"));
    assert_eq!(files_of(&dir.join("components"), &sha256).len(), 1);
    assert!(!files_of(&dir.join("compiled"), &sha256).is_empty());
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_node_quota_obeyed_and_violated() {
    let t = hub_with(HubConfig {
        quota: UploadQuota {
            nodes: 1,
            bytes: 1 << 30,
        },
        ..config(None)
    })
    .await;
    upload(&t.hub, &t.alice, "hello").await;
    // Obeyed: a new version of the same node is no new node.
    upload(&t.hub, &t.alice, "hello").await;
    let over = t
        .send(Method::POST, "/api/nodes", &t.alice, wasm("echo"))
        .await;
    refused(over, StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    // Another account's quota is its own.
    upload(&t.hub, &t.bob, "echo").await;
}

#[tokio::test]
async fn the_byte_quota_obeyed_and_violated() {
    let hello = wasm("hello").len() as u64;
    let t = hub_with(HubConfig {
        quota: UploadQuota {
            nodes: 10,
            bytes: hello + 1,
        },
        ..config(None)
    })
    .await;
    upload(&t.hub, &t.alice, "hello").await;
    let over = t
        .send(Method::POST, "/api/nodes", &t.alice, wasm("echo"))
        .await;
    refused(over, StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    let (_, nodes) = t.get("/api/nodes", &t.alice).await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_accounts_compiles_wait_their_turn_and_beyond_its_queue_are_refused() {
    let t = hub_with(HubConfig {
        upload_wait: Duration::ZERO,
        ..config(None)
    })
    .await;
    // One compiling and three waiting: the fifth is refused at once.
    let guests = ["hello", "echo", "spin-loop", "sleeper", "node-error"];
    let mut answers = Vec::new();
    for name in guests {
        answers.push(
            t.send(Method::POST, "/api/nodes", &t.alice, wasm(name))
                .await,
        );
    }
    for (status, body) in &answers[..4] {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
    }
    refused(
        answers[4].clone(),
        StatusCode::TOO_MANY_REQUESTS,
        "queue_full",
    );
    // Another account's uploads have a lane of their own.
    let (status, body) = t
        .send(Method::POST, "/api/nodes", &t.bob, wasm("hello"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The four that were taken all end ready.
    for (_, body) in &answers[..4] {
        let uri = body["status_url"].as_str().unwrap().to_owned();
        let mut ready = false;
        for _ in 0..600 {
            let (_, status) = t.get(&uri, &t.alice).await;
            if status["status"] == "ready" {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "{uri} never got ready");
    }
}

#[tokio::test]
async fn the_callers_timeout_is_the_sandboxs_deadline_when_it_comes_first() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "spin-loop").await;
    let alice = t.hub.store().account_id("alice").await.unwrap();
    // The account allows 30 s; fuel enough that only a deadline ends the loop.
    let limits = LimitSettings {
        fuel: Some(u64::MAX / 2),
        ..LimitSettings::default()
    };
    t.hub.store().set_limits(alice, &limits).await.unwrap();
    let body = json!({"timeout_ms": 300}).to_string();
    let uri = "/api/remote_nodes/spin-loop/execute";
    let answer = t.send(Method::POST, uri, &t.alice, body).await;
    refused(answer, StatusCode::GATEWAY_TIMEOUT, "timeout");
    // The loop stopped with its caller, not 30 s later: its place is free.
    let mut free = false;
    for _ in 0..300 {
        let (_, node) = t.get("/api/nodes/spin-loop", &t.alice).await;
        if node["lane"]["running"] == 0 {
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(free, "the sandbox ran on after its caller's timeout");
    let (_, logs) = t.get("/api/nodes/spin-loop/logs", &t.alice).await;
    assert_eq!(logs["events"][0]["outcome"], "deadline", "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_shared_by_two_accounts_survives_one_deleting_it() {
    let dir = temp_dir("shared-blob");
    let t = hub_in(Some(dir.clone())).await;
    let sha256 = crate::sandbox::sha256_hex(&wasm("hello"));
    for round in 0..30 {
        upload(&t.hub, &t.alice, "hello").await;
        // Alice deletes the last node using the component while Bob uploads it.
        let (deleted, uploaded) = tokio::join!(
            t.delete("/api/nodes/hello", &t.alice),
            call(
                &t.hub,
                Method::POST,
                "/api/nodes",
                Some(&t.bob),
                wasm("hello")
            ),
        );
        assert_eq!(deleted.0, StatusCode::OK, "{}", deleted.1);
        assert!(uploaded.0.is_success(), "{}", uploaded.1);
        assert_eq!(
            files_of(&dir.join("components"), &sha256).len(),
            1,
            "round {round}: Bob's node lost its component"
        );
        let (status, _) = t.delete("/api/nodes/hello", &t.bob).await;
        assert_eq!(status, StatusCode::OK);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn exosphere_cron_triggers_start_runs_at_their_minute() {
    let Hubbed { hub, alice, .. } = hub_in(None).await;
    let app = router(hub);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        Request::builder()
            .method(method)
            .uri(format!("/v0/namespace/ns{path}"))
            .header("x-api-key", &alice)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let registered = app
        .clone()
        .oneshot(call(
            "PUT",
            "/nodes/",
            serde_json::json!({"runtime_name": "rt", "nodes": [{"name": "n", "namespace": "ns",
                "inputs_schema": {}, "outputs_schema": {}, "secrets": []}]}),
        ))
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::OK);
    let graph = serde_json::json!({
        "nodes": [{"node_name": "n", "namespace": "ns", "identifier": "a"}],
        "triggers": [{"type": "CRON", "value": {"expression": "* * * * *"}}],
    });
    let stored = app
        .clone()
        .oneshot(call("PUT", "/graph/ticking", graph))
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::CREATED);
    // The hub's cron loop fires at the next minute; wait for it (bounded).
    let started = std::time::Instant::now();
    loop {
        let runs = app
            .clone()
            .oneshot(call("GET", "/runs/1/10", serde_json::Value::Null))
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(runs.into_body(), usize::MAX)
            .await
            .unwrap();
        let runs: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if runs["total"] == 1 {
            assert_eq!(runs["runs"][0]["graph_name"], "ticking");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(75),
            "no cron run within a minute: {runs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn outbound_http_is_granted_per_node_within_the_accounts_policy() {
    let origin = crate::sandbox::test_origin::TestOrigin::start();
    let mut opened = config(None);
    opened.outbound.private_addresses = true;
    let t = hub_with(opened).await;
    let grant_uri = "/api/nodes/fetch/grant";
    let allow = |origins: &[&str]| json!({ "allow": origins }).to_string();
    let loopback = format!("http://127.0.0.1:{}", origin.addr().port());

    // Not granted: the upload is refused, naming what to do.
    let (status, body) = call(
        &t.hub,
        Method::POST,
        "/api/nodes",
        Some(&t.alice),
        wasm("fetch"),
    )
    .await;
    refused(
        (status, body.clone()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "http_not_granted",
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("node-host grant fetch"),
        "{body}"
    );
    // The account's policy allows nothing yet.
    let outside = t
        .send(Method::PUT, grant_uri, &t.alice, allow(&[&loopback]))
        .await;
    refused(
        outside,
        StatusCode::UNPROCESSABLE_ENTITY,
        "origin_not_in_policy",
    );
    let alice = t.hub.store().account_id("alice").await.unwrap();
    t.hub
        .store()
        .set_http_origins(alice, None, Some(vec!["http://127.0.0.1:*".into()]))
        .await
        .unwrap();
    // Bad requests.
    let bad = t
        .send(Method::PUT, grant_uri, &t.alice, allow(&["ftp://x"]))
        .await;
    refused(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_origin");
    let bad = t.send(Method::PUT, grant_uri, &t.alice, "[]").await;
    refused(bad, StatusCode::BAD_REQUEST, "invalid_request");
    let read_only = t
        .send(Method::PUT, grant_uri, &t.reader, allow(&[&loopback]))
        .await;
    refused(read_only, StatusCode::FORBIDDEN, "read_only_token");
    // Granted before the upload, within the policy.
    let (status, body) = t
        .send(Method::PUT, grant_uri, &t.alice, allow(&[&loopback]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.get(grant_uri, &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["allow"], json!([loopback]));
    assert_eq!(body["policy"], json!(["http://127.0.0.1:*"]));
    assert_eq!(upload(&t.hub, &t.alice, "fetch").await, "fetch");
    let execute = |url: String| {
        let body = json!({"inputs": {"url": url}}).to_string();
        t.send(
            Method::POST,
            "/api/remote_nodes/fetch/execute",
            &t.alice,
            body,
        )
    };
    let (status, body) = execute(origin.url("/hello")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"]["body"], "hello from the origin");
    // Another origin is refused.
    let elsewhere = format!("http://127.0.0.2:{}/hello", origin.addr().port());
    refused(
        execute(elsewhere).await,
        StatusCode::BAD_GATEWAY,
        "http_denied",
    );

    // Bob's account has no policy: alice's grant is nothing to him.
    let (status, body) = t.get(grant_uri, &t.bob).await;
    assert_eq!((status, &body["allow"]), (StatusCode::OK, &json!([])));
    let theirs = call(
        &t.hub,
        Method::POST,
        "/api/nodes",
        Some(&t.bob),
        wasm("fetch"),
    )
    .await;
    refused(theirs, StatusCode::UNPROCESSABLE_ENTITY, "http_not_granted");
    let theirs = t
        .send(Method::PUT, grant_uri, &t.bob, allow(&[&loopback]))
        .await;
    refused(
        theirs,
        StatusCode::UNPROCESSABLE_ENTITY,
        "origin_not_in_policy",
    );

    // The operator narrows the policy: the next event follows it.
    t.hub
        .store()
        .set_http_origins(alice, None, Some(vec!["https://api.example.com".into()]))
        .await
        .unwrap();
    refused(
        execute(origin.url("/hello")).await,
        StatusCode::BAD_GATEWAY,
        "http_denied",
    );
    t.hub
        .store()
        .set_http_origins(alice, None, Some(vec!["http://127.0.0.1:*".into()]))
        .await
        .unwrap();
    assert_eq!(execute(origin.url("/hello")).await.0, StatusCode::OK);

    // Revoked: every request is refused at once.
    let (status, _) = t.delete(grant_uri, &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    refused(
        execute(origin.url("/hello")).await,
        StatusCode::BAD_GATEWAY,
        "http_denied",
    );
    let again = t.delete(grant_uri, &t.alice).await;
    refused(again, StatusCode::NOT_FOUND, "unknown_node");
}

/// `name`'s component in other bytes: a new version of it.
fn retagged(name: &str, tag: &str) -> Vec<u8> {
    crate::sandbox::bench_support::with_custom_section(wasm(name), tag)
}

#[tokio::test]
async fn uploads_make_versions_that_can_be_rolled_back() {
    let t = hub().await;
    for tag in ["one", "two", "three"] {
        let (status, body) = t
            .send(Method::POST, "/api/nodes", &t.alice, retagged("hello", tag))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, listed) = t.get("/api/nodes/hello/versions", &t.alice).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["current"], 3);
    let versions: Vec<i64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1], "newest first");
    assert_eq!(listed["versions"][0]["current"], true);
    let first_sha = listed["versions"][2]["sha256"].clone();

    let rollback = |version: Json| json!({ "version": version }).to_string();
    let uri = "/api/nodes/hello/rollback";
    let (status, node) = t
        .send(Method::POST, uri, &t.alice, rollback(json!(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert_eq!(
        (node["version"].clone(), node["sha256"].clone()),
        (json!(1), first_sha.clone())
    );
    let (_, shown) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(shown["sha256"], first_sha, "events now run version 1");
    let (status, answer) = t
        .send(
            Method::POST,
            "/api/remote_nodes/hello/execute",
            &t.alice,
            json!({"inputs": {"name": "Ada"}}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, events) = t.get("/api/events?node=hello", &t.alice).await;
    assert_eq!(events["events"][0]["version"], 1, "{events}");

    refused(
        t.send(Method::POST, uri, &t.alice, rollback(json!(9)))
            .await,
        StatusCode::NOT_FOUND,
        "version_not_kept",
    );
    refused(
        t.send(Method::POST, uri, &t.alice, "{\"version\": \"two\"}")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        t.send(Method::POST, uri, &t.reader, rollback(json!(2)))
            .await,
        StatusCode::FORBIDDEN,
        "read_only_token",
    );
    for uri in ["/api/nodes/hello/versions", "/api/nodes/hello/rollback"] {
        let method = if uri.ends_with("versions") {
            Method::GET
        } else {
            Method::POST
        };
        refused(
            t.send(method, uri, &t.bob, rollback(json!(1))).await,
            StatusCode::NOT_FOUND,
            "unknown_node",
        );
    }
}

#[tokio::test]
async fn the_newest_versions_are_kept_and_the_rest_removed_with_their_code() {
    let mut config = config(None);
    config.history.keep_versions = 2;
    let t = hub_with(config).await;
    let mut shas = Vec::new();
    for tag in ["a", "b", "c"] {
        let (status, body) = t
            .send(Method::POST, "/api/nodes", &t.alice, retagged("hello", tag))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        shas.push(body["node"]["sha256"].as_str().unwrap().to_owned());
    }
    let (_, listed) = t.get("/api/nodes/hello/versions", &t.alice).await;
    let versions: Vec<i64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2]);
    assert!(t.hub.store().sha256_in_use(&shas[1]).await.unwrap());
    assert!(
        !t.hub.store().sha256_in_use(&shas[0]).await.unwrap(),
        "version 1 is gone"
    );
    let gone = t.hub.component(&shas[0]).await;
    assert!(gone.is_err(), "its component is removed");
    refused(
        t.send(
            Method::POST,
            "/api/nodes/hello/rollback",
            &t.alice,
            "{\"version\": 1}",
        )
        .await,
        StatusCode::NOT_FOUND,
        "version_not_kept",
    );
}

#[tokio::test]
async fn events_are_kept_with_caller_outcome_and_logs_per_account() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "node-error").await;
    upload(&t.hub, &t.alice, "hello").await;
    let execute = |node: &str| format!("/api/remote_nodes/{node}/execute");
    let body = json!({"inputs": {"reason": "<script>alert(1)</script>"}}).to_string();
    let failed = t
        .send(Method::POST, &execute("node-error"), &t.alice, body)
        .await;
    refused(failed, StatusCode::BAD_GATEWAY, "guest_error");
    let (status, ok) = t
        .send(Method::POST, &execute("hello"), &t.alice, "{}")
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let unknown = t
        .send(Method::POST, &execute("nobody"), &t.alice, "{}")
        .await;
    refused(unknown, StatusCode::NOT_FOUND, "unknown_node");

    let (status, all) = t.get("/api/events", &t.alice).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "an unknown node is no event: {all}");
    let (first, second) = (&events[0], &events[1]);
    assert_eq!(first["node"], "node-error");
    assert_eq!(first["outcome"], "guest_error");
    assert!(first["message"].as_str().unwrap().contains("<script>"));
    assert!(first["caller"].is_i64());
    assert!(first["duration_us"].as_i64().unwrap() > 0);
    assert!(first["fuel"].as_i64().unwrap() > 0);
    assert_eq!(first["stdout"], "", "its captured streams are inline");
    assert_eq!(second["uuid"], ok["uuid"]);
    assert_eq!(second["outcome"], "ok");

    // Following: only what came after.
    let after = first["id"].as_i64().unwrap();
    let (_, newer) = t.get(&format!("/api/events?after={after}"), &t.alice).await;
    assert_eq!(newer["events"].as_array().unwrap().len(), 1);
    let (_, one) = t.get("/api/events?node=hello&limit=1", &t.alice).await;
    assert_eq!(one["events"][0]["node"], "hello");
    refused(
        t.get("/api/events?limit=lots", &t.alice).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let (_, theirs) = t.get("/api/events", &t.bob).await;
    assert_eq!(theirs["events"], json!([]), "another account sees none");

    // Deleting a node forgets its events.
    t.delete("/api/nodes/node-error", &t.alice).await;
    let (_, left) = t.get("/api/events", &t.alice).await;
    assert_eq!(left["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_history_survives_a_restart() {
    let dir = temp_dir("history-restart");
    let uuid = {
        let t = hub_in(Some(dir.clone())).await;
        upload(&t.hub, &t.alice, "hello").await;
        let (_, ok) = t
            .send(
                Method::POST,
                "/api/remote_nodes/hello/execute",
                &t.alice,
                "{}",
            )
            .await;
        t.get("/api/events", &t.alice).await;
        ok["uuid"].clone()
    };
    let hub = Hub::open(&config(Some(dir.clone()))).await.unwrap();
    let token = hub
        .store()
        .create_token("alice", false, None)
        .await
        .unwrap()
        .token;
    let (status, events) = call(
        &hub,
        Method::GET,
        "/api/events",
        Some(&token),
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events["events"][0]["uuid"], uuid, "{events}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn node_configuration_is_read_like_a_secret_and_shown_to_its_owner() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "secrets").await;
    let execute = "/api/remote_nodes/secrets/execute";
    let set = |value: &str| json!({ "value": value }).to_string();
    let (status, secret) = t
        .send(Method::PUT, "/api/secrets/api-key", &t.alice, set("sealed"))
        .await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    let (_, answer) = t.send(Method::POST, execute, &t.alice, "{}").await;
    assert_eq!(answer["outputs"]["declared"], "sealed");

    // The node's own configuration wins over the account's secret, and its
    // owner can read it back; an undeclared key is never handed over.
    let uri = "/api/nodes/secrets/config/api-key";
    let (status, config) = t.send(Method::PUT, uri, &t.alice, set("visible")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["config"], json!({"api-key": "visible"}));
    let other = "/api/nodes/secrets/config/other";
    t.send(Method::PUT, other, &t.alice, set("never")).await;
    let (_, answer) = t.send(Method::POST, execute, &t.alice, "{}").await;
    assert_eq!(answer["outputs"]["declared"], "visible");
    assert_eq!(answer["outputs"]["undeclared"], Json::Null);
    let (_, shown) = t.get("/api/nodes/secrets/config", &t.alice).await;
    assert_eq!(
        shown["config"],
        json!({"api-key": "visible", "other": "never"})
    );
    let (_, theirs) = t.get("/api/nodes/secrets/config", &t.bob).await;
    assert_eq!(theirs["config"], json!({}), "another account's");

    // Removed, the secret is read again.
    let (status, _) = t.delete(uri, &t.alice).await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = t.send(Method::POST, execute, &t.alice, "{}").await;
    assert_eq!(answer["outputs"]["declared"], "sealed");

    refused(
        t.delete(uri, &t.alice).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let bad_key = "/api/nodes/secrets/config/bad%20key";
    refused(
        t.send(Method::PUT, bad_key, &t.alice, set("x")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        t.send(Method::PUT, uri, &t.alice, "{}").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        t.send(Method::PUT, uri, &t.alice, set(&"x".repeat(5000)))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    refused(
        t.send(Method::PUT, uri, &t.reader, set("x")).await,
        StatusCode::FORBIDDEN,
        "read_only_token",
    );
    for n in 0..63 {
        let key = format!("/api/nodes/many/config/k{n}");
        let (status, _) = t.send(Method::PUT, &key, &t.alice, set("v")).await;
        assert_eq!(status, StatusCode::OK);
    }
    t.send(
        Method::PUT,
        "/api/nodes/many/config/last",
        &t.alice,
        set("v"),
    )
    .await;
    refused(
        t.send(
            Method::PUT,
            "/api/nodes/many/config/one-more",
            &t.alice,
            set("v"),
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
    );
}

#[tokio::test]
async fn an_account_may_keep_its_own_count_of_versions_and_events() {
    let t = hub().await;
    let alice = t.hub.store().account_id("alice").await.unwrap();
    let mine = LimitSettings {
        keep_versions: Some(1),
        history_events: Some(2),
        ..LimitSettings::default()
    };
    t.hub.store().set_limits(alice, &mine).await.unwrap();
    for tag in ["a", "b"] {
        let (status, body) = t
            .send(Method::POST, "/api/nodes", &t.alice, retagged("hello", tag))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, listed) = t.get("/api/nodes/hello/versions", &t.alice).await;
    assert_eq!(listed["versions"].as_array().unwrap().len(), 1, "{listed}");
    let (_, shown) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(shown["limits"]["keep_versions"], 1);
    assert_eq!(shown["limits"]["history_events"], 2);
    for _ in 0..3 {
        let uri = "/api/remote_nodes/hello/execute";
        let (status, _) = t.send(Method::POST, uri, &t.alice, "{}").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, events) = t.get("/api/events", &t.alice).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
    // Bob keeps the hub's defaults.
    upload(&t.hub, &t.bob, "hello").await;
    let (_, shown) = t.get("/api/nodes/hello", &t.bob).await;
    assert_eq!(shown["limits"]["keep_versions"], Json::Null);
}

#[tokio::test]
async fn a_change_of_an_accounts_limits_applies_within_the_recheck() {
    let t = hub().await;
    upload(&t.hub, &t.alice, "hello").await;
    let (_, shown) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(shown["limits"]["concurrency"], 4);
    // As `node-host hub account set` does, beside the running hub.
    let alice = t.hub.store().account_id("alice").await.unwrap();
    let change = LimitSettings {
        concurrency: Some(2),
        ..LimitSettings::default()
    };
    t.hub.store().set_limits(alice, &change).await.unwrap();
    // Read a moment ago: not read again for each event or listing.
    let (_, shown) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(shown["limits"]["concurrency"], 4);
    tokio::time::sleep(crate::hub::service::LIMITS_RECHECK).await;
    let (_, shown) = t.get("/api/nodes/hello", &t.alice).await;
    assert_eq!(shown["limits"]["concurrency"], 2);
}
