//! Hubs that share one store (PostgreSQL, `--database`): how a hub learns
//! of uploads another hub took. The store's record of an upload is the
//! truth; each hub's catalog follows it:
//!
//! - at once, when an event or a request names a node this hub does not
//!   have (the upload is read from the store and its component from the
//!   shared components directory, then compiled into this hub's own
//!   cache: a hub never runs an artifact it did not make);
//! - and every recheck period (10 s), for every upload: new ones are
//!   loaded, replaced ones loaded anew, deleted ones dropped.
//!
//! A hub on its own (SQLite) is the only writer of its store and never
//! looks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Hub;
use super::catalog::InstalledNode;
use crate::core::AccountId;

impl Hub {
    /// Reads the store's record of the account's node `name` and brings
    /// this hub's copy in line with it: loads it when it is new or
    /// replaced, drops it when it was deleted. A store that cannot be
    /// reached changes nothing.
    pub(super) async fn follow_upload(self: &Arc<Self>, account: AccountId, name: &str) {
        // What this hub had before asking: installed over only if unchanged,
        // so an older version never replaces one uploaded here meanwhile.
        let seen = self
            .catalog
            .get(account, name)
            .map(|node| node.record.sha256.clone());
        let record = match self.store.uploaded(account, name).await {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(account, node = %name, "cannot look the upload up: {err}");
                return;
            }
        };
        let Some(record) = record else {
            if let Some(sha256) = seen
                && self.catalog.remove_if(account, name, &sha256)
            {
                // Deleted through another hub: the events in flight finish.
                tracing::info!(account, node = %name, sha256, "an upload was deleted through another hub");
            }
            return;
        };
        if seen.as_deref() == Some(record.sha256.as_str()) {
            return;
        }
        // One load at a time per hub: many events for a node new here wait
        // for one compile, not one each.
        let _loading = self.following.lock().await;
        let now = self
            .catalog
            .get(account, name)
            .map(|node| node.record.sha256.clone());
        if now.as_deref() == Some(record.sha256.as_str()) || now != seen {
            return;
        }
        let sha256 = record.sha256.clone();
        match self.load_stored(account, &sha256).await {
            Ok((component, _compiled)) => {
                let node = InstalledNode {
                    component: Arc::new(component),
                    record,
                };
                if self.catalog.install_over(account, node, seen.as_deref()) {
                    self.announce(&sha256);
                    tracing::info!(account, node = %name, sha256, "loaded an upload taken by another hub");
                }
            }
            Err(why) => tracing::error!(
                account,
                node = %name,
                sha256,
                "cannot load an upload taken by another hub: {why}"
            ),
        }
    }

    /// Every `period`, follows every upload that differs between the store
    /// and this hub, for as long as the hub lives.
    pub(super) async fn follow_uploads(hub: Weak<Self>, period: Duration) {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            if hub.restored().pending > 0 {
                continue;
            }
            let uploaded = match hub.store.all_uploaded().await {
                Ok(uploaded) => uploaded,
                Err(err) => {
                    tracing::warn!("cannot read the uploads to follow other hubs: {err}");
                    continue;
                }
            };
            let stored: HashMap<(AccountId, String), String> = uploaded
                .into_iter()
                .map(|(account, record)| ((account, record.name), record.sha256))
                .collect();
            let mut differ: HashSet<(AccountId, String)> = stored
                .iter()
                .filter(|((account, name), sha256)| {
                    hub.catalog
                        .get(*account, name)
                        .is_none_or(|node| &node.record.sha256 != *sha256)
                })
                .map(|(key, _)| key.clone())
                .collect();
            differ.extend(
                hub.catalog
                    .installed_names()
                    .into_iter()
                    .filter(|key| !stored.contains_key(key)),
            );
            for (account, name) in differ {
                hub.follow_upload(account, &name).await;
            }
        }
    }
}
