//! The one wasmtime engine a process uses, configured for node-host, and the
//! linker every node is pre-linked against.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::RemoteNode;
use super::cache::CompileCache;
use super::capture::CapturedLog;
use super::deadline_clock::{ClampedClock, DeadlineClock};
use super::deadline_io::{BoundedIo, DeadlineIo};
use super::http::EventHttp;
use super::limits::MemoryLimiter;

/// How often the epoch advances: the deadline overshoots by at most one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances the pooling allocator keeps slots for. Events beyond this many
/// at once would fail inside wasmtime, so the layers above bound their
/// concurrency well below it.
pub const POOL_INSTANCES: u32 = 1_000;

/// Instances made ahead of their events (`NodeComponent::make_ready`) that
/// all nodes of one sandbox may hold at once, so that most of the pool stays
/// for events however many nodes a hub hosts.
pub const READY_INSTANCES_IN_ALL: usize = 64;

/// Largest single linear memory a slot can hold (the 32-bit maximum); the
/// per-event cap is enforced below it by the memory limiter.
const POOL_MEMORY_BYTES: usize = 4 << 30;

/// Core instances, memories and tables one component may have. Rust guests
/// need a handful; componentize-py and componentize-js guests need more.
pub(crate) const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 50;
pub(crate) const POOL_MEMORIES_PER_COMPONENT: u32 = 10;
pub(crate) const POOL_TABLES_PER_COMPONENT: u32 = 20;

/// Bytes of each linear memory slot that stay resident between instances
/// and are reset in place instead of being handed back to the kernel, so
/// the next instance in the slot touches no new pages. With `PAGEMAP_SCAN`
/// only the pages an instance dirtied are reset, so this can be large
/// enough for the heaps of Python and JavaScript guests, which it makes
/// several times faster to instantiate afresh (BENCHMARKS.md, "Fresh
/// sandbox per event"). Only pages a guest touched stay resident.
pub const POOL_MEMORY_KEEP_RESIDENT: usize = 64 << 20;

/// The same for table slots (function references of the guest).
const POOL_TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How a [`Sandbox`] is set up. The defaults are what node-host runs with;
/// switching metering off exists for benchmarks that measure its cost.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Meter fuel (enforces [`Limits::fuel`](super::Limits::fuel)).
    pub fuel: bool,
    /// Interrupt guest code by epoch, so that [`Limits::timeout`](super::Limits::timeout)
    /// stops a guest that never calls the host (without it the deadline is
    /// checked only at host calls and bounds only the host's waits).
    pub epochs: bool,
    /// Where compiled components are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Take instances from the pooling allocator (falling back to on-demand
    /// allocation when its address space cannot be reserved).
    pub pooling: bool,
    /// Map linear memories copy-on-write from the compiled image instead of
    /// copying their data segments into every fresh instance.
    pub memory_cow: bool,
    /// Bytes of each pooled linear memory kept resident between instances
    /// (reset in place rather than handed back to the kernel).
    pub memory_keep_resident: usize,
    /// Find the pages an instance dirtied with Linux's `PAGEMAP_SCAN` (6.7+;
    /// older kernels fall back to resetting the whole kept region) and reset
    /// only those, so `memory_keep_resident` can be large.
    pub pagemap_scan: bool,
    /// Load each node as it is after one `info` call (see
    /// [`preinit`](super::preinit)), so that fresh instances skip the guest
    /// runtime's first-call work.
    pub preinitialize: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            fuel: true,
            epochs: true,
            cache_dir: None,
            pooling: true,
            memory_cow: true,
            memory_keep_resident: POOL_MEMORY_KEEP_RESIDENT,
            pagemap_scan: true,
            preinitialize: true,
        }
    }
}

/// The errors of setting up a [`Sandbox`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The compile cache directory cannot be used.
    #[error("cannot use the compile cache at {}: {source}", path.display())]
    Cache {
        /// The directory.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
}

/// The per-event state of a store: everything a fresh sandbox holds.
pub(crate) struct EventState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: CapturedLog,
    pub(crate) log_cap: usize,
    /// Only the secrets the node declared.
    pub(crate) secrets: Vec<(String, String)>,
    /// When the event ends; no wait on a clock outlasts it.
    pub(crate) deadline: Option<Instant>,
    pub(crate) http_ctx: WasiHttpCtx,
    /// The event's outbound HTTP (every request refused without a grant).
    pub(crate) http: EventHttp,
}

impl WasiHttpView for EventState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http,
            table: &mut self.table,
            ctx: &mut self.http_ctx,
        }
    }
}

impl WasiView for EventState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::node_host::node::types::Host for EventState {}

impl super::bindings::node_host::node::host::Host for EventState {
    fn log(&mut self, level: super::capture::Level, message: String) {
        self.log.push(level, message, self.log_cap);
    }

    fn secret(&mut self, name: String) -> Option<String> {
        self.secrets
            .iter()
            .find(|(declared, _)| *declared == name)
            .map(|(_, value)| value.clone())
    }
}

/// The engine, linker and compile cache that every node of a process shares.
///
/// Cloning is cheap; all clones share one engine and one epoch ticker.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<EventState>>,
    pub(crate) cache: Option<CompileCache>,
    pub(crate) config: SandboxConfig,
    pooling: bool,
    /// Instances made ahead by all nodes of this sandbox (see
    /// [`READY_INSTANCES_IN_ALL`]).
    pub(crate) ready_in_all: Arc<AtomicUsize>,
    pub(crate) http_engine: Arc<OnceLock<Result<HttpEngine, String>>>,
}

/// The linker of nodes granted outbound HTTP, on the same engine: their
/// events are called asynchronously, so that the guest, its requests, their
/// connections and their bodies all run on one thread (the executor's own
/// runtime, see `node::on_event_runtime`). The sync embedding of wasi:http
/// hands every request and every wait to wasmtime-wasi's thread pool and
/// back, and those wake-ups cost more than the request itself on a small
/// machine (BENCHMARKS.md, "Outbound HTTP"). Every wait is an await here,
/// so the event's deadline ends it by dropping the event's future: no wait
/// needs a bound of its own.
pub(crate) struct HttpEngine {
    pub(crate) linker: Linker<EventState>,
}

impl HttpEngine {
    fn new(engine: &Engine) -> Result<Self, SandboxError> {
        let fail = |err: wasmtime::Error| SandboxError::Engine(err.to_string());
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(fail)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(fail)?;
        RemoteNode::add_to_linker::<_, HasSelf<EventState>>(&mut linker, |state| state)
            .map_err(fail)?;
        Ok(Self { linker })
    }
}

/// An engine for `config` (pooling allocator, falling back to on-demand
/// allocation when the address space cannot be reserved); the flag says
/// whether it pools.
fn build_engine(
    config: &SandboxConfig,
    opt_level: OptLevel,
) -> Result<(Engine, bool), SandboxError> {
    let pooled = config
        .pooling
        .then(|| Engine::new(&engine_config(config, true, opt_level)));
    match pooled {
        Some(Ok(engine)) => Ok((engine, true)),
        other => {
            if let Some(Err(err)) = other {
                tracing::warn!(
                    "pooling allocator unavailable ({err}); falling back to on-demand \
                     allocation, which makes every fresh sandbox slower"
                );
            }
            let engine = Engine::new(&engine_config(config, false, opt_level))
                .map_err(|err| SandboxError::Engine(err.to_string()))?;
            Ok((engine, false))
        }
    }
}

impl Sandbox {
    /// Builds the engine (pooling allocator, falling back to on-demand
    /// allocation when the address space cannot be reserved), starts the
    /// epoch ticker, and links WASI with nothing granted plus the node-host
    /// host interface.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        Self::with_opt_level(config, OptLevel::Speed)
    }

    /// A sandbox like this one, on instances allocated on demand, whose
    /// engine compiles without optimizing: for code that runs once, where
    /// compile time is all that counts (pre-initialization's `info` call,
    /// which took a big guest's first load from one compile to two).
    pub(crate) fn unoptimized(&self) -> Result<Self, SandboxError> {
        let config = SandboxConfig {
            pooling: false,
            cache_dir: None,
            preinitialize: false,
            ..self.config.clone()
        };
        Self::with_opt_level(config, OptLevel::None)
    }

    fn with_opt_level(config: SandboxConfig, opt_level: OptLevel) -> Result<Self, SandboxError> {
        let (engine, pooling) = build_engine(&config, opt_level)?;
        if config.epochs {
            start_epoch_ticker(&engine);
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|err| SandboxError::Engine(err.to_string()))?;
        // The monotonic clock, polling and streams again, with every wait
        // cut at the deadline.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<
            EventState,
            DeadlineClock,
        >(&mut linker, |state| ClampedClock::of(state))
        .map_err(|err| SandboxError::Engine(err.to_string()))?;
        wasmtime_wasi::p2::bindings::sync::io::poll::add_to_linker::<EventState, DeadlineIo>(
            &mut linker,
            |state| BoundedIo::of(state),
        )
        .map_err(|err| SandboxError::Engine(err.to_string()))?;
        wasmtime_wasi::p2::bindings::sync::io::streams::add_to_linker::<EventState, DeadlineIo>(
            &mut linker,
            |state| BoundedIo::of(state),
        )
        .map_err(|err| SandboxError::Engine(err.to_string()))?;
        linker.allow_shadowing(false);
        RemoteNode::add_to_linker::<_, HasSelf<EventState>>(&mut linker, |state| state)
            .map_err(|err| SandboxError::Engine(err.to_string()))?;
        let cache =
            match &config.cache_dir {
                Some(dir) => Some(CompileCache::open(dir, &engine).map_err(|source| {
                    SandboxError::Cache {
                        path: dir.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            config,
            pooling,
            ready_in_all: Arc::default(),
            http_engine: Arc::default(),
        })
    }

    /// The linker of nodes with outbound HTTP, made on first use.
    pub(crate) fn http_engine(&self) -> Result<&HttpEngine, String> {
        self.http_engine
            .get_or_init(|| HttpEngine::new(&self.engine).map_err(|err| err.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// True when instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }
}

fn engine_config(config: &SandboxConfig, pooling: bool, opt_level: OptLevel) -> Config {
    let mut wasm = Config::new();
    wasm.cranelift_opt_level(opt_level)
        .consume_fuel(config.fuel)
        .epoch_interruption(config.epochs)
        .memory_init_cow(config.memory_cow)
        .table_lazy_init(true)
        .parallel_compilation(true);
    // For profiling guests with `perf`: `NODE_HOST_PERF_MAP=1` writes
    // /tmp/perf-PID.map, which names each guest function in `perf report`.
    if std::env::var_os("NODE_HOST_PERF_MAP").is_some_and(|value| value == "1") {
        wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .max_core_instances_per_component(POOL_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(POOL_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(POOL_TABLES_PER_COMPONENT)
            .table_elements(super::limits::DEFAULT_TABLE_ELEMENTS)
            .max_memory_size(POOL_MEMORY_BYTES)
            .linear_memory_keep_resident(config.memory_keep_resident)
            .table_keep_resident(POOL_TABLE_KEEP_RESIDENT)
            .pagemap_scan(if config.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    wasm
}

/// Advances the engine's epoch once per [`EPOCH_TICK`] of wall-clock time
/// until the engine is gone. A busy or throttled machine wakes the ticker
/// late (by tens of milliseconds on the build machine); it then makes up the
/// ticks it missed, so lateness does not add up from tick to tick.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("node-host-epoch".into())
        .spawn(move || {
            let started = Instant::now();
            let tick = EPOCH_TICK.as_nanos() as u64;
            let mut ticks = 0u64;
            while let Some(engine) = weak.upgrade() {
                let due = started.elapsed().as_nanos() as u64 / tick + 1;
                while ticks < due {
                    engine.increment_epoch();
                    ticks += 1;
                }
                drop(engine);
                let next = started + Duration::from_nanos(ticks * tick);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
        .expect("spawning the epoch ticker thread");
}
