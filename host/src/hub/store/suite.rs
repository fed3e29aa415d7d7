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
    let node = |sha: &str| UploadedNode {
        name: "hello".into(),
        sha256: sha.into(),
        size: 10,
        uploaded_at: 1,
    };
    let alice = store.account_id("alice").await.unwrap();
    let bob = store.account_id("bob").await.unwrap();
    store.put_uploaded(alice, &node("aa")).await.unwrap();
    store.put_uploaded(alice, &node("bb")).await.unwrap();
    store.put_uploaded(bob, &node("aa")).await.unwrap();
    assert!(store.delete_uploaded(bob, "hello").await.unwrap());
    assert!(!store.delete_uploaded(bob, "hello").await.unwrap());
    assert!(!store.sha256_in_use("aa").await.unwrap());
    assert!(store.sha256_in_use("bb").await.unwrap());
    assert_eq!(
        store.all_uploaded().await.unwrap(),
        vec![(alice, node("bb"))]
    );
    assert_eq!(
        store.uploaded(alice, "hello").await.unwrap(),
        Some(node("bb"))
    );
    assert_eq!(store.uploaded(bob, "hello").await.unwrap(), None);
    assert_eq!(store.uploads_of(alice).await.unwrap(), vec![node("bb")]);
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
