//! Human-readable output. Pure functions of protocol and config types (the clock is passed in),
//! so they are snapshot-tested.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use mcpgw::config::Config;
use mcpgw::plugin_host::Report;
use mcpgw::protocol::{ReloadStatus, ServerProcess, Status, ToolList};

/// `text` safe for a terminal: control characters other than newline and tab (escape
/// sequences a backend or client wrote into its stderr, names or descriptions) and the line
/// and paragraph separators become U+FFFD.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    // LS and PS are no controls, but terminals and tools may break the line at them, so that
    // text from a backend (or a directory's name) could pass for a line of mcpgwctl's own.
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
    };
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
        .collect::<String>()
        .into()
}

/// `mcpgwctl status`. `now_unix_ms` dates the last reload.
///
/// RSS and PROCS are the backend's whole process group (`npx` and the `node` it started), on
/// Linux; elsewhere, or from an older daemon, RSS is its direct child's, if known. NOTE is why
/// it is disabled or failed, else how its last process ended, each with what its stderr said
/// of an abnormal end.
pub fn status(status: &Status, now_unix_ms: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcpgwd {}  pid {}  up {}  config {}",
        status.version,
        status.pid,
        duration(status.uptime_ms),
        status.config_path
    );
    match &status.last_reload {
        None => {
            let _ = writeln!(
                out,
                "config generation {} (never reloaded)",
                status.generation
            );
        }
        Some(reload) => {
            let ago = duration(now_unix_ms.saturating_sub(reload.at_unix_ms));
            if reload.ok {
                let _ = writeln!(
                    out,
                    "config generation {}, last reload {ago} ago: ok ({})",
                    status.generation, reload.message
                );
            } else {
                let _ = writeln!(
                    out,
                    "config generation {}, last reload {ago} ago: rejected, generation {} stays live:",
                    status.generation, reload.generation
                );
                indented(&mut out, &reload.message);
            }
        }
    }
    if !status.config_warnings.is_empty() {
        out.push_str("config warnings:\n");
        for warning in &status.config_warnings {
            indented(&mut out, warning);
        }
    }
    let mut by_role: BTreeMap<&str, usize> = BTreeMap::new();
    for session in &status.sessions {
        *by_role
            .entry(session.role.as_deref().unwrap_or("(none)"))
            .or_default() += 1;
    }
    let roles: Vec<String> = by_role.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    let mut by_transport: BTreeMap<String, usize> = BTreeMap::new();
    for session in &status.sessions {
        *by_transport
            .entry(session.transport.to_string())
            .or_default() += 1;
    }
    let transports: Vec<String> = by_transport
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "sessions: {}{}",
        status.sessions.len(),
        if roles.is_empty() {
            String::new()
        } else {
            format!(
                " (roles {}; via {})",
                roles.join(", "),
                transports.join(", ")
            )
        }
    );
    out.push('\n');
    let header = [
        "SERVER", "STATE", "PID", "PROCS", "RSS", "UPTIME", "IDLE", "CALLS", "ERRORS", "TOOLS",
        "NOTE",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for b in &status.backends {
        let dash = || "-".to_string();
        let note = b
            .reason
            .clone()
            .or_else(|| b.last_exit.as_ref().map(|e| format!("last exit: {e}")))
            .map(|note| match &b.stderr_note {
                Some(said) => format!("{note}; stderr: {said}"),
                None => note,
            });
        rows.push(vec![
            b.name.clone(),
            b.state.to_string(),
            b.pid.map_or_else(dash, |p| p.to_string()),
            b.group_processes.map_or_else(dash, |n| n.to_string()),
            b.group_rss_bytes.or(b.rss_bytes).map_or_else(dash, bytes),
            b.uptime_ms.map_or_else(dash, duration),
            b.idle_ms.map_or_else(dash, duration),
            b.calls.to_string(),
            b.errors.to_string(),
            b.tools.map_or_else(dash, |t| t.to_string()),
            note.unwrap_or_else(dash),
        ]);
    }
    out.push_str(&table(&rows));
    if status.backends.is_empty() {
        out.push_str("(no servers configured)\n");
    }
    let problems: Vec<String> = status
        .backends
        .iter()
        .flat_map(|b| b.problems.iter().map(move |p| format!("{}: {p}", b.name)))
        .collect();
    if !problems.is_empty() {
        out.push_str("problems:\n");
        for problem in &problems {
            indented(&mut out, problem);
        }
    }
    let held: Vec<String> = status
        .backends
        .iter()
        .flat_map(|b| b.held.iter().map(move |tool| format!("{}: {tool}", b.name)))
        .collect();
    if !held.is_empty() {
        out.push_str(
            "held back (changed since approved; `mcpgwctl diff`, then `mcpgwctl approve`):\n",
        );
        for tool in &held {
            indented(&mut out, tool);
        }
    }
    out
}

/// `mcpgwctl reload`: the summary of an accepted reload, or every error of a rejected one.
pub fn reload(reload: &ReloadStatus) -> String {
    let mut out = String::new();
    if reload.ok {
        let _ = writeln!(
            out,
            "reloaded: generation {} is live ({})",
            reload.generation, reload.message
        );
    } else {
        let _ = writeln!(
            out,
            "config rejected; generation {} stays live:",
            reload.generation
        );
        indented(&mut out, &reload.message);
    }
    out
}

/// `mcpgwctl list`: each tool's exposed name and the first line of its description.
pub fn list(list: &ToolList) -> String {
    let mut out = list_tools(list);
    if !list.failed.is_empty() {
        out.push_str("\nnot listed, failed to start (`mcpgwctl logs SERVER` shows why):\n");
        for failure in &list.failed {
            let _ = writeln!(out, "  {}: {}", failure.server, failure.reason);
        }
    }
    out
}

fn list_tools(list: &ToolList) -> String {
    if list.tools.is_empty() {
        return match &list.role {
            Some(role) => format!("(no tools visible to role `{role}`)\n"),
            None => "(no tools)\n".into(),
        };
    }
    let rows: Vec<Vec<String>> = list
        .tools
        .iter()
        .map(|tool| {
            let name = tool["name"].as_str().unwrap_or("?").to_string();
            let description = tool["description"].as_str().unwrap_or("");
            let first = description
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            vec![name, first.to_string()]
        })
        .collect();
    table(&rows)
}

/// `mcpgwctl kill`.
pub fn killed(p: &ServerProcess) -> String {
    match (p.was_running, p.pid) {
        (true, Some(pid)) => {
            format!(
                "stopped {} (pid {pid}); the next call starts it again\n",
                p.server
            )
        }
        (true, None) => format!("stopped {}; the next call starts it again\n", p.server),
        (false, _) => format!("{} was not running\n", p.server),
    }
}

/// `mcpgwctl start`.
pub fn started(p: &ServerProcess) -> String {
    let pid = p
        .pid
        .map_or_else(String::new, |pid| format!(" (pid {pid})"));
    if p.was_running {
        format!("{} is already running{pid}\n", p.server)
    } else {
        format!("started {}{pid}\n", p.server)
    }
}

/// `mcpgwctl check` on a valid config: what it defines, then its warnings.
pub fn check(path: &Path, config: &Config, plugins: &[(String, Report)]) -> String {
    let servers: Vec<String> = config
        .servers
        .values()
        .map(|s| {
            if s.enabled {
                s.name.clone()
            } else {
                format!("{} [disabled]", s.name)
            }
        })
        .collect();
    let roles: Vec<&str> = config.roles.keys().map(String::as_str).collect();
    let mut out = format!(
        "ok: {}, {}\nconfig: {}\n",
        counted(servers.len(), "server", &servers.join(", ")),
        counted(roles.len(), "role", &roles.join(", ")),
        path.display()
    );
    for (server, report) in plugins {
        let tools: Vec<&str> = report.tools.iter().map(|t| t.name.as_str()).collect();
        let tools = counted(tools.len(), "tool", &tools.join(", "));
        let _ = writeln!(out, "plugins of `{server}`: {tools}");
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// `3 servers (a, b, c)`, `1 role (admin)`, `0 roles`.
fn counted(n: usize, noun: &str, names: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    if n == 0 {
        format!("0 {noun}s")
    } else {
        format!("{n} {noun}{plural} ({names})")
    }
}

/// Columns padded to their widest cell; the last one is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Each line of `text`, indented by two spaces.
fn indented(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

fn bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= MIB {
        format!("{:.1}M", b as f64 / MIB)
    } else {
        format!("{}K", b / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgw::protocol::{
        BackendState, BackendStatus, ServerFailure, SessionStatus, SessionTransport,
    };
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000;

    fn backend(name: &str, state: BackendState) -> BackendStatus {
        BackendStatus {
            name: name.into(),
            state,
            reason: None,
            pid: None,
            rss_bytes: None,
            group_rss_bytes: None,
            group_processes: None,
            uptime_ms: None,
            idle_ms: None,
            calls: 0,
            errors: 0,
            inflight: 0,
            tools: None,
            last_exit: None,
            stderr_note: None,
            problems: Vec::new(),
            held: Vec::new(),
            stderr_tail: vec![],
        }
    }

    fn sample_status() -> Status {
        let mut fs = backend("filesystem", BackendState::Ready);
        fs.pid = Some(4242);
        fs.rss_bytes = Some(4_194_304);
        fs.group_rss_bytes = Some(40_265_318);
        fs.group_processes = Some(2);
        fs.uptime_ms = Some(62_000);
        fs.idle_ms = Some(3_500);
        fs.calls = 12;
        fs.errors = 1;
        fs.tools = Some(14);
        let mut gh = backend("github", BackendState::Disabled);
        gh.reason = Some("missing environment variable GITHUB_TOKEN (gateway.yaml:9:22)".into());
        let mut crashy = backend("crashy", BackendState::Stopped);
        crashy.last_exit = Some("exit code 3".into());
        crashy.stderr_note = Some("Error: Cannot find module 'zod'".into());
        crashy.calls = 2;
        crashy.errors = 2;
        crashy.tools = Some(3);
        Status {
            version: "0.1.0".into(),
            pid: 100,
            uptime_ms: 3_725_000,
            config_path: "/home/u/gateway.yaml".into(),
            generation: 1,
            last_reload: None,
            config_warnings: vec![],
            sessions: vec![
                SessionStatus {
                    id: 1,
                    role: Some("readonly".into()),
                    client: None,
                    pid: None,
                    transport: SessionTransport::Socket,
                },
                SessionStatus {
                    id: 2,
                    role: None,
                    client: None,
                    pid: None,
                    transport: SessionTransport::Socket,
                },
            ],
            backends: vec![crashy, fs, gh],
        }
    }

    const TABLE: &str = "\
sessions: 2 (roles (none): 1, readonly: 1; via socket: 2)

SERVER      STATE     PID   PROCS  RSS    UPTIME  IDLE  CALLS  ERRORS  TOOLS  NOTE
crashy      stopped   -     -      -      -       -     2      2       3      last exit: exit code 3; stderr: Error: Cannot find module 'zod'
filesystem  ready     4242  2      38.4M  1m2s    3s    12     1       14     -
github      disabled  -     -      -      -       -     0      0       -      missing environment variable GITHUB_TOKEN (gateway.yaml:9:22)
";

    #[test]
    fn status_table_snapshot() {
        let expected = format!(
            "\
mcpgwd 0.1.0  pid 100  up 1h2m  config /home/u/gateway.yaml
config generation 1 (never reloaded)
{TABLE}"
        );
        assert_eq!(status(&sample_status(), NOW), expected);
    }

    #[test]
    fn status_with_an_accepted_reload_and_warnings() {
        let mut s = sample_status();
        s.generation = 3;
        s.last_reload = Some(ReloadStatus {
            at_unix_ms: NOW - 125_000,
            ok: true,
            generation: 3,
            message: "added: gamma; removed: beta".into(),
        });
        s.config_warnings = vec![
            "/home/u/gateway.yaml:9:22: server `github` is disabled: GITHUB_TOKEN is not set"
                .into(),
        ];
        let expected = format!(
            "\
mcpgwd 0.1.0  pid 100  up 1h2m  config /home/u/gateway.yaml
config generation 3, last reload 2m5s ago: ok (added: gamma; removed: beta)
config warnings:
  /home/u/gateway.yaml:9:22: server `github` is disabled: GITHUB_TOKEN is not set
{TABLE}"
        );
        assert_eq!(status(&s, NOW), expected);
    }

    #[test]
    fn status_with_a_rejected_reload() {
        let mut s = sample_status();
        s.generation = 2;
        s.last_reload = Some(ReloadStatus {
            at_unix_ms: NOW - 10_400,
            ok: false,
            generation: 2,
            message: "/home/u/gateway.yaml:3:5: unknown key `comand`; did you mean `command`?\n\
                      /home/u/gateway.yaml:7:3: missing `command`"
                .into(),
        });
        let expected = format!(
            "\
mcpgwd 0.1.0  pid 100  up 1h2m  config /home/u/gateway.yaml
config generation 2, last reload 10s ago: rejected, generation 2 stays live:
  /home/u/gateway.yaml:3:5: unknown key `comand`; did you mean `command`?
  /home/u/gateway.yaml:7:3: missing `command`
{TABLE}"
        );
        assert_eq!(status(&s, NOW), expected);
    }

    #[test]
    fn status_without_servers() {
        let mut s = sample_status();
        s.sessions.clear();
        s.backends.clear();
        let expected = "\
mcpgwd 0.1.0  pid 100  up 1h2m  config /home/u/gateway.yaml
config generation 1 (never reloaded)
sessions: 0

SERVER  STATE  PID  PROCS  RSS  UPTIME  IDLE  CALLS  ERRORS  TOOLS  NOTE
(no servers configured)
";
        assert_eq!(status(&s, NOW), expected);
    }

    /// A failed start's note carries its stderr's error; a daemon that reports only its
    /// child's memory (macOS, or older than group memory) still fills RSS.
    #[test]
    fn status_of_a_failed_start_and_of_memory_without_groups() {
        let mut s = sample_status();
        let mut py = backend("py", BackendState::Failed);
        py.reason = Some(
            "server `py` failed to start: connection closed: initialize response (exit code 1); \
             its stderr: `mcpgwctl logs py`"
                .into(),
        );
        py.stderr_note = Some("ModuleNotFoundError: No module named 'x'".into());
        let mut mac = backend("mac", BackendState::Ready);
        mac.pid = Some(77);
        mac.rss_bytes = Some(524_288);
        s.backends = vec![mac, py];
        let expected = "\
SERVER  STATE   PID  PROCS  RSS   UPTIME  IDLE  CALLS  ERRORS  TOOLS  NOTE
mac     ready   77   -      512K  -       -     0      0       -      -
py      failed  -    -      -     -       -     0      0       -      server `py` failed to start: connection closed: initialize response (exit code 1); its stderr: `mcpgwctl logs py`; stderr: ModuleNotFoundError: No module named 'x'
";
        let shown = status(&s, NOW);
        assert!(shown.ends_with(expected), "{shown}");
    }

    /// A plugin host's modules that did not import are listed under the table.
    #[test]
    fn status_lists_what_servers_said_is_wrong_with_them() {
        let mut s = sample_status();
        let mut plugins = backend("plugins", BackendState::Stopped);
        plugins.tools = Some(3);
        plugins.problems = vec![
            "plugin module `broken` failed to import: NameError: name 'x' is not defined".into(),
        ];
        s.backends = vec![plugins];
        let expected = "\
SERVER   STATE    PID  PROCS  RSS  UPTIME  IDLE  CALLS  ERRORS  TOOLS  NOTE
plugins  stopped  -    -      -    -       -     0      0       3      -
problems:
  plugins: plugin module `broken` failed to import: NameError: name 'x' is not defined
";
        let shown = status(&s, NOW);
        assert!(shown.ends_with(expected), "{shown}");
    }

    #[test]
    fn reload_snapshots() {
        let accepted = ReloadStatus {
            at_unix_ms: NOW,
            ok: true,
            generation: 4,
            message: "added: gamma".into(),
        };
        assert_eq!(
            reload(&accepted),
            "reloaded: generation 4 is live (added: gamma)\n"
        );
        let rejected = ReloadStatus {
            at_unix_ms: NOW,
            ok: false,
            generation: 3,
            message: "gateway.yaml:3:5: unknown key `comand`\ngateway.yaml:5:1: bad".into(),
        };
        assert_eq!(
            reload(&rejected),
            "\
config rejected; generation 3 stays live:
  gateway.yaml:3:5: unknown key `comand`
  gateway.yaml:5:1: bad
"
        );
    }

    #[test]
    fn list_snapshot() {
        let tools = ToolList {
            role: Some("readonly".into()),
            tools: vec![
                json!({"name": "alpha_echo", "description": "Echoes the text back.\n\nMore detail.", "inputSchema": {}}),
                json!({"name": "alpha_add", "description": "\n  Adds two numbers  \n", "inputSchema": {}}),
                json!({"name": "gateway_status", "inputSchema": {}}),
            ],
            failed: vec![],
        };
        let expected = "\
alpha_echo      Echoes the text back.
alpha_add       Adds two numbers
gateway_status
";
        assert_eq!(list(&tools), expected);
        let empty = ToolList {
            role: Some("none".into()),
            tools: vec![],
            failed: vec![],
        };
        assert_eq!(list(&empty), "(no tools visible to role `none`)\n");
        let failed = ToolList {
            role: None,
            tools: vec![],
            failed: vec![ServerFailure {
                server: "sqlite".into(),
                reason: "sqlite exited with exit status: 1".into(),
            }],
        };
        assert_eq!(
            list(&failed),
            "\
(no tools)

not listed, failed to start (`mcpgwctl logs SERVER` shows why):
  sqlite: sqlite exited with exit status: 1
"
        );
    }

    #[test]
    fn kill_and_start_snapshots() {
        let p = |pid, was_running| ServerProcess {
            server: "alpha".into(),
            pid,
            was_running,
        };
        assert_eq!(
            killed(&p(Some(7), true)),
            "stopped alpha (pid 7); the next call starts it again\n"
        );
        assert_eq!(killed(&p(None, false)), "alpha was not running\n");
        assert_eq!(started(&p(Some(8), false)), "started alpha (pid 8)\n");
        assert_eq!(
            started(&p(Some(8), true)),
            "alpha is already running (pid 8)\n"
        );
    }

    #[test]
    fn check_snapshot() {
        let yaml = "\
servers:
  alpha:
    command: a
  beta:
    command: b
    enabled: false
roles:
  admin: null
";
        let path = Path::new("gateway.yaml");
        let config = mcpgw::config::parse(yaml, path, &|_| None).unwrap();
        assert_eq!(
            check(path, &config, &[]),
            "ok: 2 servers (alpha, beta [disabled]), 1 role (admin)\nconfig: gateway.yaml\n"
        );
        let yaml = "servers:\n  gh:\n    command: gh\n    env:\n      TOKEN: \"${GH_TOKEN}\"\n";
        let config = mcpgw::config::parse(yaml, path, &|_| None).unwrap();
        let text = check(path, &config, &[]);
        assert!(
            text.starts_with("ok: 1 server (gh [disabled]), 0 roles\nconfig: gateway.yaml\nwarning: gateway.yaml:5:"),
            "{text}"
        );
        assert!(text.contains("GH_TOKEN"), "{text}");
        let config = mcpgw::config::parse("servers: {}\n", path, &|_| None).unwrap();
        assert_eq!(
            check(path, &config, &[]),
            "ok: 0 servers, 0 roles\nconfig: gateway.yaml\n"
        );
        let config = mcpgw::config::parse("plugins: [calc]\n", path, &|_| None).unwrap();
        let report = Report {
            tools: vec![mcpgw::plugin_host::ReportedTool {
                name: "add".into(),
                module: "calc".into(),
            }],
            problems: Vec::new(),
        };
        assert_eq!(
            check(path, &config, &[("plugins".into(), report)]),
            "ok: 1 server (plugins), 0 roles\nconfig: gateway.yaml\nplugins of `plugins`: 1 tool (add)\n"
        );
    }

    #[test]
    fn terminal_escapes_never_reach_the_terminal() {
        let hostile = "ok\tline\n\x1b[2J\x1b]0;owned\x07\u{9b}31m";
        let shown = printable(hostile);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        assert!(shown.starts_with("ok\tline\n\u{fffd}[2J"), "{shown:?}");
        assert_eq!(printable("plain"), "plain");
        assert_eq!(
            printable("a\u{2028}b\u{2029}c\u{85}"),
            "a\u{fffd}b\u{fffd}c\u{fffd}"
        );
    }
}
