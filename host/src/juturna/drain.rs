//! Stopping without dropping: once a drain begins, new requests are turned
//! away (the service answers them `UNAVAILABLE` with the reason) while the
//! ones already in hand run to their end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests in hand, and whether new ones are still taken.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_hand: AtomicUsize,
    idle: Notify,
}

/// A request in hand; dropping it lets the drain end.
#[derive(Debug)]
pub struct Entered<'a>(&'a Drain);

impl Drain {
    /// Takes a request in hand, or `None` once the drain has begun.
    pub fn enter(&self) -> Option<Entered<'_>> {
        // Counted before the check: a drain that begins in between waits
        // for this request, or this request sees it and leaves.
        self.in_hand.fetch_add(1, Ordering::SeqCst);
        let entered = Entered(self);
        (!self.draining.load(Ordering::SeqCst)).then_some(entered)
    }

    /// Turns new requests away from now on.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Requests in hand.
    pub fn in_hand(&self) -> usize {
        self.in_hand.load(Ordering::SeqCst)
    }

    /// Resolves when no request is in hand.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.in_hand() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if self.0.in_hand.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_drain_turns_new_requests_away_and_waits_for_those_in_hand() {
        let drain = Drain::default();
        let first = drain.enter().expect("taken before the drain");
        let second = drain.enter().expect("taken before the drain");
        drain.begin();
        assert!(drain.enter().is_none(), "turned away once draining");
        assert_eq!(drain.in_hand(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(50), drain.idle()).await;
        assert!(waiting.is_err(), "two requests are still in hand");
        drop(first);
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), drain.idle())
            .await
            .expect("idle once both are done");
    }

    #[tokio::test]
    async fn an_idle_service_drains_at_once() {
        let drain = Drain::default();
        drop(drain.enter());
        drain.begin();
        tokio::time::timeout(Duration::from_secs(5), drain.idle())
            .await
            .expect("nothing in hand");
    }
}
