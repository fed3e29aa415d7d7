//! Every dashboard route in process, against the hub's router: each one's
//! success and each refusal (no session, a stale or forged form, another
//! site's page, a revoked token), with the headers every page carries.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::hub::http::router;
use crate::hub::service::{Hub, HubConfig};
use crate::hub::store::TokenKind;
use crate::sandbox::bench_support::{guest_example_bytes, with_custom_section};

const HOST: &str = "127.0.0.1:8765";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

struct Dash {
    hub: Arc<Hub>,
    token: String,
}

async fn dash() -> Dash {
    let mut config = HubConfig::for_tests(None);
    // Every request asks the store about its token: a revoked one is
    // refused at once.
    config.token_recheck = std::time::Duration::ZERO;
    let hub = Hub::open(&config).await.unwrap();
    let token = hub
        .store()
        .create_token("alice", false, None)
        .await
        .unwrap()
        .token;
    Dash { hub, token }
}

impl Dash {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(self.hub.clone())
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Signs in with `token`: the session cookie (`nh_session=…`).
    async fn sign_in(&self, token: &str) -> String {
        let form = format!("token={token}");
        let answer = self
            .send(
                Method::POST,
                "/sign-in",
                &[("content-type", "application/x-www-form-urlencoded")],
                form,
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let cookie = answer.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn page(&self, cookie: &str, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[("cookie", cookie)], Body::empty())
            .await
    }

    /// The CSRF token on a page of the session.
    async fn csrf(&self, cookie: &str) -> String {
        let page = self.page(cookie, "/").await.body;
        let at = page
            .find(r#"name="csrf-token" content=""#)
            .expect("the page has its CSRF token");
        let rest = &page[at + r#"name="csrf-token" content=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    async fn form(&self, cookie: &str, uri: &str, form: &str, origin: Option<&str>) -> Answer {
        let mut headers = vec![
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        self.send(Method::POST, uri, &headers, form.to_owned())
            .await
    }

    async fn upload(&self, cookie: &str, csrf: &str, bytes: Vec<u8>) -> Answer {
        let headers = [
            ("cookie", cookie),
            ("x-csrf-token", csrf),
            ("origin", "http://127.0.0.1:8765"),
        ];
        self.send(Method::POST, "/ui/upload", &headers, bytes).await
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn pages_need_a_session_and_carry_their_security_headers() {
    let d = dash().await;
    for uri in ["/", "/events", "/upload", "/nodes/hello"] {
        let answer = d.send(Method::GET, uri, &[], Body::empty()).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(answer.headers[header::LOCATION], "/sign-in", "{uri}");
    }
    let forged = d.page("nh_session=eyJ0b2tlbiI6MX0.AAAA", "/").await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER, "a forged session");
    let page = d.send(Method::GET, "/sign-in", &[], Body::empty()).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    for (asset, kind) in [
        ("/assets/dashboard.css", "text/css"),
        ("/assets/dashboard.js", "text/javascript"),
    ] {
        let answer = d.send(Method::GET, asset, &[], Body::empty()).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    // The API stays the API.
    let api = d.send(Method::GET, "/api/nodes", &[], Body::empty()).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_keeps_a_session_not_the_token() {
    let d = dash().await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = d
        .send(Method::POST, "/sign-in", &form, "token=nh_nope")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("unknown, revoked or expired"));
    let empty = d.send(Method::POST, "/sign-in", &form, "").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);

    let answer = d
        .send(
            Method::POST,
            "/sign-in",
            &form,
            format!("token={}", d.token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "loopback: a browser would drop a Secure cookie on http"
    );
    assert!(
        !cookie.contains(&d.token),
        "the token itself is not in the cookie"
    );

    // Off loopback: refused on plain HTTP, Secure behind an HTTPS proxy.
    let remote = [
        ("host", "hub.example.com"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let body = format!("token={}", d.token);
    let mut request = Request::builder().method(Method::POST).uri("/sign-in");
    for (name, value) in remote {
        request = request.header(name, value);
    }
    let plain = router(d.hub.clone())
        .oneshot(request.body(Body::from(body.clone())).unwrap())
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::FORBIDDEN);
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/sign-in")
        .header("x-forwarded-proto", "https");
    for (name, value) in remote {
        request = request.header(name, value);
    }
    let proxied = router(d.hub.clone())
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::SEE_OTHER);
    assert!(
        proxied.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Another site's page cannot sign anyone in.
    let cross = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "http://evil.example"),
    ];
    let answer = d
        .send(
            Method::POST,
            "/sign-in",
            &cross,
            format!("token={}", d.token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions() {
    let d = dash().await;
    let cookie = d.sign_in(&d.token).await;
    assert_eq!(d.page(&cookie, "/").await.status, StatusCode::OK);
    let caller = d.hub.authenticate(Some(&d.token)).await.unwrap();
    assert!(
        d.hub
            .store()
            .revoke_token(TokenKind::Api, caller.token)
            .await
            .unwrap()
    );
    let answer = d.page(&cookie, "/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token_and_this_origin() {
    let d = dash().await;
    d.hub
        .store()
        .create_token("bob", false, None)
        .await
        .unwrap();
    let cookie = d.sign_in(&d.token).await;
    let csrf = d.csrf(&cookie).await;
    let uploaded = d.upload(&cookie, &csrf, guest_example_bytes("hello")).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);

    let inputs = encode(r#"{"name": "Ada"}"#);
    let try_it = |csrf: &str| format!("csrf={}&inputs={inputs}", encode(csrf));
    let ok = d
        .form(
            &cookie,
            "/nodes/hello/try",
            &try_it(&csrf),
            Some("http://127.0.0.1:8765"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("Hello Ada"), "{}", ok.body);

    let missing = d
        .form(
            &cookie,
            "/nodes/hello/try",
            &format!("inputs={inputs}"),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = d
        .form(&cookie, "/nodes/hello/try", &try_it("AAAA"), None)
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = d
        .form(
            &cookie,
            "/nodes/hello/try",
            &try_it(&csrf),
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    // Another session's token does not pass for this one.
    let bob_token = d
        .hub
        .store()
        .create_token("alice", false, None)
        .await
        .unwrap()
        .token;
    let other = d.sign_in(&bob_token).await;
    let theirs = d
        .form(&other, "/nodes/hello/try", &try_it(&csrf), None)
        .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let upload = d
        .upload(&cookie, "AAAA", guest_example_bytes("hello"))
        .await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN);
    let signed_out = d
        .upload("nh_session=none", &csrf, guest_example_bytes("hello"))
        .await;
    assert_eq!(signed_out.status, StatusCode::UNAUTHORIZED);

    // Bad inputs are said on the page.
    let not_json = format!("csrf={}&inputs={}", encode(&csrf), encode("{nope"));
    let answer = d.form(&cookie, "/nodes/hello/try", &not_json, None).await;
    assert!(
        answer.body.contains("the inputs are not JSON"),
        "{}",
        answer.body
    );

    // Sign out needs it too, then the session is gone from the browser.
    let out = d.form(&cookie, "/sign-out", "csrf=AAAA", None).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let out = d
        .form(
            &cookie,
            "/sign-out",
            &format!("csrf={}", encode(&csrf)),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn pages_show_the_accounts_nodes_versions_and_events() {
    let d = dash().await;
    let cookie = d.sign_in(&d.token).await;
    let csrf = d.csrf(&cookie).await;
    let second = with_custom_section(guest_example_bytes("hello"), "two");
    let mut shas = Vec::new();
    for bytes in [guest_example_bytes("hello"), second] {
        let answer = d.upload(&cookie, &csrf, bytes).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        shas.push(answer["node"]["sha256"].as_str().unwrap().to_owned());
    }
    let sha = &shas[0];
    let status = d.page(&cookie, &format!("/ui/uploads/{sha}")).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert!(status.body.contains("\"ready\""));
    let unknown = d.page(&cookie, "/ui/uploads/abc").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let node = d.page(&cookie, "/nodes/hello").await;
    assert_eq!(node.status, StatusCode::OK);
    assert!(
        node.body.contains(r#"<dd id="node-version">v2</dd>"#),
        "{}",
        node.body
    );
    assert!(node.body.contains("Roll back to v1"));
    let back = format!("csrf={}&version=1", encode(&csrf));
    let rolled = d.form(&cookie, "/nodes/hello/rollback", &back, None).await;
    assert_eq!(rolled.status, StatusCode::SEE_OTHER);
    let node = d.page(&cookie, "/nodes/hello").await;
    assert!(node.body.contains(r#"<dd id="node-version">v1</dd>"#));
    let missing = format!("csrf={}&version=9", encode(&csrf));
    let refused = d
        .form(&cookie, "/nodes/hello/rollback", &missing, None)
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(refused.body.contains("version_not_kept"));

    let try_it = format!(
        "csrf={}&inputs={}",
        encode(&csrf),
        encode(r#"{"name": "Bo"}"#)
    );
    d.form(&cookie, "/nodes/hello/try", &try_it, None).await;
    let overview = d.page(&cookie, "/").await;
    assert!(overview.body.contains(r#"data-node="hello""#));
    assert!(
        overview.body.contains("1 events kept of at most 1000"),
        "{}",
        overview.body
    );
    let events = d.page(&cookie, "/events?node=hello").await;
    assert_eq!(events.body.matches("<li class=\"event ok\"").count(), 1);
    let none = d.page(&cookie, "/events?node=other").await;
    assert!(none.body.contains("No events kept yet"));
    let unknown = d.page(&cookie, "/nodes/nobody").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("unknown_node"));
    assert_eq!(d.page(&cookie, "/upload").await.status, StatusCode::OK);

    // Configuration: set, shown (escaped), removed.
    let set = format!(
        "csrf={}&key=model&value={}",
        encode(&csrf),
        encode("<b>large</b>")
    );
    let answer = d.form(&cookie, "/nodes/hello/config", &set, None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let node = d.page(&cookie, "/nodes/hello").await.body;
    assert!(node.contains("&lt;b&gt;large&lt;/b&gt;"), "{node}");
    let bad = format!("csrf={}&key={}&value=x", encode(&csrf), encode("no spaces"));
    let answer = d.form(&cookie, "/nodes/hello/config", &bad, None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let remove = format!("csrf={}&key=model", encode(&csrf));
    d.form(&cookie, "/nodes/hello/config", &remove, None).await;
    let node = d.page(&cookie, "/nodes/hello").await.body;
    assert!(!node.contains("large"));
}
