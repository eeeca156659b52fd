//! Running under a service manager: the shipped systemd units and launchd plist are well-formed
//! and name binaries, flags and verbs that exist; readiness and stopping are announced with
//! sd_notify; a socket passed by systemd (socket activation) is served and left in place.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[test]
fn systemd_units_are_well_formed_and_run_our_binaries() {
    let service = unit_entries(&repo_file("systemd/mcpgwd.service"));
    assert_eq!(value(&service, "Service", "Type"), Some("notify"));
    assert_eq!(value(&service, "Service", "KillMode"), Some("mixed"));
    assert_eq!(
        value(&service, "Install", "WantedBy"),
        Some("default.target")
    );
    let exec: Vec<&(String, String, String)> = service
        .iter()
        .filter(|(_, key, _)| key.starts_with("Exec"))
        .collect();
    let keys: Vec<&str> = exec.iter().map(|(_, key, _)| key.as_str()).collect();
    assert!(
        keys.contains(&"ExecStart") && keys.contains(&"ExecReload"),
        "{keys:?}"
    );
    for (_, key, line) in exec {
        // Strip systemd's command prefixes (`-` ignore failure, `@` argv0, `+!:` privileges).
        let words: Vec<String> = line
            .trim_start_matches(['-', '@', '+', '!', ':'])
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(
            words[0].starts_with("%h/.cargo/bin/"),
            "{key}= must run the binary where `cargo install` puts it: {line}"
        );
        check_command(&words, &format!("mcpgwd.service {key}="));
    }
    let stop_timeout: u64 = value(&service, "Service", "TimeoutStopSec")
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop_timeout > 11,
        "TimeoutStopSec must exceed mcpgwd's own stop sequence"
    );

    let socket = unit_entries(&repo_file("systemd/mcpgwd.socket"));
    // %t is $XDG_RUNTIME_DIR: the socket must be the one every binary uses by default.
    assert_eq!(
        value(&socket, "Socket", "ListenStream"),
        Some("%t/mcpgw/mcpgw.sock")
    );
    assert_eq!(value(&socket, "Socket", "SocketMode"), Some("0600"));
    assert_eq!(value(&socket, "Socket", "DirectoryMode"), Some("0700"));
    assert_ne!(value(&socket, "Socket", "Accept"), Some("yes"));
    assert_eq!(
        value(&socket, "Install", "WantedBy"),
        Some("sockets.target")
    );
    let env = Env::new();
    let out = env
        .command(&bin("mcpgwctl"))
        .arg("status")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&env.path("runtime/mcpgw/mcpgw.sock").display().to_string()),
        "mcpgwctl's default socket is not $XDG_RUNTIME_DIR/mcpgw/mcpgw.sock: {stderr}"
    );

    systemd_analyze_verify(&env);
}

/// `systemd-analyze verify --user` on copies of the units, with a HOME whose ~/.cargo/bin holds
/// the real binaries (it checks that ExecStart=/ExecReload= are executable). It runs offline,
/// without a systemd instance; where systemd-analyze is not installed this part is skipped.
fn systemd_analyze_verify(env: &Env) {
    let Some(analyze) = on_path("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: unit files checked by parsing only");
        return;
    };
    let home = env.path("home");
    let cargo_bin = home.join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).unwrap();
    for name in ["mcpgwd", "mcpgwctl"] {
        std::os::unix::fs::symlink(bin(name), cargo_bin.join(name)).unwrap();
    }
    let units = env.path("units");
    std::fs::create_dir_all(&units).unwrap();
    let mut args = vec!["verify".into(), "--user".into()];
    for name in ["mcpgwd.service", "mcpgwd.socket"] {
        std::fs::copy(repo_file(&format!("systemd/{name}")), units.join(name)).unwrap();
        args.push(units.join(name).into_os_string());
    }
    let out = env.command(&analyze).args(&args).output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 even on unknown keys and bad values; it reports them as lines naming the
    // unit. Lines about other units (e.g. the host's) are not ours to judge.
    let ours: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("mcpgwd"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify ({}):\n{output}",
        out.status
    );
}

#[test]
fn launchd_plist_is_well_formed_and_runs_our_binary() {
    let path = repo_file("launchd/dev.mcpgw.mcpgwd.plist");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "not a valid plist: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plist: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plist["Label"], "dev.mcpgw.mcpgwd",
        "the Label is the file's name"
    );
    assert_eq!(plist["RunAtLoad"], true);
    assert_eq!(plist["KeepAlive"], json!({"SuccessfulExit": false}));
    assert!(
        ["Standard", "Background"].contains(&plist["ProcessType"].as_str().unwrap_or_default()),
        "{}",
        plist["ProcessType"]
    );
    let words: Vec<String> = plist["ProgramArguments"]
        .as_array()
        .expect("ProgramArguments")
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    assert_eq!(words[0], "__HOME__/.cargo/bin/mcpgwd");
    check_command(&words, "the plist's ProgramArguments");
    let log = plist["StandardErrorPath"].as_str().unwrap_or_default();
    assert!(log.starts_with("__HOME__/Library/Logs/"), "{log}");
    // launchd expands nothing: every path must be absolute once __HOME__ is replaced.
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text.split("<plist").nth(1).unwrap();
    let no_comments: String = body
        .split("<!--")
        .map(|part| part.split_once("-->").map_or(part, |(_, rest)| rest))
        .collect();
    for unexpanded in ["~/", "$HOME", "${"] {
        assert!(
            !no_comments.contains(unexpanded),
            "launchd does not expand {unexpanded}"
        );
    }
}

#[tokio::test]
async fn notifies_ready_once_listening_and_stopping_on_sigterm() {
    let env = Env::new();
    one_server(&env);
    let path = env.path("notify.sock");
    let notify = UnixDatagram::bind(&path).unwrap();
    let mut daemon = spawn_daemon(&env, "notify", |cmd| {
        cmd.env("NOTIFY_SOCKET", &path);
    });
    let ready = recv_state(&notify, &mut daemon).await;
    // READY=1 must mean "clients can connect now": Type=notify starts dependents on it.
    assert!(
        UnixStream::connect(env.socket()).is_ok(),
        "READY=1 came before the socket accepted connections"
    );
    assert_eq!(ready, format!("READY=1\nMAINPID={}", daemon.pid()));
    let client = env.client(None).await;
    assert!(
        client
            .tool_names()
            .await
            .contains(&"alpha_echo".to_string())
    );
    client.close().await;
    assert!(daemon.stop().await.success(), "{}", daemon.log());
    let mut buf = [0u8; 4096];
    let n = notify
        .recv(&mut buf)
        .expect("STOPPING=1 was sent before mcpgwd exited");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "STOPPING=1");
}

#[tokio::test]
async fn notifies_an_abstract_notify_socket() {
    use std::os::linux::net::SocketAddrExt;
    let env = Env::new();
    one_server(&env);
    let name = format!("mcpgw-it-notify-{}", env.marker);
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = UnixDatagram::bind_addr(&addr).unwrap();
    let mut daemon = spawn_daemon(&env, "notify-abstract", |cmd| {
        cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    });
    let ready = recv_state(&notify, &mut daemon).await;
    assert_eq!(ready, format!("READY=1\nMAINPID={}", daemon.pid()));
}

#[tokio::test]
async fn serves_a_socket_passed_by_systemd_and_leaves_it_in_place() {
    let env = Env::new();
    one_server(&env);
    let socket = env.socket();
    private_dir(socket.parent().unwrap());
    let listener = UnixListener::bind(&socket).unwrap();
    let socket_id = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();

    let mut daemon = spawn_activated(&env, "activated", listener.as_raw_fd());
    let client = env.client(None).await;
    assert!(
        client
            .tool_names()
            .await
            .contains(&"alpha_echo".to_string())
    );
    assert_eq!(
        client.call_text("alpha_echo", json!({"text": "hi"})).await,
        "hi"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/fd/3", daemon.pid())).ok(),
        Some(socket_id.clone()),
        "mcpgwd does not serve the socket it was passed"
    );
    let backends = env.backend_pids();
    assert!(!backends.is_empty(), "the call started a backend");
    for pid in backends {
        assert!(
            !open_files(pid).contains(&socket_id),
            "backend {pid} inherited the listening socket"
        );
    }
    client.close().await;

    assert!(daemon.stop().await.success(), "{}", daemon.log());
    // systemd owns the socket: it stays, still listening, for the next activation.
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(&socket).expect("the socket path is still there");
    assert!(meta.file_type().is_socket());
    assert!(UnixStream::connect(&socket).is_ok());
}

#[tokio::test]
async fn ignores_listen_fds_meant_for_another_process() {
    let env = Env::new();
    one_server(&env);
    // LISTEN_PID names some other process (as when inherited from a parent): mcpgwd must bind
    // its own socket as usual and leave fd 3 alone.
    let mut daemon = spawn_daemon(&env, "other-pid", |cmd| {
        cmd.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    });
    let start = Instant::now();
    while UnixStream::connect(env.socket()).is_err() {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("mcpgwd exited ({status}):\n{}", daemon.log());
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mcpgwd never listened:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(daemon.stop().await.success(), "{}", daemon.log());
    assert!(
        !env.socket().exists(),
        "mcpgwd removes a socket it bound itself"
    );
}

#[tokio::test]
async fn refuses_a_passed_socket_that_is_not_a_listening_stream() {
    let env = Env::new();
    one_server(&env);
    private_dir(env.socket().parent().unwrap());
    let datagram = UnixDatagram::bind(env.socket()).unwrap();
    let mut daemon = spawn_activated(&env, "datagram", datagram.as_raw_fd());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mcpgwd kept running:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    assert!(
        daemon.log().contains("not a listening Unix stream socket"),
        "{}",
        daemon.log()
    );
}

fn one_server(env: &Env) {
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap();
}

/// mcpgwd with this env's config and a log file, after `setup` adjusted its command.
fn spawn_daemon(env: &Env, label: &str, setup: impl FnOnce(&mut Command)) -> Daemon {
    let log = env.path(&format!("mcpgwd-{label}.log"));
    let mut cmd = env.command(&bin("mcpgwd"));
    cmd.arg("--config")
        .arg(env.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    setup(&mut cmd);
    let child = cmd.spawn().expect("spawn mcpgwd");
    Daemon { child, log }
}

/// mcpgwd started the way systemd's socket activation starts it: `fd` as fd 3, LISTEN_FDS=1
/// and LISTEN_PID set to mcpgwd's own pid. The pid is only known in the child, so a shell sets
/// it to its own pid (`$$`) and then execs mcpgwd, which keeps that pid.
fn spawn_activated(env: &Env, label: &str, fd: i32) -> Daemon {
    let log = env.path(&format!("mcpgwd-{label}.log"));
    let mut cmd = env.command(Path::new("sh"));
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
        .arg(bin("mcpgwd"))
        .arg("--config")
        .arg(env.config_path())
        .arg("--socket")
        .arg(env.socket())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "mcpgwd.socket")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: dup2 and fcntl are async-signal-safe, and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                // Already in place: only clear the close-on-exec flag std sets on every fd.
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                // dup2 leaves the new fd without close-on-exec.
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn sh → mcpgwd");
    Daemon { child, log }
}

/// The next sd_notify datagram, failing early with the log if mcpgwd exits first.
async fn recv_state(socket: &UnixDatagram, daemon: &mut Daemon) -> String {
    socket.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => return String::from_utf8(buf[..n].to_vec()).unwrap(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("receiving the notification: {e}"),
        }
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!(
                "mcpgwd exited ({status}) without notifying:\n{}",
                daemon.log()
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no notification:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What each of a process's fds refers to (`socket:[inode]`, a path, …).
fn open_files(pid: u32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .collect()
}

/// (section, key, value) of every assignment in a systemd unit file, in order.
fn unit_entries(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = String::new();
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        assert!(!line.ends_with('\\'), "{at}: keep each setting on one line");
        assert!(!section.is_empty(), "{at}: a setting before any [Section]");
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{at}: not KEY=VALUE: {line}"));
        entries.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    entries
}

/// The last value of `key` in `section` (a later assignment overrides an earlier one).
fn value<'a>(entries: &'a [(String, String, String)], section: &str, key: &str) -> Option<&'a str> {
    entries
        .iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
}

/// Checks a command line a service file runs: the program is `mcpgwd` or `mcpgwctl`, every
/// `--flag` appears in that binary's `--help`, and mcpgwctl's verb is one of its commands.
fn check_command(words: &[String], origin: &str) {
    let program = Path::new(&words[0])
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        program == "mcpgwd" || program == "mcpgwctl",
        "{origin} runs {program}, not one of our binaries"
    );
    let mut help = help_of(&program, None);
    let mut verb = None;
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if let Some(flag) = word.strip_prefix("--") {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("--{flag}")),
                "{origin}: {} has no --{flag}:\n{help}",
                [program.as_str(), verb.unwrap_or_default()]
                    .join(" ")
                    .trim_end()
            );
            if !word.contains('=') && help.contains(&format!("--{flag} <")) {
                rest.next(); // its value
            }
        } else if program == "mcpgwctl" && verb.is_none() {
            assert!(
                commands_of(&help).iter().any(|c| c == word),
                "{origin}: mcpgwctl has no verb {word:?}:\n{help}"
            );
            help = help_of(&program, Some(word));
            verb = Some(word.as_str());
        } else {
            panic!("{origin}: unexpected argument {word:?} for {program}");
        }
    }
}

fn help_of(program: &str, verb: Option<&str>) -> String {
    let out = Command::new(bin(program))
        .args(verb)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands listed under clap's `Commands:` heading.
fn commands_of(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Logs fit where they go (issue 14, item 8): no colour codes when stderr is a file, no
/// timestamps of ours when it is the journal (`JOURNAL_STREAM` naming it), and by default no
/// record of every session's handshake from the MCP SDK.
#[tokio::test]
async fn logs_fit_where_they_go() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let run = |log: &std::path::Path, journal: bool| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = env.command(&bin("mcpgwd"));
        cmd.env_remove("MCPGW_LOG")
            .arg("--config")
            .arg(env.config_path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file);
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        Daemon {
            child: cmd.spawn().expect("spawn mcpgwd"),
            log: log.to_path_buf(),
        }
    };
    let plain = env.path("plain.log");
    let mut daemon = run(&plain, false);
    daemon.wait_ready(&env).await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("alpha_echo", json!({"text": "x"})).await,
        "x"
    );
    client.close().await;
    daemon.stop().await;
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(text.contains("serving"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in a file: {text:?}");
    assert!(!text.contains("Service initialized"), "{text}");
    assert!(text.starts_with("20"), "a timestamp first: {text}");

    let journal = env.path("journal.log");
    let mut daemon = run(&journal, true);
    daemon.wait_ready(&env).await;
    daemon.stop().await;
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("serving"), "{text}");
    for line in text.lines() {
        assert!(
            !line.starts_with("20"),
            "a timestamp in the journal: {line}"
        );
    }
    assert!(!text.contains('\x1b'), "{text:?}");
}
