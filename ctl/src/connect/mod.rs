//! `mcpgwctl connect CLIENT`: the client's own config (the user-level file, see
//! `clients.rs`) gets one server, `mcpgw`, running `mcpgw-shim`, in place of the servers
//! gateway.yaml now serves; `--undo` puts the original back.
//!
//! Rules:
//! - Every server of the file that can be imported must be in gateway.yaml (the same server:
//!   command, arguments, environment and directory, or URL and headers; `import::Identity`):
//!   connect refuses otherwise, naming them (`import --write` first).
//!   Connecting is a separate, reviewable step; it never imports by itself.
//! - Entries that cannot be imported (a transport mcpgw does not serve, an editor-only
//!   variable) stay in the client's file, as do other scopes (Claude Code's project servers).
//! - The original's exact bytes are kept in `<file>.mcpgw-backup` (created exclusively, with
//!   the file's mode); a file with a backup is connected already and is not connected again.
//! - `--undo` without a backup is refused. With one: when the file is still what connect made
//!   of it, the backup's bytes are written back as they were; when the client changed the file
//!   since (Claude Code writes `~/.claude.json` all the time), only its servers are put back
//!   and the client's other changes are kept, the servers the user added or changed since
//!   among them (`undo.rs`); the file as it was is kept as `<file>.mcpgw-undo-<time>` first.
//!   Then the backup is removed.
//! - JSON is edited as text (the servers member only, other bytes as they were; comments of
//!   VS Code's file included); Codex's TOML through `toml_edit`, which keeps the rest of the
//!   file's layout and comments. Files are replaced atomically, keeping their mode.

mod edit;
mod undo;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::clients::{Client, Location, Scope};
use crate::files::{self, MAX_CLIENT_FILE};
use crate::import::{self, Context, Existing, Identity};
use crate::{EXIT_FAILED, Out};
use edit::{connected, servers_in, unchanged};
use undo::put_back;

/// The name of the gateway's entry in a client's config.
pub const ENTRY: &str = "mcpgw";

pub struct Args {
    pub client: Client,
    pub role: Option<String>,
    pub undo: bool,
    pub config: Option<PathBuf>,
}

/// What the client runs to reach the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub command: String,
    pub args: Vec<String>,
}

#[derive(Serialize)]
struct Done {
    client: &'static str,
    file: String,
    backup: String,
    undone: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<Entry>,
    replaced: Vec<String>,
    /// Connect: the servers left in the client (not importable). Undo: the servers the client
    /// has that the original had not as they are (added or changed since), kept.
    kept: Vec<String>,
    /// `--undo` of a file the client changed since: its servers put back, the rest kept.
    merged: bool,
    /// Then: where the file as it was before `--undo` is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    copy: Option<String>,
    notes: Vec<String>,
}

pub fn run(args: Args, out: Out) -> ExitCode {
    let done = Context::new().and_then(|cx| match args.undo {
        true => undo(&args, &cx),
        false => connect(&args, &cx),
    });
    match done {
        Ok(done) => out.print(&done, || human(&done)),
        Err(message) => out.fail(EXIT_FAILED, &message),
    }
}

fn connect(args: &Args, cx: &Context) -> Result<Done, String> {
    let client = args.client;
    let file = client.user_file(&cx.home);
    let backup = files::beside(&file, ".mcpgw-backup");
    let (shown, shown_backup) = (cx.shown(&file), cx.shown(&backup));
    if backup.exists() {
        return Err(format!(
            "{shown} is connected already (its original is {shown_backup}): `mcpgwctl connect {} \
             --undo` puts it back",
            client.name()
        ));
    }
    let entry = entry(args)?;
    if !file.is_file() {
        return Err(format!(
            "{shown} does not exist: {} has no config to connect; add the gateway to it as a \
             server running `{}` with the arguments {:?}",
            client.name(),
            entry.command,
            entry.args
        ));
    }
    let original = files::read_text(&file, MAX_CLIENT_FILE)?;
    let location = Location {
        client,
        path: file.clone(),
        scope: Scope::User,
    };
    let parsed = import::read_location(&location, cx)?;
    let config = import::config_path(args.config.as_deref())?;
    if !config.is_file() {
        return Err(format!(
            "there is no gateway config at {} yet: `mcpgwctl import --from {} --write` creates \
             it with {}'s servers",
            config.display(),
            client.name(),
            client.name()
        ));
    }
    let existing = Existing::load(&config)?;
    let served: Vec<&import::Found> = parsed.found.iter().filter(|f| !f.nested).collect();
    let missing: Vec<&str> = served
        .iter()
        .filter(|f| !f.is_gateway())
        .filter(|f| {
            let identity = Identity::of(&f.spec).resolved(&existing.env_vars);
            existing.same(&identity).is_none()
        })
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not in {} yet: {} (from {shown}); `mcpgwctl import --from {} --write` adds them, \
             then connect again",
            config.display(),
            missing.join(", "),
            client.name()
        ));
    }
    let replaced: Vec<String> = served.iter().map(|f| f.name.clone()).collect();
    let kept: Vec<String> = servers_in(client, &original)?
        .into_iter()
        .filter(|name| !replaced.contains(name) && name != ENTRY)
        .collect();
    let connected = connected(client, &original, &entry, &kept)?;
    // What is said to be kept must be there (and the gateway's entry): a shape of the file
    // this code does not know must fail here, not drop servers.
    let now = servers_in(client, &connected)?;
    let lost = (kept.iter().map(String::as_str).chain([ENTRY]))
        .find(|name| !now.iter().any(|n| n == name));
    if let Some(lost) = lost {
        return Err(format!(
            "{shown}: connecting would lose the server `{lost}` (a shape of the file mcpgwctl \
             does not edit correctly): nothing was changed"
        ));
    }
    let mode = files::mode_of(&file).unwrap_or(0o600);
    files::write_new(&backup, original.as_bytes(), mode)?;
    if let Err(e) = files::write_atomic(&file, connected.as_bytes(), mode) {
        let _ = std::fs::remove_file(&backup);
        return Err(e);
    }
    let mut notes = Vec::new();
    let projects = client.locations(&cx.home, &cx.cwd);
    if parsed.found.iter().any(|f| f.nested) || projects.iter().skip(1).any(|l| l.path.is_file()) {
        notes.push(format!(
            "{}'s project-level servers (a project's own config) are not changed: the client \
             runs them beside the gateway",
            client.name()
        ));
    }
    Ok(Done {
        client: client.name(),
        file: shown,
        backup: shown_backup,
        undone: false,
        entry: Some(entry),
        replaced,
        kept,
        merged: false,
        copy: None,
        notes,
    })
}

fn undo(args: &Args, cx: &Context) -> Result<Done, String> {
    let client = args.client;
    let file = client.user_file(&cx.home);
    let backup = files::beside(&file, ".mcpgw-backup");
    let (shown, shown_backup) = (cx.shown(&file), cx.shown(&backup));
    if !backup.is_file() {
        return Err(format!(
            "no backup at {shown_backup}: {shown} was not connected by `mcpgwctl connect` (or \
             was restored already), so there is nothing to undo"
        ));
    }
    let original = std::fs::read(&backup).map_err(|e| format!("{shown_backup}: {e}"))?;
    let mode = files::mode_of(&backup).unwrap_or(0o600);
    let current = match file.exists() {
        true => Some(files::read_text(&file, MAX_CLIENT_FILE)?),
        false => None,
    };
    let restored = match (&current, std::str::from_utf8(&original)) {
        (Some(current), Ok(text)) if !unchanged(client, text, current)? => {
            Some(put_back(client, current, text)?)
        }
        _ => None,
    };
    // The client wrote the file since: what it holds now is kept aside first, exactly, in
    // case the merge is not what the user wanted.
    let copy = match (&restored, &current) {
        (Some(_), Some(current)) => {
            let mode = files::mode_of(&file).unwrap_or(0o600);
            Some(files::keep_copy(
                &file,
                "mcpgw-undo",
                current.as_bytes(),
                mode,
            )?)
        }
        _ => None,
    };
    let merged = restored.is_some();
    let (bytes, since) = match restored {
        Some((text, since)) => (text.into_bytes(), since),
        None => (original, Vec::new()),
    };
    files::write_atomic(&file, &bytes, mode)?;
    std::fs::remove_file(&backup).map_err(|e| format!("{shown_backup}: {e}"))?;
    Ok(Done {
        client: client.name(),
        file: shown,
        backup: shown_backup,
        undone: true,
        entry: None,
        replaced: Vec::new(),
        kept: since,
        merged,
        copy: copy.map(|c| cx.shown(&c)),
        notes: Vec::new(),
    })
}

/// `mcpgw-shim` beside this mcpgwctl if it is there (clients start servers with a reduced
/// `PATH`), else from `PATH`; `--role`, and `--config` when the config is not the user's own
/// (the one a shim's daemon finds by itself): then it is one the user named, with `--config`
/// or `$MCPGW_CONFIG` (`import::config_path` never picks one in the current directory).
fn entry(args: &Args) -> Result<Entry, String> {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("mcpgw-shim"))
        .filter(|shim| shim.is_file());
    let command = match beside {
        Some(shim) => std::fs::canonicalize(&shim)
            .unwrap_or(shim)
            .display()
            .to_string(),
        None => "mcpgw-shim".to_owned(),
    };
    let mut shim_args = Vec::new();
    if let Some(role) = &args.role {
        shim_args.extend(["--role".to_owned(), role.clone()]);
    }
    let config = import::config_path(args.config.as_deref())?;
    if mcpgw::paths::user_config_file().as_deref() != Some(config.as_path()) {
        shim_args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    Ok(Entry {
        command,
        args: shim_args,
    })
}

fn human(done: &Done) -> String {
    let mut out = String::new();
    if done.undone {
        out.push_str(&match done.merged {
            false => format!(
                "restored {} as it was before `connect` (from {}, now removed)\n",
                done.file, done.backup
            ),
            true => format!(
                "put {}'s servers back in {} as they were before `connect`; {} changed the \
                 file since, and its other changes are kept ({} removed)\n",
                done.client, done.file, done.client, done.backup
            ),
        });
        if !done.kept.is_empty() {
            out.push_str(&format!(
                "kept the servers added or changed in {} since: {}\n",
                done.client,
                done.kept.join(", ")
            ));
        }
        if let Some(copy) = &done.copy {
            out.push_str(&format!(
                "the file as it was before --undo is kept as {copy}\n"
            ));
        }
        return out;
    }
    let entry = done.entry.as_ref().expect("connect has an entry");
    let mut command = entry.command.clone();
    for arg in &entry.args {
        command.push(' ');
        command.push_str(arg);
    }
    let replaced = match done.replaced.is_empty() {
        true => String::new(),
        false => format!(" in place of {}", done.replaced.join(", ")),
    };
    out.push_str(&format!(
        "connected {}: {} runs the gateway as server `{ENTRY}` (`{command}`){replaced}\n",
        done.client, done.file
    ));
    if !done.kept.is_empty() {
        out.push_str(&format!(
            "kept as they were (not importable): {}\n",
            done.kept.join(", ")
        ));
    }
    for note in &done.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!(
        "the original is kept as {}; `mcpgwctl connect {} --undo` puts it back\n",
        done.backup, done.client
    ));
    // Claude Code (and others) keep their config in memory and write all of it back now and
    // then: one that was running during connect can put its old servers back.
    out.push_str(&format!(
        "quit {client} and start it again to use the gateway; if it was running, check that \
         {} still has `{ENTRY}` afterwards (a running client may write its old servers back: \
         then quit it, `mcpgwctl connect {client} --undo` and connect again)\n",
        done.file,
        client = done.client
    ));
    out
}
