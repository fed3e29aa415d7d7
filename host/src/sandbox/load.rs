//! Loading a component: header checks, compile (or cache hit), import
//! policy, pre-linking, and reading and validating the node's info.
//!
//! Every way a file can be unfit is a distinct [`LoadError`] that names the
//! problem, so a user who hands node-host the wrong file learns what to fix.

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::RemoteNodePre;
use super::bindings::calls_async::RemoteNodePre as AsyncPre;
use super::cache::deserialize_private;
use super::engine::{
    POOL_CORE_INSTANCES_PER_COMPONENT, POOL_MEMORIES_PER_COMPONENT, POOL_TABLES_PER_COMPONENT,
    Sandbox,
};
use super::http::HttpGrant;
use super::limits::DEFAULT_TABLE_ELEMENTS;
use super::node::{NodeComponent, Pre};
use super::outcome::Failure;
use super::preinit::{self, PreinitError};
use super::value::NodeInfo;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0, 1, 0];

/// The export every node must provide.
pub const NODE_EXPORT: &str = "node-host:node/node@0.1.0";

/// Interfaces a node may import. WASI 0.2 is linked whole, with nothing
/// granted (no preopens, no environment, every socket address denied), so a
/// guest built by an ordinary toolchain links; anything else is refused,
/// but `wasi:http/` for a node loaded with an HTTP grant.
const ALLOWED_IMPORT_PACKAGES: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "node-host:node/",
];

/// Why a file cannot be loaded as a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file has no bytes.
    #[error("the file is empty, not a WebAssembly component")]
    Empty,
    /// The file does not start with the WebAssembly magic bytes.
    #[error(
        "not a WebAssembly binary: it does not start with the `\\0asm` magic bytes \
         (build the node for wasm32-wasip2, or componentize it)"
    )]
    NotWasm,
    /// The file is a core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for wasm32-wasip2, \
         or wrap a preview 1 module with `node-host componentize`, so it targets the \
         `node-host:node/remote-node` world"
    )]
    CoreModule,
    /// The file is WebAssembly of an unknown version or layer.
    #[error("unsupported WebAssembly version/layer bytes {0:02x?}; node-host loads components")]
    UnknownVersion([u8; 4]),
    /// wasmtime could not compile the component (truncated, malformed…).
    #[error("the component is malformed or truncated: {0}")]
    Invalid(String),
    /// The component needs more than a slot of the instance pool holds.
    #[error(
        "the component does not fit node-host's instance pool: {0}. Each pool slot holds at \
         most {POOL_CORE_INSTANCES_PER_COMPONENT} core instances, \
         {POOL_MEMORIES_PER_COMPONENT} memories and {POOL_TABLES_PER_COMPONENT} tables per \
         component and tables of {DEFAULT_TABLE_ELEMENTS} elements; run node-host with \
         `--no-pooling` (or NODE_HOST_NO_POOLING=1) to allocate every instance on demand \
         instead (no such limits; a fresh event costs more)"
    )]
    PoolLimit(String),
    /// The component imports outbound HTTP but was loaded without a grant.
    #[error(
        "the component imports `{0}` (outbound HTTP), and it has no grant: allow the \
         origins it calls with `--allow-http ORIGIN` (node-host run/call/serve) or \
         `node-host grant NODE ORIGIN...` on a hub"
    )]
    HttpNotGranted(String),
    /// The component imports an interface node-host does not provide.
    #[error(
        "the component imports `{0}`, which node-host does not provide: nodes get WASI 0.2 \
         (cli, clocks, filesystem, io, random, sockets; with nothing granted), \
         `node-host:node/host`, and `wasi:http` when granted outbound HTTP"
    )]
    DeniedImport(String),
    /// The imports are allowed, but their versions or types do not link.
    #[error("the component's imports do not match what node-host provides: {0}")]
    Unlinkable(String),
    /// The component does not export the node interface.
    #[error(
        "the component does not export `{NODE_EXPORT}` as node-host expects \
         (is it built against node-host's wit/?): {0}"
    )]
    WrongWorld(String),
    /// Calling the node's `info` failed.
    #[error("the node's `info` function failed: {0}")]
    InfoFailed(Failure),
    /// The node's info breaks a rule.
    #[error("the node's info is invalid: {0}")]
    InvalidInfo(String),
}

impl LoadError {
    /// A stable machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Empty => "empty_file",
            LoadError::NotWasm => "not_wasm",
            LoadError::CoreModule => "core_module",
            LoadError::UnknownVersion(_) => "unknown_version",
            LoadError::Invalid(_) => "invalid_component",
            LoadError::PoolLimit(_) => "pool_limit",
            LoadError::DeniedImport(_) => "denied_import",
            LoadError::HttpNotGranted(_) => "http_not_granted",
            LoadError::Unlinkable(_) => "unlinkable",
            LoadError::WrongWorld(_) => "wrong_world",
            LoadError::InfoFailed(_) => "info_failed",
            LoadError::InvalidInfo(_) => "invalid_info",
        }
    }
}

/// What kind of file a byte string is, from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A WebAssembly component.
    Component,
    /// A core WebAssembly module.
    CoreModule,
    /// Not WebAssembly, or an unknown version.
    Other,
}

/// The header check: cheap, and the first thing every load does.
pub fn file_kind(bytes: &[u8]) -> Result<FileKind, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return if bytes.starts_with(WASM_MAGIC) {
            Err(LoadError::Invalid("the file ends inside its header".into()))
        } else {
            Err(LoadError::NotWasm)
        };
    }
    let version: [u8; 4] = bytes[4..8].try_into().expect("slice of four");
    match version {
        COMPONENT_VERSION => Ok(FileKind::Component),
        CORE_MODULE_VERSION => Err(LoadError::CoreModule),
        other => Err(LoadError::UnknownVersion(other)),
    }
}

/// The hex sha256 of a component's bytes: its identity everywhere.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The package of outbound HTTP, allowed to nodes with a grant.
const HTTP_PACKAGE: &str = "wasi:http/";

/// True when node-host provides the import `name`.
pub fn import_allowed(name: &str) -> bool {
    ALLOWED_IMPORT_PACKAGES
        .iter()
        .any(|package| name.starts_with(package))
}

/// Everything `node-host inspect` reports about a file.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Size of the file in bytes.
    pub size: usize,
    /// The hex sha256 of the file.
    pub sha256: String,
    /// What the header says the file is.
    pub kind: FileKind,
    /// The component's imports (empty when it did not compile).
    pub imports: Vec<String>,
    /// The component's exports (empty when it did not compile).
    pub exports: Vec<String>,
    /// The node's info, when it could be read.
    pub info: Option<NodeInfo>,
    /// `Ok` when this host accepts the node, or why not.
    pub verdict: Result<(), LoadError>,
}

impl Sandbox {
    /// Loads a node from the bytes of a component.
    pub fn load(&self, bytes: &[u8]) -> Result<NodeComponent, LoadError> {
        self.load_with_progress(bytes, &mut || {})
    }

    /// Like [`load`](Self::load), calling `on_compile` just before a compile
    /// that the cache cannot answer (so a caller can show progress).
    pub fn load_with_progress(
        &self,
        bytes: &[u8],
        on_compile: &mut dyn FnMut(),
    ) -> Result<NodeComponent, LoadError> {
        self.load_with(bytes, HttpGrant::Refused, on_compile)
    }

    /// Like [`load_with_progress`](Self::load_with_progress), with what a
    /// node that imports `wasi:http` may reach (see [`HttpGrant`]).
    pub fn load_with(
        &self,
        bytes: &[u8],
        http: impl Into<HttpGrant>,
        on_compile: &mut dyn FnMut(),
    ) -> Result<NodeComponent, LoadError> {
        file_kind(bytes)?;
        let http = http.into();
        let calls_out = http_import(bytes);
        if let (Some(import), HttpGrant::Refused) = (&calls_out, &http) {
            return Err(LoadError::HttpNotGranted(import.clone()));
        }
        let sha256 = sha256_hex(bytes);
        let component = self.compile(bytes, &sha256, on_compile, calls_out.is_some())?;
        self.link(component, sha256, http, calls_out.is_some())
    }

    /// Reports what a file is and whether this host accepts it as a node.
    pub fn inspect(&self, bytes: &[u8]) -> Inspection {
        self.inspect_with_progress(bytes, &mut || {})
    }

    /// Like [`inspect`](Self::inspect), with a progress hook as in
    /// [`load_with_progress`](Self::load_with_progress).
    pub fn inspect_with_progress(&self, bytes: &[u8], on_compile: &mut dyn FnMut()) -> Inspection {
        let sha256 = sha256_hex(bytes);
        let mut inspection = Inspection {
            size: bytes.len(),
            sha256: sha256.clone(),
            kind: FileKind::Other,
            imports: Vec::new(),
            exports: Vec::new(),
            info: None,
            verdict: Ok(()),
        };
        match file_kind(bytes) {
            Ok(kind) => inspection.kind = kind,
            Err(err) => {
                if err == LoadError::CoreModule {
                    inspection.kind = FileKind::CoreModule;
                }
                inspection.verdict = Err(err);
                return inspection;
            }
        }
        let calls_out = http_import(bytes).is_some();
        let component = match self.compile(bytes, &sha256, on_compile, calls_out) {
            Ok(component) => component,
            Err(err) => {
                inspection.verdict = Err(err);
                return inspection;
            }
        };
        let ty = component.component_type();
        let engine = component.engine();
        inspection.imports = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        inspection.exports = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        match self.link(component, sha256, HttpGrant::Later, calls_out) {
            Ok(node) => inspection.info = Some(node.info().clone()),
            Err(err) => inspection.verdict = Err(err),
        }
        inspection
    }

    /// Compiles `bytes` (or takes the compile from the cache), on the
    /// engine of nodes with outbound HTTP when `calls_out`.
    fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
        on_compile: &mut dyn FnMut(),
        calls_out: bool,
    ) -> Result<Component, LoadError> {
        let (engine, cache) = (&self.engine, &self.cache);
        // Nodes with outbound HTTP are not pre-initialized (Wizer runs
        // `info` through the sync linker, which has no wasi:http).
        let preinitialize = self.config.preinitialize && !calls_out;
        // A pre-initialized compile is cached apart from a plain one.
        let key = if preinitialize {
            format!("{sha256}-preinit")
        } else {
            sha256.to_owned()
        };
        if let Some(component) = cache.as_ref().and_then(|c| c.get(engine, &key)) {
            return Ok(component);
        }
        on_compile();
        let preinitialized = if preinitialize {
            match preinit::preinitialize(self, bytes) {
                Ok(snapshot) => Some(snapshot),
                // Loading it as built would only call `info` again, into the
                // same failure (a node whose `info` spins would spin twice).
                Err(PreinitError::InfoFailed(failure)) => {
                    return Err(LoadError::InfoFailed(failure));
                }
                // A shape Wizer does not take: loaded as it is, and the load
                // reports its problem, if it has one, the usual way.
                Err(PreinitError::Other(err)) => {
                    tracing::debug!("loading the node as built: {err:#}");
                    None
                }
            }
        } else {
            None
        };
        let artifact = engine
            .precompile_component(preinitialized.as_deref().unwrap_or(bytes))
            .map_err(|err| LoadError::Invalid(format!("{err:#}")))?;
        // Loading the artifact checks it against the instance pool.
        if let Some(cache) = cache {
            match cache.put(&key, &artifact) {
                // Loading the artifact from the cache maps it (see `get`).
                Ok(()) => {
                    if let Some(component) = cache.get(engine, &key) {
                        return Ok(component);
                    }
                }
                Err(err) => tracing::warn!(
                    "cannot write the compile cache (the next load compiles again): {err}"
                ),
            }
        }
        // SAFETY: `artifact` was just produced by this engine.
        unsafe { deserialize_private(engine, &artifact) }.map_err(|err| {
            let message = format!("{err:#}");
            if exceeds_pool(&message) {
                LoadError::PoolLimit(message)
            } else {
                LoadError::Invalid(message)
            }
        })
    }

    fn link(
        &self,
        component: Component,
        sha256: String,
        http: HttpGrant,
        calls_out: bool,
    ) -> Result<NodeComponent, LoadError> {
        let ty = component.component_type();
        for (name, _) in ty.imports(component.engine()) {
            if name.starts_with(HTTP_PACKAGE) {
                if matches!(http, HttpGrant::Refused) {
                    return Err(LoadError::HttpNotGranted(name.to_owned()));
                }
            } else if !import_allowed(name) {
                return Err(LoadError::DeniedImport(name.to_owned()));
            }
        }
        let pre = if calls_out {
            let engine = self.http_engine().map_err(LoadError::Invalid)?;
            let instance_pre = engine
                .linker
                .instantiate_pre(&component)
                .map_err(|err| LoadError::Unlinkable(format!("{err:#}")))?;
            Pre::Async(
                AsyncPre::new(instance_pre)
                    .map_err(|err| LoadError::WrongWorld(format!("{err:#}")))?,
            )
        } else {
            let instance_pre = self
                .linker
                .instantiate_pre(&component)
                .map_err(|err| LoadError::Unlinkable(format!("{err:#}")))?;
            Pre::Sync(
                RemoteNodePre::new(instance_pre)
                    .map_err(|err| LoadError::WrongWorld(format!("{err:#}")))?,
            )
        };
        let info = NodeComponent::read_info(self, &pre).map_err(LoadError::InfoFailed)?;
        validate_info(&info).map_err(LoadError::InvalidInfo)?;
        let access = match http {
            HttpGrant::Given(access) => Some(access),
            HttpGrant::Refused | HttpGrant::Later => None,
        };
        Ok(NodeComponent::new(self.clone(), pre, info, sha256, access))
    }
}

/// True when wasmtime refused a component because it does not fit the
/// pooling allocator's slots (its messages name the pool or the limit).
pub(crate) fn exceeds_pool(message: &str) -> bool {
    [
        "pooling allocator",
        "per-instance limit",
        "which exceeds the limit of",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The language a component was written in, as the toolchains that built
/// it record in their `producers` sections (the component's and those of
/// the modules inside it): what the hub shows of an upload. `None` when
/// none says.
pub fn language_of(bytes: &[u8]) -> Option<String> {
    let (mut languages, mut tools) = (Vec::new(), Vec::new());
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(fields) = section.as_known() else {
            continue;
        };
        for field in fields.into_iter().flatten() {
            let names = field.values.into_iter().flatten().map(|value| value.name);
            match field.name {
                "language" => languages.extend(names),
                "processed-by" | "sdk" => tools.extend(names),
                _ => {}
            }
        }
    }
    let tool = |needle: &str| {
        tools
            .iter()
            .any(|tool| tool.to_ascii_lowercase().contains(needle))
    };
    let language = |test: &dyn Fn(&str) -> bool| languages.iter().any(|name| test(name));
    // A guest runtime in wasm (CPython, SpiderMonkey) is itself C, C++ or
    // Rust, and C nodes carry WASI's preview-1 adapter, written in Rust: the
    // tool that packed the node, then the C compiler, say more than the
    // first language listed. componentize-py leaves its pre-initializer's
    // name (component-init-transform), not its own.
    if tool("componentize-py") || tool("component-init-transform") {
        return Some("Python".into());
    }
    if language(&|name| name == "JavaScript") || tool("componentizejs") {
        return Some("JavaScript".into());
    }
    if language(&|name| name.starts_with('C') && !name.starts_with("C_plus_plus")) {
        return Some("C".into());
    }
    if tool("wit-bindgen-rust") || language(&|name| name == "Rust") {
        return Some("Rust".into());
    }
    languages.first().map(|name| (*name).to_owned())
}

/// The first `wasi:http` import of a component, read from its bytes (only
/// its own imports, not those of the modules and components inside it):
/// what decides the engine that compiles it.
fn http_import(bytes: &[u8]) -> Option<String> {
    // Depth 0 is the component itself; its nested modules and components
    // raise it.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => match depth.checked_sub(1) {
                Some(outer) => depth = outer,
                None => return None,
            },
            wasmparser::Payload::ComponentImportSection(imports) if depth == 0 => {
                for import in imports.into_iter().flatten() {
                    if import.name.name.starts_with(HTTP_PACKAGE) {
                        return Some(import.name.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Hurozo's rule for node names: not blank, no `/`.
pub fn valid_node_name(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains('/')
}

/// The rules a node's info must follow (Hurozo's registration rules among them).
pub fn validate_info(info: &NodeInfo) -> Result<(), String> {
    if !valid_node_name(&info.name) {
        return Err(format!(
            "the node name `{}` is empty or contains `/`",
            info.name
        ));
    }
    if info.outputs.is_empty() {
        return Err(format!(
            "node `{}` declares no outputs; at least one is required",
            info.name
        ));
    }
    for (kind, ports) in [("input", &info.inputs), ("output", &info.outputs)] {
        for (i, port) in ports.iter().enumerate() {
            if port.name.is_empty() {
                return Err(format!("{kind} #{} has an empty name", i + 1));
            }
            if ports[..i].iter().any(|earlier| earlier.name == port.name) {
                return Err(format!("{kind} `{}` is declared twice", port.name));
            }
            if port.required && port.default_value.is_some() {
                return Err(format!(
                    "{kind} `{}` is required and also has a default",
                    port.name
                ));
            }
        }
    }
    for (i, secret) in info.secrets.iter().enumerate() {
        if secret.is_empty() || info.secrets[..i].contains(secret) {
            return Err(format!("secret name `{secret}` is empty or declared twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::value::Port;

    #[test]
    fn header_kinds() {
        assert_eq!(file_kind(b""), Err(LoadError::Empty));
        assert_eq!(file_kind(b"hello world"), Err(LoadError::NotWasm));
        assert!(matches!(
            file_kind(b"\0asm\x0d"),
            Err(LoadError::Invalid(_))
        ));
        assert_eq!(file_kind(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule));
        assert_eq!(file_kind(b"\0asm\x0d\0\x01\0"), Ok(FileKind::Component));
        assert_eq!(
            file_kind(b"\0asm\x02\0\0\0"),
            Err(LoadError::UnknownVersion([2, 0, 0, 0]))
        );
    }

    #[test]
    fn import_policy() {
        assert!(import_allowed("wasi:cli/stdout@0.2.3"));
        assert!(import_allowed("node-host:node/host@0.1.0"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.0"));
        assert!(!import_allowed("wasi:clis/evil@0.2.0"));
        assert!(!import_allowed("env"));
    }

    fn port(name: &str) -> Port {
        Port {
            name: name.into(),
            description: String::new(),
            required: false,
            default_value: None,
        }
    }

    fn info() -> NodeInfo {
        NodeInfo {
            name: "n".into(),
            version: "1".into(),
            description: String::new(),
            inputs: vec![port("a")],
            outputs: vec![port("b")],
            secrets: vec!["s".into()],
        }
    }

    #[test]
    fn info_rules() {
        assert_eq!(validate_info(&info()), Ok(()));
        type Breaks = fn(&mut NodeInfo);
        let broken: [(Breaks, &str); 6] = [
            (|i| i.name = " ".into(), "is empty or contains `/`"),
            (|i| i.name = "a/b".into(), "is empty or contains `/`"),
            (|i| i.outputs.clear(), "no outputs"),
            (|i| i.inputs.push(port("a")), "declared twice"),
            (|i| i.outputs.push(port("")), "empty name"),
            (|i| i.secrets.push("s".into()), "declared twice"),
        ];
        for (breaks, expected) in broken {
            let mut info = info();
            breaks(&mut info);
            let err = validate_info(&info).unwrap_err();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }
}

#[cfg(test)]
mod language_tests {
    use super::language_of;
    use crate::sandbox::bench_support::guest_example_bytes;

    #[test]
    fn each_example_names_its_language() {
        for (example, language) in [
            ("hello", "Rust"),
            ("hello-python", "Python"),
            ("hello-js", "JavaScript"),
            ("hello-c", "C"),
        ] {
            let bytes = guest_example_bytes(example);
            assert_eq!(language_of(&bytes).as_deref(), Some(language), "{example}");
        }
        assert_eq!(language_of(&wat::parse_str("(component)").unwrap()), None);
    }
}
