//! The executor pool: the threads that run events, each event in a fresh
//! sandbox, on wasmtime's sync API.
//!
//! One mechanism for every front end. At most `size` threads run at once;
//! more events wait in the pool's queue (callers bound what they hand over:
//! the worker stops reading its socket, the hub admits through lanes).
//! Threads start on demand and wait for the next event, so a hand-off costs
//! a condition-variable wake rather than a thread start (several times
//! more, with a long tail).
//!
//! An event whose limits demote it (see `Limits::demote_after`) may move its
//! thread to the lowest CPU priority, which an unprivileged process cannot
//! undo; such a thread runs no further event and ends, and another starts
//! for the next one. Dedicated threads rather than tokio tasks: the sync API
//! measured faster than the async one, and a guest that burns its whole
//! deadline holds one executor, never a thread that reads a socket.
//!
//! It refuses to run more than `size` events at once, and to wake a thread
//! while the queue's lock is still held (the woken thread would only wait
//! for that lock: three more futex calls and two context switches an event).
//!
//! Jobs run back to back may put off waking whoever waits for their
//! results ([`after_batch`]) until their thread runs out of queued jobs or
//! has run [`BATCH`] of them: under load one wake-up (a syscall, and a
//! thread that leaves its poll for one reply) then carries several
//! replies, and an idle pool still wakes at once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::sandbox::priority;

/// How long a hub's executor thread waits for another event before it ends.
pub const IDLE_FOR: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// At most this many jobs run back to back before the wake-ups they put
/// off are made: at ~15 µs a hello event, a reply waits ~0.1 ms. A slow
/// job next in the batch would hold them longer, so whoever waits must
/// also look by itself now and then (the worker's session does, every
/// 5 ms while events are in flight).
pub const BATCH: usize = 8;

/// A wake-up put off until the end of a batch.
type Wake = Box<dyn FnOnce()>;

/// An executor thread's pool and the wake-ups its jobs put off.
struct Batch {
    pool: Arc<Pool>,
    put_off: Vec<Wake>,
}

thread_local! {
    /// This executor thread's batch; `None` on threads that are not
    /// executors.
    static BATCHED: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Runs `wake` once this executor thread has run its batch of jobs (see
/// [`BATCH`]); at once when no job waits for this thread's pool (what the
/// job does next, such as making an instance ahead, then does not delay
/// the wake), or on any other thread.
pub fn after_batch(wake: impl FnOnce() + 'static) {
    let wake: Wake = Box::new(wake);
    let now = BATCHED.with_borrow_mut(|batch| match batch {
        Some(batch) if !batch.pool.lock().jobs.is_empty() => {
            batch.put_off.push(wake);
            None
        }
        _ => Some(wake),
    });
    if let Some(wake) = now {
        wake();
    }
}

/// Makes the wake-ups this thread put off.
fn wake_now() {
    let put_off = BATCHED.with_borrow_mut(|batch| {
        batch
            .as_mut()
            .map(|batch| std::mem::take(&mut batch.put_off))
    });
    for wake in put_off.into_iter().flatten() {
        wake();
    }
}

/// A bounded pool of executor threads. Cheap to clone; clones share the
/// pool.
#[derive(Clone)]
pub struct Executors {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.lock();
        f.debug_struct("Executors")
            .field("name", &self.pool.name)
            .field("size", &self.pool.size)
            .field("threads", &state.threads)
            .field("queued", &state.jobs.len())
            .finish()
    }
}

struct Pool {
    name: &'static str,
    size: usize,
    /// `None`: threads wait for work for as long as the pool is open.
    idle_for: Option<Duration>,
    state: Mutex<State>,
    job_ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads alive, running or waiting.
    threads: usize,
    /// Threads waiting for a job.
    waiting: usize,
    /// Of the waiting threads, those already woken (or about to be): a
    /// burst of jobs wakes each waiting thread once, not once a job (a
    /// futex call each).
    woken: usize,
    /// No more jobs come; threads end once the queue is empty.
    closed: bool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The queue stays consistent if a thread panicked while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Executors {
    /// A pool of at most `size` threads named `name`, which end after
    /// `idle_for` without work (never, with `None`).
    pub fn new(name: &'static str, size: usize, idle_for: Option<Duration>) -> Self {
        Self {
            pool: Arc::new(Pool {
                name,
                size: size.max(1),
                idle_for,
                state: Mutex::default(),
                job_ready: Condvar::new(),
            }),
        }
    }

    /// Queues `job` for the next free thread, starting one if none will be
    /// free for it and fewer than `size` run. Fails only when no thread
    /// runs and none can be started (the job is then dropped), or when the
    /// pool is closed.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let pool = &self.pool;
        let mut state = pool.lock();
        if state.closed {
            return Err(std::io::Error::other("the executor pool is closed"));
        }
        state.jobs.push_back(Box::new(job));
        // A waiting thread leaves only when no job is queued, so each queued
        // job beyond the waiting threads needs a thread of its own.
        let wake = state.waiting > state.woken;
        if wake {
            state.woken += 1;
        }
        let start = state.jobs.len() > state.waiting && state.threads < pool.size;
        if start {
            state.threads += 1;
        }
        drop(state);
        if wake {
            pool.job_ready.notify_one();
        }
        if start && let Err(err) = spawn(pool) {
            let mut state = pool.lock();
            state.threads -= 1;
            if state.threads == 0 {
                state.jobs.pop_back();
                return Err(err);
            }
        }
        Ok(())
    }

    /// Takes no more jobs; threads finish those queued, then end.
    pub fn close(&self) {
        self.pool.lock().closed = true;
        self.pool.job_ready.notify_all();
    }

    /// Threads alive and jobs waiting for one, right now.
    #[cfg(test)]
    pub fn load(&self) -> (usize, usize) {
        let state = self.pool.lock();
        (state.threads, state.jobs.len())
    }
}

fn spawn(pool: &Arc<Pool>) -> std::io::Result<()> {
    let pool = pool.clone();
    std::thread::Builder::new()
        .name(pool.name.into())
        .spawn(move || serve(&pool))
        .map(drop)
}

/// Counts a thread out when it ends, however it ends, and starts another
/// if jobs are left that no waiting thread will take.
struct Leaving<'a>(&'a Arc<Pool>);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        wake_now();
        let pool = self.0;
        let mut state = pool.lock();
        state.threads -= 1;
        let start =
            !state.jobs.is_empty() && state.jobs.len() > state.waiting && state.threads < pool.size;
        if start {
            state.threads += 1;
        }
        drop(state);
        if start && spawn(pool).is_err() {
            pool.lock().threads -= 1;
            tracing::error!("cannot start an executor thread; queued events wait for another");
        }
    }
}

/// Runs jobs for as long as the thread's priority is untouched, the pool is
/// open or has jobs, and jobs come within the pool's idle time.
fn serve(pool: &Arc<Pool>) {
    BATCHED.set(Some(Batch {
        pool: pool.clone(),
        put_off: Vec::new(),
    }));
    let _leaving = Leaving(pool);
    let mut batch = 0;
    loop {
        let queued = if batch < BATCH {
            pool.lock().jobs.pop_front()
        } else {
            None
        };
        let job = match queued {
            Some(job) => job,
            None => {
                // Before waiting, and after a whole batch.
                wake_now();
                batch = 0;
                match next_job(pool) {
                    Some(job) => job,
                    None => return,
                }
            }
        };
        job();
        batch += 1;
        if priority::this_thread_is_lowered() {
            return;
        }
    }
}

/// The next job, or `None` once the pool is closed and empty, or after its
/// idle time without one.
fn next_job(pool: &Pool) -> Option<Job> {
    let mut state = pool.lock();
    let started = Instant::now();
    loop {
        if let Some(job) = state.jobs.pop_front() {
            return Some(job);
        }
        if state.closed {
            return None;
        }
        state.waiting += 1;
        state = match pool.idle_for {
            None => pool
                .job_ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(idle_for) => {
                let waited = started.elapsed();
                if waited >= idle_for {
                    state.waiting -= 1;
                    state.woken = state.woken.min(state.waiting);
                    return None;
                }
                pool.job_ready
                    .wait_timeout(state, idle_for - waited)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        // Woken or not (a spurious wake-up, the idle time), this thread
        // counts as one that was: at worst a later job wakes a thread that
        // is awake already, never leaves one asleep.
        state.waiting -= 1;
        state.woken = state.woken.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Runs `job` on `executors` and returns the id of the thread that ran it.
    fn thread_of(
        executors: &Executors,
        job: impl FnOnce() + Send + 'static,
    ) -> std::thread::ThreadId {
        let (sender, receiver) = mpsc::channel();
        executors
            .run(move || {
                job();
                sender.send(std::thread::current().id()).unwrap();
            })
            .unwrap();
        receiver.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits (10 s at most) until the state of `executors`' pool is `what`.
    fn wait_until(executors: &Executors, what: &str, is: impl Fn(&State) -> bool) {
        for _ in 0..10_000 {
            if is(&executors.pool.lock()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("never {what}: {executors:?}");
    }

    /// Waits until `waiting` threads of `executors` wait for a job.
    fn wait_for_waiting(executors: &Executors, waiting: usize) {
        let what = format!("{waiting} waiting executor threads");
        wait_until(executors, &what, |state| state.waiting == waiting);
    }

    #[test]
    fn a_burst_wakes_each_waiting_thread_once_and_leaves_none_asleep() {
        let executors = Executors::new("test-burst", 2, None);
        // Two threads started, both waiting.
        let (ran, seen) = mpsc::channel::<usize>();
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        for _ in 0..2 {
            let hold = hold.clone();
            executors
                .run(move || {
                    let _ = hold.lock().unwrap().recv();
                })
                .unwrap();
        }
        release.send(()).unwrap();
        release.send(()).unwrap();
        wait_for_waiting(&executors, 2);
        // A burst: only as many wake-ups as threads wait.
        {
            let pool = &executors.pool;
            for at in 0..10 {
                let ran = ran.clone();
                executors.run(move || ran.send(at).unwrap()).unwrap();
                let state = pool.lock();
                assert!(
                    state.woken <= state.waiting,
                    "{} > {}",
                    state.woken,
                    state.waiting
                );
            }
        }
        let mut done: Vec<usize> = (0..10)
            .map(|_| seen.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        done.sort_unstable();
        assert_eq!(done, (0..10).collect::<Vec<_>>());
        // Back to waiting, no wake-up left counted (a thread woken for a
        // job another took wakes, finds none and waits again): the next
        // job runs.
        wait_until(&executors, "2 waiting, none woken", |state| {
            state.waiting == 2 && state.woken == 0
        });
        let ran = ran.clone();
        executors.run(move || ran.send(99).unwrap()).unwrap();
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)).unwrap(), 99);
    }

    #[test]
    fn wakes_put_off_by_jobs_run_back_to_back_come_after_them() {
        let executors = Executors::new("test-batch", 1, None);
        let (events, seen) = mpsc::channel::<String>();
        let (release, hold) = mpsc::channel::<()>();
        let first = events.clone();
        executors
            .run(move || {
                hold.recv().unwrap();
                first.send("ran 0".into()).unwrap();
                let woke = first.clone();
                after_batch(move || woke.send("woke 0".into()).unwrap());
            })
            .unwrap();
        for at in 1..3 {
            let events = events.clone();
            executors
                .run(move || {
                    events.send(format!("ran {at}")).unwrap();
                    let woke = events.clone();
                    after_batch(move || woke.send(format!("woke {at}")).unwrap());
                })
                .unwrap();
        }
        release.send(()).unwrap();
        let order: Vec<String> = (0..6)
            .map(|_| seen.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        // The last job has nothing queued behind it: it wakes at once,
        // then the batch's put-off wakes follow.
        assert_eq!(
            order,
            ["ran 0", "ran 1", "ran 2", "woke 2", "woke 0", "woke 1"]
        );
        // Elsewhere, at once.
        let (woke, told) = mpsc::channel();
        after_batch(move || woke.send(()).unwrap());
        told.try_recv().expect("woken at once off the executors");
    }

    #[test]
    fn a_job_with_nothing_queued_behind_it_wakes_at_once() {
        let executors = Executors::new("test-batch-alone", 1, None);
        let (events, seen) = mpsc::channel::<&str>();
        executors
            .run(move || {
                let woke = events.clone();
                after_batch(move || woke.send("woke").unwrap());
                // What the job does after its reply (an instance made
                // ahead) comes after the wake.
                events.send("went on").unwrap();
            })
            .unwrap();
        let order: Vec<&str> = (0..2)
            .map(|_| seen.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(order, ["woke", "went on"]);
    }

    #[test]
    fn a_batch_is_at_most_batch_jobs_long() {
        let executors = Executors::new("test-batch-cap", 1, None);
        let (events, seen) = mpsc::channel::<String>();
        let (release, hold) = mpsc::channel::<()>();
        let jobs = BATCH + 2;
        let mut hold = Some(hold);
        for at in 0..jobs {
            let events = events.clone();
            let hold = hold.take();
            executors
                .run(move || {
                    if let Some(hold) = hold {
                        hold.recv().unwrap();
                    }
                    events.send(format!("ran {at}")).unwrap();
                    let woke = events.clone();
                    after_batch(move || woke.send(format!("woke {at}")).unwrap());
                })
                .unwrap();
        }
        release.send(()).unwrap();
        let order: Vec<String> = (0..2 * jobs)
            .map(|_| seen.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        let first_wake = order.iter().position(|e| e.starts_with("woke")).unwrap();
        assert_eq!(first_wake, BATCH, "{order:?}");
        let mut last: Vec<&String> = order[2 * jobs - 2..].iter().collect();
        last.sort();
        assert_eq!(
            last,
            [&format!("woke {}", jobs - 2), &format!("woke {}", jobs - 1)]
        );
    }

    #[test]
    fn a_job_that_panics_does_not_keep_the_wakes_of_its_batch() {
        let executors = Executors::new("test-batch-panic", 1, None);
        let (woke, told) = mpsc::channel();
        executors
            .run(move || {
                after_batch(move || woke.send(()).unwrap());
                panic!("a job that fails");
            })
            .unwrap();
        told.recv_timeout(Duration::from_secs(10))
            .expect("woken when the thread ended");
    }

    #[test]
    fn threads_are_reused_until_their_priority_is_lowered() {
        let executors = Executors::new("test-executor", 4, Some(IDLE_FOR));
        let first = thread_of(&executors, || {});
        wait_for_waiting(&executors, 1);
        let second = thread_of(&executors, || {});
        assert_eq!(first, second, "a waiting thread runs the next job");

        wait_for_waiting(&executors, 1);
        let lowered = thread_of(&executors, priority::lower_this_thread);
        assert_eq!(lowered, second, "the waiting thread took it");
        wait_for_waiting(&executors, 0);
        let after = thread_of(&executors, || {});
        assert_ne!(after, lowered, "a lowered thread runs no further event");
    }

    #[test]
    fn jobs_that_come_together_each_get_a_thread_up_to_the_size() {
        let executors = Executors::new("test-executor", 8, None);
        let (sender, receiver) = mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(8));
        for _ in 0..8 {
            let (sender, gate) = (sender.clone(), gate.clone());
            executors
                .run(move || {
                    gate.wait();
                    sender.send(()).unwrap();
                })
                .unwrap();
        }
        for _ in 0..8 {
            receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }

    #[test]
    fn no_more_than_size_jobs_run_at_once_and_the_rest_wait_their_turn() {
        let executors = Executors::new("test-executor", 2, None);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (sender, receiver) = mpsc::channel();
        for job in 0..20 {
            let (running, most, sender) = (running.clone(), most.clone(), sender.clone());
            executors
                .run(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    running.fetch_sub(1, SeqCst);
                    sender.send(job).unwrap();
                })
                .unwrap();
        }
        let mut done: Vec<i32> = (0..20)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        done.sort_unstable();
        assert_eq!(done, (0..20).collect::<Vec<_>>(), "each job ran once");
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(executors.load().0 <= 2);
    }

    #[test]
    fn lowered_threads_are_replaced_while_jobs_wait() {
        // One thread, and every job lowers it: each job needs a new thread.
        let executors = Executors::new("test-executor", 1, None);
        let (sender, receiver) = mpsc::channel();
        for job in 0..5 {
            let sender = sender.clone();
            executors
                .run(move || {
                    priority::lower_this_thread();
                    sender.send((job, std::thread::current().id())).unwrap();
                })
                .unwrap();
        }
        let threads: std::collections::HashSet<_> = (0..5)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap().1)
            .collect();
        assert_eq!(threads.len(), 5, "no lowered thread ran a second job");
    }

    #[test]
    fn closing_drains_the_queue_then_refuses() {
        let executors = Executors::new("test-executor", 1, None);
        let (sender, receiver) = mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(2));
        {
            let gate = gate.clone();
            executors
                .run(move || {
                    gate.wait();
                })
                .unwrap();
        }
        for job in 0..3 {
            let sender = sender.clone();
            executors.run(move || sender.send(job).unwrap()).unwrap();
        }
        executors.close();
        assert!(executors.run(|| {}).is_err(), "closed");
        gate.wait();
        let drained: Vec<i32> = (0..3)
            .map(|_| receiver.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(drained, [0, 1, 2], "queued jobs run in order after close");
    }
}
