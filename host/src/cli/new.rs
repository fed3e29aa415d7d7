//! `node-host new`: a ready-to-build node project in the language of the
//! user's choice. Every template has one input (`name`), one output
//! (`greeting`), node-host's WIT, and an executable `build` script that
//! installs what the language needs (pinned) and writes `<NAME>.wasm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::sandbox::componentize::NODE_WIT;

#[derive(Debug, Args)]
#[command(after_help = "\
What each language's `./build` needs:
  rust    Rust (installs the wasm32-wasip2 target)
  python  Python 3 with venv (installs componentize-py into .venv)
  js      Node.js and npm (installs componentize-js into node_modules)
  c       clang-16, lld-16 and wasi-libc (Debian: apt install clang-16 lld-16 wasi-libc),
          and node-host on PATH (or $NODE_HOST) to componentize

Example:
  node-host new greeter --lang python
  cd greeter && ./build
  node-host call greeter.wasm name=Ada")]
pub(super) struct NewArgs {
    /// The node's name: lowercase letters, digits and `-`, starting with a letter.
    #[arg(value_parser = parse_name)]
    name: String,

    /// The language to write the node in.
    #[arg(long, value_enum)]
    lang: Lang,

    /// What the node does: `hello` greets; `http` calls an API with a secret.
    #[arg(long, value_enum, default_value = "hello")]
    template: Template,

    /// The directory to create [default: ./NAME]; it must not exist or be empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

/// The languages `new` writes projects for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// One file of a template: where it goes, its text (with `{{name}}`
/// placeholders), and whether it is executable.
struct TemplateFile {
    path: &'static str,
    contents: &'static str,
    executable: bool,
}

const fn file(path: &'static str, contents: &'static str) -> TemplateFile {
    TemplateFile {
        path,
        contents,
        executable: false,
    }
}

const fn script(path: &'static str, contents: &'static str) -> TemplateFile {
    TemplateFile {
        path,
        contents,
        executable: true,
    }
}

/// The files of a Rust project whatever it does.
const RUST: &[TemplateFile] = &[file(
    ".gitignore",
    include_str!("../../templates/rust/gitignore"),
)];

const RUST_HELLO: &[TemplateFile] = &[
    file(
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    file(
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    script("build", include_str!("../../templates/rust/build")),
];

const RUST_HTTP: &[TemplateFile] = &[
    file(
        "Cargo.toml",
        include_str!("../../templates/http/rust/Cargo.toml"),
    ),
    file(
        "src/lib.rs",
        include_str!("../../templates/http/rust/src/lib.rs"),
    ),
    script("build", include_str!("../../templates/http/rust/build")),
];

/// The files of a Python project whatever it does.
const PYTHON: &[TemplateFile] = &[
    file(
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
    file(
        ".gitignore",
        include_str!("../../templates/python/gitignore"),
    ),
];

const PYTHON_HELLO: &[TemplateFile] = &[
    file("app.py", include_str!("../../templates/python/app.py")),
    script("build", include_str!("../../templates/python/build")),
];

const PYTHON_HTTP: &[TemplateFile] = &[
    file("app.py", include_str!("../../templates/http/python/app.py")),
    script("build", include_str!("../../templates/http/python/build")),
];

/// The files of a JavaScript project whatever it does.
const JS: &[TemplateFile] = &[
    file(
        "package.json",
        include_str!("../../templates/js/package.json"),
    ),
    file(
        "package-lock.json",
        include_str!("../../templates/js/package-lock.json"),
    ),
    file("README.md", include_str!("../../templates/js/README.md")),
    file(".gitignore", include_str!("../../templates/js/gitignore")),
];

const JS_HELLO: &[TemplateFile] = &[
    file("app.js", include_str!("../../templates/js/app.js")),
    script("build", include_str!("../../templates/js/build")),
];

const JS_HTTP: &[TemplateFile] = &[
    file("app.js", include_str!("../../templates/http/js/app.js")),
    script("build", include_str!("../../templates/http/js/build")),
];

/// The WIT of a node that calls out over HTTP: its world, and the WASI
/// packages that world refers to.
const HTTP_WIT: &[TemplateFile] = &[
    file("wit/http.wit", include_str!("../../../wit/http.wit")),
    file(
        "wit/deps/http/http.wit",
        include_str!("../../../wit/deps/http/http.wit"),
    ),
    file(
        "wit/deps/io/io.wit",
        include_str!("../../../wit/deps/io/io.wit"),
    ),
    file(
        "wit/deps/clocks/clocks.wit",
        include_str!("../../../wit/deps/clocks/clocks.wit"),
    ),
    file(
        "wit/deps/random/random.wit",
        include_str!("../../../wit/deps/random/random.wit"),
    ),
    file(
        "wit/deps/cli/cli.wit",
        include_str!("../../../wit/deps/cli/cli.wit"),
    ),
    file(
        "wit/deps/filesystem/filesystem.wit",
        include_str!("../../../wit/deps/filesystem/filesystem.wit"),
    ),
    file(
        "wit/deps/sockets/sockets.wit",
        include_str!("../../../wit/deps/sockets/sockets.wit"),
    ),
];

const C: &[TemplateFile] = &[
    file("node.c", include_str!("../../templates/c/node.c")),
    file(
        "bindings/remote_node.c",
        include_str!("../../../guest-examples/c/bindings/remote_node.c"),
    ),
    file(
        "bindings/remote_node.h",
        include_str!("../../../guest-examples/c/bindings/remote_node.h"),
    ),
    script("build", include_str!("../../templates/c/build")),
    file(".gitignore", include_str!("../../templates/c/gitignore")),
];

/// What a new node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Template {
    /// Greets `name`: no grants needed.
    Hello,
    /// Calls an API over HTTP with a secret the host fills into a header
    /// (Rust, Python and JavaScript); runs with `--allow-http ORIGIN`.
    Http,
}

impl Lang {
    /// The files of `template` in this language (its own, then those of
    /// every project in the language), if it has that template.
    fn files(self, template: Template) -> Option<[&'static [TemplateFile]; 2]> {
        match (template, self) {
            (Template::Hello, Lang::Rust) => Some([RUST_HELLO, RUST]),
            (Template::Hello, Lang::Python) => Some([PYTHON_HELLO, PYTHON]),
            (Template::Hello, Lang::Js) => Some([JS_HELLO, JS]),
            (Template::Hello, Lang::C) => Some([C, &[]]),
            (Template::Http, Lang::Rust) => Some([RUST_HTTP, RUST]),
            (Template::Http, Lang::Python) => Some([PYTHON_HTTP, PYTHON]),
            (Template::Http, Lang::Js) => Some([JS_HTTP, JS]),
            (Template::Http, Lang::C) => None,
        }
    }
}

/// A node name that is also a valid package and file name in every language.
fn parse_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_with_letter || !rest_ok || name.ends_with('-') || name.len() > 64 {
        return Err(format!(
            "`{name}` cannot name a node project: use lowercase letters, digits and `-`, \
             starting with a letter, at most 64 characters (e.g. `text-stats`)"
        ));
    }
    Ok(name.to_owned())
}

pub(super) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = args.lang.files(args.template).with_context(|| {
        format!(
            "`--template {}` exists for --lang rust, python and js, not for {} yet",
            value_name(args.template),
            value_name(args.lang)
        )
    })?;
    ensure_empty(&dir)?;
    write_project(&dir, &args.name, files, args.template)?;
    let call = match args.template {
        Template::Hello => "name=Ada".to_owned(),
        Template::Http => "url=https://api.example.com/v1/things \\\n      \
                           --allow-http https://api.example.com --secret api-key=KEY"
            .to_owned(),
    };
    out!(
        "created {} ({:?} node `{}`)\n\nnext:\n  cd {} && ./build\n  node-host call {}.wasm {call}",
        dir.display(),
        args.lang,
        args.name,
        dir.display(),
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

/// How `value` is written on the command line.
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |possible| possible.get_name().to_owned())
}

fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "{} already exists and is not empty; choose another name or --dir",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot use {}", dir.display())),
    }
}

fn write_project(
    dir: &Path,
    name: &str,
    [own, common]: [&[TemplateFile]; 2],
    template: Template,
) -> anyhow::Result<()> {
    let wit = file("wit/node.wit", NODE_WIT);
    let http_wit = match template {
        Template::Hello => &[][..],
        Template::Http => HTTP_WIT,
    };
    for template in own.iter().chain(common).chain([&wit]).chain(http_wit) {
        let path = dir.join(template.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, template.contents.replace("{{name}}", name))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if template.executable {
            make_executable(&path)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "hello", "text-stats", "node2"] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "Hello",
            "2fast",
            "has space",
            "a/b",
            "trailing-",
            "snake_case",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_language_has_a_build_script_and_no_placeholder_left() {
        let every = [Lang::Rust, Lang::Python, Lang::Js, Lang::C]
            .into_iter()
            .flat_map(|lang| [(lang, Template::Hello), (lang, Template::Http)]);
        for (lang, template) in every {
            let Some(files) = lang.files(template) else {
                continue;
            };
            let files: Vec<&TemplateFile> = files.iter().copied().flatten().collect();
            assert!(
                files.iter().any(|f| f.path == "build" && f.executable),
                "{lang:?}"
            );
            for template in files {
                let text = template.contents.replace("{{name}}", "x");
                assert!(!has_placeholder(&text), "{lang:?} {}", template.path);
            }
        }
    }

    /// `{{word}}` (a misspelt placeholder), but not C's `{{0}}`.
    fn has_placeholder(text: &str) -> bool {
        text.split("{{").skip(1).any(|after| {
            after.split_once("}}").is_some_and(|(inside, _)| {
                inside.len() < 20 && inside.trim().chars().all(|c| c.is_alphabetic() || c == '_')
            })
        })
    }

    #[test]
    fn refuses_a_directory_in_use() {
        let dir = std::env::temp_dir().join(format!("node-host-new-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep"), "").unwrap();
        let err = ensure_empty(&dir).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
