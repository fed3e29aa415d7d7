//! Writes the C bindings of node-host's `remote-node` world, or checks that
//! the committed ones are current.
//!
//!     c-bindings <WIT_DIR> <OUT_DIR>           write remote_node.{c,h}
//!     c-bindings <WIT_DIR> <OUT_DIR> --check   exit 1 if they differ
//!
//! No object file with the world's type is written: `node-host componentize`
//! embeds the type itself, from the same WIT. So the generated C loses the
//! reference that forces that object file into the link.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wit_bindgen_core::Files;
use wit_parser::Resolve;

const WORLD: &str = "remote-node";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("c-bindings: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|arg| arg == "--check");
    let paths: Vec<&String> = args.iter().filter(|arg| *arg != "--check").collect();
    let [wit_dir, out_dir] = paths.as_slice() else {
        bail!("usage: c-bindings <WIT_DIR> <OUT_DIR> [--check]");
    };
    let files = generate(Path::new(wit_dir))?;
    let out_dir = PathBuf::from(out_dir);
    if check {
        let stale: Vec<&str> = files
            .iter()
            .filter(|(name, contents)| {
                std::fs::read(out_dir.join(name)).ok().as_deref() != Some(*contents)
            })
            .map(|(name, _)| name)
            .collect();
        if !stale.is_empty() {
            eprintln!(
                "c-bindings: {} in {} do not match {}; regenerate them with \
                 `guest-examples/c/build --update-bindings`",
                stale.join(", "),
                out_dir.display(),
                wit_dir
            );
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (name, contents) in files.iter() {
        let path = out_dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(wit_dir: &Path) -> Result<Files> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit_dir)
        .with_context(|| format!("reading the WIT in {}", wit_dir.display()))?;
    let world = resolve.select_world(&[package], Some(WORLD))?;
    let opts = wit_bindgen_c::Opts {
        no_object_file: true,
        ..Default::default()
    };
    let mut generated = Files::default();
    opts.build().generate(&mut resolve, world, &mut generated)?;
    let mut files = Files::default();
    for (name, contents) in generated.iter() {
        if name.ends_with(".c") {
            files.push(name, drop_object_file_link(name, contents)?.as_bytes());
        } else {
            files.push(name, contents);
        }
    }
    Ok(files)
}

/// Removes the function that references the type object file's symbol.
fn drop_object_file_link(name: &str, contents: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(contents)?;
    let start = text
        .find("// Ensure that the *_component_type.o object is linked in")
        .with_context(|| format!("{name}: wit-bindgen's output changed; update c-bindings"))?;
    let end = text[start..]
        .find("}\n")
        .map(|at| start + at + 2)
        .with_context(|| format!("{name}: unterminated force-link function"))?;
    Ok(format!("{}{}", &text[..start], &text[end..]))
}
