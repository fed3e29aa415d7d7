//! Lowering the CPU priority of the thread that runs a long event.
//!
//! Linux schedules each thread on its own. A demoted thread goes to the
//! `SCHED_IDLE` policy: it gets a core only when no normal thread wants it,
//! and a normal thread that wakes up preempts it at once. (The lowest nice
//! value, 19, still leaves a thread about 1.5% of a core and lets it finish
//! its time slice before a woken thread runs; it is the fallback where
//! `SCHED_IDLE` is refused.) An unprivileged process cannot raise a
//! priority again, so a lowered thread must not run another event: callers
//! use it for one event and let it end.

/// The nice value of a demoted thread where `SCHED_IDLE` is refused: the
/// lowest priority.
pub const DEMOTED_NICE: i32 = 19;

thread_local! {
    /// Whether [`lower_this_thread`] ran on this thread.
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether [`lower_this_thread`] ran on the calling thread (whatever it
/// achieved): such a thread must not run another event.
pub fn this_thread_is_lowered() -> bool {
    LOWERED.get()
}

/// Moves the calling thread to `SCHED_IDLE`, or else to [`DEMOTED_NICE`].
/// Best effort: on other systems, or if both calls fail, the thread keeps
/// its priority.
pub fn lower_this_thread() {
    LOWERED.set(true);
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param; with pid 0, Linux applies
        // the policy to the calling thread alone.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
        // SAFETY: setpriority only reads its integer arguments; with
        // PRIO_PROCESS and 0, Linux applies it to the calling thread alone.
        let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, DEMOTED_NICE) } != 0;
        if failed {
            tracing::debug!(
                "cannot lower the priority of a long event's thread: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The calling thread's scheduling policy (for tests).
#[cfg(all(test, target_os = "linux"))]
pub fn this_thread_policy() -> i32 {
    // SAFETY: with pid 0 it reads the calling thread's policy.
    unsafe { libc::sched_getscheduler(0) }
}

/// The calling thread's nice value (for tests).
#[cfg(all(test, target_os = "linux"))]
pub fn this_thread_nice() -> i32 {
    // SAFETY: as above; errno is cleared first because -1 is a valid value.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowering_affects_only_the_calling_thread() {
        let (nice, policy) = (this_thread_nice(), this_thread_policy());
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            (this_thread_nice(), this_thread_policy())
        })
        .join()
        .unwrap();
        assert!(
            lowered.1 == libc::SCHED_IDLE || lowered.0 == DEMOTED_NICE,
            "neither idle nor nice 19: {lowered:?}"
        );
        assert_eq!((this_thread_nice(), this_thread_policy()), (nice, policy));
        assert!(!this_thread_is_lowered());
        assert!(
            std::thread::spawn(|| {
                lower_this_thread();
                this_thread_is_lowered()
            })
            .join()
            .unwrap()
        );
    }
}
