//! The dashboard's pages. maud escapes every `(value)` it writes, so what a
//! tenant or a guest controls (names, outputs, logs, messages) is text on
//! the page, never markup; nothing here writes raw HTML from data.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value as Json;

use crate::core::clock::{utc_millis, utc_minutes};
use crate::hub::service::stats::MinuteFigures;
use crate::hub::store::{Caller, HistoryEvent};
use crate::hub::switchboard::LinkView;
use crate::protocol::hosted::EventLogs;
use crate::protocol::hurozo::{ListedNode, NodeList};

/// `name` as one segment of a URL path.
pub fn path_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn layout(caller: Option<&Caller>, csrf: Option<&str>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = csrf {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · node-host" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "node-host" }
                    @if let Some(caller) = caller {
                        nav {
                            a href="/" { "Nodes" }
                            a href="/events" { "Events" }
                            a href="/upload" { "Upload" }
                        }
                        span.account {
                            "Account " strong #account { (caller.account_name) }
                            @if caller.read_only { " (read-only token)" }
                        }
                        @if let Some(csrf) = csrf {
                            form.inline method="post" action="/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in page, with what went wrong last time.
pub fn sign_in(error: Option<&str>, refused: Option<&str>) -> Markup {
    layout(
        None,
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(refused) = refused {
                p.error #sign-in-refused { (refused) }
            } @else {
                p { "Paste an API token of your account. The dashboard keeps a session for 12 hours in a cookie no script can read; the token itself is not kept." }
                @if let Some(error) = error {
                    p.error #sign-in-error { (error) }
                }
                form method="post" action="/sign-in" {
                    label for="token" { "API token" }
                    input #token type="password" name="token" placeholder="nh_…" autocomplete="off" required;
                    button #sign-in type="submit" { "Sign in" }
                }
                p.hint { "No token? The hub's operator makes one with " code { "node-host hub token create --account NAME" } "." }
            }
        },
    )
}

/// A page that says why something could not be done.
pub fn problem(caller: &Caller, code: &str, message: &str) -> Markup {
    layout(
        Some(caller),
        None,
        "Problem",
        html! {
            h1 { "Could not do that" }
            p.error #problem { (message) " " span.code { "[" (code) "]" } }
            p { a href="/" { "Back to the nodes" } }
        },
    )
}

/// What the overview shows.
pub struct Overview<'a> {
    /// `GET /api/nodes`.
    pub uploaded: &'a Json,
    /// Every node of the account (uploaded and registered by workers).
    pub listed: &'a NodeList,
    /// The account's worker connections.
    pub workers: &'a [LinkView],
    /// Its newest events.
    pub events: &'a [HistoryEvent],
    /// Events kept, and the most kept.
    pub kept: (u64, u64),
}

/// The overview: nodes, workers, recent events.
pub fn overview(caller: &Caller, csrf: &str, view: &Overview<'_>) -> Markup {
    let uploaded: Vec<&Json> = view.uploaded["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().collect())
        .unwrap_or_default();
    let is_uploaded = |name: &str| uploaded.iter().any(|node| node["name"] == name);
    let registered: Vec<&ListedNode> = view
        .listed
        .nodes
        .iter()
        .filter(|node| !is_uploaded(&node.name))
        .collect();
    layout(
        Some(caller),
        Some(csrf),
        "Nodes",
        html! {
            h1 { "Nodes" }
            @if uploaded.is_empty() && registered.is_empty() {
                p #no-nodes { "No nodes yet. " a href="/upload" { "Upload a .wasm node" } ", or serve one with " code { "node-host run" } "." }
            }
            @if !uploaded.is_empty() {
                h2 { "Uploaded" }
                table #uploaded-nodes {
                    thead { tr { th { "Node" } th { "Language" } th { "Version" } th { "Inputs" } th { "Outputs" } th { "Secrets" } th { "Size" } th { "Status" } } }
                    tbody {
                        @for node in &uploaded {
                            @let name = node["name"].as_str().unwrap_or_default();
                            tr data-node=(name) {
                                td { a.node-link href={ "/nodes/" (path_segment(name)) } { (name) } }
                                td.language { (node["language"].as_str().unwrap_or("?")) }
                                td { "v" (node["version"]) }
                                td { (port_names(&node["info"]["inputs"])) }
                                td { (port_names(&node["info"]["outputs"])) }
                                td { (strings(&node["info"]["secrets"])) }
                                td { (size(node["size"].as_u64().unwrap_or(0))) }
                                td.ok { "compiled, ready" }
                            }
                        }
                    }
                }
            }
            @if !registered.is_empty() {
                h2 { "Served by workers" }
                table #registered-nodes {
                    thead { tr { th { "Node" } th { "Inputs" } th { "Outputs" } } }
                    tbody {
                        @for node in &registered {
                            tr {
                                td { a.node-link href={ "/nodes/" (path_segment(&node.name)) } { (node.name) } }
                                td { (node.inputs.join(", ")) }
                                td { (node.outputs.join(", ")) }
                            }
                        }
                    }
                }
            }
            h2 { "Workers" }
            @if view.workers.is_empty() {
                p #no-workers { "No worker of this account is connected to this hub." }
            } @else {
                table #workers {
                    thead { tr { th { "Connection" } th { "Nodes" } th { "In flight" } th { "Connected" } th { "Last reply" } } }
                    tbody {
                        @for link in view.workers {
                            tr {
                                td { "#" (link.id) }
                                td { (link.nodes.join(", ")) }
                                td { (link.in_flight) }
                                td { (utc_minutes(link.connected_at)) }
                                td { @match link.replied_ago { Some(ago) => { (format!("{:.1} s ago", ago.as_secs_f64())) }, None => { "none yet" } } }
                            }
                        }
                    }
                }
            }
            h2 { "Recent events" }
            p.hint { (view.kept.0) " events kept of at most " (view.kept.1) ". " a href="/events" { "All kept events" } }
            (event_list(view.events))
        },
    )
}

/// What a node's page shows.
pub struct NodeView<'a> {
    /// The node's name.
    pub name: &'a str,
    /// `GET /api/nodes/{name}` when it is uploaded.
    pub node: Option<&'a Json>,
    /// Its registration, when a worker serves it.
    pub registered: Option<&'a ListedNode>,
    /// `GET /api/nodes/{name}/versions`.
    pub versions: Option<&'a Json>,
    /// `GET /api/nodes/{name}/grant`.
    pub grant: Option<&'a Json>,
    /// `GET /api/secrets`.
    pub secrets: &'a Json,
    /// `GET /api/nodes/{name}/config`.
    pub config: &'a Json,
    /// Its newest events.
    pub events: &'a [HistoryEvent],
    /// Its last hour.
    pub stats: &'a [MinuteFigures],
    /// The inputs last tried.
    pub tried_inputs: Option<&'a str>,
    /// The answer to them: the execute answer, or its code and message.
    pub answer: Option<&'a Result<Json, (String, String)>>,
}

/// One node: what it is, its versions, its last hour, "try it", its events.
pub fn node(caller: &Caller, csrf: &str, view: &NodeView<'_>) -> Markup {
    let name = view.name;
    let action = |what: &str| format!("/nodes/{}/{what}", path_segment(name));
    let inputs = view
        .node
        .and_then(|node| node["info"]["inputs"].as_array().cloned())
        .or_else(|| {
            view.registered.map(|node| {
                node.inputs
                    .iter()
                    .map(|name| serde_json::json!({"name": name}))
                    .collect()
            })
        })
        .unwrap_or_default();
    let set_secrets: Vec<&str> = view.secrets["secrets"]
        .as_array()
        .map(|secrets| secrets.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    layout(
        Some(caller),
        Some(csrf),
        name,
        html! {
            h1 #node-name { (name) }
            @if let Some(node) = view.node {
                @let info = &node["info"];
                p.description { (info["description"].as_str().unwrap_or_default()) }
                dl.facts {
                    dt { "Version" } dd #node-version { "v" (node["version"]) }
                    dt { "Language" } dd #node-language { (node["language"].as_str().unwrap_or("not recorded by its toolchain")) }
                    dt { "Status" } dd.ok { "compiled, ready" }
                    dt { "Size" } dd { (size(node["size"].as_u64().unwrap_or(0))) }
                    dt { "sha256" } dd { code { (node["sha256"].as_str().unwrap_or_default()) } }
                    dt { "Uploaded" } dd { (utc_minutes(node["uploaded_at"].as_i64().unwrap_or(0))) }
                    dt { "Inputs" } dd { (ports(&info["inputs"])) }
                    dt { "Outputs" } dd { (ports(&info["outputs"])) }
                    dt { "Secrets" } dd {
                        @for secret in info["secrets"].as_array().into_iter().flatten() {
                            @let secret = secret.as_str().unwrap_or_default();
                            span.tag.(if set_secrets.contains(&secret) { "ok" } else { "missing" }) {
                                (secret) @if !set_secrets.contains(&secret) { " (not set)" }
                            }
                            " "
                        }
                    }
                    dt { "HTTP grant" } dd {
                        @match view.grant.and_then(|grant| grant["allow"].as_array()).filter(|allow| !allow.is_empty()) {
                            Some(allow) => { (strings(&Json::Array(allow.clone()))) },
                            None => { "none: the node reaches no network" },
                        }
                    }
                }
            } @else {
                p { "Served by this account's workers (" code { "node-host run" } "); the hub keeps no versions of it." }
            }

            @if view.node.is_some() {
                h2 { "Configuration" }
                p.hint { "Values the node reads like secrets (" code { "host.secret(key)" } ", for a key it declares), shown to this account. A key set here is read before an account secret of the same name." }
                @let config = view.config["config"].as_object().cloned().unwrap_or_default();
                @if !config.is_empty() {
                    table #config {
                        tbody {
                            @for (key, value) in &config {
                                tr data-key=(key) {
                                    td { code { (key) } }
                                    td { (value.as_str().unwrap_or_default()) }
                                    td {
                                        @if !caller.read_only {
                                            form.inline method="post" action=(action("config")) {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="key" value=(key);
                                                button type="submit" { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !caller.read_only {
                    form #config-form.inline method="post" action=(action("config")) {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="config-key" { "Key " }
                        input #config-key type="text" name="key" required;
                        label for="config-value" { " Value " }
                        input #config-value type="text" name="value";
                        " "
                        button type="submit" { "Set" }
                    }
                }
            }

            h2 { "Last hour" }
            (charts(view.stats))

            h2 { "Try it" }
            form #try-form method="post" action=(action("try")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="inputs" { "Inputs (a JSON object)" }
                textarea #inputs name="inputs" rows="6" spellcheck="false" {
                    (view.tried_inputs.map_or_else(|| super::input_template(&inputs), str::to_owned))
                }
                button #try type="submit" { "Execute" }
            }
            @if let Some(answer) = view.answer {
                @match answer {
                    Ok(answer) => {
                        h3 { "Outputs" }
                        pre #try-output.ok { (serde_json::to_string_pretty(&answer["outputs"]).unwrap_or_default()) }
                        p.hint { "Event " code { (answer["uuid"].as_str().unwrap_or_default()) } }
                    },
                    Err((code, message)) => {
                        h3 { "Failed" }
                        pre #try-error.error { (code) ": " (message) }
                    },
                }
            }

            @if let Some(versions) = view.versions {
                h2 { "Versions" }
                table #versions {
                    thead { tr { th { "Version" } th { "Uploaded" } th { "Size" } th { "sha256" } th {} } }
                    tbody {
                        @for version in versions["versions"].as_array().into_iter().flatten() {
                            tr data-version=(version["version"]) {
                                td { "v" (version["version"]) }
                                td { (utc_minutes(version["uploaded_at"].as_i64().unwrap_or(0))) }
                                td { (size(version["size"].as_u64().unwrap_or(0))) }
                                td { code { (short(version["sha256"].as_str().unwrap_or_default())) } }
                                td {
                                    @if version["current"] == true {
                                        strong.current { "current" }
                                    } @else if !caller.read_only {
                                        form.inline.rollback method="post" action=(action("rollback")) {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="version" value=(version["version"]);
                                            button type="submit" { "Roll back to v" (version["version"]) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }

            h2 { "Recent events" }
            p.hint { a href={ "/events?node=" (path_segment(name)) } { "All kept events of " (name) } }
            (event_list(view.events))
        },
    )
}

/// The account's kept events, newest first, of one node or all.
pub fn events(caller: &Caller, csrf: &str, node: Option<&str>, events: &[HistoryEvent]) -> Markup {
    layout(
        Some(caller),
        Some(csrf),
        "Events",
        html! {
            h1 { "Events" @if let Some(node) = node { " of " (node) } }
            form.inline method="get" action="/events" {
                label for="node-filter" { "Node " }
                input #node-filter type="text" name="node" value=(node.unwrap_or_default());
                button type="submit" { "Filter" }
            }
            (event_list(events))
        },
    )
}

/// Events, newest first, each with its error and what it printed.
fn event_list(events: &[HistoryEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.hint.no-events { "No events kept yet." }
        } @else {
            ol.events {
                @for event in events.iter().rev() {
                    @let outcome = event.outcome.as_deref().unwrap_or("?");
                    @let logs = event.logs.as_deref().and_then(|logs| serde_json::from_str::<EventLogs>(logs).ok());
                    li.event.(if outcome == "ok" { "ok" } else { "failed" }) data-uuid=(event.uuid) {
                        details {
                            summary {
                                span.when { (utc_millis(event.at_ms)) }
                                " " a.node href={ "/nodes/" (path_segment(&event.node)) } { (event.node) }
                                @if let Some(version) = event.version { " v" (version) }
                                " " span.outcome { (outcome) }
                                @if let Some(us) = event.duration_us { " " span.duration { (format!("{:.1} ms", us as f64 / 1000.0)) } }
                                @if let Some(fuel) = event.fuel { " " span.fuel { "fuel " (fuel) } }
                                @if let Some(caller) = event.caller { " " span.caller { "token #" (caller) } }
                            }
                            p.hint { "Event " code { (event.uuid) }
                                @if let Some(ran) = &event.ran { @if Some(ran.as_str()) != event.outcome.as_deref() { "; the sandbox ended with " code { (ran) } } }
                            }
                            @if let Some(message) = &event.message {
                                pre.message.error { (message) }
                            }
                            @if let Some(logs) = &logs {
                                @if !logs.stdout.is_empty() { h4 { "stdout" } pre.stdout { (logs.stdout) } }
                                @if !logs.stderr.is_empty() { h4 { "stderr" } pre.stderr { (logs.stderr) } }
                                @if !logs.log.is_empty() {
                                    h4 { "log" }
                                    pre.log {
                                        @for entry in &logs.log { (entry.level) ": " (entry.message) "\n" }
                                    }
                                }
                                @if logs.truncated { p.truncated { "Output was cut at the account's log limit." } }
                                @if logs.stdout.is_empty() && logs.stderr.is_empty() && logs.log.is_empty() {
                                    p.hint { "It printed and logged nothing." }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The upload page: a file, a progress bar, where the upload stands.
pub fn upload(caller: &Caller, csrf: &str) -> Markup {
    layout(
        Some(caller),
        Some(csrf),
        "Upload",
        html! {
            h1 { "Upload a node" }
            @if caller.read_only {
                p.error { "This session's token is read-only: it cannot upload." }
            } @else {
                p { "A WebAssembly component built for node-host's " code { "remote-node" } " world (" code { "node-host new" } " makes a project). Uploading a node of a name you have makes a new version of it." }
                form #upload-form {
                    input #component type="file" accept=".wasm,application/wasm" required;
                    button #upload type="submit" { "Upload" }
                }
                progress #upload-progress max="1" value="0" {}
                p #upload-status aria-live="polite" {}
            }
        },
    )
}

/// Four small charts of the last hour: events, errors, p50 and p99.
fn charts(stats: &[MinuteFigures]) -> Markup {
    let events: Vec<f64> = stats.iter().map(|m| f64::from(m.events)).collect();
    let errors: Vec<f64> = stats.iter().map(|m| f64::from(m.errors)).collect();
    let p50: Vec<Option<f64>> = stats
        .iter()
        .map(|m| m.p50_us.map(|us| us as f64 / 1000.0))
        .collect();
    let p99: Vec<Option<f64>> = stats
        .iter()
        .map(|m| m.p99_us.map(|us| us as f64 / 1000.0))
        .collect();
    let total: u32 = stats.iter().map(|m| m.events).sum();
    let failed: u32 = stats.iter().map(|m| m.errors).sum();
    html! {
        p.hint #hour-summary { (total) " events in the last hour on this hub, " (failed) " failed." }
        div.charts {
            (bars("Events per minute", &events, "bars"))
            (bars("Errors per minute", &errors, "bars errors"))
            (lines("p50 and p99 wait, ms", &p50, &p99))
        }
    }
}

const CHART_W: f64 = 300.0;
const CHART_H: f64 = 80.0;

fn bars(title: &str, values: &[f64], class: &str) -> Markup {
    let top = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let width = CHART_W / values.len().max(1) as f64;
    html! {
        figure.chart {
            figcaption { (title) " (max " (top) ")" }
            svg class=(class) viewBox={ "0 0 " (CHART_W) " " (CHART_H) } role="img" aria-label=(title) {
                @for (i, value) in values.iter().enumerate() {
                    @let height = value / top * CHART_H;
                    rect x=(format!("{:.1}", i as f64 * width)) y=(format!("{:.1}", CHART_H - height))
                        width=(format!("{:.1}", (width - 1.0).max(1.0))) height=(format!("{height:.1}")) {}
                }
            }
        }
    }
}

fn lines(title: &str, p50: &[Option<f64>], p99: &[Option<f64>]) -> Markup {
    let top = p50
        .iter()
        .chain(p99)
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(0.001);
    let step = CHART_W / p50.len().max(1) as f64;
    let at = |values: &[Option<f64>]| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                value.map(|v| ((i as f64 + 0.5) * step, CHART_H - v / top * (CHART_H - 2.0)))
            })
            .collect()
    };
    let points = |values: &[Option<f64>]| -> String {
        at(values)
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        figure.chart {
            figcaption { (title) (format!(" (max {top:.2})")) }
            svg.lines viewBox={ "0 0 " (CHART_W) " " (CHART_H) } role="img" aria-label=(title) {
                polyline.p99 points=(points(p99)) {}
                polyline.p50 points=(points(p50)) {}
                // A minute alone draws no line: each one is a dot too.
                @for (x, y) in at(p99) { circle.p99 cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="1.5" {} }
                @for (x, y) in at(p50) { circle.p50 cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="1.5" {} }
            }
        }
    }
}

fn port_names(ports: &Json) -> String {
    ports
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|port| port["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn ports(ports: &Json) -> Markup {
    html! {
        ul.ports {
            @for port in ports.as_array().into_iter().flatten() {
                li {
                    code { (port["name"].as_str().unwrap_or_default()) }
                    @if port["required"] == true { " (required)" }
                    @if let Some(description) = port["description"].as_str().filter(|d| !d.is_empty()) { ": " (description) }
                }
            }
        }
    }
}

fn strings(values: &Json) -> String {
    values
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            token: 1,
            expires_at: None,
            account: 1,
            account_name: "alice".into(),
            read_only: false,
        }
    }

    #[test]
    fn what_a_guest_or_tenant_controls_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let event = HistoryEvent {
            node: evil.into(),
            uuid: "\"><img src=x onerror=alert(1)>".into(),
            outcome: Some("guest_error".into()),
            message: Some(evil.into()),
            logs: Some(
                serde_json::to_string(&EventLogs {
                    stdout: evil.into(),
                    ..EventLogs::default()
                })
                .unwrap(),
            ),
            ..HistoryEvent::default()
        };
        let page = events(&caller(), "tok", Some(evil), &[event]).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn names_become_one_path_segment() {
        assert_eq!(path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(path_segment("hello"), "hello");
    }

    #[test]
    fn sizes_read_in_their_unit() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(2048), "2.0 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
    }
}
