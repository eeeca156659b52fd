//! Moving what is secret in a value (the rule is in `mod.rs`) into the stash, `${VAR}` in its
//! place. Only literal text moves: a value is cut into literal pieces and `${…}` references
//! ([`pieces`]), and the references stay as written between whatever moved.

use super::stash::Stash;
use super::{looks_like_token, prefixed, secret_name, url};

/// Moves one server's secrets: names their variables after the server, counts them.
pub struct Mover<'s> {
    server: &'s str,
    stash: &'s mut Stash,
    /// How many values moved (some to variables the env file had already).
    pub moved: usize,
}

impl<'s> Mover<'s> {
    pub fn new(server: &'s str, stash: &'s mut Stash) -> Self {
        Mover {
            server,
            stash,
            moved: 0,
        }
    }

    /// `value` moved to a variable named for `what` (`<SERVER>_<WHAT>`): its `${VAR}`.
    fn take(&mut self, what: &str, value: &str) -> String {
        let var = self.stash.put(&prefixed(self.server, what), value);
        self.moved += 1;
        format!("${{{var}}}")
    }

    /// A value by its name (an `env` variable's): all of it when the name says secret, or
    /// when it is one whatever its name (`always`: it came from an env file); else what
    /// [`Mover::scan`] finds in it.
    pub fn named(&mut self, name: &str, value: &str, always: bool) -> String {
        match always || secret_name(name) {
            true => self.secret(name, value),
            false => self.scan(name, value),
        }
    }

    /// `value`, a secret as a whole: each of its literal pieces moves (punctuation alone
    /// between two references, `${A}:${B}`, is no secret and stays).
    pub fn secret(&mut self, what: &str, value: &str) -> String {
        self.each_literal(value, |mover, piece| {
            match piece.chars().any(char::is_alphanumeric) {
                true => mover.take(what, piece),
                false => piece.to_owned(),
            }
        })
    }

    /// A credential (a secret header's value): as [`Mover::secret`], its scheme (`Bearer`,
    /// `Basic`, `Token`) kept readable.
    pub fn credential(&mut self, what: &str, value: &str) -> String {
        match value.split_once(' ') {
            Some((scheme, rest))
                if ["bearer", "basic", "token"].contains(&scheme.to_ascii_lowercase().as_str())
                    && !rest.trim().is_empty() =>
            {
                format!("{scheme} {}", self.secret(what, rest))
            }
            _ => self.secret(what, value),
        }
    }

    /// A value whose name says nothing: each of its blank-separated words is looked at
    /// ([`Mover::word`]), the blanks kept. A `${…}` with a blank in its default is one word.
    pub fn scan(&mut self, what: &str, value: &str) -> String {
        let masked = mask(value);
        let mut out = String::with_capacity(value.len());
        let mut start = 0;
        for (i, byte) in masked.bytes().enumerate() {
            if byte.is_ascii_whitespace() {
                out.push_str(&self.word(what, &value[start..i], true));
                out.push(byte as char);
                start = i + 1;
            }
        }
        out.push_str(&self.word(what, &value[start..], true));
        out
    }

    /// One word: a URL's secrets (`url.rs`); the value of `NAME=value` or `--NAME=value` by
    /// its name (once: the value is not looked at for another `=`); else each literal piece
    /// that looks like a token.
    fn word(&mut self, what: &str, word: &str, assignments: bool) -> String {
        if word.is_empty() {
            return String::new();
        }
        if let Some(done) = url::secrets(word, self) {
            return done;
        }
        if assignments && let Some(eq) = assignment(word) {
            let (left, value) = (&word[..eq], &word[eq + 1..]);
            let name = left.trim_start_matches('-');
            let value = match secret_name(name) {
                true => self.secret(name, value),
                false => self.word(name, value, false),
            };
            return format!("{left}={value}");
        }
        self.tokens(what, word)
    }

    /// `text` with each token in its literal pieces moved: each run of the characters tokens
    /// are made of (letters, digits, `-_.=+`; dashes it starts with left out) that looks like
    /// one, so that a token in quotes, in a JSON value or after a `:` is found too.
    pub fn tokens(&mut self, what: &str, text: &str) -> String {
        self.each_literal(text, |mover, piece| {
            let mut out = String::with_capacity(piece.len());
            for (is_run, part) in runs(piece) {
                let token = part.trim_start_matches('-');
                match is_run && looks_like_token(token) {
                    true => {
                        out.push_str(&part[..part.len() - token.len()]);
                        out.push_str(&mover.take(what, token));
                    }
                    false => out.push_str(part),
                }
            }
            out
        })
    }

    /// `value` with each non-empty literal piece replaced by what `f` makes of it.
    fn each_literal(
        &mut self,
        value: &str,
        mut f: impl FnMut(&mut Self, &str) -> String,
    ) -> String {
        let mut out = String::with_capacity(value.len());
        for (reference, piece) in pieces(value) {
            match reference || piece.is_empty() {
                true => out.push_str(piece),
                false => out.push_str(&f(self, piece)),
            }
        }
        out
    }
}

/// Where the `=` of `NAME=value` (or `--NAME=value`) is: a name of letters, digits, `_`, `-`
/// and `.` starting with a letter or `_` (after the dashes) that is no token itself, and a
/// value that is more than `=` (a base64 token ends in `=` padding: it is a token, not an
/// assignment).
fn assignment(word: &str) -> Option<usize> {
    let eq = word.find('=')?;
    let name = word[..eq].trim_start_matches('-');
    let value = &word[eq + 1..];
    let is_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    (is_name && !looks_like_token(name) && !value.trim_start_matches('=').is_empty()).then_some(eq)
}

/// `piece` cut into runs of token characters (`true`) and of others (`false`), in order.
fn runs(piece: &str) -> Vec<(bool, &str)> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_.=+".contains(c);
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = piece.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let kind = is_token_char(c);
        if chars
            .peek()
            .is_none_or(|&(_, next)| is_token_char(next) != kind)
        {
            let end = i + c.len_utf8();
            out.push((kind, &piece[start..end]));
            start = end;
        }
    }
    out
}

/// `value` cut into literal pieces (`false`) and `${…}` references (`true`), in order; an
/// unterminated `${` is literal text.
pub fn pieces(value: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        let Some(len) = rest[at..].find('}') else {
            break;
        };
        out.push((false, &rest[..at]));
        out.push((true, &rest[at..at + len + 1]));
        rest = &rest[at + len + 1..];
    }
    out.push((false, rest));
    out
}

/// `value` with the bytes of each `${…}` reference replaced by `x`: the same offsets, so that
/// delimiters (blanks, a URL's `/`, `@`, `?`) are found outside references only, and the
/// original cut where they are.
pub fn mask(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (reference, piece) in pieces(value) {
        match reference {
            true => out.extend(std::iter::repeat_n('x', piece.len())),
            false => out.push_str(piece),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_masks_and_assignments() {
        assert_eq!(
            pieces("a${B}c${D:-e f}${"),
            [
                (false, "a"),
                (true, "${B}"),
                (false, "c"),
                (true, "${D:-e f}"),
                (false, "${")
            ]
        );
        assert_eq!(mask("u:${P W}@h"), "u:xxxxxx@h");
        assert_eq!(assignment("API_KEY=x"), Some(7));
        assert_eq!(assignment("--token=x"), Some(7));
        assert_eq!(assignment("-Dpass.word=x"), Some(11));
        assert_eq!(assignment("--token="), None);
        assert_eq!(assignment("aGVsbG8gd29ybGQgaGVsbG8gd29y=="), None);
        assert_eq!(assignment("a/b=c"), None);
    }

    #[test]
    fn words_and_blanks() {
        let mut stash = Stash::default();
        let mut mover = Mover::new("s", &mut stash);
        let token = "a1b2c3d4e5f6g7h8i9j0k1l2m3";
        assert_eq!(
            mover.scan("x", &format!("run  {token}\t${{A:-b c}} k={token}")),
            "run  ${S_X}\t${A:-b c} k=${S_K}"
        );
        assert_eq!(mover.secret("p", "${A}:${B}"), "${A}:${B}");
        assert_eq!(mover.credential("h", "Basic ${A}"), "Basic ${A}");
        assert_eq!(mover.moved, 2);
        // A token inside other text: quoted, in JSON, after a `:` or dashes.
        assert_eq!(
            mover.scan(
                "j",
                &format!("{{\"apiKey\":\"{token}\"}} key:{token} --{token}")
            ),
            "{\"apiKey\":\"${S_J}\"} key:${S_J} --${S_J}"
        );
        assert_eq!(
            mover.scan("j", "/home/u/some-dir/x_1.txt"),
            "/home/u/some-dir/x_1.txt"
        );
    }
}
