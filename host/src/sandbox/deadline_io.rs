//! `wasi:io/poll` and `wasi:io/streams` as wasmtime-wasi provides them,
//! except that no blocking call outlasts the event's deadline.
//!
//! A guest parked in a host call is beyond fuel and epoch interruption:
//! both act only while guest code runs. Before outbound HTTP, the only long
//! waits were on clocks (see [`deadline_clock`](super::deadline_clock)).
//! With it, a guest can block on the network: on a response that never
//! comes, on a body that trickles, or on writing a request body that no one
//! reads yet (the guest fills the body's buffer before it sends the
//! request). Every blocking call here waits at most until the deadline and
//! then ends the event as a trap of [`Trap::Interrupt`], which the event
//! path reports as `deadline`, the same as a guest stopped in its own code.
//! The non-blocking calls are passed through unchanged.

use std::future::Future;
use std::time::Instant;

use wasmtime::Trap;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::engine::EventState;

/// The linker's data for the bounded I/O interfaces.
pub(crate) struct DeadlineIo;

impl HasData for DeadlineIo {
    type Data<'a> = BoundedIo<'a>;
}

/// An event's resource table with its deadline.
pub(crate) struct BoundedIo<'a> {
    table: &'a mut ResourceTable,
    deadline: Option<Instant>,
}

impl<'a> BoundedIo<'a> {
    pub(crate) fn of(state: &'a mut EventState) -> Self {
        Self {
            deadline: state.deadline,
            table: &mut state.table,
        }
    }
}

thread_local! {
    /// Set while this thread runs an event that must not wait (see
    /// [`refusing_waits`]).
    static NO_WAITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `event` with every blocking call that would wait ending the event
/// as at its deadline instead: for an event tried on a thread that drives
/// an async runtime (the worker's session), which must neither block on
/// that runtime nor sleep. Calls that are ready at once go through.
pub(crate) fn refusing_waits<R>(event: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_WAITING.set(self.0);
        }
    }
    let _reset = Reset(NO_WAITING.replace(true));
    event()
}

/// Runs `wait` on wasmtime-wasi's runtime until it ends or the deadline
/// comes, whichever is first; `None` at the deadline (or at once, if it
/// would wait while waits are refused).
fn until<F: Future>(deadline: Option<Instant>, wait: F) -> Option<F::Output> {
    if NO_WAITING.get() {
        let mut wait = std::pin::pin!(wait);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        return match wait.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(done) => Some(done),
            std::task::Poll::Pending => None,
        };
    }
    match deadline {
        None => Some(in_tokio(wait)),
        Some(deadline) => {
            in_tokio(async move { tokio::time::timeout_at(deadline.into(), wait).await.ok() })
        }
    }
}

/// The error that ends an event whose blocking call reached the deadline.
fn past_deadline() -> wasmtime::Error {
    wasmtime::Error::from(Trap::Interrupt)
}

fn stream_past_deadline() -> StreamError {
    StreamError::Trap(past_deadline())
}

impl poll::Host for BoundedIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let table = &mut *self.table;
        until(self.deadline, async_poll::Host::poll(table, pollables))
            .unwrap_or_else(|| Err(past_deadline()))
    }
}

impl poll::HostPollable for BoundedIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(&mut *self.table, pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let table = &mut *self.table;
        until(
            self.deadline,
            async_poll::HostPollable::block(table, pollable),
        )
        .unwrap_or_else(|| Err(past_deadline()))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.table, pollable)
    }
}

impl streams::Host for BoundedIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut *self.table, err)
    }
}

impl streams::HostOutputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        let table = &mut *self.table;
        until(self.deadline, AsyncOutput::drop(table, stream))
            .unwrap_or_else(|| Err(past_deadline()))
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut *self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut *self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        let table = &mut *self.table;
        until(
            self.deadline,
            AsyncOutput::blocking_write_and_flush(table, stream, bytes),
        )
        .unwrap_or_else(|| Err(stream_past_deadline()))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let table = &mut *self.table;
        until(
            self.deadline,
            AsyncOutput::blocking_write_zeroes_and_flush(table, stream, len),
        )
        .unwrap_or_else(|| Err(stream_past_deadline()))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut *self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut *self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut *self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let table = &mut *self.table;
        until(self.deadline, AsyncOutput::blocking_flush(table, stream))
            .unwrap_or_else(|| Err(stream_past_deadline()))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut *self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let table = &mut *self.table;
        until(
            self.deadline,
            AsyncOutput::blocking_splice(table, dst, src, len),
        )
        .unwrap_or_else(|| Err(stream_past_deadline()))
    }
}

impl streams::HostInputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        let table = &mut *self.table;
        until(self.deadline, AsyncInput::drop(table, stream))
            .unwrap_or_else(|| Err(past_deadline()))
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut *self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        let table = &mut *self.table;
        until(self.deadline, AsyncInput::blocking_read(table, stream, len))
            .unwrap_or_else(|| Err(stream_past_deadline()))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut *self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let table = &mut *self.table;
        until(self.deadline, AsyncInput::blocking_skip(table, stream, len))
            .unwrap_or_else(|| Err(stream_past_deadline()))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut *self.table, stream)
    }
}
