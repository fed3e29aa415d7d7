//! Per-account lanes: admission before an event may take an executor.
//!
//! Each account has a lane that admits at most `concurrency` of its events
//! at once and queues at most `queue` more; beyond that an event is refused
//! with [`QueueFull`], so one account's flood waits in its own lane and
//! never in another's. Lanes count; the executor pool runs.
//!
//! It refuses to queue beyond an account's limit, and to keep a place for a
//! caller that gave up: dropping the waiting future, or the [`Permit`],
//! gives the place back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::event::AccountId;

/// How long a call whose account's lane is full waits for a place before it
/// is refused. A place that frees within it takes the call; and a client
/// that resends every refusal at once gets at most one answer per this long
/// per connection, so it cannot keep the hub's front end busy while other
/// accounts' calls wait behind its refusals (BENCHMARKS.md, "Fair
/// scheduling").
pub const FULL_LANE_WAIT: Duration = Duration::from_millis(50);

/// How many of an account's events may run and wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Events running at once (at least one).
    pub concurrency: u64,
    /// Events waiting to run.
    pub queue: u64,
}

/// An event refused because its account's lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this account already has {running} events running (its concurrency limit) and {waiting} \
     waiting (its queue limit, {queue}); retry later, or raise them with \
     `node-host hub account set NAME --concurrency N --queue N`"
)]
pub struct QueueFull {
    /// Events running.
    pub running: u64,
    /// Events waiting.
    pub waiting: u64,
    /// The queue limit.
    pub queue: u64,
}

#[derive(Debug, Default)]
struct LaneState {
    running: u64,
    waiting: u64,
}

/// One account's admission control.
#[derive(Debug, Default)]
struct Lane {
    state: Mutex<LaneState>,
    freed: Notify,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The right to run one event; gives the place back when dropped.
#[derive(Debug)]
pub struct Permit {
    lane: Arc<Lane>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lane.lock().running -= 1;
        self.lane.freed.notify_one();
    }
}

/// A place taken in a lane by [`Lanes::enter`]: running, or waiting its
/// turn. Dropping it gives the place back.
#[derive(Debug)]
pub struct Place {
    /// `None` once it became a [`Permit`].
    lane: Option<Arc<Lane>>,
    concurrency: u64,
    running: bool,
}

impl Place {
    /// Waits until the place runs. Dropping the future gives the place up.
    pub async fn turn(mut self) -> Permit {
        let lane = self.lane.clone().expect("a place is turned once");
        if self.running {
            self.lane = None;
            return Permit { lane };
        }
        loop {
            let freed = lane.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = lane.lock();
                if state.running < self.concurrency {
                    state.running += 1;
                    state.waiting -= 1;
                    drop(state);
                    self.lane = None;
                    return Permit { lane: lane.clone() };
                }
            }
            freed.await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(lane) = self.lane.take() else {
            return;
        };
        let mut state = lane.lock();
        if self.running {
            state.running -= 1;
            drop(state);
            lane.freed.notify_one();
        } else {
            state.waiting -= 1;
        }
    }
}

/// [`Lanes::enter`] on `lane`.
fn enter(lane: &Arc<Lane>, limits: LaneLimits) -> Result<Place, QueueFull> {
    let concurrency = limits.concurrency.max(1);
    let mut state = lane.lock();
    let running = state.running < concurrency;
    if running {
        state.running += 1;
    } else if state.waiting < limits.queue {
        state.waiting += 1;
    } else {
        return Err(QueueFull {
            running: state.running,
            waiting: state.waiting,
            queue: limits.queue,
        });
    }
    drop(state);
    Ok(Place {
        lane: Some(lane.clone()),
        concurrency,
        running,
    })
}

/// Every account's lane.
#[derive(Debug, Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<AccountId, Arc<Lane>>>,
}

impl Lanes {
    fn lane(&self, account: AccountId) -> Arc<Lane> {
        self.lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(account)
            .or_default()
            .clone()
    }

    /// Waits for a place in the account's lane: at once while fewer than
    /// `limits.concurrency` of its events run, in the queue while fewer than
    /// `limits.queue` wait, refused beyond (after [`FULL_LANE_WAIT`] without
    /// a place). Dropping the future gives up the place in the queue.
    pub async fn admit(&self, account: AccountId, limits: LaneLimits) -> Result<Permit, QueueFull> {
        let lane = self.lane(account);
        let refuse_at = tokio::time::Instant::now() + FULL_LANE_WAIT;
        loop {
            // Enabled before looking, so that a place freed meanwhile is not
            // missed; dropped before the turn is awaited, so that it takes
            // no notification meant for a waiting place (tokio passes on
            // one it had).
            let place = {
                let freed = lane.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                match enter(&lane, limits) {
                    Ok(place) => place,
                    Err(full) if tokio::time::Instant::now() >= refuse_at => return Err(full),
                    // Look again when a place frees, or at the refusal time
                    // at the latest.
                    Err(_) => {
                        let _ = tokio::time::timeout_at(refuse_at, freed).await;
                        continue;
                    }
                }
            };
            return Ok(place.turn().await);
        }
    }

    /// Takes a place in the account's lane at once, without waiting: a
    /// running one while fewer than `limits.concurrency` run, else a place
    /// in the queue while fewer than `limits.queue` wait, else refused. Its
    /// [`Place::turn`] then waits for a running place.
    pub fn enter(&self, account: AccountId, limits: LaneLimits) -> Result<Place, QueueFull> {
        enter(&self.lane(account), limits)
    }

    /// Events of the account running and waiting in its lane right now.
    pub fn load(&self, account: AccountId) -> (u64, u64) {
        let lane = self.lane(account);
        let state = lane.lock();
        (state.running, state.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: u64, queue: u64) -> LaneLimits {
        LaneLimits { concurrency, queue }
    }

    #[tokio::test]
    async fn a_lane_runs_its_concurrency_queues_its_queue_and_refuses_beyond() {
        let lanes = Arc::new(Lanes::default());
        let limits = limits(1, 1);
        let first = lanes.admit(1, limits).await.unwrap();
        let waiting = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.admit(1, limits).await.map(drop) })
        };
        for _ in 0..100 {
            if lanes.load(1) == (1, 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(lanes.load(1), (1, 1));
        let refused = lanes.admit(1, limits).await.unwrap_err();
        assert_eq!((refused.running, refused.waiting, refused.queue), (1, 1, 1));
        assert!(refused.to_string().contains("--queue"));
        // Another account's lane is untouched by this one's.
        drop(lanes.admit(2, limits).await.unwrap());
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(lanes.load(1), (0, 0));
    }

    #[tokio::test]
    async fn a_full_lane_refuses_only_after_waiting_for_a_place() {
        let lanes = Arc::new(Lanes::default());
        let limits = limits(1, 0);
        let running = lanes.admit(1, limits).await.unwrap();
        // Violated: no place frees, so the call is refused once the wait is over.
        let asked = tokio::time::Instant::now();
        let refused = lanes.admit(1, limits).await.unwrap_err();
        assert!(asked.elapsed() >= FULL_LANE_WAIT, "{:?}", asked.elapsed());
        assert_eq!((refused.running, refused.waiting), (1, 0));
        // Obeyed: a place that frees within the wait takes the call.
        let waiting = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.admit(1, limits).await.map(drop) })
        };
        tokio::time::sleep(FULL_LANE_WAIT / 5).await;
        drop(running);
        waiting
            .await
            .unwrap()
            .expect("admitted once the place freed");
        assert_eq!(lanes.load(1), (0, 0));
    }

    #[tokio::test]
    async fn giving_up_in_the_queue_frees_the_place() {
        let lanes = Lanes::default();
        let limits = limits(1, 1);
        let _running = lanes.admit(1, limits).await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), lanes.admit(1, limits)).await;
        assert!(gave_up.is_err());
        assert_eq!(lanes.load(1), (1, 0));
    }

    #[tokio::test]
    async fn places_are_taken_at_once_and_turn_in_order() {
        let lanes = Lanes::default();
        let limits = limits(1, 1);
        let first = lanes.enter(1, limits).unwrap();
        let second = lanes.enter(1, limits).unwrap();
        assert_eq!(lanes.load(1), (1, 1));
        // Violated: refused at once, no waiting.
        let refused = lanes.enter(1, limits).unwrap_err();
        assert_eq!((refused.running, refused.waiting), (1, 1));
        assert!(lanes.enter(2, limits).is_ok(), "another account's lane");
        let running = first.turn().await;
        let waiting = tokio::spawn(second.turn());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "waits for the running one");
        drop(running);
        let turned = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lanes.load(1), (1, 0));
        drop(turned);
        // A place given up while waiting frees its place in the queue.
        let held = lanes.enter(1, limits).unwrap();
        drop(lanes.enter(1, limits).unwrap());
        assert_eq!(lanes.load(1), (1, 0));
        drop(held);
        assert_eq!(lanes.load(1), (0, 0));
    }
}
