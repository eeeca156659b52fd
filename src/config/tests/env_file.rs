//! `env_file:`: the dotenv format read strictly, the file's modes, where its variables come in
//! `${VAR}`'s order of lookup, and its values kept out of every message.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{SECRET, env};
use crate::config::{
    ConfigErrors, EnvFileError, MAX_ENV_FILE, env_file_line, named_env_files, parse,
    parse_env_file, read_env_file,
};

fn vars(text: &str) -> Vec<(String, String)> {
    parse_env_file(text)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .vars
        .into_iter()
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

fn line_error(text: &str) -> EnvFileError {
    parse_env_file(text).unwrap_err()
}

#[test]
fn reads_the_dotenv_core() {
    let text = "# secrets\n\nA=1\nexport B = two words  \nC='single # kept $X \\n'\n\
                D=\"x\\ny\\t\\\"q\\\" \\$HOME \\\\ \\w\" # a comment\nE=\nF=a#b # c\n\
                G=\"multi\nline\"\r\nH=crlf\r\n  I=indented\n";
    assert_eq!(
        vars(text),
        pairs(&[
            ("A", "1"),
            ("B", "two words"),
            ("C", "single # kept $X \\n"),
            ("D", "x\ny\t\"q\" $HOME \\ \\w"),
            ("E", ""),
            ("F", "a#b"),
            ("G", "multi\nline"),
            ("H", "crlf"),
            ("I", "indented"),
        ])
    );
    assert_eq!(vars("\u{feff}A=1"), pairs(&[("A", "1")]));
    assert_eq!(vars("export=1\n"), pairs(&[("export", "1")]));
}

/// dotenv's rule: an unquoted `#` starts a comment only after a blank, so a value may start
/// with one (`KEY=#x`), and `KEY= # note` is empty.
#[test]
fn a_hash_starts_a_comment_only_after_a_blank() {
    assert_eq!(
        vars("A=#x\nB= #x\nC=a#b\nD=a #b\nE=a\t#b\nF=#\n"),
        pairs(&[
            ("A", "#x"),
            ("B", ""),
            ("C", "a#b"),
            ("D", "a"),
            ("E", "a"),
            ("F", "#")
        ])
    );
}

#[test]
fn malformed_lines_are_errors_at_their_line_without_their_text() {
    let cases = [
        ("A=1\nhunter2-secret\n", 2, "expected `KEY=value`"),
        ("A=1\n\nsecret value=1\n", 3, "expected `KEY=value`"),
        // The key may be a pasted secret: not shown either.
        ("1secretkey=x\n", 1, "not a variable name"),
        ("A=\"secret\n", 1, "the value of `A` has no closing \""),
        (
            "A='secret' trailing\n",
            1,
            "unexpected text after the quoted value of `A`",
        ),
        (
            "A=1\nB=2\nA=secret\n",
            3,
            "`A` is set twice (first on line 1)",
        ),
        (
            "X=\"a\nb\"\nY=\"c\\0\"\n=secret\n",
            4,
            "expected `KEY=value`",
        ),
    ];
    for (text, line, message) in cases {
        let error = line_error(text);
        assert_eq!(error.line, line, "{text:?}: {error:?}");
        assert!(error.message.contains(message), "{text:?}: {error:?}");
        assert!(!error.message.contains("secret"), "{error:?}");
    }
}

#[test]
fn written_lines_read_back_to_their_values() {
    let values = [
        "",
        "plain",
        "with \"quotes\" and 'single'",
        "back\\slash and $dollar ${VAR}",
        "two\nlines\r\nand\ttab",
        "# not a comment",
        " spaced ",
        "ünïcödé",
    ];
    for value in values {
        let line = env_file_line("KEY", value);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        assert_eq!(vars(&line), pairs(&[("KEY", value)]), "{line:?}");
    }
}

/// A config file and an env file in a temp dir.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self, name: &str, text: &str) -> PathBuf {
        self.file(name, text, 0o600)
    }

    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn parse(&self, yaml: &str) -> Result<crate::config::Config, ConfigErrors> {
        parse(yaml, &self.path("gateway.yaml"), &env)
    }
}

#[test]
fn only_a_private_file_of_the_user_is_read() {
    let files = Files::new();
    let private = files.secret("ok.env", "A=1\n");
    assert_eq!(read_env_file(&private).unwrap().vars["A"], "1");

    for mode in [0o640, 0o604, 0o620, 0o602, 0o610] {
        let open = files.file("open.env", "A=1\n", mode);
        let error = read_env_file(&open).unwrap_err();
        assert_eq!(error.line, 0);
        assert!(
            error.message.contains(&format!("mode is {mode:04o}"))
                && error.message.contains("chmod 600"),
            "{error:?}"
        );
    }

    // A symlink is followed, and the file it leads to is what is checked.
    let link = files.path("link.env");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    assert_eq!(read_env_file(&link).unwrap().vars["A"], "1");
    let open = files.file("open2.env", "A=1\n", 0o644);
    let open_link = files.path("open-link.env");
    std::os::unix::fs::symlink(&open, &open_link).unwrap();
    assert!(
        read_env_file(&open_link)
            .unwrap_err()
            .message
            .contains("mode is 0644")
    );

    let big = "A=".to_string() + &"x".repeat(MAX_ENV_FILE as usize);
    let big = files.secret("big.env", &big);
    assert!(
        read_env_file(&big)
            .unwrap_err()
            .message
            .contains("larger than 1024 KiB")
    );

    let missing = read_env_file(&files.path("missing.env")).unwrap_err();
    assert!(
        missing.message.starts_with("cannot read the env file:"),
        "{missing:?}"
    );
    let dir = read_env_file(files.dir.path()).unwrap_err();
    assert!(dir.message.contains("not a regular file"), "{dir:?}");
}

/// A FIFO (or any special file) named as the env file is refused at once: opening one for
/// reading would wait for a writer, and the daemon's reload with it.
#[test]
fn a_fifo_is_refused_without_blocking() {
    let files = Files::new();
    let fifo = files.path("fifo.env");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(read_env_file(&fifo)).unwrap());
    let error = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("reading a FIFO must not block")
        .unwrap_err();
    assert!(error.message.contains("not a regular file"), "{error:?}");
}

#[test]
fn a_servers_file_wins_over_the_global_one_which_wins_over_the_environment() {
    let files = Files::new();
    files.secret(
        "global.env",
        "GITHUB_TOKEN=from-global\nSHARED=global\nONLY_GLOBAL=g\n",
    );
    std::fs::create_dir(files.path("sub")).unwrap();
    files.secret("sub/a.env", "SHARED=server-a\n");
    let yaml = "env_file: global.env\nservers:\n  a:\n    command: x\n    env_file: ./sub/a.env\n    \
                env: {T: \"${GITHUB_TOKEN}\", S: \"${SHARED}\", G: \"${ONLY_GLOBAL}\", D: \"${DATA}\"}\n  \
                b:\n    command: x\n    args: [\"${SHARED}\"]\n";
    let config = files.parse(yaml).unwrap();
    let a = &config.servers["a"].env;
    assert_eq!(a["T"], "from-global", "the file is over the environment");
    assert_eq!(
        a["S"], "server-a",
        "the server's file is over the global one"
    );
    assert_eq!(a["G"], "g");
    assert_eq!(
        a["D"], "/srv/data",
        "what no file sets comes from the environment"
    );
    assert_eq!(
        config.servers["b"].args,
        ["global"],
        "a server's file is its own"
    );
    assert_eq!(config.env_file, Some(files.path("global.env")));
    assert_eq!(
        config.env_files,
        [files.path("global.env"), files.path("sub/a.env")]
    );
}

#[test]
fn the_global_file_serves_http_tokens_and_remote_servers_too() {
    let files = Files::new();
    files.secret("mcpgw.env", "TOK=t0k3n-from-file\nKEY=k\n");
    let yaml = "env_file: mcpgw.env\nhttp:\n  listen: 127.0.0.1:1\n  tokens: [{token: \"${TOK}\"}]\n\
                servers:\n  r:\n    url: https://example.com/mcp\n    headers: {X-Key: \"${KEY}\"}\n";
    let config = files.parse(yaml).unwrap();
    assert_eq!(config.http.unwrap().tokens[0].token, "t0k3n-from-file");
    assert_eq!(config.servers["r"].headers["X-Key"], "k");
}

#[test]
fn a_file_that_cannot_be_used_is_an_error_at_its_key() {
    let files = Files::new();
    files.file("open.env", "A=hunter2\n", 0o644);
    let yaml = "env_file: missing.env\nservers:\n  a:\n    command: x\n    env_file: open.env\n";
    let errors = files.parse(yaml).unwrap_err().to_string();
    let config = files.path("gateway.yaml").display().to_string();
    let missing = files.path("missing.env").display().to_string();
    let open = files.path("open.env").display().to_string();
    assert!(
        errors.starts_with(&format!(
            "{config}:1:11: `env_file`: {missing}: cannot read the env file:"
        )),
        "{errors}"
    );
    assert!(
        errors.contains(&format!(
            "{config}:5:15: `env_file` in server `a`: {open}: the env file's mode is 0644"
        )),
        "{errors}"
    );
    assert!(!errors.contains("hunter2"), "{errors}");

    let errors = files
        .parse("env_file: [a]\nservers: {}\n")
        .unwrap_err()
        .to_string();
    assert!(errors.contains("`env_file` must be a string"), "{errors}");
    let errors = files
        .parse("env_file: \"\"\nservers: {}\n")
        .unwrap_err()
        .to_string();
    assert!(errors.contains("`env_file` must not be empty"), "{errors}");
}

#[test]
fn a_malformed_line_is_an_error_at_the_files_line() {
    let files = Files::new();
    files.secret("bad.env", "A=1\n\n'hunter2'\n");
    let errors = files
        .parse("servers:\n  a:\n    command: x\n    env_file: bad.env\n")
        .unwrap_err();
    let shown = errors.to_string();
    let bad = files.path("bad.env").display().to_string();
    let config = files.path("gateway.yaml").display().to_string();
    assert_eq!(
        shown,
        format!(
            "{bad}:3:1: expected `KEY=value` (a key of letters, digits and `_`, then `=`) (in the env file named at {config}:4:15)"
        )
    );
}

#[test]
fn values_stay_out_of_debug_and_warnings() {
    let files = Files::new();
    files.secret("mcpgw.env", &format!("TOKEN={SECRET}\n"));
    let yaml = "env_file: mcpgw.env\nservers:\n  a:\n    command: x\n    env: {T: \"${TOKEN}\", U: \"${UNSET_ONE}\"}\n";
    let config = files.parse(yaml).unwrap();
    assert_eq!(config.servers["a"].env["T"], SECRET);
    let shown = format!("{config:?}{:?}", config.warnings);
    assert!(!shown.contains(SECRET), "{shown}");
    let file = read_env_file(&files.path("mcpgw.env")).unwrap();
    assert!(!format!("{file:?}").contains(SECRET));
    assert!(format!("{file:?}").contains("TOKEN"));
}

#[test]
fn home_relative_paths_use_home() {
    let files = Files::new();
    files.secret("home.env", "A=from-home\n");
    let home = files.dir.path().to_path_buf();
    let lookup = move |name: &str| (name == "HOME").then(|| home.display().to_string());
    let yaml = "servers:\n  a: {command: x, env_file: ~/home.env, args: [\"${A}\"]}\n";
    let config = parse(yaml, Path::new("/nowhere/gateway.yaml"), &lookup).unwrap();
    assert_eq!(config.servers["a"].args, ["from-home"]);
}

/// What the watch follows: every env file the text names, however broken the rest is.
#[test]
fn the_env_files_a_config_names_even_when_it_does_not_load() {
    let yaml = "env_file: g.env\nidle_timeuot: 5\nservers:\n  a:\n    env_file: ~/a.env\n  \
                b:\n    command: x\n  c:\n    env_file: ../c.env\n";
    let home = |name: &str| (name == "HOME").then(|| "/home/u".to_string());
    assert_eq!(
        named_env_files(yaml, Path::new("/etc/mcpgw/gateway.yaml"), &home),
        [
            PathBuf::from("/etc/mcpgw/g.env"),
            PathBuf::from("/home/u/a.env"),
            PathBuf::from("/etc/mcpgw/../c.env"),
        ]
    );
    assert!(named_env_files("[not: yaml", Path::new("/g.yaml"), &home).is_empty());
}
