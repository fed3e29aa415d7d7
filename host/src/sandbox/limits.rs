//! Per-event limits and the memory limiter that enforces the aggregate cap.

use std::time::Duration;

/// Fuel per event: roughly one unit per WebAssembly instruction, so a few
/// seconds of guest CPU at most. Far above what a node that does real work
/// per event needs (the Rust `hello` burns a few thousand).
pub const DEFAULT_FUEL: u64 = 5_000_000_000;

/// Linear memory per event, summed over every memory of the instance. A
/// componentize-py guest needs tens of MiB, so this leaves room for real
/// work while a memory bomb stops long before the machine notices.
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;

/// Wall-clock time per event. Hurozo's backend gives up after 600 s; a node
/// that needs more than this is better split or given an explicit limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Total size of an event's outputs: values plus names.
pub const DEFAULT_OUTPUT_BYTES: usize = 1 << 20;

/// What is kept of each of stdout, stderr and the log per event. Enough for
/// a panic message and a screenful of diagnostics; the rest is dropped and
/// the capture is flagged as truncated.
pub const DEFAULT_CAPTURE_BYTES: usize = 64 << 10;

/// Table elements per event (summed over tables). Big Python and JavaScript
/// guests keep tens of thousands of function references.
pub const DEFAULT_TABLE_ELEMENTS: usize = 200_000;

/// The limits one event runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel the event may burn; `out_of_fuel` when it runs out.
    pub fuel: u64,
    /// Linear memory across all the instance's memories; `memory_limit` beyond.
    pub memory_bytes: usize,
    /// Wall-clock deadline of the event, checked at each epoch tick and at
    /// each call into the host (the guest stops at the first of them past
    /// it; a wait in the host ends at it); `deadline` beyond.
    pub timeout: Duration,
    /// Total size of the outputs; `output_too_large` beyond.
    pub output_bytes: usize,
    /// What is kept of each captured stream (stdout, stderr, log).
    pub capture_bytes: usize,
    /// After this much wall-clock time, the thread running the event drops
    /// to the lowest CPU priority for the rest of it, so long events cannot
    /// delay short ones. The priority cannot be raised again: the caller
    /// must run such an event on a thread no other event uses and that
    /// ends with it if lowered (node-host's executor pool does both).
    /// `None` (the default) never lowers it.
    pub demote_after: Option<Duration>,
}

impl Limits {
    /// True when a store made under `self` serves an event under `other`:
    /// the caps a store is built with match (the memory limiter's and the
    /// capture streams'). Fuel, the deadline and demotion are set when the
    /// event takes the store, and the output cap is checked after the call.
    pub fn same_store(&self, other: &Limits) -> bool {
        self.memory_bytes == other.memory_bytes && self.capture_bytes == other.capture_bytes
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            capture_bytes: DEFAULT_CAPTURE_BYTES,
            demote_after: None,
        }
    }
}

/// Enforces [`Limits::memory_bytes`] across all memories of one instance.
///
/// wasmtime's per-memory maximum cannot do this: a component is made of
/// several core instances, each of which may have its own memory. The
/// limiter sees every growth (including the initial allocation, which it
/// sees as growth from zero) and keeps the running total.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_cap: usize,
    memory_used: usize,
    table_elements_used: usize,
    /// The total that was asked for when growth was first refused.
    refused_at: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_cap: usize) -> Self {
        Self {
            memory_cap,
            memory_used: 0,
            table_elements_used: 0,
            refused_at: None,
        }
    }

    /// The total the guest asked for when the cap first refused it.
    pub(crate) fn refused_at(&self) -> Option<usize> {
        self.refused_at
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self.memory_used - current.min(self.memory_used) + desired;
        if wanted > self.memory_cap {
            self.refused_at.get_or_insert(wanted);
            return Ok(false);
        }
        self.memory_used = wanted;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self.table_elements_used - current.min(self.table_elements_used) + desired;
        if wanted > DEFAULT_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements_used = wanted;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    const PAGE: usize = 64 << 10;

    #[test]
    fn memory_cap_is_summed_over_memories_obeyed() {
        let mut limiter = MemoryLimiter::new(4 * PAGE);
        assert!(limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(limiter.memory_growing(0, PAGE, None).unwrap());
        assert!(limiter.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap());
        assert_eq!(limiter.refused_at(), None);
    }

    #[test]
    fn memory_cap_is_summed_over_memories_violated() {
        let mut limiter = MemoryLimiter::new(4 * PAGE);
        assert!(limiter.memory_growing(0, 3 * PAGE, None).unwrap());
        // A second memory that alone fits, but not beside the first.
        assert!(!limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert_eq!(limiter.refused_at(), Some(5 * PAGE));
        // The refused growth is not counted.
        assert!(limiter.memory_growing(0, PAGE, None).unwrap());
    }

    #[test]
    fn table_elements_are_capped() {
        let mut limiter = MemoryLimiter::new(PAGE);
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(
            !limiter
                .table_growing(10, DEFAULT_TABLE_ELEMENTS + 1, None)
                .unwrap()
        );
        // Table refusals are not memory refusals.
        assert_eq!(limiter.refused_at(), None);
    }
}
