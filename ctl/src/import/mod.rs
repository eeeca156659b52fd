//! `mcpgwctl import`: reads MCP clients' configs and adds their servers to gateway.yaml.
//!
//! Without `--write` it prints the YAML it would add; with it, it adds that YAML to the
//! user's gateway.yaml as text (a backup of the old file kept beside it), after checking that
//! the result loads. Literal secrets go to the env file (`secrets/`), never to the YAML nor
//! to anything printed: what is shown, in text or `--json`, holds `${VAR}` in their place.
//!
//! The parts: `claude.rs`, `vscode.rs`, `codex.rs` read the clients' formats into [`Found`]
//! servers (`vars.rs` translating their variables), `plan.rs` decides what is added under
//! which name, `secrets/` moves secrets out, `emit.rs` writes the YAML, `merge.rs` reads
//! the existing config and inserts into its text, `write.rs` writes the files.

mod claude;
mod codex;
mod emit;
mod identity;
pub mod merge;
mod plan;
mod report;
mod secrets;
mod vars;
mod vscode;
mod write;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::clients::{Client, Format, Location, Scope, tilde};
use crate::files::{self, MAX_CLIENT_FILE};
use crate::{EXIT_FAILED, Out};

pub use merge::{Existing, Identity};
pub use vars::Fill;

/// What `import` was asked.
pub struct Args {
    pub file: Option<PathBuf>,
    pub from: Option<Client>,
    pub write: bool,
    pub config: Option<PathBuf>,
    /// Read the current project's configs too (without FILE).
    pub project: bool,
}

/// Where the import runs: the home directory and the current (project) directory.
pub struct Context {
    pub home: PathBuf,
    pub cwd: PathBuf,
}

impl Context {
    pub fn new() -> Result<Context, String> {
        let home = crate::clients::home()?;
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot tell the current directory: {e}"))?;
        Ok(Context { home, cwd })
    }

    /// A path for messages, `~` for the home directory.
    pub fn shown(&self, path: &Path) -> String {
        tilde(path, &self.home)
    }
}

/// One server as a client defines it, in mcpgw's terms: references translated to `${VAR}`,
/// literal secrets still in place (`secrets::extract` moves them).
#[derive(Clone, Debug)]
pub struct Found {
    /// As the client names it.
    pub name: String,
    /// The file (and scope) it came from, for messages: `~/.claude.json (user scope)`.
    pub origin: String,
    pub client: Client,
    pub spec: Spec,
    pub enabled: bool,
    /// Variables the user must fill in (VS Code inputs).
    pub fills: Vec<Fill>,
    /// From a project's part of a user file (Claude Code's local scope), not from the
    /// servers `connect` replaces.
    pub nested: bool,
}

impl Found {
    /// Whether this entry runs mcpgw itself (a client already connected).
    pub fn is_gateway(&self) -> bool {
        match &self.spec {
            Spec::Local { command, .. } => Path::new(command)
                .file_name()
                .is_some_and(|name| name == "mcpgw-shim"),
            Spec::Remote { .. } => false,
        }
    }
}

/// How a server is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Local {
        command: String,
        args: Vec<String>,
        env: Vec<Pair>,
        cwd: Option<String>,
    },
    Remote {
        url: String,
        /// The legacy HTTP+SSE transport (else Streamable HTTP).
        sse: bool,
        headers: Vec<Pair>,
    },
}

/// An `env` variable or a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
    /// A secret whatever its name or value (it came from an env file).
    pub secret: bool,
}

impl Pair {
    pub fn new(key: String, value: String) -> Pair {
        Pair {
            key,
            value,
            secret: false,
        }
    }
}

/// What one file gave: its servers, and notes on what was not imported and why.
#[derive(Default, Debug)]
pub struct Parsed {
    pub found: Vec<Found>,
    pub notes: Vec<String>,
}

pub fn run(args: Args, out: Out) -> ExitCode {
    let result = Context::new().and_then(|cx| {
        let Sources {
            read,
            parsed,
            notes,
        } = sources(&args, &cx)?;
        let config = config_path(args.config.as_deref())?;
        let existing = Existing::load(&config)?;
        let plan = plan::plan(parsed, existing, &cx);
        let written = match args.write && !plan.entries.is_empty() {
            true => Some(write::write(&plan)?),
            false => None,
        };
        Ok(report::Report::new(&cx, &args, read, notes, &plan, written))
    });
    match result {
        Ok(report) => out.print(&report.json(), || report.human()),
        Err(message) => out.fail(EXIT_FAILED, &message),
    }
}

/// The config an import adds to (and `connect` checks against): `--config`, else
/// `$MCPGW_CONFIG`, else the user's own (`$XDG_CONFIG_HOME/mcpgw/gateway.yaml`), which the
/// import creates. Never a `gateway.yaml` of the current directory, which `mcpgwctl check`
/// would find: in a cloned repository that is the repository's, and importing into it would
/// write the user's secrets into the repository and point the client at its servers (the
/// reason a daemon the shim starts does not look there either, `Discovery::UserOnly`).
pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let found = mcpgw::paths::discover(explicit, mcpgw::paths::Discovery::UserOnly);
    match found {
        Ok(path) => Ok(std::path::absolute(&path).unwrap_or(path)),
        Err(missing) if explicit.is_some() || !missing.path.as_os_str().is_empty() => {
            // Named (`--config`, `MCPGW_CONFIG`) but not there: created there.
            match missing.path.is_dir() {
                true => Err(missing.to_string()),
                false => Ok(std::path::absolute(&missing.path).unwrap_or(missing.path)),
            }
        }
        Err(missing) => mcpgw::paths::user_config_file().ok_or(missing.to_string()),
    }
}

/// A file read, with how many servers it had.
pub struct Read {
    pub location: Location,
    pub servers: usize,
}

/// The files read, what each gave, and notes on those that could not be read.
struct Sources {
    read: Vec<Read>,
    parsed: Vec<Parsed>,
    notes: Vec<String>,
}

/// The files to read (the one named, else every known location that exists) and what each
/// gave. A file found by looking that cannot be read is a note; one named is an error.
///
/// A project's own config (`.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`,
/// `.codex/config.toml`) comes with the project, often a cloned repository, and the clients
/// run its servers only once the user trusted or approved them: it is read only with
/// `--project` (or named as FILE), and of Claude Code's `.mcp.json` only what Claude Code was
/// allowed to run ([`claude::only_approved`]).
fn sources(args: &Args, cx: &Context) -> Result<Sources, String> {
    let named = args.file.is_some();
    let (locations, mut notes) = match &args.file {
        Some(file) => (vec![named_file(file, args.from, cx)?], Vec::new()),
        None => found_files(args, cx)?,
    };
    let (mut read, mut parsed) = (Vec::new(), Vec::new());
    for location in locations {
        let approvals =
            !named && location.client == Client::ClaudeCode && location.scope == Scope::Project;
        match read_location(&location, cx) {
            Ok(mut file) => {
                read.push(Read {
                    servers: file.found.len(),
                    location,
                });
                if approvals {
                    claude::only_approved(&mut file, cx);
                }
                parsed.push(file);
            }
            Err(e) if named => return Err(e),
            Err(e) => notes.push(format!("not read: {e}")),
        }
    }
    Ok(Sources {
        read,
        parsed,
        notes,
    })
}

/// FILE: its client (`--from`, else guessed) and scope (a known location's, else given).
fn named_file(file: &Path, from: Option<Client>, cx: &Context) -> Result<Location, String> {
    let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let text = files::read_text(&path, MAX_CLIENT_FILE)?;
    let client = from.unwrap_or_else(|| Client::guess(&path, &text));
    let scope = client
        .locations(&cx.home, &cx.cwd)
        .into_iter()
        .find(|l| l.path == path)
        .map_or(Scope::Given, |l| l.scope);
    Ok(Location {
        client,
        path,
        scope,
    })
}

/// Without FILE: the known locations of `--from`'s client (else every client's) that exist,
/// the project's only with `--project`; and a note for each project file not read.
fn found_files(args: &Args, cx: &Context) -> Result<(Vec<Location>, Vec<String>), String> {
    let clients = match args.from {
        Some(client) => vec![client],
        None => Client::ALL.to_vec(),
    };
    let (considered, left): (Vec<Location>, Vec<Location>) = clients
        .iter()
        .flat_map(|c| c.locations(&cx.home, &cx.cwd))
        .partition(|l| l.scope == Scope::User || args.project);
    let notes: Vec<String> = left
        .iter()
        .filter(|l| l.path.is_file())
        .map(|l| {
            format!(
                "not read: {} (the project's own config; `--project` reads it, if you trust \
                 the project)",
                cx.shown(&l.path)
            )
        })
        .collect();
    let locations: Vec<Location> = considered
        .iter()
        .filter(|l| l.path.is_file())
        .cloned()
        .collect();
    if locations.is_empty() {
        let looked: Vec<String> = considered.iter().map(|l| cx.shown(&l.path)).collect();
        let mut message = format!(
            "found no client config to import; looked for {}",
            looked.join(", ")
        );
        for note in &notes {
            message.push_str(&format!("\n{note}"));
        }
        return Err(message);
    }
    Ok((locations, notes))
}

/// The servers of one client file.
pub fn read_location(at: &Location, cx: &Context) -> Result<Parsed, String> {
    let shown = cx.shown(&at.path);
    let text = files::read_text(&at.path, MAX_CLIENT_FILE)?;
    let mut parsed = match at.client.format() {
        Format::McpServers => crate::jsonc::parse(&text).and_then(|v| claude::parse(&v, at, cx)),
        Format::Vscode => crate::jsonc::parse(&text).and_then(|v| vscode::parse(&v, at, cx)),
        Format::CodexToml => codex::parse(&text, at, cx),
    }
    .map_err(|e| format!("{shown}: {e}"))?;
    // A project's servers ran in the project (their relative paths are its): so they do here.
    if at.scope != Scope::User {
        let project = project_root(&at.path);
        for found in &mut parsed.found {
            if let Spec::Local {
                cwd: cwd @ None, ..
            } = &mut found.spec
            {
                *cwd = Some(project.display().to_string());
            }
        }
    }
    Ok(parsed)
}

/// The project a project-level file belongs to: `.vscode/mcp.json`'s, `.cursor/mcp.json`'s
/// and `.codex/config.toml`'s grandparent, `.mcp.json`'s parent.
fn project_root(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let hidden = parent
        .file_name()
        .is_some_and(|n| matches!(n.to_str(), Some(".vscode" | ".cursor" | ".codex")));
    match (hidden, parent.parent()) {
        (true, Some(project)) => project.to_path_buf(),
        _ => parent.to_path_buf(),
    }
}

/// The variables a client's `envFile` sets, each as `KEY: ${VAR}` with the value a secret
/// (it is why it was in a file); a file that cannot be read is a note.
pub fn env_file_pairs(
    server: &str,
    file: &str,
    cx: &Context,
    notes: &mut Vec<String>,
) -> Vec<Pair> {
    let path = Path::new(file);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cx.cwd.join(path)
    };
    let parsed = files::read_text(&path, mcpgw::config::MAX_ENV_FILE).and_then(|text| {
        mcpgw::config::parse_env_file(&text)
            .map_err(|e| format!("{}: {}", path.display(), merge::env_error(&e)))
    });
    match parsed {
        Ok(file) => file
            .vars
            .into_iter()
            .map(|(key, value)| Pair {
                key,
                value,
                secret: true,
            })
            .collect(),
        Err(e) => {
            notes.push(format!(
                "`{server}`: its envFile was not read ({e}); its variables are not imported"
            ));
            Vec::new()
        }
    }
}
