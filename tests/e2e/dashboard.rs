//! The hub's dashboard in a real headless Chromium against a real
//! `node-host hub`: signing in, uploading with progress, trying a node,
//! failed events with their errors and logs, rolling back, accounts kept
//! apart, and markup from tenants and guests staying text.

use node_host_e2e::browser::Browser;
use node_host_e2e::{Hub, guest, http, node_host, retagged, run};
use serde_json::json;

async fn upload_in_page(browser: &Browser, hub: &Hub, component: &std::path::Path) -> String {
    browser.goto(&format!("{}/upload", hub.url)).await;
    let file = browser.find("#component").await;
    file.send_keys(component.to_str().unwrap()).await.unwrap();
    browser.find("#upload").await.click().await.unwrap();
    browser.wait_for_text("#upload-status", "Ready").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_uploads_tries_and_rolls_back_in_the_browser() {
    let hub = Hub::start("dash-flow");
    let token = hub.token("alice", false);
    let browser = Browser::start("dash-flow").await;
    browser.sign_in(&hub.url, &token).await;
    assert_eq!(browser.text("#account").await, "alice");
    assert!(browser.text("#no-nodes").await.contains("No nodes yet"));

    // Upload: the progress bar fills, the hub compiles, the node is ready.
    let ready = upload_in_page(&browser, &hub, &guest("hello")).await;
    assert!(ready.contains("hello version 1"), "{ready}");
    let full = "const bar = document.getElementById('upload-progress'); \
                return bar.value === bar.max && bar.max > 0;";
    assert_eq!(
        browser.client.execute(full, vec![]).await.unwrap(),
        json!(true)
    );
    browser.find("#uploaded-node").await.click().await.unwrap();
    browser.wait_for_text("#node-name", "hello").await;
    assert_eq!(browser.text("#node-version").await, "v1");

    // Try it: the outputs come back on the page.
    let inputs = browser.find("#inputs").await;
    inputs.clear().await.unwrap();
    inputs.send_keys(r#"{"name": "Ada"}"#).await.unwrap();
    browser.find("#try").await.click().await.unwrap();
    let output = browser.wait_for_text("#try-output", "Hello Ada").await;
    assert!(output.contains("HELLO ADA"), "{output}");
    // The event is in the node's history, and its minute in the chart.
    browser.wait_for_text("ol.events li.ok", "hello v1").await;
    assert!(browser.text("#hour-summary").await.starts_with("1 events"));

    // A second upload is version 2; rolling back runs version 1 again.
    let scratch = node_host_e2e::scratch_dir("dash-flow-files");
    let second = upload_in_page(&browser, &hub, &retagged("hello", "two", &scratch)).await;
    assert!(second.contains("hello version 2"), "{second}");
    browser.goto(&format!("{}/nodes/hello", hub.url)).await;
    assert_eq!(browser.text("#node-version").await, "v2");
    assert_eq!(browser.count("#versions tbody tr").await, 2);
    browser
        .find("tr[data-version='1'] form.rollback button")
        .await
        .click()
        .await
        .unwrap();
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_text("#node-version", "v1").await;
    // The CLI agrees.
    let versions = run(node_host().args([
        "node",
        "versions",
        "hello",
        "--json",
        "--backend",
        &hub.url,
        "--token",
        &token,
    ]))
    .expect_success()
    .json();
    assert_eq!(versions["current"], 1, "{versions}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_show_their_error_and_log_and_markup_stays_text() {
    let hub = Hub::start("dash-xss");
    let token = hub.token("alice", false);
    hub.upload(&token, "chatty").expect_success();
    // A worker may register any name without `/`: this one is markup.
    let evil_name = "<img src=x onerror=document.title='pwned-by-name'>";
    // (Blocking HTTP off the async threads.)
    let registered = tokio::task::block_in_place(|| {
        http()
            .post(format!("{}/api/remote_nodes/register", hub.url))
            .bearer_auth(&token)
            .json(&json!({"name": evil_name, "inputs": [], "outputs": ["out"]}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(registered, 200);

    let browser = Browser::start("dash-xss").await;
    browser.sign_in(&hub.url, &token).await;
    let listed = browser.text("#registered-nodes").await;
    assert!(
        listed.contains(evil_name),
        "the name is shown as text: {listed}"
    );

    // A guest that prints, logs and fails with markup of the caller's choosing.
    browser.goto(&format!("{}/nodes/chatty", hub.url)).await;
    let line = "<script>document.title='pwned-by-guest'</script><b>bold</b>";
    let inputs = browser.find("#inputs").await;
    inputs.clear().await.unwrap();
    inputs
        .send_keys(&json!({"line": line, "fail": true}).to_string())
        .await
        .unwrap();
    browser.find("#try").await.click().await.unwrap();
    let error = browser.wait_for_text("#try-error", "asked_to_fail").await;
    assert!(error.contains(line), "the message is text: {error}");

    // The events page: the failure with its code, message, stdout and log.
    browser
        .goto(&format!("{}/events?node=chatty", hub.url))
        .await;
    let event = browser.find("ol.events li.failed").await;
    event
        .find(fantoccini::Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = event.text().await.unwrap();
    assert!(text.contains("asked_to_fail"), "{text}");
    assert!(
        text.contains(&format!("warn: {line}")),
        "the log line: {text}"
    );
    assert_eq!(browser.count("ol.events li.failed pre.stdout").await, 1);
    assert_eq!(browser.count("ol.events li.failed pre.log").await, 1);

    // Nothing of it ran: no title change, no element made of it.
    for page in ["/", "/events", "/nodes/chatty"] {
        browser.goto(&format!("{}{page}", hub.url)).await;
        let title = browser.client.title().await.unwrap();
        assert!(!title.contains("pwned"), "{page}: {title}");
        assert_eq!(
            browser.count("main script, main img, main b").await,
            0,
            "{page}"
        );
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_session_sees_none_of_the_first_accounts() {
    let hub = Hub::start("dash-tenants");
    let alice = hub.token("alice", false);
    let bob = hub.token("bob", false);
    hub.upload(&alice, "hello").expect_success();
    let (status, _) = tokio::task::block_in_place(|| {
        node_host_e2e::execute(
            &hub.url,
            &alice,
            "hello",
            json!({"inputs": {"name": "Ada"}}),
        )
    });
    assert_eq!(status, 200);

    let browser = Browser::start("dash-tenants").await;
    browser.sign_in(&hub.url, &bob).await;
    assert_eq!(browser.text("#account").await, "bob");
    assert!(browser.text("#no-nodes").await.contains("No nodes yet"));
    assert_eq!(browser.count("ol.events li").await, 0);
    browser.goto(&format!("{}/nodes/hello", hub.url)).await;
    assert!(browser.text("#problem").await.contains("unknown_node"));
    browser
        .goto(&format!("{}/events?node=hello", hub.url))
        .await;
    assert_eq!(browser.count("ol.events li").await, 0);

    // Signing out ends the session; alice then sees her node and event.
    browser.goto(&format!("{}/", hub.url)).await;
    browser
        .find("header form button")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#token").await;
    browser.goto(&format!("{}/", hub.url)).await;
    browser.wait_for("#token").await;
    browser.sign_in(&hub.url, &alice).await;
    assert_eq!(
        browser.count("#uploaded-nodes tr[data-node='hello']").await,
        1
    );
    assert_eq!(browser.count("ol.events li.ok").await, 1);

    // A wrong token is refused on the page.
    browser
        .find("header form button")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#token").await;
    browser
        .find("#token")
        .await
        .send_keys("nh_wrong")
        .await
        .unwrap();
    browser.find("#sign-in").await.click().await.unwrap();
    browser
        .wait_for_text("#sign-in-error", "unknown, revoked or expired")
        .await;
    browser.close().await;
}
