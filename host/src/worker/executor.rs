//! The executors: dedicated threads that run events on the sync wasmtime
//! API, each event in a fresh sandbox, and hand back the reply as JSON.
//!
//! Dedicated threads rather than tokio tasks: the sync API measured faster
//! than the async one, and a guest that burns its whole deadline then holds
//! one executor, never the thread that reads the socket.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::protocol::hurozo::{Event, Reply};
use crate::sandbox::value::inputs_from_json;
use crate::sandbox::{Limits, NodeComponent};

/// One event to run.
#[derive(Debug)]
pub struct Job {
    /// The connection the event came on; its reply goes back there only.
    pub session: u64,
    /// The node that runs it.
    pub node: Arc<NodeComponent>,
    /// The event.
    pub event: Event,
    /// When it was read off the socket.
    pub received: Instant,
}

/// A finished event's reply.
#[derive(Debug)]
pub struct Done {
    /// The connection the event came on.
    pub session: u64,
    /// The reply, serialized.
    pub text: String,
}

/// What every executor shares.
#[derive(Debug, Clone)]
pub struct ExecutorContext {
    /// Limits of every event.
    pub limits: Limits,
    /// Secrets a node may read if it declares them.
    pub secrets: Arc<HashMap<String, String>>,
    /// Where events are counted.
    pub metrics: Metrics,
}

/// The events waiting for an executor: the connection's task pushes, the
/// executor threads wait for them.
///
/// A mutex and a condition variable, with an executor woken only after the
/// lock is released and only when one is waiting. (async-channel woke the
/// executor while it still held its lock: every hand-off then cost the
/// woken thread a wait for that lock, three more futex calls and two more
/// context switches per event.)
#[derive(Debug)]
pub struct JobQueue<T = Job> {
    state: Mutex<QueueState<T>>,
    job_ready: Condvar,
}

#[derive(Debug)]
struct QueueState<T> {
    jobs: VecDeque<T>,
    /// Executors waiting for a job.
    waiting: usize,
    /// No more jobs come; executors end once the queue is empty.
    closed: bool,
}

impl<T> Default for JobQueue<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                waiting: 0,
                closed: false,
            }),
            job_ready: Condvar::new(),
        }
    }
}

impl<T> JobQueue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        // A panic while the lock is held leaves the queue itself consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job` for the next free executor (dropped once closed).
    pub fn push(&self, job: T) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.jobs.push_back(job);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.job_ready.notify_one();
        }
    }

    /// Takes no more jobs; executors finish those queued, then end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.job_ready.notify_all();
    }

    /// The next job, waiting for one; `None` once closed and empty.
    fn pop(&self) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.waiting += 1;
            state = self
                .job_ready
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.waiting -= 1;
        }
    }
}

/// Starts `count` executor threads. They run until `jobs` is closed and
/// empty.
pub fn spawn(
    count: usize,
    jobs: &Arc<JobQueue>,
    done: mpsc::UnboundedSender<Done>,
    context: ExecutorContext,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|index| {
            let jobs = jobs.clone();
            let done = done.clone();
            let context = context.clone();
            std::thread::Builder::new()
                .name(format!("node-host-executor-{index}"))
                .spawn(move || {
                    while let Some(job) = jobs.pop() {
                        run(job, &context, &done);
                    }
                })
                .expect("spawning an executor thread")
        })
        .collect()
}

/// Runs one event and sends its reply before the sandbox is torn down;
/// then makes a fresh instance of the node ready for a later event, off
/// this one's path.
fn run(mut job: Job, context: &ExecutorContext, done: &mpsc::UnboundedSender<Done>) {
    let inputs = inputs_from_json(std::mem::take(&mut job.event.inputs));
    job.node
        .execute_then(inputs, &context.secrets, &context.limits, |outcome| {
            let reply = Reply::to_event(&job.event, &outcome);
            let text = serde_json::to_string(&reply).expect("replies serialize");
            let _ = done.send(Done {
                session: job.session,
                text,
            });
            let label = reply.error.as_ref().map_or("ok", |error| error.code.as_str());
            if let Some(error) = &reply.error {
                tracing::info!(node = %job.event.node, code = %error.code, "event failed: {}", error.message);
            }
            context
                .metrics
                .finished(&job.event.node, label, job.received.elapsed(), outcome.fuel_used);
        });
    job.node.make_ready(&context.secrets, &context.limits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jobs_come_out_in_order_and_closing_drains_the_queue() {
        let queue = JobQueue::default();
        queue.push(1);
        queue.push(2);
        queue.close();
        queue.push(3);
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), None, "closed: the job pushed after is dropped");
    }

    #[test]
    fn waiting_executors_get_each_job_once_and_end_when_closed() {
        let queue = Arc::new(JobQueue::default());
        let (sender, received) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (queue, sender) = (queue.clone(), sender.clone());
                std::thread::spawn(move || {
                    while let Some(job) = queue.pop() {
                        sender.send(job).unwrap();
                    }
                })
            })
            .collect();
        // Wait until all three wait, so that each push must wake one.
        for _ in 0..10_000 {
            if queue.lock().waiting == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(queue.lock().waiting, 3, "three executors wait");
        for job in 0..100 {
            queue.push(job);
        }
        let mut got: Vec<i32> = (0..100)
            .map(|_| received.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        queue.close();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(received.try_recv().is_err(), "no job ran twice");
    }
}
