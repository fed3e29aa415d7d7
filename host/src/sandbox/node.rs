//! A loaded node and its event path: a fresh store per event, instantiated
//! from the pre-linked component (on the event's path, or ahead of it by
//! [`NodeComponent::make_ready`]), called once, classified, dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::calls_async::RemoteNodePre as AsyncPre;
use super::bindings::{RemoteNode, RemoteNodePre};
use super::capture::{CaptureStream, CapturedLog};
use super::engine::{EPOCH_TICK, EventState, READY_INSTANCES_IN_ALL, Sandbox};
use super::http::{EventHttp, HttpAccess};
use super::limits::{Limits, MemoryLimiter};
use super::outcome::{ErrorCode, Failure, Outcome, Outputs};
use super::value::{self, NamedValue, NodeInfo, Value};

/// What of a trapping guest's stderr travels with the error.
const STDERR_IN_MESSAGE: usize = 2 << 10;

/// Instances of a node that [`NodeComponent::make_ready`] keeps made ahead.
/// Two, so that two executors taking turns each find one.
pub const READY_INSTANCES: usize = 2;

/// A component that passed every load check, pre-linked and ready to run
/// events. Cheap to share behind an `Arc`; `execute` takes `&self`.
pub struct NodeComponent {
    pub(crate) sandbox: Sandbox,
    pub(crate) pre: Pre,
    info: NodeInfo,
    sha256: String,
    /// What the node may reach over HTTP; `None` for a node not granted it.
    http: Option<Arc<HttpAccess>>,
    /// Fresh instances made ahead of their events (see [`Self::make_ready`]).
    ready: Mutex<Vec<Ready>>,
    /// The language it was written in, as its producers sections say
    /// (read by the hub's catalog, which shows it; `None` elsewhere).
    pub(crate) language: Option<String>,
}

/// A node pre-linked on one of the sandbox's two engines.
#[derive(Clone)]
pub(crate) enum Pre {
    /// Most nodes: called synchronously on the executor thread.
    Sync(RemoteNodePre<EventState>),
    /// Nodes with outbound HTTP: called on the async engine, on the
    /// executor thread's own runtime (see [`on_event_runtime`]).
    Async(AsyncPre<EventState>),
}

impl Pre {
    fn engine(&self) -> &Engine {
        match self {
            Pre::Sync(pre) => pre.engine(),
            Pre::Async(pre) => pre.engine(),
        }
    }
}

thread_local! {
    /// The runtime on which this thread runs its events of nodes with
    /// outbound HTTP: the guest, its requests, their connections and their
    /// bodies, with no hand-off to another thread.
    static EVENT_RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for events with outbound HTTP");
}

/// Runs `call` (an event of a node with outbound HTTP) on this thread's
/// runtime until it ends or `deadline` comes: at the deadline the call is
/// dropped wherever it waits, and ends as `Trap::Interrupt` (`deadline`).
fn on_event_runtime<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    EVENT_RUNTIME.with(|runtime| {
        runtime.block_on(async move {
            match deadline {
                None => call.await,
                Some(at) => tokio::time::timeout_at(at.into(), call)
                    .await
                    .unwrap_or_else(|_| Err(Trap::Interrupt.into())),
            }
        })
    })
}

/// A new store for one event, and the streams that capture its output.
struct FreshStore {
    store: Store<EventState>,
    stdout: CaptureStream,
    stderr: CaptureStream,
}

impl FreshStore {
    fn new(
        sandbox: &Sandbox,
        engine: &Engine,
        limits: &Limits,
        secrets: Vec<(String, String)>,
        http: Option<&Arc<HttpAccess>>,
    ) -> Self {
        let stdout = CaptureStream::new(limits.capture_bytes);
        let stderr = CaptureStream::new(limits.capture_bytes);
        let store = new_store(sandbox, engine, limits, &stdout, &stderr, secrets, http);
        Self {
            store,
            stdout,
            stderr,
        }
    }
}

/// A fresh sandbox made ahead of its event: a new store and a new instance
/// that no event and no call has used. Only its instantiation ran (the
/// guest's start functions, if any); the event's fuel and deadline are set
/// when it is taken.
struct Ready {
    sandbox: FreshStore,
    node: RemoteNode,
    _place: ReadyPlace,
    /// What it was made for: an event with other limits or other secrets
    /// makes its own instance.
    limits: Limits,
    secrets: Vec<(String, String)>,
}

/// One of the [`READY_INSTANCES_IN_ALL`] places of a sandbox, held by an
/// instance made ahead and given back when it is dropped.
struct ReadyPlace(Arc<AtomicUsize>);

impl ReadyPlace {
    fn take(sandbox: &Sandbox) -> Option<Self> {
        let count = &sandbox.ready_in_all;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < READY_INSTANCES_IN_ALL).then_some(taken + 1)
            })
            .ok()
            .map(|_| Self(count.clone()))
    }
}

impl Drop for ReadyPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for NodeComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeComponent")
            .field("name", &self.info.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl NodeComponent {
    pub(crate) fn new(
        sandbox: Sandbox,
        pre: Pre,
        info: NodeInfo,
        sha256: String,
        http: Option<Arc<HttpAccess>>,
    ) -> Self {
        Self {
            sandbox,
            pre,
            info,
            sha256,
            http,
            ready: Mutex::new(Vec::new()),
            language: None,
        }
    }

    /// The node's info, read once at load.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// The node's name (from its info).
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the node may reach over HTTP, if it was loaded with a grant.
    pub fn http(&self) -> Option<&Arc<HttpAccess>> {
        self.http.as_ref()
    }

    /// True when the component imports `wasi:http` (outbound HTTP).
    pub fn imports_http(&self) -> bool {
        matches!(self.pre, Pre::Async(_))
    }

    /// The same node with this outbound HTTP access (`None`: every request
    /// refused). Nothing is compiled or linked again.
    pub fn with_http(&self, http: Option<Arc<HttpAccess>>) -> NodeComponent {
        let mut node = NodeComponent::new(
            self.sandbox.clone(),
            self.pre.clone(),
            self.info.clone(),
            self.sha256.clone(),
            http,
        );
        node.language = self.language.clone();
        node
    }

    /// The language it was written in (`Rust`, `Python`, `JavaScript`,
    /// `C`, …), for a node the hub loaded and whose toolchain recorded one.
    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    /// Runs one event in a fresh sandbox under `limits`.
    ///
    /// `secrets` are the caller's secrets; the guest sees only those its info
    /// declares. Inputs are checked against the node's info first, outputs
    /// after; every failure comes back as an [`Outcome`] with a code, never
    /// as a panic or a hang.
    pub fn execute(
        &self,
        inputs: Vec<NamedValue>,
        secrets: &HashMap<String, String>,
        limits: &Limits,
    ) -> Outcome {
        self.execute_then(inputs, secrets, limits, |outcome| outcome)
    }

    /// [`execute`](Self::execute), handing the outcome to `deliver` before
    /// the instance is torn down. Tearing down resets the pool slot, a large
    /// part of a fresh event's cost; a caller that sends the reply from
    /// `deliver` keeps that reset off the reply's path. The event takes an
    /// instance made ahead for its limits and secrets if one waits (see
    /// [`make_ready`](Self::make_ready)), else instantiates its own.
    pub fn execute_then<R>(
        &self,
        inputs: Vec<NamedValue>,
        secrets: &HashMap<String, String>,
        limits: &Limits,
        deliver: impl FnOnce(Outcome) -> R,
    ) -> R {
        let started = Instant::now();
        // Kept until the outcome is delivered: see above.
        let mut kept = None;
        let (result, fuel_used, log, http) = match self.check_inputs(inputs) {
            Err(failure) => (Err(failure), 0, CapturedLog::default(), None),
            Ok(inputs) => {
                let declared = self.declared_secrets(secrets);
                let called = match &self.pre {
                    Pre::Sync(pre) => {
                        let (sandbox, node) = match self.take_ready(limits, &declared) {
                            Some(Ready {
                                mut sandbox, node, ..
                            }) => {
                                arm(&mut sandbox.store, &self.sandbox, limits);
                                (sandbox, Ok(node))
                            }
                            None => {
                                let mut sandbox = FreshStore::new(
                                    &self.sandbox,
                                    pre.engine(),
                                    limits,
                                    declared,
                                    self.http.as_ref(),
                                );
                                let node = pre.instantiate(&mut sandbox.store);
                                (sandbox, node)
                            }
                        };
                        let FreshStore { store, .. } = kept.insert(sandbox);
                        node.and_then(|node| {
                            node.node_host_node_node()
                                .call_execute(&mut *store, &inputs)
                        })
                    }
                    Pre::Async(pre) => {
                        let sandbox = FreshStore::new(
                            &self.sandbox,
                            pre.engine(),
                            limits,
                            declared,
                            self.http.as_ref(),
                        );
                        let FreshStore { store, .. } = kept.insert(sandbox);
                        let deadline = store.data().deadline;
                        on_event_runtime(deadline, async {
                            let node = pre.instantiate_async(&mut *store).await?;
                            node.node_host_node_node()
                                .call_execute(&mut *store, &inputs)
                                .await
                        })
                    }
                };
                let FreshStore { store, stderr, .. } =
                    kept.as_mut().expect("the event's store was just made");
                let fuel_used = match self.sandbox.config.fuel {
                    true => limits.fuel - store.get_fuel().unwrap_or(0),
                    false => 0,
                };
                // Outputs that come at or after the deadline are late: a
                // guest woken from a wait at the deadline (waits are clamped
                // to it) may finish before the next epoch tick stops it, and
                // its event must end the same way as one that was stopped.
                let late = store
                    .data()
                    .deadline
                    .is_some_and(|ends| Instant::now() >= ends);
                let result = match called {
                    Ok(Ok(_)) if late => Err(Failure::new(
                        ErrorCode::Deadline,
                        "the event ran past its deadline".to_owned(),
                    )),
                    Ok(Ok(outputs)) => self.check_outputs(outputs, limits),
                    Ok(Err(node_error)) => Err(Failure::new(
                        ErrorCode::GuestError,
                        format!("{}: {}", node_error.code, node_error.message),
                    )),
                    Err(err) => Err(classify(&err, store.data().limiter.refused_at(), stderr)),
                };
                let tally = &store.data().http.tally;
                let result = result.map_err(|failure| blame_refusal(failure, tally.refusal()));
                let http = store.data().http.granted().then(|| tally.usage());
                let log = std::mem::take(&mut store.data_mut().log);
                (result, fuel_used, log, http)
            }
        };
        let (stdout, stderr) = kept.as_ref().map_or_else(Default::default, |sandbox| {
            (sandbox.stdout.take(), sandbox.stderr.take())
        });
        let delivered = deliver(Outcome {
            result,
            fuel_used,
            duration: started.elapsed(),
            stdout,
            stderr,
            log,
            http,
        });
        let open_requests = kept
            .as_ref()
            .is_some_and(|sandbox| sandbox.store.data().http.tally.any_open());
        drop(kept);
        if open_requests {
            // The event's tasks were aborted with its store: let them go now
            // rather than at this thread's next event.
            EVENT_RUNTIME.with(|runtime| runtime.block_on(tokio::task::yield_now()));
        }
        delivered
    }

    /// Makes one fresh instance ahead of a later event under `limits` and
    /// `secrets`, unless [`READY_INSTANCES`] already wait (or the sandbox's
    /// nodes hold [`READY_INSTANCES_IN_ALL`] between them): that event then
    /// skips the instantiation (for a componentize-py guest, most of its
    /// cost). The instance is as fresh as one made on the event's path (new
    /// store, nothing called), and the event's fuel and deadline start when
    /// it is taken. Call it after an event's reply is sent, off its path;
    /// a failure here is left for the event's own instantiation to report.
    pub fn make_ready(&self, secrets: &HashMap<String, String>, limits: &Limits) {
        if self.ready_lock().len() >= READY_INSTANCES {
            return;
        }
        // Nodes with outbound HTTP are instantiated on the event's runtime.
        let Pre::Sync(pre) = &self.pre else {
            return;
        };
        let Some(place) = ReadyPlace::take(&self.sandbox) else {
            return;
        };
        let declared = self.declared_secrets(secrets);
        let mut sandbox = FreshStore::new(
            &self.sandbox,
            pre.engine(),
            limits,
            declared.clone(),
            self.http.as_ref(),
        );
        let Ok(node) = pre.instantiate(&mut sandbox.store) else {
            return;
        };
        let mut ready = self.ready_lock();
        if ready.len() < READY_INSTANCES {
            ready.push(Ready {
                sandbox,
                node,
                _place: place,
                limits: limits.clone(),
                secrets: declared,
            });
        }
    }

    /// Fresh instances made ahead and not yet taken.
    pub fn ready_instances(&self) -> usize {
        self.ready_lock().len()
    }

    /// A fresh instance made ahead for these limits and secrets, if any
    /// waits; those made for others are dropped (their events are gone).
    fn take_ready(&self, limits: &Limits, secrets: &[(String, String)]) -> Option<Ready> {
        let mut ready = self.ready_lock();
        let stale: Vec<Ready> = ready
            .extract_if(.., |made| {
                !made.limits.same_store(limits) || made.secrets != secrets
            })
            .collect();
        let taken = ready.pop();
        drop(ready);
        // Torn down (a pool slot reset each) with the lock released.
        drop(stale);
        taken
    }

    fn ready_lock(&self) -> std::sync::MutexGuard<'_, Vec<Ready>> {
        // The list stays consistent if a thread panicked while holding it.
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller's secrets that the node declares.
    fn declared_secrets(&self, secrets: &HashMap<String, String>) -> Vec<(String, String)> {
        self.info
            .secrets
            .iter()
            .filter_map(|name| Some((name.clone(), secrets.get(name)?.clone())))
            .collect()
    }

    /// Instantiates once and calls `info`, under the default limits.
    pub(crate) fn read_info(sandbox: &Sandbox, pre: &Pre) -> Result<NodeInfo, Failure> {
        let limits = Limits::default();
        let stderr = CaptureStream::new(limits.capture_bytes);
        let stdout = CaptureStream::new(limits.capture_bytes);
        let engine = pre.engine();
        let mut store = new_store(sandbox, engine, &limits, &stdout, &stderr, Vec::new(), None);
        let info = match pre {
            Pre::Sync(pre) => pre
                .instantiate(&mut store)
                .and_then(|node| node.node_host_node_node().call_info(&mut store)),
            Pre::Async(pre) => {
                let deadline = store.data().deadline;
                on_event_runtime(deadline, async {
                    let node = pre.instantiate_async(&mut store).await?;
                    node.node_host_node_node().call_info(&mut store).await
                })
            }
        };
        info.map_err(|err| classify(&err, store.data().limiter.refused_at(), &stderr))
    }

    /// Checks the caller's inputs against the declared ones and adds the
    /// defaults of optional inputs left out.
    fn check_inputs(&self, mut inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, Failure> {
        for (i, input) in inputs.iter().enumerate() {
            if !self.info.inputs.iter().any(|port| port.name == input.name) {
                return Err(Failure::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "node `{}` has no input `{}`; its inputs are: {}",
                        self.info.name,
                        input.name,
                        port_names(&self.info.inputs)
                    ),
                ));
            }
            if inputs[..i].iter().any(|earlier| earlier.name == input.name) {
                return Err(Failure::new(
                    ErrorCode::InvalidInput,
                    format!("input `{}` is given twice", input.name),
                ));
            }
        }
        for port in &self.info.inputs {
            if inputs.iter().any(|input| input.name == port.name) {
                continue;
            }
            if port.required {
                return Err(Failure::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "node `{}` requires input `{}` ({})",
                        self.info.name, port.name, port.description
                    ),
                ));
            }
            if let Some(default) = &port.default_value {
                inputs.push(NamedValue {
                    name: port.name.clone(),
                    value: default.clone(),
                });
            }
        }
        Ok(inputs)
    }

    /// Checks the returned outputs against the declared ones and the output
    /// cap, and puts them in declared order with nulls for the missing
    /// optional ones.
    fn check_outputs(&self, outputs: Vec<NamedValue>, limits: &Limits) -> Result<Outputs, Failure> {
        let size: usize = outputs
            .iter()
            .map(|output| output.name.len() + value::size_of(&output.value))
            .sum();
        if size > limits.output_bytes {
            return Err(Failure::new(
                ErrorCode::OutputTooLarge,
                format!(
                    "the outputs take {size} bytes; the limit is {} bytes",
                    limits.output_bytes
                ),
            ));
        }
        let invalid = |message: String| Err(Failure::new(ErrorCode::InvalidOutput, message));
        for (i, output) in outputs.iter().enumerate() {
            if !self
                .info
                .outputs
                .iter()
                .any(|port| port.name == output.name)
            {
                return invalid(format!(
                    "node `{}` returned output `{}`, which it does not declare; it declares: {}",
                    self.info.name,
                    output.name,
                    port_names(&self.info.outputs)
                ));
            }
            if outputs[..i]
                .iter()
                .any(|earlier| earlier.name == output.name)
            {
                return invalid(format!("output `{}` is returned twice", output.name));
            }
            if let Value::Json(_) = &output.value
                && let Err(err) = value::to_json(&output.value)
            {
                return invalid(format!("output `{}`: {err}", output.name));
            }
        }
        let mut outputs = outputs;
        let mut ordered = Vec::with_capacity(self.info.outputs.len());
        for port in &self.info.outputs {
            match outputs.iter().position(|output| output.name == port.name) {
                Some(at) => ordered.push((port.name.clone(), outputs.swap_remove(at).value)),
                None if port.required => {
                    return invalid(format!(
                        "node `{}` did not return its required output `{}`",
                        self.info.name, port.name
                    ));
                }
                None => ordered.push((port.name.clone(), Value::Null)),
            }
        }
        Ok(ordered)
    }
}

pub(crate) fn new_store(
    sandbox: &Sandbox,
    engine: &Engine,
    limits: &Limits,
    stdout: &CaptureStream,
    stderr: &CaptureStream,
    secrets: Vec<(String, String)>,
    http: Option<&Arc<HttpAccess>>,
) -> Store<EventState> {
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let http = match http {
        Some(access) => EventHttp::new(Some(access.clone()), secrets.clone()),
        None => EventHttp::default(),
    };
    let state = EventState {
        wasi,
        http,
        http_ctx: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(limits.memory_bytes),
        log: CapturedLog::default(),
        log_cap: limits.capture_bytes,
        secrets,
        deadline: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // A guest that spends its time in cheap host calls burns little fuel,
    // and a deadline finer than the epoch's tick (the session thread's 1 ms
    // try) would otherwise wait for the next tick: each call into the host
    // past the deadline ends the event. The clock is read once per host
    // call, a small part of the call's own cost.
    store.call_hook(|store, kind| match (kind, store.data().deadline) {
        (CallHook::CallingHost, Some(ends)) if Instant::now() >= ends => {
            Err(Trap::Interrupt.into())
        }
        _ => Ok(()),
    });
    arm(&mut store, sandbox, limits);
    store
}

/// Gives `store` the fuel of `limits` and starts its deadline now.
fn arm(store: &mut Store<EventState>, sandbox: &Sandbox, limits: &Limits) {
    if sandbox.config.fuel {
        store
            .set_fuel(limits.fuel)
            .expect("fuel metering is enabled on this engine");
    }
    // The decisions below are made on wall-clock time: epoch ticks only say
    // when to look at the clock, so a tick that comes early (the first one
    // may come at any moment) or a burst of late ones never cuts an event
    // short, and a late ticker delays a stop by its lateness alone.
    let started = Instant::now();
    // A century stands for "no deadline" without overflowing `Instant`.
    let timeout = limits
        .timeout
        .min(Duration::from_secs(100 * 365 * 24 * 3600));
    let ends = started + timeout;
    // Also checked at every call into the host (see `new_store`).
    store.data_mut().deadline = Some(ends);
    if sandbox.config.epochs {
        let mut demote_at = limits
            .demote_after
            .filter(|demote| *demote < timeout)
            .map(|demote| started + demote);
        store.set_epoch_deadline(ticks_within(demote_at.unwrap_or(ends) - started));
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            if demote_at.is_some_and(|at| now >= at) {
                demote_at = None;
                super::priority::lower_this_thread();
            }
            if now >= ends {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(ticks_within(
                demote_at.unwrap_or(ends) - now,
            )))
        });
    }
}

/// A failed event whose guest had a request refused by the host fails
/// with the refusal's code: the guest most likely failed because of it
/// (a guest that handled the refusal and succeeded keeps its outputs).
fn blame_refusal(failure: Failure, refusal: Option<Failure>) -> Failure {
    match refusal {
        Some(refusal) if matches!(failure.code, ErrorCode::GuestError | ErrorCode::Trap) => {
            Failure::new(
                refusal.code,
                format!(
                    "{}; the node then failed: {}",
                    refusal.message, failure.message
                ),
            )
        }
        _ => failure,
    }
}

/// Epoch ticks after which at least `span` may have passed: `span` rounded
/// up to whole ticks, at least one.
fn ticks_within(span: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    (span.as_nanos().div_ceil(tick) as u64).max(1)
}

/// Maps a failed instantiate or call to an error code: by the trap wasmtime
/// raised and by what the memory limiter refused, never by message text.
pub(crate) fn classify(
    err: &wasmtime::Error,
    memory_refused: Option<usize>,
    stderr: &CaptureStream,
) -> Failure {
    let trap = err.downcast_ref::<Trap>().copied();
    let (code, what) = match trap {
        Some(Trap::OutOfFuel) => (ErrorCode::OutOfFuel, "the event ran out of fuel".to_owned()),
        Some(Trap::Interrupt) => (
            ErrorCode::Deadline,
            "the event ran past its deadline".to_owned(),
        ),
        Some(Trap::StackOverflow) => (
            ErrorCode::StackOverflow,
            "the guest exhausted its call stack".to_owned(),
        ),
        _ if let Some(asked) = memory_refused => (
            ErrorCode::MemoryLimit,
            format!("the guest asked for {asked} bytes of linear memory, beyond the event's limit"),
        ),
        Some(trap) => (ErrorCode::Trap, format!("the guest trapped: {trap}")),
        None => (ErrorCode::Trap, format!("the guest failed: {err}")),
    };
    let tail = stderr.tail(STDERR_IN_MESSAGE);
    let message = if tail.is_empty() || code != ErrorCode::Trap {
        what
    } else {
        format!("{what}; stderr: {tail}")
    };
    Failure::new(code, message)
}

fn port_names(ports: &[super::value::Port]) -> String {
    if ports.is_empty() {
        return "(none)".into();
    }
    ports
        .iter()
        .map(|port| port.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_up_to_whole_ticks() {
        assert_eq!(ticks_within(Duration::ZERO), 1);
        assert_eq!(ticks_within(EPOCH_TICK), 1);
        assert_eq!(ticks_within(EPOCH_TICK + Duration::from_nanos(1)), 2);
        assert_eq!(ticks_within(Duration::from_secs(1)), 100);
    }
}
