//! `wasi:clocks/monotonic-clock` as wasmtime-wasi provides it, except that
//! no wait outlasts the event's deadline.
//!
//! A guest parked in a host call (a sleep, a `wasi:io/poll` on a clock) is
//! beyond fuel and epoch interruption: both act only while guest code runs.
//! Clocks are the only pollables a node can wait on for long (it is granted
//! no sockets and no files; its stdin is empty and its output is captured),
//! so every clock subscription is cut to the time the event has left. The
//! guest wakes at its deadline, and the first epoch check in its code ends
//! the event with `deadline`.

use std::time::Instant;

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView as _};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{
    self, Duration, Instant as WasiInstant,
};

use super::engine::EventState;

/// The linker's data for the clamped clock.
pub(crate) struct DeadlineClock;

impl HasData for DeadlineClock {
    type Data<'a> = ClampedClock<'a>;
}

/// An event's monotonic clock with its deadline.
pub(crate) struct ClampedClock<'a> {
    clocks: WasiClocksCtxView<'a>,
    deadline: Option<Instant>,
}

impl<'a> ClampedClock<'a> {
    pub(crate) fn of(state: &'a mut EventState) -> Self {
        let deadline = state.deadline;
        Self {
            clocks: state.clocks(),
            deadline,
        }
    }

    /// `nanos`, or less: what is left until the deadline.
    fn clamp(&self, nanos: Duration) -> Duration {
        match self.deadline {
            None => nanos,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                nanos.min(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX))
            }
        }
    }
}

impl monotonic_clock::Host for ClampedClock<'_> {
    fn now(&mut self) -> wasmtime::Result<WasiInstant> {
        monotonic_clock::Host::now(&mut self.clocks)
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        monotonic_clock::Host::resolution(&mut self.clocks)
    }

    fn subscribe_instant(&mut self, when: WasiInstant) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.clocks)?;
        let nanos = self.clamp(when.saturating_sub(now));
        monotonic_clock::Host::subscribe_duration(&mut self.clocks, nanos)
    }

    fn subscribe_duration(&mut self, nanos: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let nanos = self.clamp(nanos);
        monotonic_clock::Host::subscribe_duration(&mut self.clocks, nanos)
    }
}
