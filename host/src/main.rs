//! The `node-host` command.

/// mimalloc rather than the system allocator: the hub and the worker allocate
/// and free small buffers for every request, frame and store, and glibc's
/// malloc took a tenth of the hub's time in a profile at concurrency 64 (see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    node_host::cli::main()
}
