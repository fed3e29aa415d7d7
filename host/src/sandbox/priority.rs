//! Lowering the CPU priority of the thread that runs a long event.
//!
//! Linux keeps a nice value per thread; the lowest priority (19) leaves a
//! thread about 1.5% of a core against one at the default priority, so a
//! short event woken next to long ones runs almost at once. An unprivileged
//! process cannot raise a priority again, so a lowered thread must not run
//! another event: callers use it for one event and let it end.

/// The nice value of a demoted thread: the lowest priority.
pub const DEMOTED_NICE: i32 = 19;

/// Drops the calling thread to [`DEMOTED_NICE`]. Best effort: on other
/// systems, or if the call fails, the thread keeps its priority.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
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
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, DEMOTED_NICE);
        assert_eq!(this_thread_nice(), before);
    }
}
