//! The MCP clients `import` reads and `connect` edits: their names, where each keeps its
//! servers, and in which format. Only this module knows their locations.

use std::path::{Path, PathBuf};

use mcpgw::paths::absolute_var;

/// A client whose configuration mcpgwctl knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Vscode,
    Codex,
}

/// The shape of a client's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON with `mcpServers` (Claude Code, Claude Desktop, Cursor).
    McpServers,
    /// JSON with comments, `servers` and `inputs` (VS Code).
    Vscode,
    /// TOML with `[mcp_servers.<name>]` (Codex).
    CodexToml,
}

/// Whose servers a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every project of the user's: the file `connect` edits.
    User,
    /// The current project's (a file in the working directory, often shared in its repository).
    Project,
    /// A file named on the command line.
    Given,
}

/// One file a client may keep servers in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub client: Client,
    pub path: PathBuf,
    pub scope: Scope,
}

impl Scope {
    /// For messages and `--json`: `user`, `project`, `given`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
            Scope::Given => "given",
        }
    }
}

impl Client {
    pub const ALL: [Client; 5] = [
        Client::ClaudeCode,
        Client::ClaudeDesktop,
        Client::Cursor,
        Client::Vscode,
        Client::Codex,
    ];

    /// As on the command line: `claude-code`, `claude-desktop`, `cursor`, `vscode`, `codex`.
    pub fn name(self) -> &'static str {
        match self {
            Client::ClaudeCode => "claude-code",
            Client::ClaudeDesktop => "claude-desktop",
            Client::Cursor => "cursor",
            Client::Vscode => "vscode",
            Client::Codex => "codex",
        }
    }

    /// What a server renamed for this client is suffixed with (`github-cursor`).
    pub fn short(self) -> &'static str {
        match self {
            Client::ClaudeCode => "claude",
            Client::ClaudeDesktop => "desktop",
            Client::Cursor => "cursor",
            Client::Vscode => "vscode",
            Client::Codex => "codex",
        }
    }

    pub fn format(self) -> Format {
        match self {
            Client::ClaudeCode | Client::ClaudeDesktop | Client::Cursor => Format::McpServers,
            Client::Vscode => Format::Vscode,
            Client::Codex => Format::CodexToml,
        }
    }

    /// The file with the user's own servers: what `import` reads first and `connect` edits.
    pub fn user_file(self, home: &Path) -> PathBuf {
        let app_support = |app: &str| {
            if cfg!(target_os = "macos") {
                home.join("Library/Application Support").join(app)
            } else {
                absolute_var("XDG_CONFIG_HOME")
                    .unwrap_or_else(|| home.join(".config"))
                    .join(app)
            }
        };
        match self {
            // `CLAUDE_CONFIG_DIR` moves Claude Code's whole configuration, `.claude.json` too.
            Client::ClaudeCode => absolute_var("CLAUDE_CONFIG_DIR")
                .unwrap_or_else(|| home.to_path_buf())
                .join(".claude.json"),
            Client::ClaudeDesktop => app_support("Claude").join("claude_desktop_config.json"),
            Client::Cursor => home.join(".cursor/mcp.json"),
            Client::Vscode => app_support("Code/User").join("mcp.json"),
            Client::Codex => absolute_var("CODEX_HOME")
                .unwrap_or_else(|| home.join(".codex"))
                .join("config.toml"),
        }
    }

    /// Every file this client may keep servers in, the user's first, then the project's
    /// (in `cwd`). Claude Code's local scope (servers of one project kept in `~/.claude.json`)
    /// is read from the user file.
    pub fn locations(self, home: &Path, cwd: &Path) -> Vec<Location> {
        let user = Location {
            client: self,
            path: self.user_file(home),
            scope: Scope::User,
        };
        let project = |rel: &str| Location {
            client: self,
            path: cwd.join(rel),
            scope: Scope::Project,
        };
        match self {
            Client::ClaudeCode => vec![user, project(".mcp.json")],
            Client::ClaudeDesktop => vec![user],
            Client::Cursor => vec![user, project(".cursor/mcp.json")],
            Client::Vscode => vec![user, project(".vscode/mcp.json")],
            Client::Codex => vec![user, project(".codex/config.toml")],
        }
    }

    /// The client a file named on the command line belongs to, from its name and, for JSON,
    /// its contents (`servers` is VS Code's, `mcpServers` the others').
    pub fn guess(path: &Path, text: &str) -> Client {
        let shown = path.to_string_lossy();
        if shown.ends_with(".toml") {
            Client::Codex
        } else if shown.contains("claude_desktop_config") {
            Client::ClaudeDesktop
        } else if shown.contains(".cursor") {
            Client::Cursor
        } else if shown.contains(".vscode")
            || shown.contains("Code/User")
            || (!text.contains("\"mcpServers\"") && text.contains("\"servers\""))
        {
            Client::Vscode
        } else {
            Client::ClaudeCode
        }
    }
}

/// `path` with the home directory written `~`, for messages.
pub fn tilde(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if !home.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

/// The user's home directory (`$HOME`).
pub fn home() -> Result<PathBuf, String> {
    absolute_var("HOME")
        .ok_or_else(|| "HOME is not set (or not absolute): cannot find the clients' configs".into())
}
