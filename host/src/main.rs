//! The `node-host` command.

fn main() -> std::process::ExitCode {
    node_host::cli::main()
}
