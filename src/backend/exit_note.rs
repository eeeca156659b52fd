//! What status says about a backend process that ended abnormally: the line of its stderr that
//! looks like the error, not merely its last line.
//!
//! Runtimes write more after the error itself: Node a stack and `Node.js v20.20.2`, Rust a
//! `note: run with RUST_BACKTRACE=1` hint, Python the frames before the exception. So the
//! newest lines the process wrote ([`LINES`]) are searched, strongest sign first:
//! 1. a Rust panic (`thread 'main' panicked at src/main.rs:3:5:` and the message on the next
//!    line, joined);
//! 2. a line that starts with an exception's name (`ModuleNotFoundError: No module named 'x'`,
//!    `Error: Cannot find module 'x'`, `Error [ERR_MODULE_NOT_FOUND]: …`), the last one: a
//!    Python traceback ends with the exception that ended the program, after those it chained;
//! 3. a line that starts with `error`, `fatal` or `panic` (`error: unexpected argument`, Go's
//!    `panic: …`), the first one;
//! 4. a line that mentions an error (`ERROR`, npm's `ERR!`, `ENOENT`, `Cannot find module`,
//!    `not found`, `Permission denied`, …), the first one that is not a stack frame;
//! 5. else the last few non-empty lines, joined with ` | `.
//!
//! The note is at most [`MAX_CHARS`] characters, and URLs in it are cut to their origin as in
//! every other message ([`crate::config::redact_urls`]).

/// How many of the newest lines are searched.
pub const LINES: usize = 20;
/// The longest note, in characters (a `…` marks a cut).
const MAX_CHARS: usize = 300;
/// Lines joined when nothing looks like an error.
const FALLBACK_LINES: usize = 3;

/// The note for stderr `lines` (oldest first), or `None` when they hold nothing but blanks.
pub fn pick(lines: &[String]) -> Option<String> {
    let lines = &lines[lines.len().saturating_sub(LINES)..];
    let note = panic(lines)
        .or_else(|| lines.iter().rev().find(|l| is_exception(l)).cloned())
        .or_else(|| lines.iter().find(|l| starts_with_error(l)).cloned())
        .or_else(|| lines.iter().find(|l| mentions_error(l)).cloned())
        .or_else(|| fallback(lines))?;
    Some(bounded(&crate::config::redact_urls(note.trim())))
}

/// A Rust panic: since Rust 1.73 the location ends its line and the message is the next;
/// before, both were on one line.
fn panic(lines: &[String]) -> Option<String> {
    let at = lines.iter().rposition(|l| l.contains(" panicked at "))?;
    let line = lines[at].trim();
    match lines.get(at + 1) {
        Some(message) if line.ends_with(':') && !message.trim().is_empty() => {
            Some(format!("{line} {}", message.trim()))
        }
        _ => Some(line.to_string()),
    }
}

/// `Name: message`, `Name [CODE]: message` or a bare `Name` at the start of an unindented line,
/// where `Name` (dotted, as `json.decoder.JSONDecodeError`) ends in `Error`, `Exception`,
/// `Exit` or `Interrupt`.
fn is_exception(line: &str) -> bool {
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(name_len);
    let named = ["Error", "Exception", "Exit", "Interrupt"]
        .iter()
        .any(|end| name.ends_with(end))
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if !named {
        return false;
    }
    let rest = match rest.strip_prefix(" [") {
        Some(code) => code.split_once("]").map_or("", |(_, after)| after),
        None => rest,
    };
    rest.is_empty() || rest.starts_with(':')
}

/// `error: …`, `Error: …`, `ERROR …`, `fatal: …`, `fatal error: …`, `panic: …`.
fn starts_with_error(line: &str) -> bool {
    let line = line.trim_start().to_ascii_lowercase();
    ["error", "fatal", "panic"].iter().any(|word| {
        line.strip_prefix(word)
            .is_some_and(|rest| rest.starts_with([':', ' ', '[']))
    })
}

/// A line that mentions an error, unless it is a stack frame (`    at f (file.js:1:2)`,
/// `  File "x.py", line 3`) or the source line Node quotes above its caret.
fn mentions_error(line: &str) -> bool {
    let trimmed = line.trim_start();
    if trimmed.starts_with("at ") || trimmed.starts_with("File \"") || trimmed.starts_with("throw ")
    {
        return false;
    }
    let lower = trimmed.to_ascii_lowercase();
    [
        "error",
        "err!",
        "exception",
        "fatal",
        "panic",
        "cannot find",
        "not found",
        "no such file",
        "permission denied",
    ]
    .iter()
    .any(|word| lower.contains(word))
        || ["ENOENT", "EACCES", "EADDRINUSE", "ECONNREFUSED", "EPERM"]
            .iter()
            .any(|code| trimmed.contains(code))
}

fn fallback(lines: &[String]) -> Option<String> {
    let mut last: Vec<&str> = lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .take(FALLBACK_LINES)
        .collect();
    last.reverse();
    (!last.is_empty()).then(|| last.join(" | "))
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(stderr: &str) -> Option<String> {
        let lines: Vec<String> = stderr.lines().map(String::from).collect();
        pick(&lines)
    }

    #[test]
    fn node_uncaught_exception() {
        let stderr = "\
/home/u/srv/index.js:3
  throw new Error('config file missing: /etc/srv.json');
  ^

Error: config file missing: /etc/srv.json
    at Object.<anonymous> (/home/u/srv/index.js:3:9)
    at Module._compile (node:internal/modules/cjs/loader:1554:14)
    at Object..js (node:internal/modules/cjs/loader:1706:10)
    at Module.load (node:internal/modules/cjs/loader:1289:32)
    at Function._load (node:internal/modules/cjs/loader:1108:12)
    at TracingChannel.traceSync (node:diagnostics_channel:322:14)
    at wrapModuleLoad (node:internal/modules/cjs/loader:220:24)
    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:170:5)
    at node:internal/main/run_main_module:36:49

Node.js v20.20.2";
        assert_eq!(
            note(stderr).as_deref(),
            Some("Error: config file missing: /etc/srv.json")
        );
    }

    #[test]
    fn node_missing_module() {
        let stderr = "\
node:internal/modules/cjs/loader:1228
  throw err;
  ^

Error: Cannot find module '/home/u/.npm/_npx/1/node_modules/srv/dist/index.js'
    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)
    at Module._load (node:internal/modules/cjs/loader:1051:27)
    at node:internal/main/run_main_module:28:49 {
  code: 'MODULE_NOT_FOUND',
  requireStack: []
}

Node.js v20.20.2";
        assert_eq!(
            note(stderr).as_deref(),
            Some("Error: Cannot find module '/home/u/.npm/_npx/1/node_modules/srv/dist/index.js'")
        );
        let esm = "\
node:internal/modules/esm/resolve:873
  throw new ERR_MODULE_NOT_FOUND(packageName, fileURLToPath(base), null);
        ^

Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'zod' imported from /srv/index.js
    at packageResolve (node:internal/modules/esm/resolve:873:9) {
  code: 'ERR_MODULE_NOT_FOUND'
}

Node.js v20.20.2";
        assert_eq!(
            note(esm).as_deref(),
            Some(
                "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'zod' imported from /srv/index.js"
            )
        );
    }

    #[test]
    fn python_traceback_gives_its_final_exception() {
        let stderr = "\
Traceback (most recent call last):
  File \"/home/u/srv/server.py\", line 3, in <module>
    import x
ModuleNotFoundError: No module named 'x'";
        assert_eq!(
            note(stderr).as_deref(),
            Some("ModuleNotFoundError: No module named 'x'")
        );
        let chained = "\
Traceback (most recent call last):
  File \"/srv/server.py\", line 5, in load
    return json.load(f)
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/srv/server.py\", line 9, in <module>
    config = load()
  File \"/srv/server.py\", line 7, in load
    raise RuntimeError('bad config') from None
RuntimeError: bad config";
        assert_eq!(note(chained).as_deref(), Some("RuntimeError: bad config"));
    }

    #[test]
    fn rust_panic_joins_location_and_message() {
        let stderr = "\
thread 'main' panicked at src/main.rs:3:5:
called `Result::unwrap()` on an `Err` value: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            note(stderr).as_deref(),
            Some(
                "thread 'main' panicked at src/main.rs:3:5: called `Result::unwrap()` on an \
                 `Err` value: Os { code: 2, kind: NotFound, message: \"No such file or directory\" }"
            )
        );
        let before_1_73 =
            "thread 'main' panicked at 'boom', src/main.rs:3:5\nnote: run with `RUST_BACKTRACE=1`";
        assert_eq!(
            note(before_1_73).as_deref(),
            Some("thread 'main' panicked at 'boom', src/main.rs:3:5")
        );
    }

    #[test]
    fn a_plain_error_line_among_others() {
        let stderr = "\
starting srv 1.2.0
loading /home/u/.config/srv.toml
error: unexpected argument '--prot' found

Usage: srv [OPTIONS]

For more information, try '--help'.";
        assert_eq!(
            note(stderr).as_deref(),
            Some("error: unexpected argument '--prot' found")
        );
        assert_eq!(
            note("fatal: not a git repository (or any of the parent directories): .git\n")
                .as_deref(),
            Some("fatal: not a git repository (or any of the parent directories): .git")
        );
    }

    #[test]
    fn a_line_that_mentions_an_error() {
        let stderr = "\
2026-01-05T10:00:00Z INFO srv: listening
2026-01-05T10:00:01Z WARN srv: slow disk
sh: 1: uvx: not found";
        assert_eq!(note(stderr).as_deref(), Some("sh: 1: uvx: not found"));
        assert_eq!(
            note("npm WARN exec x\nnpm ERR! code E404\nnpm ERR! 404 Not Found").as_deref(),
            Some("npm ERR! code E404")
        );
    }

    #[test]
    fn without_an_error_the_last_lines_are_joined() {
        assert_eq!(
            note("one\n\ntwo\nthree\n  \nfour\n\n").as_deref(),
            Some("two | three | four")
        );
        assert_eq!(
            note("Node.js v20.20.2").as_deref(),
            Some("Node.js v20.20.2")
        );
        assert_eq!(note(""), None);
        assert_eq!(note("\n  \n"), None);
    }

    #[test]
    fn only_the_newest_lines_are_searched() {
        let mut lines = vec!["Error: from an earlier run".to_string()];
        lines.extend((0..LINES).map(|i| format!("line {i}")));
        assert_eq!(pick(&lines).as_deref(), Some("line 17 | line 18 | line 19"));
    }

    #[test]
    fn the_note_is_bounded_and_its_urls_are_cut() {
        let long = format!("Error: {}", "é".repeat(1000));
        let shown = note(&long).unwrap();
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            note("Error: GET https://api.example.com/v1/x?token=s3cret failed").as_deref(),
            Some("Error: GET https://api.example.com/*** failed")
        );
    }

    #[test]
    fn names_that_only_look_like_exceptions_are_not() {
        for line in [
            "    raise ValueError('x')",
            "Errors: 0",
            "MyErrorHandler: ready",
            "Error",
            "KeyboardInterrupt",
            "Error [ERR_X]: y",
            "java.lang.IllegalStateException: closed",
        ]
        .iter()
        .enumerate()
        {
            let (i, line) = line;
            assert_eq!(is_exception(line), i >= 3, "{line}");
        }
    }
}
