//! The hub's dashboard at `/`: server-rendered pages (maud) over the same
//! service as the API, for people rather than programs.
//!
//! Signing in takes an API token once and keeps a signed session in a
//! cookie (`HttpOnly`, `SameSite=Strict`, `Secure` off loopback): no script
//! of the page can read it, and another site's page neither sends it nor
//! reads the answers. Every form and request that changes something also
//! carries the session's CSRF token, and a request whose `Origin` is not
//! this hub is refused. Everything a tenant or a guest controls (node
//! names, inputs, outputs, logs, error messages) is escaped by the
//! templates, and the Content-Security-Policy runs no script but the
//! hub's own file, so an injected `<script>` would not run even if it got
//! through.

mod pages;
#[cfg(test)]
mod routes_tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value as Json, json};

use crate::hub::service::catalog::MAX_UPLOAD_BYTES;
use crate::hub::service::{Hub, HubError, upload_too_large};
use crate::hub::store::Caller;
use crate::protocol::hurozo::ExecuteRequest;

/// The session cookie's name.
const COOKIE: &str = "nh_session";

/// The header the dashboard's script sends the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

const STYLE: &str = include_str!("dashboard/dashboard.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// The dashboard's routes.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/nodes/{name}", get(node_page))
        .route("/nodes/{name}/try", post(try_node))
        .route("/nodes/{name}/rollback", post(rollback))
        .route("/nodes/{name}/config", post(configure))
        .route("/events", get(events_page))
        .route("/upload", get(upload_page))
        .route("/ui/upload", post(upload))
        .route("/ui/uploads/{sha256}", get(upload_status))
        .route("/assets/dashboard.css", get(style))
        .route("/assets/dashboard.js", get(script))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(hub)
}

/// Headers every dashboard answer carries.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A signed-in visitor: who, and the session's CSRF token.
struct Visitor {
    caller: Caller,
    csrf: String,
    session: String,
}

/// Pages send a visitor without a session to the sign-in page.
struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/sign-in").into_response()
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<Arc<Hub>> for Visitor {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, SignInFirst> {
        let session = cookie(&parts.headers, COOKIE).ok_or(SignInFirst)?;
        let caller = hub.session(&session).await.map_err(|_| SignInFirst)?;
        Ok(Visitor {
            csrf: hub.csrf(&session),
            caller,
            session,
        })
    }
}

/// A request that changes something must come from this hub's own pages
/// (same origin) with the session's CSRF token: else the 403 to answer.
fn refusal(
    hub: &Hub,
    visitor: &Visitor,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Option<Response> {
    let refused = |why: &str| {
        let page = pages::problem(&visitor.caller, "Refused", why);
        Some((StatusCode::FORBIDDEN, html(page)).into_response())
    };
    if !same_origin(headers) {
        return refused("the request came from another site's page");
    }
    let given = csrf.or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
    if !given.is_some_and(|given| hub.csrf_ok(&visitor.session, given)) {
        return refused(
            "the form is stale or was not made by this dashboard: reload the page and try again",
        );
    }
    None
}

/// True unless the request names an `Origin` other than its own host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority == host)
}

/// True when the request reached the hub on a loopback name, where a
/// browser keeps a cookie without `Secure` and nothing crosses a network.
fn loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True when a proxy in front of the hub says the browser used HTTPS.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn html(markup: maud::Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn sign_in_page(headers: HeaderMap) -> Response {
    html(pages::sign_in(None, plain_http_refused(&headers)))
}

/// Why signing in is refused on this connection: a session cookie on
/// plain HTTP across a network could be read on the way.
fn plain_http_refused(headers: &HeaderMap) -> Option<&'static str> {
    (!loopback(headers) && !over_https(headers)).then_some(
        "This hub is reached over plain HTTP from another machine, so the dashboard does not \
         sign in here: serve it behind an HTTPS proxy that sets X-Forwarded-Proto: https, or \
         open it on the hub's own machine (http://127.0.0.1:PORT/).",
    )
}

#[derive(serde::Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    form: Result<axum::Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        let page = pages::sign_in(Some("the form came from another site's page"), None);
        return (StatusCode::FORBIDDEN, html(page)).into_response();
    }
    if let Some(why) = plain_http_refused(&headers) {
        return (StatusCode::FORBIDDEN, html(pages::sign_in(None, Some(why)))).into_response();
    }
    let Ok(axum::Form(form)) = form else {
        let page = pages::sign_in(Some("paste an API token (nh_…) into the field"), None);
        return (StatusCode::BAD_REQUEST, html(page)).into_response();
    };
    match hub.sign_in(&form.token).await {
        Ok((session, _)) => {
            let secure = if loopback(&headers) { "" } else { "; Secure" };
            let cookie = format!(
                "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                crate::hub::session::SESSION_SECONDS
            );
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, "/".into())],
            )
                .into_response()
        }
        Err(HubError::Unavailable(why)) => {
            let page = pages::sign_in(Some(&why), None);
            (StatusCode::SERVICE_UNAVAILABLE, html(page)).into_response()
        }
        Err(_) => {
            let page = pages::sign_in(
                Some(
                    "that token is unknown, revoked or expired; create one with \
                     `node-host hub token create --account NAME`",
                ),
                None,
            );
            (StatusCode::UNAUTHORIZED, html(page)).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn sign_out(
    State(hub): State<Arc<Hub>>,
    visitor: Visitor,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refusal(&hub, &visitor, &headers, form.csrf.as_deref()) {
        return refused;
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/sign-in".into()),
        ],
    )
        .into_response()
}

async fn overview(State(hub): State<Arc<Hub>>, visitor: Visitor) -> Response {
    let caller = &visitor.caller;
    let uploaded = hub.uploaded_nodes(caller);
    let listed = hub.list_nodes(caller);
    let workers = hub.worker_links(caller.account);
    let events = hub.events(caller, None, None, Some(20)).await;
    let kept = hub.history_kept(caller.account).await;
    match (events, kept) {
        (Ok(events), Ok(kept)) => html(pages::overview(
            &visitor.caller,
            &visitor.csrf,
            &pages::Overview {
                uploaded: &uploaded,
                listed: &listed,
                workers: &workers,
                events: &events,
                kept,
            },
        )),
        (Err(err), _) | (_, Err(err)) => failed(&visitor.caller, &err),
    }
}

fn failed(caller: &Caller, err: &HubError) -> Response {
    let status = super::error::status(err);
    let page = pages::problem(caller, err.code(), &err.to_string());
    (status, html(page)).into_response()
}

/// What a node page shows besides the node: the answer of a "try it".
#[derive(Default)]
struct Tried {
    inputs: Option<String>,
    answer: Option<Result<Json, (String, String)>>,
}

async fn node_page(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    visitor: Visitor,
) -> Response {
    render_node(&hub, &visitor, &name, Tried::default()).await
}

async fn render_node(hub: &Arc<Hub>, visitor: &Visitor, name: &str, tried: Tried) -> Response {
    let caller = &visitor.caller;
    let node = match hub.uploaded_node(caller, name).await {
        Ok(node) => Some(node),
        Err(HubError::UnknownNode(_)) => None,
        Err(err) => return failed(caller, &err),
    };
    let registered = hub
        .list_nodes(caller)
        .nodes
        .into_iter()
        .find(|listed| listed.name == name);
    if node.is_none() && registered.is_none() {
        let err = HubError::UnknownNode(format!(
            "this account has no node `{name}` (upload it, or serve it with `node-host run`)"
        ));
        return failed(caller, &err);
    }
    let versions = match &node {
        Some(_) => match hub.node_versions(caller, name).await {
            Ok(versions) => Some(versions),
            Err(err) => return failed(caller, &err),
        },
        None => None,
    };
    let grant = match &node {
        Some(_) => hub.http_grant(caller, name).await.ok(),
        None => None,
    };
    let secrets = hub.secret_names(caller).await.unwrap_or_default();
    let config = match hub.node_config(caller, name).await {
        Ok(config) => config,
        Err(err) => return failed(caller, &err),
    };
    let events = match hub.events(caller, Some(name), None, Some(20)).await {
        Ok(events) => events,
        Err(err) => return failed(caller, &err),
    };
    let stats = hub.node_stats(caller.account, name);
    html(pages::node(
        caller,
        &visitor.csrf,
        &pages::NodeView {
            name,
            node: node.as_ref(),
            registered: registered.as_ref(),
            versions: versions.as_ref(),
            grant: grant.as_ref(),
            secrets: &secrets,
            config: &config,
            events: &events,
            stats: &stats,
            tried_inputs: tried.inputs.as_deref(),
            answer: tried.answer.as_ref(),
        },
    ))
}

#[derive(serde::Deserialize)]
struct TryForm {
    csrf: Option<String>,
    inputs: String,
}

async fn try_node(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    visitor: Visitor,
    headers: HeaderMap,
    axum::Form(form): axum::Form<TryForm>,
) -> Response {
    if let Some(refused) = refusal(&hub, &visitor, &headers, form.csrf.as_deref()) {
        return refused;
    }
    let answer = match serde_json::from_str::<Json>(&form.inputs) {
        Ok(Json::Object(inputs)) => hub
            .execute(
                &visitor.caller,
                &name,
                ExecuteRequest {
                    inputs,
                    timeout_ms: None,
                },
            )
            .await
            .map(|response| serde_json::to_value(response).unwrap_or_default())
            .map_err(|err| (err.code().to_owned(), err.to_string())),
        Ok(_) => Err((
            "invalid_request".to_owned(),
            "the inputs must be a JSON object, e.g. {\"name\": \"Ada\"}".to_owned(),
        )),
        Err(err) => Err((
            "invalid_request".to_owned(),
            format!("the inputs are not JSON: {err}"),
        )),
    };
    let tried = Tried {
        inputs: Some(form.inputs),
        answer: Some(answer),
    };
    render_node(&hub, &visitor, &name, tried).await
}

#[derive(serde::Deserialize)]
struct RollbackForm {
    csrf: Option<String>,
    version: i64,
}

async fn rollback(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    visitor: Visitor,
    headers: HeaderMap,
    axum::Form(form): axum::Form<RollbackForm>,
) -> Response {
    if let Some(refused) = refusal(&hub, &visitor, &headers, form.csrf.as_deref()) {
        return refused;
    }
    match hub.rollback(&visitor.caller, &name, form.version).await {
        Ok(_) => Redirect::to(&format!("/nodes/{}", pages::path_segment(&name))).into_response(),
        Err(err) => failed(&visitor.caller, &err),
    }
}

#[derive(serde::Deserialize)]
struct ConfigForm {
    csrf: Option<String>,
    key: String,
    /// Absent: remove the key.
    value: Option<String>,
}

async fn configure(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    visitor: Visitor,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ConfigForm>,
) -> Response {
    if let Some(refused) = refusal(&hub, &visitor, &headers, form.csrf.as_deref()) {
        return refused;
    }
    let key = form.key.trim();
    match hub
        .set_node_config(&visitor.caller, &name, key, form.value.as_deref())
        .await
    {
        Ok(_) => Redirect::to(&format!("/nodes/{}", pages::path_segment(&name))).into_response(),
        Err(err) => failed(&visitor.caller, &err),
    }
}

#[derive(serde::Deserialize)]
struct EventsFilter {
    node: Option<String>,
}

async fn events_page(
    State(hub): State<Arc<Hub>>,
    visitor: Visitor,
    Query(filter): Query<EventsFilter>,
) -> Response {
    let node = filter.node.filter(|node| !node.is_empty());
    let caller = &visitor.caller;
    match hub.events(caller, node.as_deref(), None, Some(200)).await {
        Ok(events) => html(pages::events(
            caller,
            &visitor.csrf,
            node.as_deref(),
            &events,
        )),
        Err(err) => failed(caller, &err),
    }
}

async fn upload_page(visitor: Visitor) -> Response {
    html(pages::upload(&visitor.caller, &visitor.csrf))
}

/// The dashboard's upload: the body is the component, the answer the
/// API's (`POST /api/nodes`), for the page's script.
async fn upload(
    State(hub): State<Arc<Hub>>,
    visitor: Result<Visitor, SignInFirst>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(visitor) = visitor else {
        return HubError::InvalidToken.into_response();
    };
    if let Some(refused) = refusal(&hub, &visitor, &headers, None) {
        return refused;
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_UPLOAD_BYTES).await else {
        return upload_too_large().into_response();
    };
    match hub.upload(&visitor.caller, bytes).await {
        Ok(answer) => super::routes::upload_answer(answer, true),
        Err(err) => err.into_response(),
    }
}

async fn upload_status(
    State(hub): State<Arc<Hub>>,
    Path(sha256): Path<String>,
    visitor: Result<Visitor, SignInFirst>,
) -> Response {
    let Ok(visitor) = visitor else {
        return HubError::InvalidToken.into_response();
    };
    match hub.upload_status(&visitor.caller, &sha256) {
        Ok(answer) => super::routes::upload_answer(answer, false),
        Err(err) => err.into_response(),
    }
}

/// The inputs a "try it" form starts with: each input of the node, empty.
fn input_template(inputs: &[Json]) -> String {
    let template: Map<String, Json> = inputs
        .iter()
        .filter_map(|port| port["name"].as_str())
        .map(|name| (name.to_owned(), json!("")))
        .collect();
    serde_json::to_string_pretty(&Json::Object(template)).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let headers = headers(&[("cookie", "a=1; nh_session=abc.def"), ("cookie", "b=2")]);
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc.def"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn only_the_hubs_own_origin_passes() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8765")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8765"),
            ("origin", "http://127.0.0.1:8765")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8765"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[("origin", "null")])));
    }

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in ["127.0.0.1:8765", "localhost:1", "[::1]:80", "localhost"] {
            assert!(loopback(&headers(&[("host", host)])), "{host}");
        }
        for host in ["hub.example.com", "10.0.0.5:8765", ""] {
            assert!(!loopback(&headers(&[("host", host)])), "{host}");
        }
        let proxied = headers(&[("host", "hub.example.com"), ("x-forwarded-proto", "https")]);
        assert!(plain_http_refused(&proxied).is_none());
        assert!(plain_http_refused(&headers(&[("host", "hub.example.com")])).is_some());
    }

    #[test]
    fn the_try_form_starts_with_every_input() {
        let inputs = vec![json!({"name": "a"}), json!({"name": "b"})];
        assert_eq!(
            input_template(&inputs),
            "{\n  \"a\": \"\",\n  \"b\": \"\"\n}"
        );
        assert_eq!(input_template(&[]), "{}");
    }
}
