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
use std::sync::{Arc, Condvar, LazyLock, Mutex};
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

/// The process's event threads.
static POOL: LazyLock<Arc<Pool>> = LazyLock::new(Arc::default);

/// Runs `job` on a waiting event thread, or on a new one when none waits.
/// Fails only if a needed thread cannot start.
pub fn run(job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    run_in(&POOL, Box::new(job))
}

fn run_in(pool: &Arc<Pool>, job: Job) -> std::io::Result<()> {
    let mut state = pool.state.lock().expect("event thread pool lock");
    // A waiting thread leaves only when no job is queued, so each queued
    // job has a thread of its own to run it.
    if state.waiting > state.jobs.len() {
        state.jobs.push_back(job);
        // Woken after the lock is free, so that the thread does not wake
        // only to wait for the lock.
        drop(state);
        pool.job_ready.notify_one();
        return Ok(());
    }
    drop(state);
    let pool = pool.clone();
    std::thread::Builder::new()
        .name("node-host-event".into())
        .spawn(move || serve(&pool, job))
        .map(drop)
}

/// Runs `first`, then further jobs for as long as the thread's priority is
/// untouched and jobs come within [`IDLE_FOR`].
fn serve(pool: &Pool, first: Job) {
    first();
    while !super::priority::this_thread_is_lowered() {
        let Some(job) = next_job(pool) else {
            return;
        };
        job();
    }
}

/// The next job, or `None` after [`IDLE_FOR`] without one.
fn next_job(pool: &Pool) -> Option<Job> {
    let mut state = pool.state.lock().expect("event thread pool lock");
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
        state = pool
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

    /// Runs `job` on `pool` and returns the id of the thread that ran it.
    fn thread_of(pool: &Arc<Pool>, job: impl FnOnce() + Send + 'static) -> std::thread::ThreadId {
        let (sender, receiver) = mpsc::channel();
        run_in(
            pool,
            Box::new(move || {
                job();
                sender.send(std::thread::current().id()).unwrap();
            }),
        )
        .unwrap();
        receiver.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits until `waiting` threads of `pool` wait for a job.
    fn wait_for_waiting(pool: &Pool, waiting: usize) {
        for _ in 0..10_000 {
            if pool.state.lock().unwrap().waiting == waiting {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("not {waiting} waiting event threads");
    }

    #[test]
    fn threads_are_reused_until_their_priority_is_lowered() {
        // A pool of its own: the process's pool is shared with other tests.
        let pool = Arc::new(Pool::default());
        let first = thread_of(&pool, || {});
        wait_for_waiting(&pool, 1);
        let second = thread_of(&pool, || {});
        assert_eq!(first, second, "a waiting thread runs the next job");

        wait_for_waiting(&pool, 1);
        let lowered = thread_of(&pool, super::super::priority::lower_this_thread);
        assert_eq!(lowered, second, "the waiting thread took it");
        wait_for_waiting(&pool, 0);
        let after = thread_of(&pool, || {});
        assert_ne!(after, lowered, "a lowered thread runs no further event");
    }

    #[test]
    fn jobs_that_come_together_each_get_a_thread() {
        let pool = Arc::new(Pool::default());
        let (sender, receiver) = mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(8));
        for _ in 0..8 {
            let (sender, gate) = (sender.clone(), gate.clone());
            run_in(
                &pool,
                Box::new(move || {
                    gate.wait();
                    sender.send(()).unwrap();
                }),
            )
            .unwrap();
        }
        for _ in 0..8 {
            receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }
}
