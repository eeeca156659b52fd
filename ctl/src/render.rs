//! Human-readable output. Pure functions of protocol types, so they are snapshot-tested.

use std::collections::BTreeMap;
use std::fmt::Write;

use mcpgw::protocol::Status;

pub fn status(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcpgwd {}  pid {}  up {}  config {}",
        status.version,
        status.pid,
        duration(status.uptime_ms),
        status.config_path
    );
    let mut by_role: BTreeMap<&str, usize> = BTreeMap::new();
    for session in &status.sessions {
        *by_role.entry(session.role.as_deref().unwrap_or("(none)")).or_default() += 1;
    }
    let roles: Vec<String> = by_role.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    let _ = writeln!(
        out,
        "sessions: {}{}",
        status.sessions.len(),
        if roles.is_empty() { String::new() } else { format!(" ({})", roles.join(", ")) }
    );
    out.push('\n');
    let header = ["SERVER", "STATE", "PID", "RSS", "UPTIME", "IDLE", "CALLS", "ERRORS", "TOOLS", "NOTE"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for b in &status.backends {
        let dash = || "-".to_string();
        let note = b.reason.clone().or_else(|| b.last_exit.as_ref().map(|e| format!("last exit: {e}")));
        rows.push(vec![
            b.name.clone(),
            b.state.to_string(),
            b.pid.map_or_else(dash, |p| p.to_string()),
            b.rss_bytes.map_or_else(dash, bytes),
            b.uptime_ms.map_or_else(dash, duration),
            b.idle_ms.map_or_else(dash, duration),
            b.calls.to_string(),
            b.errors.to_string(),
            b.tools.map_or_else(dash, |t| t.to_string()),
            note.unwrap_or_else(dash),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
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
    if status.backends.is_empty() {
        out.push_str("(no servers configured)\n");
    }
    out
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
    use mcpgw::protocol::{BackendState, BackendStatus, SessionStatus};

    fn backend(name: &str, state: BackendState) -> BackendStatus {
        BackendStatus {
            name: name.into(),
            state,
            reason: None,
            pid: None,
            rss_bytes: None,
            uptime_ms: None,
            idle_ms: None,
            calls: 0,
            errors: 0,
            tools: None,
            last_exit: None,
            stderr_tail: vec![],
        }
    }

    #[test]
    fn status_table_snapshot() {
        let mut fs = backend("filesystem", BackendState::Ready);
        fs.pid = Some(4242);
        fs.rss_bytes = Some(40_265_318);
        fs.uptime_ms = Some(62_000);
        fs.idle_ms = Some(3_500);
        fs.calls = 12;
        fs.errors = 1;
        fs.tools = Some(14);
        let mut gh = backend("github", BackendState::Disabled);
        gh.reason = Some("missing environment variable GITHUB_TOKEN (gateway.yaml:9:22)".into());
        let mut crashy = backend("crashy", BackendState::Stopped);
        crashy.last_exit = Some("exit code 3".into());
        crashy.calls = 2;
        crashy.errors = 2;
        crashy.tools = Some(3);
        let status = Status {
            version: "0.1.0".into(),
            pid: 100,
            uptime_ms: 3_725_000,
            config_path: "/home/u/gateway.yaml".into(),
            sessions: vec![
                SessionStatus { id: 1, role: Some("readonly".into()), client: None, pid: None },
                SessionStatus { id: 2, role: None, client: None, pid: None },
            ],
            backends: vec![crashy, fs, gh],
        };
        let expected = "\
mcpgwd 0.1.0  pid 100  up 1h2m  config /home/u/gateway.yaml
sessions: 2 ((none): 1, readonly: 1)

SERVER      STATE     PID   RSS    UPTIME  IDLE  CALLS  ERRORS  TOOLS  NOTE
crashy      stopped   -     -      -       -     2      2       3      last exit: exit code 3
filesystem  ready     4242  38.4M  1m2s    3s    12     1       14     -
github      disabled  -     -      -       -     0      0       -      missing environment variable GITHUB_TOKEN (gateway.yaml:9:22)
";
        assert_eq!(status_render(&status), expected);
    }

    fn status_render(s: &Status) -> String {
        status(s)
    }
}
