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
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::event::{Event, Outcome, RunError, Terms, outcome_label};
use super::executors::Executors;
use super::lanes::{LaneLimits, Lanes, Permit};
use crate::metrics::Metrics;
use crate::sandbox::{NodeComponent, priority};

/// Runs events in fresh sandboxes on one bounded executor pool.
#[derive(Debug)]
pub struct Runner {
    executors: Executors,
    lanes: Lanes,
    metrics: Metrics,
    ahead: bool,
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
        }
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
        // The event's trace, when one is exported: waiting for an executor,
        // the sandbox, the reply (each costs nothing otherwise).
        let parent = tracing::Span::current();
        let queued = tracing::info_span!(target: TARGET, parent: &parent, "queue");
        let run = move || {
            drop(queued);
            let Event {
                node: name, inputs, ..
            } = event;
            let sandbox = tracing::info_span!(
                target: TARGET, parent: &parent, "sandbox",
                node = %name, fuel = tracing::field::Empty, outcome = tracing::field::Empty,
            );
            let in_sandbox = sandbox.enter();
            let kept = node.execute_then(inputs, &terms.secrets, &terms.limits, |outcome| {
                let (label, fuel) = (outcome_label(&outcome), outcome.fuel_used);
                sandbox.record("fuel", fuel);
                sandbox.record("outcome", label);
                let reply = tracing::info_span!(target: TARGET, parent: &parent, "reply");
                let _replying = reply.enter();
                if let Some(http) = &outcome.http {
                    tracing::info!(
                        node = %name,
                        outcome = label,
                        requests = http.requests,
                        bytes_out = http.bytes_out,
                        bytes_in = http.bytes_in,
                        waiting_us = http.waiting_us,
                        "outbound HTTP of an event"
                    );
                }
                let kept = deliver(outcome);
                metrics.finished(&name, label, received.elapsed(), fuel);
                kept
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
