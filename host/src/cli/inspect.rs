//! `node-host inspect`: what a component is and whether this host accepts it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{CompileProgress, EXIT_FAILED, read_component};
use crate::sandbox::value::{self, Port};
use crate::sandbox::{Inspection, Sandbox};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 accepted; 1 refused (the report says why); 2 unreadable file."
)]
pub(super) struct InspectArgs {
    /// The file to inspect.
    component: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &InspectArgs, sandbox: Sandbox) -> anyhow::Result<ExitCode> {
    let bytes = read_component(&args.component)?;
    let mut progress = CompileProgress::new(&args.component);
    let inspection = sandbox.inspect_with_progress(&bytes, &mut || progress.start());
    drop(progress);
    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&report_json(args, &inspection))?
        );
    } else {
        print_report(args, &inspection)?;
    }
    Ok(match inspection.verdict {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_FAILED),
    })
}

fn report_json(args: &InspectArgs, inspection: &Inspection) -> serde_json::Value {
    json!({
        "file": args.component.display().to_string(),
        "size": inspection.size,
        "sha256": inspection.sha256,
        "kind": inspection.kind,
        "accepted": inspection.verdict.is_ok(),
        "error": inspection.verdict.as_ref().err().map(|err| json!({
            "code": err.code(),
            "message": err.to_string(),
        })),
        "info": inspection.info.as_ref().map(value::info_to_json),
        "imports": inspection.imports,
        "exports": inspection.exports,
    })
}

fn print_report(args: &InspectArgs, inspection: &Inspection) -> anyhow::Result<()> {
    out!(
        "{}: {:?}, {} bytes, sha256 {}",
        args.component.display(),
        inspection.kind,
        inspection.size,
        inspection.sha256
    );
    match &inspection.verdict {
        Ok(()) => out!("accepted: yes"),
        Err(err) => out!("accepted: no ({}): {err}", err.code()),
    }
    if let Some(info) = &inspection.info {
        out!("node: {} {}: {}", info.name, info.version, info.description);
        print_ports("inputs", &info.inputs)?;
        print_ports("outputs", &info.outputs)?;
        match info.secrets.is_empty() {
            true => out!("secrets: (none)"),
            false => out!("secrets: {}", info.secrets.join(", ")),
        }
    }
    if !inspection.imports.is_empty() {
        out!("imports:");
        for import in &inspection.imports {
            out!("  {import}");
        }
    }
    if !inspection.exports.is_empty() {
        out!("exports:");
        for export in &inspection.exports {
            out!("  {export}");
        }
    }
    Ok(())
}

fn print_ports(title: &str, ports: &[Port]) -> anyhow::Result<()> {
    out!("{title}:");
    if ports.is_empty() {
        out!("  (none)");
    }
    for port in ports {
        let need = if port.required {
            "required"
        } else {
            "optional"
        };
        let default = match port.default_value.as_ref().map(value::to_json) {
            Some(Ok(json)) => format!(", default {json}"),
            _ => String::new(),
        };
        out!("  {} ({need}{default}): {}", port.name, port.description);
    }
    Ok(())
}
