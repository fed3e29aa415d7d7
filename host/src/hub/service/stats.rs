//! Per-node figures of the last hour, minute by minute: events, errors and
//! how long callers waited (p50, p99), kept in memory by each hub for the
//! dashboard's charts. A minute costs a fixed 50 counters per node, so an
//! hour of a node is about 12 KiB whatever its rate; a hub that restarts
//! starts its charts afresh (the kept event history is the durable record).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::core::AccountId;

/// Minutes kept.
pub const MINUTES: usize = 60;

/// Buckets of the duration histogram: bucket `i` holds durations below
/// `2^(i/2)` µs, about 41% apart, so a quantile read from it is within
/// that of the truth; the last takes everything longer (over 16 minutes).
const BUCKETS: usize = 50;

#[derive(Debug, Clone, Copy)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: i64,
    events: u32,
    errors: u32,
    durations: [u32; BUCKETS],
}

impl Minute {
    const fn empty(at: i64) -> Self {
        Self {
            at,
            events: 0,
            errors: 0,
            durations: [0; BUCKETS],
        }
    }

    /// The duration (µs) below which `share` of the minute's events took.
    fn quantile(&self, share: f64) -> Option<u64> {
        if self.events == 0 {
            return None;
        }
        let rank = (share * f64::from(self.events)).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (bucket, count) in self.durations.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_top(bucket));
            }
        }
        Some(bucket_top(BUCKETS - 1))
    }
}

/// The upper bound of `bucket`, in µs.
fn bucket_top(bucket: usize) -> u64 {
    2f64.powf(bucket as f64 / 2.0).ceil() as u64
}

fn bucket_of(duration: Duration) -> usize {
    let us = duration.as_micros().max(1) as f64;
    ((us.log2() * 2.0).floor() as usize + 1).min(BUCKETS - 1)
}

/// One minute of a node, as the charts show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MinuteFigures {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    /// Events answered.
    pub events: u32,
    /// Of which failed.
    pub errors: u32,
    /// Median wait, µs (upper bound of its histogram bucket).
    pub p50_us: Option<u64>,
    /// 99th percentile wait, µs.
    pub p99_us: Option<u64>,
}

/// Every node's last hour, by account and name.
#[derive(Debug, Default)]
pub struct Stats {
    nodes: Mutex<HashMap<AccountId, HashMap<String, Vec<Minute>>>>,
}

impl Stats {
    /// Counts one answered event of the account's `node` at `minute`.
    pub fn record(&self, account: AccountId, node: &str, minute: i64, took: Duration, ok: bool) {
        let mut accounts = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let nodes = accounts.entry(account).or_default();
        // Looked up by `&str`: no allocation but for a node's first event.
        if !nodes.contains_key(node) {
            nodes.insert(node.to_owned(), vec![Minute::empty(i64::MIN); MINUTES]);
        }
        let minutes = nodes.get_mut(node).expect("inserted above");
        let slot = &mut minutes[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.at != minute {
            *slot = Minute::empty(minute);
        }
        slot.events += 1;
        slot.errors += u32::from(!ok);
        slot.durations[bucket_of(took)] += 1;
    }

    /// The `MINUTES` minutes up to `now_minute` of the account's `node`,
    /// oldest first (empty minutes included).
    pub fn last_hour(&self, account: AccountId, node: &str, now_minute: i64) -> Vec<MinuteFigures> {
        let accounts = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let minutes = accounts.get(&account).and_then(|nodes| nodes.get(node));
        (now_minute - MINUTES as i64 + 1..=now_minute)
            .map(|minute| {
                let kept = minutes
                    .map(|minutes| minutes[minute.rem_euclid(MINUTES as i64) as usize])
                    .filter(|kept| kept.at == minute)
                    .unwrap_or(Minute::empty(minute));
                MinuteFigures {
                    minute,
                    events: kept.events,
                    errors: kept.errors,
                    p50_us: kept.quantile(0.5),
                    p99_us: kept.quantile(0.99),
                }
            })
            .collect()
    }

    /// Forgets the account's `node` (deleted).
    pub fn forget(&self, account: AccountId, node: &str) {
        let mut accounts = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(nodes) = accounts.get_mut(&account) {
            nodes.remove(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_count_events_errors_and_quantiles() {
        let stats = Stats::default();
        for n in 0..100u64 {
            let took = Duration::from_micros(if n < 98 { 100 } else { 50_000 });
            stats.record(1, "hello", 1000, took, n % 10 != 0);
        }
        stats.record(1, "hello", 1002, Duration::from_millis(1), true);
        stats.record(2, "hello", 1000, Duration::from_millis(1), true);
        let hour = stats.last_hour(1, "hello", 1002);
        assert_eq!(hour.len(), MINUTES);
        let minute = hour[MINUTES - 3];
        assert_eq!(
            (minute.minute, minute.events, minute.errors),
            (1000, 100, 10)
        );
        let p50 = minute.p50_us.unwrap();
        assert!(
            (100..=142).contains(&p50),
            "p50 {p50} within a bucket of 100 µs"
        );
        let p99 = minute.p99_us.unwrap();
        assert!((50_000..=70_711).contains(&p99), "p99 {p99}");
        assert_eq!(hour[MINUTES - 2].events, 0, "an empty minute");
        assert_eq!(hour[MINUTES - 1].events, 1);
        assert_eq!(hour[MINUTES - 2].p50_us, None);
    }

    #[test]
    fn a_minute_an_hour_old_is_replaced_not_added_to() {
        let stats = Stats::default();
        stats.record(1, "n", 5, Duration::from_micros(10), true);
        stats.record(1, "n", 5 + MINUTES as i64, Duration::from_micros(10), false);
        let hour = stats.last_hour(1, "n", 5 + MINUTES as i64);
        assert_eq!(hour.iter().map(|m| m.events).sum::<u32>(), 1);
        assert_eq!(hour[MINUTES - 1].errors, 1);
        stats.forget(1, "n");
        assert!(stats.last_hour(1, "n", 5).iter().all(|m| m.events == 0));
    }

    #[test]
    fn durations_fall_in_rising_buckets() {
        assert_eq!(bucket_of(Duration::ZERO), 1);
        assert!(bucket_of(Duration::from_micros(100)) < bucket_of(Duration::from_micros(200)));
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
        for us in [1u64, 7, 100, 12_345, 1_000_000] {
            let bucket = bucket_of(Duration::from_micros(us));
            assert!(
                bucket_top(bucket) >= us,
                "{us} µs is under its bucket's top"
            );
        }
    }
}
