//! Exponential backoff with jitter for reconnects and registration retries.

use std::time::Duration;

use rand::Rng as _;

/// The first wait after a failure: short, so a hub restart costs little.
pub const BACKOFF_START: Duration = Duration::from_millis(250);

/// The longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Doubles the wait after each failure up to [`BACKOFF_MAX`]; each wait is
/// drawn from the upper half of the current step, so many workers cut off
/// by the same hub restart do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            step: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(BACKOFF_MAX);
        let half = step / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    /// Back to the shortest wait, after a success.
    pub fn reset(&mut self) {
        self.step = BACKOFF_START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_wait();
        assert!(first >= BACKOFF_START / 2 && first <= BACKOFF_START);
        let mut last = first;
        for _ in 0..20 {
            last = backoff.next_wait();
            assert!(last <= BACKOFF_MAX);
        }
        assert!(last >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next_wait() <= BACKOFF_START);
    }
}
