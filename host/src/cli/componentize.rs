//! `node-host componentize`: a preview 1 core module (a C node) in, a node
//! component out, checked by loading it as `call` and `run` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::{CompileProgress, EXIT_FAILED, read_component};
use crate::sandbox::Sandbox;
use crate::sandbox::componentize::componentize;

#[derive(Debug, Args)]
#[command(after_help = "\
The module must export the functions of node-host's `remote-node` world under
their canonical-ABI names: the C bindings that `node-host new NAME --lang c`
writes do that. Its WASI preview 1 imports are adapted to WASI 0.2.

Example:
  clang-16 --target=wasm32-wasi -mexec-model=reactor -O2 -o hello.core.wasm \\
      hello.c bindings/remote_node.c
  node-host componentize hello.core.wasm -o hello.wasm

Exit codes: 0 written; 1 the module cannot become a node (the error says why);
2 unreadable input or unwritable output.")]
pub(super) struct ComponentizeArgs {
    /// The core module (wasm32-wasi, preview 1) to wrap.
    module: PathBuf,

    /// Where to write the component [default: <NODE NAME>.wasm beside the module].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(super) fn run(args: &ComponentizeArgs, sandbox: Sandbox) -> anyhow::Result<ExitCode> {
    let module = read_component(&args.module)?;
    let component = match componentize(&module) {
        Ok(component) => component,
        Err(err) => {
            eprintln!("node-host: error: {}: {err}", args.module.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let mut progress = CompileProgress::new(&args.module);
    let loaded = sandbox.load_with_progress(&component, &mut || progress.start());
    drop(progress);
    let node = match loaded {
        Ok(node) => node,
        Err(err) => {
            eprintln!(
                "node-host: error: {} became a component that node-host refuses ({}): {err}",
                args.module.display(),
                err.code()
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let name = node.name();
    let output = match &args.output {
        Some(path) => path.clone(),
        None => default_output(&args.module, name)?,
    };
    std::fs::write(&output, &component)
        .with_context(|| format!("cannot write the component to {}", output.display()))?;
    out!(
        "wrote {} (node `{name}`, {} bytes)",
        output.display(),
        component.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `<node name>.wasm` in the module's directory, unless that is the module.
fn default_output(module: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let output = module.with_file_name(format!("{name}.wasm"));
    if output == module {
        anyhow::bail!(
            "the default output {} is the input module itself; choose another with --output",
            output.display()
        );
    }
    Ok(output)
}
