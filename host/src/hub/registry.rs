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

/// Live registrations one account may hold.
pub const MAX_REGISTRATIONS: usize = 1_000;

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
    /// outputs are replaced by the newest registration. A new name beyond
    /// `max` live registrations is refused (`Err` holds how many there are).
    pub fn register(
        &mut self,
        account: i64,
        registration: Registration,
        now: Instant,
        max: usize,
    ) -> Result<(), usize> {
        let nodes = self.accounts.entry(account).or_default();
        if !nodes.contains_key(&registration.name) && nodes.len() >= max {
            nodes.retain(|_, entry| live(entry, now));
            if nodes.len() >= max {
                return Err(nodes.len());
            }
        }
        nodes.insert(
            registration.name.clone(),
            Entry {
                registration,
                refreshed: now,
            },
        );
        Ok(())
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
        registry.register(1, hello(&["greeting"]), now, 10).unwrap();
        registry
            .register(1, hello(&["greeting", "shout"]), now, 10)
            .unwrap();
        assert_eq!(registry.get(1, "hello", now).unwrap().outputs.len(), 2);
        assert!(registry.get(2, "hello", now).is_none());
        assert_eq!(registry.list(1, now).len(), 1);
        assert!(registry.list(2, now).is_empty());
    }

    #[test]
    fn registrations_expire_ten_minutes_after_the_last_refresh() {
        let mut registry = Registry::default();
        let start = Instant::now();
        registry
            .register(1, hello(&["greeting"]), start, 10)
            .unwrap();
        let later = start + Duration::from_secs(599);
        assert!(registry.get(1, "hello", later).is_some());
        registry
            .register(1, hello(&["greeting"]), later, 10)
            .unwrap();
        assert!(
            registry
                .get(1, "hello", later + Duration::from_secs(599))
                .is_some()
        );
        let expired = later + REGISTRATION_TTL;
        assert!(registry.get(1, "hello", expired).is_none());
        assert!(registry.list(1, expired).is_empty());
    }

    #[test]
    fn an_account_holds_at_most_max_live_registrations() {
        let mut registry = Registry::default();
        let start = Instant::now();
        let named = |name: &str| Registration {
            name: name.into(),
            ..hello(&["greeting"])
        };
        registry.register(1, named("a"), start, 2).unwrap();
        registry.register(1, named("b"), start, 2).unwrap();
        assert_eq!(registry.register(1, named("c"), start, 2), Err(2));
        // Refreshing a held name, and another account, are not refused.
        registry.register(1, named("a"), start, 2).unwrap();
        registry.register(2, named("c"), start, 2).unwrap();
        // Once the old ones lapse there is room again.
        let expired = start + REGISTRATION_TTL;
        registry.register(1, named("c"), expired, 2).unwrap();
        assert_eq!(registry.list(1, expired).len(), 1);
    }
}
