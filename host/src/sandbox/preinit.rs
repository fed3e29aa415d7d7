//! Pre-initialization: runs a node's `info` once and makes the state its
//! memories and globals are left in the component's initial state (Wizer's
//! snapshot, by `wasmtime-wizer`), so that every fresh instance starts past
//! the guest runtime's first-call work.
//!
//! Why: a componentize-js or componentize-py guest does most of a fresh
//! event's work setting itself up on its first call (its snapshot was taken
//! before any call); skipping that about halves a fresh `hello-js` event
//! (BENCHMARKS.md, "Nodes in every language", has the figures).
//!
//! Every event still gets a new instance, and all of them start from the
//! same state: the one `info` leaves, with no inputs and no secrets, under
//! the same linker and limits as an event.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::Store;
use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::bindings::RemoteNode;
use super::capture::CaptureStream;
use super::engine::{EventState, Sandbox};
use super::limits::Limits;
use super::node::{classify, new_store};
use super::outcome::Failure;

/// Why a component was not pre-initialized.
#[derive(Debug)]
pub enum PreinitError {
    /// The node's `info` failed; the load would fail the same way.
    InfoFailed(Failure),
    /// Anything else (a shape Wizer does not take, a link error): the
    /// component is loaded as built, and the load reports its problem.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for PreinitError {
    fn from(err: anyhow::Error) -> Self {
        Self::Other(err)
    }
}

impl From<wasmtime::Error> for PreinitError {
    fn from(err: wasmtime::Error) -> Self {
        Self::Other(err.into())
    }
}

/// The component `bytes` with the state one `info` call leaves behind.
///
/// The instrumented copy that runs `info` is compiled without optimizing
/// (by [`Sandbox::unoptimized`]): it runs once, and its compile is half of
/// a big guest's first load. The snapshot holds state, not code, so it does
/// not depend on how that copy was compiled.
pub fn preinitialize(sandbox: &Sandbox, bytes: &[u8]) -> Result<Vec<u8>, PreinitError> {
    let sandbox = &sandbox
        .unoptimized()
        .map_err(|err| PreinitError::Other(err.into()))?;
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument_component(bytes)?;
    let component = Component::new(&sandbox.engine, &instrumented)?;
    let limits = Limits::default();
    let stdout = CaptureStream::new(limits.capture_bytes);
    let stderr = CaptureStream::new(limits.capture_bytes);
    let mut store = new_store(
        sandbox,
        &sandbox.engine,
        &limits,
        &stdout,
        &stderr,
        Vec::new(),
        None,
    );
    let instance = sandbox.linker.instantiate(&mut store, &component)?;
    let node = RemoteNode::new(&mut store, &instance)?;
    // The same limits and classification as the load's own `info` call
    // (`NodeComponent::read_info`), which is then not made.
    node.node_host_node_node()
        .call_info(&mut store)
        .map_err(|err| {
            PreinitError::InfoFailed(classify(&err, store.data().limiter.refused_at(), &stderr))
        })?;
    let mut state = State {
        store: &mut store,
        instance,
        failed: None,
    };
    let snapshot = ready(wizer.snapshot_component(&cx, &mut state))?;
    match state.failed {
        Some(err) => Err(err.context("reading the instance's state").into()),
        None => Ok(snapshot),
    }
}

/// The instrumented instance, read through the accessors Wizer exported.
struct State<'a> {
    store: &'a mut Store<EventState>,
    instance: Instance,
    /// The first accessor that failed (the snapshot is then discarded).
    failed: Option<anyhow::Error>,
}

impl State<'_> {
    /// Calls the accessor `instance#func` and hands its result to
    /// `use_result`; on failure records it and returns the default.
    fn call<R: Lift + 'static, T: Default>(
        &mut self,
        instance: &str,
        func: &str,
        use_result: impl FnOnce(&Store<EventState>, R) -> T,
    ) -> T {
        if self.failed.is_some() {
            return T::default();
        }
        match self.try_call(instance, func) {
            Ok(result) => use_result(self.store, result),
            Err(err) => {
                self.failed = Some(err.context(format!("calling {instance}#{func}")));
                T::default()
            }
        }
    }

    fn try_call<R: Lift + 'static>(&mut self, instance: &str, func: &str) -> anyhow::Result<R> {
        let store = &mut *self.store;
        let (_, exported) = self
            .instance
            .get_export(&mut *store, None, instance)
            .ok_or_else(|| anyhow::anyhow!("no such export"))?;
        let (_, func) = self
            .instance
            .get_export(&mut *store, Some(&exported), func)
            .ok_or_else(|| anyhow::anyhow!("no such export"))?;
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *store, func)?;
        Ok(func.call(store, ())?.0)
    }
}

impl ComponentInstanceState for State<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(store))
        })
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, value| value)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, value| value)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, value: f32| value.to_bits())
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, value: f64| value.to_bits())
    }
}

/// The output of a future that never waits (every call above is synchronous).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the snapshot never waits"),
    }
}
