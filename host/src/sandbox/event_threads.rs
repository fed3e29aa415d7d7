//! Threads for events that may lower their own priority.
//!
//! An event whose limits demote it (see [`Limits::demote_after`]) may move
//! its thread to the lowest CPU priority, which an unprivileged process
//! cannot undo, so such a thread must not run another event. Starting a
//! thread per event keeps that rule but costs a thread start per event
//! (~40 µs p50 and a long tail on the build machine, against ~10 µs to hand
//! a job to a waiting thread). Here threads wait for the next event instead,
//! and a thread whose priority was lowered ends after its event.
//!
//! [`Limits::demote_after`]: super::Limits::demote_after

use std::collections::VecDeque;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

/// How long a thread waits for another event before it ends.
const IDLE_FOR: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    job_ready: Condvar,
}

#[derive(Default)]
struct State {
    /// Threads waiting for a job.
    waiting: usize,
    /// Jobs handed over, each promised to a distinct waiting thread.
    jobs: VecDeque<Job>,
}

static POOL: LazyLock<Pool> = LazyLock::new(Pool::default);

/// Runs `job` on a waiting event thread, or on a new one when none waits.
/// Fails only if a needed thread cannot start.
pub fn run(job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let job: Job = Box::new(job);
    {
        let mut state = POOL.state.lock().expect("event thread pool lock");
        // A waiting thread leaves only when no job is queued, so each queued
        // job has a thread of its own to run it.
        if state.waiting > state.jobs.len() {
            state.jobs.push_back(job);
            POOL.job_ready.notify_one();
            return Ok(());
        }
    }
    std::thread::Builder::new()
        .name("node-host-event".into())
        .spawn(move || serve(job))
        .map(drop)
}

/// Runs `first`, then further jobs for as long as the thread's priority is
/// untouched and jobs come within [`IDLE_FOR`].
fn serve(first: Job) {
    first();
    while !super::priority::this_thread_is_lowered() {
        let Some(job) = next_job() else {
            return;
        };
        job();
    }
}

/// The next job, or `None` after [`IDLE_FOR`] without one.
fn next_job() -> Option<Job> {
    let mut state = POOL.state.lock().expect("event thread pool lock");
    state.waiting += 1;
    let mut waited = Duration::ZERO;
    loop {
        if let Some(job) = state.jobs.pop_front() {
            state.waiting -= 1;
            return Some(job);
        }
        if waited >= IDLE_FOR {
            state.waiting -= 1;
            return None;
        }
        let started = std::time::Instant::now();
        state = POOL
            .job_ready
            .wait_timeout(state, IDLE_FOR - waited)
            .expect("event thread pool lock")
            .0;
        waited += started.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn thread_id_of_a_job() -> std::thread::ThreadId {
        let (sender, receiver) = mpsc::channel();
        run(move || sender.send(std::thread::current().id()).unwrap()).unwrap();
        receiver.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn wait_until_a_thread_waits() {
        for _ in 0..1_000 {
            if POOL.state.lock().unwrap().waiting > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no event thread came back to wait");
    }

    // One test, because the pool is shared by the whole test binary.
    #[test]
    fn threads_are_reused_until_their_priority_is_lowered() {
        let first = thread_id_of_a_job();
        wait_until_a_thread_waits();
        let second = thread_id_of_a_job();
        assert_eq!(first, second, "a waiting thread runs the next job");

        let (sender, receiver) = mpsc::channel();
        run(move || {
            super::super::priority::lower_this_thread();
            sender.send(std::thread::current().id()).unwrap();
        })
        .unwrap();
        let lowered = receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(lowered, second, "the waiting thread took it");
        let after = thread_id_of_a_job();
        assert_ne!(after, lowered, "a lowered thread runs no further event");

        // Jobs that come together each get a thread and all run.
        let (sender, receiver) = mpsc::channel();
        let gate = std::sync::Arc::new(std::sync::Barrier::new(8));
        for _ in 0..8 {
            let (sender, gate) = (sender.clone(), gate.clone());
            run(move || {
                gate.wait();
                sender.send(()).unwrap();
            })
            .unwrap();
        }
        for _ in 0..8 {
            receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }
}
