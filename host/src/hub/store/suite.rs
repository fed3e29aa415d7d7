//! The tests every [`Store`] implementation passes: each implementation's
//! own tests call [`run`] on a fresh, empty store.

use super::{
    ExosphereRecord, LimitSettings, Sealed, Store, StoreError, TOKEN_PREFIX, TokenKind,
    UploadedNode, WORKER_TOKEN_PREFIX, unix_seconds,
};

/// Runs every shared test on `store`, which must be empty.
pub async fn run(store: &dyn Store) {
    tokens_authenticate_their_account_only(store).await;
    worker_tokens_are_not_account_tokens(store).await;
    tokens_are_listed_expire_and_are_revoked(store).await;
    account_names_are_checked(store).await;
    uploads_and_limits_are_per_account(store).await;
    secrets_are_per_account(store).await;
    http_origins_are_per_account_and_node(store).await;
    the_signing_key_is_kept(store).await;
    a_claimed_setting_keeps_its_first_value(store).await;
    exosphere_records_replace_by_kind_and_key(store).await;
    versions_are_kept_rolled_back_and_pruned(store).await;
    history_merges_into_rows_and_keeps_its_retention(store).await;
    node_config_is_per_account_and_node(store).await;
}

async fn node_config_is_per_account_and_node(store: &dyn Store) {
    let gil = new_account(store, "gil").await;
    let hal = new_account(store, "hal").await;
    assert!(
        store
            .set_node_config(gil, "n", "model", Some("small"))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_node_config(gil, "n", "model", Some("large"))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_node_config(gil, "n", "base", Some("x"))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_node_config(gil, "m", "model", Some("other"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.node_config(gil, "n").await.unwrap(),
        vec![
            ("base".into(), "x".into()),
            ("model".into(), "large".into())
        ]
    );
    assert!(store.node_config(hal, "n").await.unwrap().is_empty());
    assert!(store.set_node_config(gil, "n", "base", None).await.unwrap());
    assert!(!store.set_node_config(gil, "n", "base", None).await.unwrap());
    assert_eq!(store.node_config(gil, "n").await.unwrap().len(), 1);
}

/// A new account named `name`: its id.
async fn new_account(store: &dyn Store, name: &str) -> crate::core::AccountId {
    store.create_token(name, false, None).await.unwrap();
    store.account_id(name).await.unwrap()
}

async fn versions_are_kept_rolled_back_and_pruned(store: &dyn Store) {
    let carol = new_account(store, "carol").await;
    let dave = new_account(store, "dave").await;
    let node = |sha: &str| UploadedNode {
        name: "greet".into(),
        sha256: sha.into(),
        size: 5,
        uploaded_at: 2,
        version: 0,
    };
    for (sha, version) in [("v1", 1), ("v2", 2), ("v3", 3)] {
        let put = store.put_uploaded(carol, &node(sha), 3).await.unwrap();
        assert_eq!((put.version, put.dropped.len()), (version, 0));
    }
    // The same bytes again are the same version.
    let again = store.put_uploaded(carol, &node("v3"), 3).await.unwrap();
    assert_eq!((again.version, again.dropped.len()), (3, 0));
    let kept: Vec<i64> = store
        .versions(carol, "greet")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [3, 2, 1], "newest first");
    assert!(store.sha256_in_use("v1").await.unwrap(), "a kept version");
    let back = store
        .make_current(carol, "greet", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.sha256.as_str(), back.version), ("v1", 1));
    let current = store.uploaded(carol, "greet").await.unwrap().unwrap();
    assert_eq!((current.sha256.as_str(), current.version), ("v1", 1));
    assert_eq!(store.make_current(carol, "greet", 9).await.unwrap(), None);
    assert_eq!(store.make_current(dave, "greet", 1).await.unwrap(), None);
    assert!(store.versions(dave, "greet").await.unwrap().is_empty());
    // A fourth upload becomes current and drops the oldest.
    let put = store.put_uploaded(carol, &node("v4"), 3).await.unwrap();
    assert_eq!(put.version, 4);
    assert_eq!(put.dropped, vec!["v1".to_owned()]);
    let kept: Vec<i64> = store
        .versions(carol, "greet")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [4, 3, 2]);
    let mut removed = store.delete_uploaded(carol, "greet").await.unwrap();
    removed.sort();
    assert_eq!(removed, ["v2", "v3", "v4"]);
    assert!(store.versions(carol, "greet").await.unwrap().is_empty());
    assert!(!store.sha256_in_use("v4").await.unwrap());
}

/// Writes `events` as new rows (or into the row of `into`), keeping each of
/// their accounts to `retention`; answers the rows' ids.
async fn record(
    store: &dyn Store,
    events: Vec<super::HistoryEvent>,
    into: Option<i64>,
    retention: super::Retention,
) -> Vec<i64> {
    let mut accounts: Vec<_> = events.iter().map(|event| event.account).collect();
    accounts.dedup();
    let writes = events
        .into_iter()
        .map(|event| super::HistoryWrite { event, into })
        .collect();
    let prune = accounts
        .into_iter()
        .map(|account| super::Prune {
            account,
            max_age_s: retention.max_age_s,
            newest: Some(retention.events),
        })
        .collect();
    store.record_history(writes, prune).await.unwrap()
}

async fn history_merges_into_rows_and_keeps_its_retention(store: &dyn Store) {
    use super::{HistoryEvent, HistoryQuery, Retention, unix_millis};
    let erin = new_account(store, "erin").await;
    let fay = new_account(store, "fay").await;
    let retention = Retention {
        events: 3,
        max_age_s: 3600,
    };
    let ran = |account, uuid: &str, outcome: &str| HistoryEvent {
        account,
        node: "chatty".into(),
        uuid: uuid.into(),
        at_ms: unix_millis(),
        outcome: Some(outcome.into()),
        ran: Some(outcome.into()),
        fuel: Some(42),
        logs: Some(format!("{{\"stdout\":\"{uuid}\"}}")),
        ..HistoryEvent::default()
    };
    let answered = |account, uuid: &str, outcome: &str| HistoryEvent {
        account,
        node: "chatty".into(),
        uuid: uuid.into(),
        at_ms: unix_millis(),
        caller: Some(7),
        outcome: Some(outcome.into()),
        message: (outcome != "ok").then(|| "gave up".to_owned()),
        duration_us: Some(1500),
        from_caller: true,
        ..HistoryEvent::default()
    };
    let e1 = record(store, vec![ran(erin, "e1", "ok")], None, retention).await;
    let into = record(
        store,
        vec![answered(erin, "e1", "timeout")],
        Some(e1[0]),
        retention,
    )
    .await;
    assert_eq!(into, e1, "a merge answers the row it went into");
    // The sandbox's view arriving after the caller's keeps the caller's outcome.
    let e2 = record(store, vec![answered(erin, "e2", "ok")], None, retention).await;
    record(store, vec![ran(erin, "e2", "trap")], Some(e2[0]), retention).await;
    let all = HistoryQuery {
        limit: 100,
        ..HistoryQuery::default()
    };
    let kept = store.history(erin, &all).await.unwrap();
    assert_eq!(kept.len(), 2);
    let e1 = &kept[0];
    assert_eq!(e1.uuid, "e1");
    assert_eq!(e1.outcome.as_deref(), Some("timeout"));
    assert_eq!(
        e1.ran.as_deref(),
        Some("ok"),
        "what the sandbox did is kept too"
    );
    assert_eq!(e1.message.as_deref(), Some("gave up"));
    assert_eq!(
        (e1.caller, e1.fuel, e1.duration_us),
        (Some(7), Some(42), Some(1500))
    );
    assert_eq!(e1.logs.as_deref(), Some("{\"stdout\":\"e1\"}"));
    assert_eq!(kept[1].outcome.as_deref(), Some("ok"));
    assert_eq!(kept[1].message, None);
    assert_eq!(kept[1].ran.as_deref(), Some("trap"));
    // Retention: the newest three stay; another account's are not counted.
    record(store, vec![ran(fay, "f1", "ok")], None, retention).await;
    let more: Vec<HistoryEvent> = (3..=6).map(|n| ran(erin, &format!("e{n}"), "ok")).collect();
    let ids = record(store, more, None, retention).await;
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    let uuids: Vec<String> = store
        .history(erin, &all)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    assert_eq!(uuids, ["e4", "e5", "e6"]);
    assert_eq!(store.history_count(erin).await.unwrap(), 3);
    assert_eq!(store.history_count(fay).await.unwrap(), 1);
    // Newest `limit`, oldest first; `after` follows.
    let newest = store
        .history(
            erin,
            &HistoryQuery {
                limit: 2,
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|e| e.uuid.as_str()).collect::<Vec<_>>(),
        ["e5", "e6"]
    );
    let after = store
        .history(
            erin,
            &HistoryQuery {
                after: Some(newest[0].id),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.uuid.as_str()).collect::<Vec<_>>(),
        ["e6"]
    );
    let other_node = HistoryQuery {
        node: Some("quiet".into()),
        ..all.clone()
    };
    assert!(store.history(erin, &other_node).await.unwrap().is_empty());
    // Age, on an account of its own: the events older than the retention
    // before its first younger one are gone at the next write; an old one
    // after a younger one goes with it.
    let ivy = new_account(store, "ivy").await;
    let aged = |uuid| {
        let mut event = ran(ivy, uuid, "ok");
        event.at_ms -= 7_200_000;
        event
    };
    let kept = async || -> Vec<String> {
        let events = store.history(ivy, &all).await.unwrap();
        events.into_iter().map(|e| e.uuid).collect()
    };
    record(store, vec![aged("old")], None, retention).await;
    assert!(kept().await.is_empty());
    let events = vec![aged("old-1"), ran(ivy, "young", "ok"), aged("old-2")];
    record(store, events, None, retention).await;
    assert_eq!(kept().await, ["young", "old-2"]);
    // Once the younger one is old too (an hour from now, by a retention of
    // minus an hour), both go.
    let later = Retention {
        max_age_s: -3600,
        ..retention
    };
    let mut newest = ran(ivy, "newest", "ok");
    newest.at_ms += 7_200_000;
    record(store, vec![newest], None, later).await;
    assert_eq!(kept().await, ["newest"]);
    // Not counted this time: only the age prunes.
    let uncounted = vec![super::Prune {
        account: ivy,
        max_age_s: 3600,
        newest: None,
    }];
    let writes = (1..=4)
        .map(|n| super::HistoryWrite {
            event: ran(ivy, &format!("i{n}"), "ok"),
            into: None,
        })
        .collect();
    store.record_history(writes, uncounted).await.unwrap();
    assert_eq!(kept().await, ["newest", "i1", "i2", "i3", "i4"]);
    // Counted with nothing written (a flush): the newest three stay.
    let counted = vec![super::Prune {
        account: ivy,
        max_age_s: 3600,
        newest: Some(3),
    }];
    store.record_history(vec![], counted).await.unwrap();
    assert_eq!(kept().await, ["i2", "i3", "i4"]);
    store.forget_history(erin, "chatty").await.unwrap();
    assert_eq!(store.history_count(erin).await.unwrap(), 0);
    assert_eq!(store.history_count(fay).await.unwrap(), 1);
}

async fn exosphere_records_replace_by_kind_and_key(store: &dyn Store) {
    let alice = store.account_id("alice").await.unwrap();
    let bob = store.account_id("bob").await.unwrap();
    let record = |kind: &str, key: &str, body: &str| ExosphereRecord {
        kind: kind.into(),
        key: key.into(),
        body: Some(body.into()),
    };
    store
        .save_exosphere(
            alice,
            vec![
                record("state", "s1", "{\"v\":1}"),
                record("run", "r1", "{}"),
            ],
        )
        .await
        .unwrap();
    store
        .save_exosphere(alice, vec![record("state", "s1", "{\"v\":2}")])
        .await
        .unwrap();
    store
        .save_exosphere(bob, vec![record("state", "s1", "{\"bob\":true}")])
        .await
        .unwrap();
    store
        .save_exosphere(
            alice,
            vec![ExosphereRecord {
                kind: "run".into(),
                key: "r1".into(),
                body: None,
            }],
        )
        .await
        .unwrap();
    let mut records = store.exosphere_records().await.unwrap();
    records.sort_by(|a, b| (a.0, &a.1.kind, &a.1.key).cmp(&(b.0, &b.1.kind, &b.1.key)));
    let alices: Vec<_> = records
        .iter()
        .filter(|(account, _)| *account == alice)
        .collect();
    assert_eq!(alices.len(), 1, "the run was deleted");
    assert!(alices.contains(&&(alice, record("state", "s1", "{\"v\":2}"))));
    assert!(records.contains(&(bob, record("state", "s1", "{\"bob\":true}"))));
}

async fn tokens_authenticate_their_account_only(store: &dyn Store) {
    let alice = store
        .create_token("alice", false, None)
        .await
        .unwrap()
        .token;
    let reader = store.create_token("alice", true, None).await.unwrap().token;
    let bob = store.create_token("bob", false, None).await.unwrap().token;
    assert!(alice.starts_with(TOKEN_PREFIX));
    let caller = store.authenticate(&alice).await.unwrap().unwrap();
    assert_eq!(
        (caller.account_name.as_str(), caller.read_only),
        ("alice", false)
    );
    let read_only = store.authenticate(&reader).await.unwrap().unwrap();
    assert_eq!(
        (read_only.account, read_only.read_only),
        (caller.account, true)
    );
    let bob = store.authenticate(&bob).await.unwrap().unwrap();
    assert_ne!(bob.account, caller.account);
    assert_eq!(store.authenticate("nh_forged").await.unwrap(), None);
    assert_eq!(store.account_count().await.unwrap(), 2);
    let mut both = [caller.account, bob.account];
    both.sort();
    assert_eq!(store.account_ids().await.unwrap(), both);
}

async fn worker_tokens_are_not_account_tokens(store: &dyn Store) {
    let worker = store.create_worker_token().await.unwrap();
    let alice = store
        .create_token("alice", false, None)
        .await
        .unwrap()
        .token;
    assert!(worker.token.starts_with(WORKER_TOKEN_PREFIX));
    assert_eq!(
        store.worker_token(&worker.token).await.unwrap(),
        Some(worker.id)
    );
    assert_eq!(store.worker_token(&alice).await.unwrap(), None);
    assert_eq!(store.worker_token("nhw_forged").await.unwrap(), None);
    assert_eq!(store.authenticate(&worker.token).await.unwrap(), None);
    assert_eq!(store.account_count().await.unwrap(), 2, "no account made");
}

async fn tokens_are_listed_expire_and_are_revoked(store: &dyn Store) {
    let now = unix_seconds();
    let lasting = store
        .create_token("dave", true, Some(now + 3600))
        .await
        .unwrap();
    let expired = store
        .create_token("dave", false, Some(now - 1))
        .await
        .unwrap();
    let caller = store.authenticate(&lasting.token).await.unwrap().unwrap();
    assert_eq!(
        (caller.token, caller.expires_at),
        (lasting.id, Some(now + 3600))
    );
    assert_eq!(store.authenticate(&expired.token).await.unwrap(), None);
    assert!(store.token_live(TokenKind::Api, lasting.id).await.unwrap());
    assert!(!store.token_live(TokenKind::Api, expired.id).await.unwrap());

    let listed = store.tokens(TokenKind::Api).await.unwrap();
    let dave: Vec<_> = listed
        .iter()
        .filter(|record| record.account.as_deref() == Some("dave"))
        .collect();
    assert_eq!(dave.len(), 2, "{listed:?}");
    assert_eq!(
        (dave[0].id, dave[0].read_only, dave[0].expires_at),
        (lasting.id, true, Some(now + 3600))
    );
    assert!(dave[0].created_at >= now);

    assert!(
        store
            .revoke_token(TokenKind::Api, lasting.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_token(TokenKind::Api, lasting.id)
            .await
            .unwrap()
    );
    assert_eq!(store.authenticate(&lasting.token).await.unwrap(), None);
    assert!(!store.token_live(TokenKind::Api, lasting.id).await.unwrap());

    let worker = store.create_worker_token().await.unwrap();
    assert!(
        store
            .token_live(TokenKind::Worker, worker.id)
            .await
            .unwrap()
    );
    let workers = store.tokens(TokenKind::Worker).await.unwrap();
    assert!(
        workers
            .iter()
            .any(|record| record.id == worker.id && record.account.is_none())
    );
    assert!(
        store
            .revoke_token(TokenKind::Worker, worker.id)
            .await
            .unwrap()
    );
    assert_eq!(store.worker_token(&worker.token).await.unwrap(), None);
    assert!(
        !store
            .token_live(TokenKind::Worker, worker.id)
            .await
            .unwrap()
    );
}

async fn account_names_are_checked(store: &dyn Store) {
    for bad in ["", "a b", "a/b", &"x".repeat(65)] {
        assert!(matches!(
            store.create_token(bad, false, None).await,
            Err(StoreError::InvalidAccountName(_))
        ));
    }
    assert!(matches!(
        store.account_id("carol").await,
        Err(StoreError::UnknownAccount(_))
    ));
}

async fn uploads_and_limits_are_per_account(store: &dyn Store) {
    let node = |sha: &str, version: i64| UploadedNode {
        name: "hello".into(),
        sha256: sha.into(),
        size: 10,
        uploaded_at: 1,
        version,
    };
    let alice = store.account_id("alice").await.unwrap();
    let bob = store.account_id("bob").await.unwrap();
    // Keeping one version: a new upload drops the one before.
    let put = store.put_uploaded(alice, &node("aa", 0), 1).await.unwrap();
    assert_eq!((put.version, put.dropped), (1, vec![]));
    let put = store.put_uploaded(alice, &node("bb", 0), 1).await.unwrap();
    assert_eq!((put.version, put.dropped), (2, vec!["aa".to_owned()]));
    store.put_uploaded(bob, &node("aa", 0), 1).await.unwrap();
    assert_eq!(
        store.delete_uploaded(bob, "hello").await.unwrap(),
        vec!["aa".to_owned()]
    );
    assert!(
        store
            .delete_uploaded(bob, "hello")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.sha256_in_use("aa").await.unwrap());
    assert!(store.sha256_in_use("bb").await.unwrap());
    assert_eq!(
        store.all_uploaded().await.unwrap(),
        vec![(alice, node("bb", 2))]
    );
    assert_eq!(
        store.uploaded(alice, "hello").await.unwrap(),
        Some(node("bb", 2))
    );
    assert_eq!(store.uploaded(bob, "hello").await.unwrap(), None);
    assert_eq!(store.uploads_of(alice).await.unwrap(), vec![node("bb", 2)]);
    assert_eq!(store.uploads_of(bob).await.unwrap(), vec![]);
    assert_eq!(store.uploaded(alice, "other").await.unwrap(), None);
    for change in [
        LimitSettings {
            fuel: Some(7),
            ..LimitSettings::default()
        },
        LimitSettings {
            queue: Some(3),
            ..LimitSettings::default()
        },
    ] {
        store.set_limits(alice, &change).await.unwrap();
    }
    let limits = store.limits(alice).await.unwrap();
    assert_eq!(
        (limits.fuel, limits.queue, limits.timeout_ms),
        (Some(7), Some(3), None)
    );
    assert_eq!(store.limits(bob).await.unwrap(), LimitSettings::default());
}

async fn secrets_are_per_account(store: &dyn Store) {
    let alice = store.account_id("alice").await.unwrap();
    let bob = store.account_id("bob").await.unwrap();
    let sealed = Sealed {
        nonce: vec![1; 24],
        ciphertext: vec![2; 20],
    };
    store.put_secret(alice, "api-key", &sealed).await.unwrap();
    assert_eq!(store.secret(alice, "api-key").await.unwrap(), Some(sealed));
    assert_eq!(store.secret(bob, "api-key").await.unwrap(), None);
    assert_eq!(store.secret_names(alice).await.unwrap().len(), 1);
    assert!(!store.delete_secret(bob, "api-key").await.unwrap());
    assert!(store.delete_secret(alice, "api-key").await.unwrap());
    assert!(store.secret_names(alice).await.unwrap().is_empty());
}

async fn http_origins_are_per_account_and_node(store: &dyn Store) {
    let alice = store.account_id("alice").await.unwrap();
    let bob = store.account_id("bob").await.unwrap();
    let policy = vec!["https://*.example.com".to_owned()];
    let grant = vec!["https://api.example.com".to_owned()];
    assert_eq!(store.http_origins(alice, None).await.unwrap(), None);
    store
        .set_http_origins(alice, None, Some(policy.clone()))
        .await
        .unwrap();
    store
        .set_http_origins(alice, Some("fetch"), Some(grant.clone()))
        .await
        .unwrap();
    assert_eq!(store.http_origins(alice, None).await.unwrap(), Some(policy));
    assert_eq!(
        store.http_origins(alice, Some("fetch")).await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        store.http_origins(alice, Some("other")).await.unwrap(),
        None
    );
    assert_eq!(store.http_origins(bob, None).await.unwrap(), None);
    assert_eq!(store.http_origins(bob, Some("fetch")).await.unwrap(), None);
    // Replaced, then removed.
    store
        .set_http_origins(alice, Some("fetch"), Some(Vec::new()))
        .await
        .unwrap();
    assert_eq!(
        store.http_origins(alice, Some("fetch")).await.unwrap(),
        Some(Vec::new())
    );
    assert!(
        !store
            .set_http_origins(bob, Some("fetch"), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_http_origins(alice, Some("fetch"), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.http_origins(alice, Some("fetch")).await.unwrap(),
        None
    );
}

async fn the_signing_key_is_kept(store: &dyn Store) {
    let key = store.signing_key().await.unwrap();
    assert_eq!(store.signing_key().await.unwrap(), key);
}

async fn a_claimed_setting_keeps_its_first_value(store: &dyn Store) {
    assert_eq!(
        store.claim_setting("check", b"first").await.unwrap(),
        b"first"
    );
    assert_eq!(
        store.claim_setting("check", b"second").await.unwrap(),
        b"first"
    );
    assert_eq!(store.claim_setting("other", b"x").await.unwrap(), b"x");
}
