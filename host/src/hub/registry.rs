//! Registrations: which nodes each account has announced, and until when.
//!
//! Kept in memory on purpose: workers refresh every minute, so after a hub
//! restart the registry fills again within one refresh period. Time is a
//! parameter so expiry is tested without waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::hurozo::{ListedNode, Registration};

/// A registration lapses this long after its last refresh (Hurozo: 10 minutes).
pub const REGISTRATION_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Entry {
    registration: Registration,
    refreshed: Instant,
}

/// Every account's live registrations.
#[derive(Debug, Default)]
pub struct Registry {
    accounts: HashMap<i64, HashMap<String, Entry>>,
}

impl Registry {
    /// Records or refreshes `registration` for `account`; a node's inputs and
    /// outputs are replaced by the newest registration.
    pub fn register(&mut self, account: i64, registration: Registration, now: Instant) {
        self.accounts.entry(account).or_default().insert(
            registration.name.clone(),
            Entry {
                registration,
                refreshed: now,
            },
        );
    }

    /// The live registration of `name` in `account`.
    pub fn get(&self, account: i64, name: &str, now: Instant) -> Option<&Registration> {
        self.accounts
            .get(&account)?
            .get(name)
            .filter(|entry| live(entry, now))
            .map(|entry| &entry.registration)
    }

    /// The account's live registrations, sorted by name.
    pub fn list(&mut self, account: i64, now: Instant) -> Vec<ListedNode> {
        let Some(nodes) = self.accounts.get_mut(&account) else {
            return Vec::new();
        };
        nodes.retain(|_, entry| live(entry, now));
        let mut listed: Vec<ListedNode> = nodes
            .values()
            .map(|entry| ListedNode {
                name: entry.registration.name.clone(),
                inputs: entry.registration.inputs.clone(),
                outputs: entry.registration.outputs.clone(),
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed
    }
}

fn live(entry: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(entry.refreshed) < REGISTRATION_TTL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(outputs: &[&str]) -> Registration {
        Registration {
            name: "hello".into(),
            inputs: vec!["name".into()],
            outputs: outputs.iter().map(|name| name.to_string()).collect(),
        }
    }

    #[test]
    fn registrations_are_per_account_and_refreshable() {
        let mut registry = Registry::default();
        let now = Instant::now();
        registry.register(1, hello(&["greeting"]), now);
        registry.register(1, hello(&["greeting", "shout"]), now);
        assert_eq!(registry.get(1, "hello", now).unwrap().outputs.len(), 2);
        assert!(registry.get(2, "hello", now).is_none());
        assert_eq!(registry.list(1, now).len(), 1);
        assert!(registry.list(2, now).is_empty());
    }

    #[test]
    fn registrations_expire_ten_minutes_after_the_last_refresh() {
        let mut registry = Registry::default();
        let start = Instant::now();
        registry.register(1, hello(&["greeting"]), start);
        let later = start + Duration::from_secs(599);
        assert!(registry.get(1, "hello", later).is_some());
        registry.register(1, hello(&["greeting"]), later);
        assert!(
            registry
                .get(1, "hello", later + Duration::from_secs(599))
                .is_some()
        );
        let expired = later + REGISTRATION_TTL;
        assert!(registry.get(1, "hello", expired).is_none());
        assert!(registry.list(1, expired).is_empty());
    }
}
