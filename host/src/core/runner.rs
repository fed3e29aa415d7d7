//! The runner: the one way an event runs, whatever brought it.
//!
//! It takes an [`Event`] and the node that serves it, waits for a place in
//! the account's lane when the caller asks for admission, hands the event
//! to the executor pool, runs it in a fresh sandbox and yields the
//! [`Outcome`]. The worker, the hosted worker, the hub's own nodes and the
//! CLI all run events through it; only it calls into the sandbox's event
//! path.
//!
//! It refuses nothing itself beyond what its lanes and pool refuse; a node
//! lookup, the account's limits and its secrets are the caller's business
//! (each front end keys its nodes its own way).

use crate::telemetry::TARGET;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::event::{Event, Outcome, RunError, Terms, outcome_label};
use super::executors::Executors;
use super::lanes::{LaneLimits, Lanes, Permit};
use crate::metrics::Metrics;
use crate::sandbox::{ErrorCode, Limits, NodeComponent, priority};

/// Runs events in fresh sandboxes on one bounded executor pool.
#[derive(Debug)]
pub struct Runner {
    executors: Executors,
    lanes: Lanes,
    metrics: Metrics,
    ahead: bool,
    /// `Some` when short events run on the caller's thread.
    here: Option<Here>,
}

/// Fuel an event may burn on the caller's thread before it is run again
/// on an executor (about a millisecond of guest code here).
pub const HERE_FUEL: u64 = 2_000_000;

/// Time an event may take on the caller's thread (a wait, which burns no
/// fuel, included) before it is run again on an executor.
pub const HERE_TIME: Duration = Duration::from_millis(1);

/// An event that took longer than this on the caller's thread sends its
/// node's next [`HERE_SKIP`] events to the executors, where they run side
/// by side rather than one after another.
pub const HERE_SHORT: Duration = Duration::from_micros(200);

/// Events of a node that go to the executors after one that was not short.
pub const HERE_SKIP: u32 = 64;

/// Which nodes' events currently go straight to the executors, and for
/// how many more events.
#[derive(Debug, Default)]
struct Here {
    skipping: Mutex<HashMap<String, u32>>,
}

impl Here {
    /// True when `node`'s next event should try the caller's thread.
    fn tries(&self, node: &str) -> bool {
        let mut skipping = self.skipping.lock().unwrap_or_else(PoisonError::into_inner);
        match skipping.get_mut(node) {
            Some(left) if *left > 0 => {
                *left -= 1;
                false
            }
            _ => true,
        }
    }

    /// Notes how `node`'s event did on the caller's thread.
    fn ran(&self, node: &str, took: Duration, moved: bool) {
        if moved || took > HERE_SHORT {
            let mut skipping = self.skipping.lock().unwrap_or_else(PoisonError::into_inner);
            skipping.insert(node.to_owned(), HERE_SKIP);
        }
    }
}

impl Runner {
    /// A runner on `executors`, counting events in `metrics`. It makes no
    /// instances ahead until told to ([`making_ahead`](Self::making_ahead)).
    pub fn new(executors: Executors, metrics: Metrics) -> Self {
        Self {
            executors,
            lanes: Lanes::default(),
            metrics,
            ahead: false,
            here: None,
        }
    }

    /// Run a node's short events on the thread that starts them, with no
    /// hand-off to an executor and back (about 8 µs of CPU an event on a
    /// two-core machine, as much as the sandbox itself). An event tries
    /// the caller's thread under at most [`HERE_FUEL`] and [`HERE_TIME`];
    /// one that runs out of either is thrown away, nothing of it kept, and
    /// run again from the start on an executor under its own limits. That
    /// is safe because such a node has no effect outside its sandbox: a
    /// node with outbound HTTP never runs here. A node whose event was not
    /// short goes to the executors for its next [`HERE_SKIP`] events. The
    /// caller's thread is held about a millisecond an event at most (up to
    /// the 10 ms epoch tick for a guest looping on cheap host calls, or
    /// with fuel metering off), so only a thread that can wait that long
    /// should ask: the worker's session does; the hub, whose thread serves
    /// every tenant, does not.
    pub fn running_short_events_here(mut self, here: bool) -> Self {
        self.here = here.then(Here::default);
        self
    }

    /// After each event, make the node's next fresh instance on the same
    /// thread (`NodeComponent::make_ready`), off the reply's path; the
    /// event's admission is held until it is made, so its CPU counts where
    /// the event's own would have. Not after an event that lowered its
    /// thread's priority.
    pub fn making_ahead(mut self, ahead: bool) -> Self {
        self.ahead = ahead;
        self
    }

    /// The accounts' lanes.
    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    /// The executor pool.
    pub fn executors(&self) -> &Executors {
        &self.executors
    }

    /// Starts `event` on an executor, in a fresh sandbox of `node` under
    /// `terms`. `deliver` gets the outcome on the executor thread before
    /// the sandbox is torn down (the teardown, a large part of a fresh
    /// event's cost, stays off the reply's path); what it returns is
    /// dropped once the executor is done with the event, the next instance
    /// made ahead included.
    pub fn start<K>(
        &self,
        event: Event,
        node: Arc<NodeComponent>,
        terms: Terms,
        deliver: impl FnOnce(Outcome) -> K + Send + 'static,
    ) -> Result<(), RunError> {
        let metrics = self.metrics.clone();
        let ahead = self.ahead;
        let received = Instant::now();
        let name = event.node.clone();
        metrics.started();
        let deliver = match self.try_here(&event, &node, &terms, received, deliver) {
            None => return Ok(()),
            Some(deliver) => deliver,
        };
        // The event's trace, when one is exported: waiting for an executor,
        // the sandbox, the reply (each costs nothing otherwise).
        let parent = tracing::Span::current();
        let queued = tracing::info_span!(target: TARGET, parent: &parent, "queue");
        let run = move || {
            drop(queued);
            let Event {
                node: name, inputs, ..
            } = event;
            let sandbox = sandbox_span(&parent, &name);
            let in_sandbox = sandbox.enter();
            let kept = node.execute_then(inputs, &terms.secrets, &terms.limits, |outcome| {
                hand_over(
                    outcome,
                    deliver,
                    [&parent, &sandbox],
                    &name,
                    &metrics,
                    received,
                )
            });
            drop(in_sandbox);
            if ahead && !priority::this_thread_is_lowered() {
                node.make_ready(&terms.secrets, &terms.limits);
            }
            drop(kept);
        };
        self.executors.run(run).map_err(|err| {
            self.metrics
                .finished(&name, "internal", received.elapsed(), 0);
            RunError::NoThread(err)
        })
    }

    /// Runs `event` on this thread if it is short (see
    /// [`running_short_events_here`](Self::running_short_events_here)):
    /// `None` once delivered, else `deliver` back, untouched, for an
    /// executor.
    fn try_here<K, D: FnOnce(Outcome) -> K>(
        &self,
        event: &Event,
        node: &NodeComponent,
        terms: &Terms,
        received: Instant,
        deliver: D,
    ) -> Option<D> {
        let Some(here) = &self.here else {
            return Some(deliver);
        };
        // A node with outbound HTTP has effects outside its sandbox; an
        // event whose own deadline is the trial's would fail where it
        // should have waited.
        if node.imports_http() || terms.limits.timeout <= HERE_TIME || !here.tries(&event.node) {
            return Some(deliver);
        }
        let trial = Limits {
            fuel: terms.limits.fuel.min(HERE_FUEL),
            timeout: terms.limits.timeout.min(HERE_TIME),
            // This thread is not the event's to lower.
            demote_after: None,
            ..terms.limits.clone()
        };
        let mut deliver = Some(deliver);
        // The same spans as on an executor; the event waited for none.
        let parent = tracing::Span::current();
        drop(tracing::info_span!(target: TARGET, parent: &parent, "queue"));
        let sandbox = sandbox_span(&parent, &event.node);
        let in_sandbox = sandbox.enter();
        // A call that would wait ends the trial (this thread drives the
        // caller's runtime): the event then waits on an executor. Should
        // anything else on the way refuse to run on this thread by
        // panicking, the event goes to an executor all the same.
        let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::sandbox::refusing_waits(|| {
                node.execute_then(event.inputs.clone(), &terms.secrets, &trial, |outcome| {
                    if outran(&outcome, &trial, &terms.limits) {
                        return None;
                    }
                    let deliver = deliver.take().expect("delivered once");
                    let spans = [&parent, &sandbox];
                    Some(hand_over(
                        outcome,
                        deliver,
                        spans,
                        &event.node,
                        &self.metrics,
                        received,
                    ))
                })
            })
        }));
        drop(in_sandbox);
        // Not delivered (it outran the try), or something panicked.
        let moved = deliver.is_some() || tried.is_err();
        drop(tried);
        here.ran(&event.node, received.elapsed(), moved);
        deliver
    }

    /// Waits for a place in the event's account lane, until the event's
    /// deadline at most.
    pub async fn admit(&self, event: &Event, limits: LaneLimits) -> Result<Permit, RunError> {
        let admitted = async {
            self.lanes
                .admit(event.account, limits)
                .await
                .map_err(RunError::from)
        };
        within(event.deadline, &event.node, admitted).await
    }

    /// Runs an admitted event and waits for its outcome, until the event's
    /// deadline at most. `observe` sees the outcome on the executor, even
    /// when the caller has stopped waiting (to keep its logs, say). The
    /// place in the lane is given back once the executor is done with the
    /// event.
    pub async fn run(
        &self,
        permit: Permit,
        event: Event,
        node: Arc<NodeComponent>,
        terms: Terms,
        observe: impl FnOnce(&Outcome) + Send + 'static,
    ) -> Result<Outcome, RunError> {
        let (deadline, name) = (event.deadline, event.node.clone());
        let (sender, outcome) = oneshot::channel();
        self.start(event, node, terms, move |outcome| {
            observe(&outcome);
            let _ = sender.send(outcome);
            permit
        })?;
        let outcome = async { outcome.await.map_err(|_| RunError::Lost) };
        within(deadline, &name, outcome).await
    }

    /// Runs `event` on an executor and blocks the calling thread until its
    /// outcome (the CLI's one event; never call it on an async thread).
    pub fn run_blocking(
        &self,
        event: Event,
        node: Arc<NodeComponent>,
        terms: Terms,
    ) -> Result<Outcome, RunError> {
        let (sender, outcome) = std::sync::mpsc::sync_channel(1);
        self.start(event, node, terms, move |outcome| {
            let _ = sender.send(outcome);
        })?;
        outcome.recv().map_err(|_| RunError::Lost)
    }
}

/// An event's `sandbox` span, under its `parent`.
fn sandbox_span(parent: &tracing::Span, node: &str) -> tracing::Span {
    tracing::info_span!(
        target: TARGET, parent: parent, "sandbox",
        node = %node, fuel = tracing::field::Empty, outcome = tracing::field::Empty,
    )
}

/// Gives `outcome` to `deliver` inside the event's `reply` span, after
/// noting it in the `sandbox` span (`spans`: the event's span, then its
/// sandbox's), and counts it.
fn hand_over<K>(
    outcome: Outcome,
    deliver: impl FnOnce(Outcome) -> K,
    [parent, sandbox]: [&tracing::Span; 2],
    node: &str,
    metrics: &Metrics,
    received: Instant,
) -> K {
    let (label, fuel) = (outcome_label(&outcome), outcome.fuel_used);
    sandbox.record("fuel", fuel);
    sandbox.record("outcome", label);
    let reply = tracing::info_span!(target: TARGET, parent: parent, "reply");
    let _replying = reply.enter();
    if let Some(http) = &outcome.http {
        tracing::info!(
            node = %node,
            outcome = label,
            requests = http.requests,
            bytes_out = http.bytes_out,
            bytes_in = http.bytes_in,
            waiting_us = http.waiting_us,
            "outbound HTTP of an event"
        );
    }
    let kept = deliver(outcome);
    metrics.finished(node, label, received.elapsed(), fuel);
    kept
}

/// True when `outcome` ended on a limit of `trial` that `limits` would not
/// have ended it on.
fn outran(outcome: &Outcome, trial: &Limits, limits: &Limits) -> bool {
    match &outcome.result {
        Err(failure) => match failure.code {
            ErrorCode::OutOfFuel => trial.fuel < limits.fuel,
            ErrorCode::Deadline => trial.timeout < limits.timeout,
            _ => false,
        },
        Ok(_) => false,
    }
}

/// `work`, given up with [`RunError::Timeout`] at `deadline`.
async fn within<T>(
    deadline: Option<Instant>,
    node: &str,
    work: impl Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    match deadline {
        None => work.await,
        Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
            .await
            .unwrap_or_else(|_elapsed| {
                Err(RunError::Timeout {
                    node: node.to_owned(),
                })
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Executors, LOCAL_ACCOUNT};
    use crate::sandbox::bench_support::guest_example_bytes;
    use crate::sandbox::{Sandbox, SandboxConfig};
    use std::time::Duration;

    fn runner(ahead: bool) -> Runner {
        let executors = Executors::new("test-executor", 2, None);
        Runner::new(executors, Metrics::new("test")).making_ahead(ahead)
    }

    fn node(name: &str) -> Arc<NodeComponent> {
        static SANDBOX: std::sync::OnceLock<Sandbox> = std::sync::OnceLock::new();
        let sandbox = SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).unwrap());
        Arc::new(sandbox.load(&guest_example_bytes(name)).unwrap())
    }

    fn event(node: &str) -> Event {
        Event {
            id: "e1".into(),
            account: LOCAL_ACCOUNT,
            node: node.into(),
            inputs: vec![],
            deadline: None,
        }
    }

    /// Reports how many instances its node had made ahead when dropped.
    struct Permit(Arc<NodeComponent>, std::sync::mpsc::Sender<usize>);

    impl Drop for Permit {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.ready_instances());
        }
    }

    fn runner_here() -> Runner {
        runner(true).running_short_events_here(true)
    }

    /// Runs `event` on `runner`; answers its outcome and whether it was
    /// delivered on this thread.
    fn run_here(
        runner: &Runner,
        event: Event,
        node: &Arc<NodeComponent>,
        limits: Limits,
    ) -> (Outcome, bool) {
        let (sender, received) = std::sync::mpsc::channel();
        let caller = std::thread::current().id();
        let terms = Terms {
            limits,
            ..Terms::default()
        };
        runner
            .start(event, node.clone(), terms, move |outcome| {
                let _ = sender.send((outcome, std::thread::current().id() == caller));
            })
            .unwrap();
        received.recv_timeout(Duration::from_secs(30)).unwrap()
    }

    fn inputs(pairs: &[(&str, crate::sandbox::Value)]) -> Vec<crate::sandbox::NamedValue> {
        pairs
            .iter()
            .map(|(name, value)| crate::sandbox::NamedValue {
                name: (*name).into(),
                value: value.clone(),
            })
            .collect()
    }

    #[test]
    fn a_short_event_runs_on_the_callers_thread() {
        let runner = runner_here();
        let node = node("first-call");
        for _ in 0..3 {
            let (outcome, here) = run_here(&runner, event("first-call"), &node, Limits::default());
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            assert!(here, "no hand-off for a short event");
        }
    }

    #[test]
    fn an_event_that_outruns_the_trial_runs_again_on_an_executor_and_its_node_waits_there() {
        use crate::sandbox::Value;
        let runner = runner_here();
        let node = node("work");
        // A wait (no fuel burnt) past the trial's time, then CPU past its fuel.
        for input in [
            inputs(&[("ms", Value::Integer(20)), ("wait", Value::Boolean(true))]),
            inputs(&[("ms", Value::Integer(20))]),
        ] {
            let runner = runner_here();
            let mut first = event("work");
            first.inputs = input.clone();
            let (outcome, here) = run_here(&runner, first, &node, Limits::default());
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            assert!(!here, "run again on an executor");
            assert!(outcome.duration >= Duration::from_millis(20));
            // The node's next events go to the executors, even a short one.
            let mut next = event("work");
            next.inputs = inputs(&[("ms", Value::Integer(0))]);
            let (outcome, here) = run_here(&runner, next, &node, Limits::default());
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            assert!(!here);
        }
        drop(runner);
    }

    /// On the thread of a current-thread runtime, as the worker's session.
    #[tokio::test]
    async fn on_a_runtime_thread_a_guest_that_waits_is_moved_not_blocked_on_it() {
        use crate::sandbox::Value;
        let work = node("work");
        let runner = runner_here();
        let mut waits = event("work");
        waits.inputs = inputs(&[("ms", Value::Integer(1)), ("wait", Value::Boolean(true))]);
        let (outcome, here) = run_here(&runner, waits, &work, Limits::default());
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert!(!here, "a wait is not made on the runtime's thread");
        // A node that does not wait still runs here.
        let quick = node("first-call");
        let (outcome, here) = run_here(&runner, event("first-call"), &quick, Limits::default());
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert!(here);
    }

    #[tokio::test]
    async fn what_a_guest_prints_and_logs_on_the_callers_thread_is_kept() {
        use crate::sandbox::Value;
        let chatty = node("chatty");
        let runner = runner_here();
        let mut talks = event("chatty");
        talks.inputs = inputs(&[("line", Value::Text("hello there".into()))]);
        let (outcome, here) = run_here(&runner, talks, &chatty, Limits::default());
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert!(here, "printing is no wait");
        assert!(
            outcome.stdout.text.contains("hello there"),
            "{:?}",
            outcome.stdout
        );
        assert_eq!(outcome.log.lines.len(), 1, "{:?}", outcome.log);
    }

    #[test]
    fn an_event_whose_own_deadline_is_the_trials_never_tries_here() {
        use crate::sandbox::Value;
        let runner = runner_here();
        let node = node("work");
        let mut waits = event("work");
        waits.inputs = inputs(&[("ms", Value::Integer(1)), ("wait", Value::Boolean(true))]);
        let limits = Limits {
            timeout: HERE_TIME,
            ..Limits::default()
        };
        let (outcome, here) = run_here(&runner, waits, &node, limits);
        assert!(!here);
        // It waited its millisecond (or met its deadline), never cut short by the trial.
        assert!(outcome.duration >= Duration::from_millis(1), "{outcome:?}");
    }

    #[test]
    fn a_guest_that_never_ends_is_stopped_by_its_own_limits_not_the_trials() {
        let runner = runner_here();
        let node = node("spin-loop");
        let limits = Limits {
            timeout: Duration::from_millis(100),
            fuel: u64::MAX / 2,
            ..Limits::default()
        };
        let started = Instant::now();
        let (outcome, here) = run_here(&runner, event("spin-loop"), &node, limits);
        let failure = outcome.result.expect_err("an endless loop fails");
        assert_eq!(failure.code, ErrorCode::Deadline);
        assert!(!here);
        assert!(started.elapsed() >= Duration::from_millis(100));
        // Under a fuel limit below the trial's, the event's own limit ends it here.
        let limits = Limits {
            fuel: 10_000,
            ..Limits::default()
        };
        let runner = runner_here();
        let (outcome, here) = run_here(&runner, event("spin-loop"), &node, limits);
        assert_eq!(
            outcome.result.expect_err("out of fuel").code,
            ErrorCode::OutOfFuel
        );
        assert!(here, "its own limit, reached on the caller's thread");
    }

    #[test]
    fn the_next_instance_is_made_before_what_deliver_returned_is_let_go() {
        let node = node("first-call");
        let (sender, received) = std::sync::mpsc::channel();
        let watched = node.clone();
        runner(true)
            .start(
                event("first-call"),
                node,
                Terms::default(),
                move |outcome| {
                    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
                    // Dropped once the next instance is made.
                    Permit(watched, sender)
                },
            )
            .unwrap();
        let ready_when_dropped = received.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(ready_when_dropped, 1);
    }

    #[test]
    fn a_runner_not_making_ahead_leaves_no_instance_behind() {
        let node = node("first-call");
        let outcome = runner(false)
            .run_blocking(event("first-call"), node.clone(), Terms::default())
            .unwrap();
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        assert_eq!(node.ready_instances(), 0);
    }

    #[tokio::test]
    async fn a_caller_deadline_that_passes_first_is_a_timeout() {
        let node = node("spin-loop");
        let runner = runner(false);
        let mut event = event("spin-loop");
        event.deadline = Some(Instant::now() + Duration::from_millis(50));
        let permit = runner
            .admit(
                &event,
                crate::core::LaneLimits {
                    concurrency: 1,
                    queue: 0,
                },
            )
            .await
            .unwrap();
        let terms = Terms {
            limits: crate::sandbox::Limits {
                timeout: Duration::from_millis(500),
                ..Default::default()
            },
            ..Terms::default()
        };
        let err = runner
            .run(permit, event, node, terms, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), "timeout", "{err}");
        // The place in the lane is held until the sandbox's own deadline ends the event.
        for _ in 0..200 {
            if runner.lanes().load(LOCAL_ACCOUNT) == (0, 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the lane never emptied: {:?}",
            runner.lanes().load(LOCAL_ACCOUNT)
        );
    }
}
