//! `${VAR}` and `${VAR:-default}` expansion, the only substitution the format has.
//!
//! Shell semantics where they matter: `${VAR}` accepts a variable set to the empty string, and
//! `${VAR:-default}` uses the default when the variable is unset or empty. Anything else with a
//! `$` (`$VAR`, `$$`, a lone `$`) is literal text. Defaults are literal too (no nesting).

/// An expanded string, and the variables it needed but could not find.
#[derive(Debug, PartialEq)]
pub(super) struct Expansion {
    pub value: String,
    pub missing: Vec<Missing>,
}

/// A `${NAME}` without default whose variable is not set.
#[derive(Debug, PartialEq)]
pub(super) struct Missing {
    pub name: String,
    /// Byte offset of its `${` in the raw string.
    pub offset: usize,
}

/// A malformed reference; `offset` is the byte offset of its `${` in the raw string.
#[derive(Debug, PartialEq)]
pub(super) struct ExpandError {
    pub offset: usize,
    pub message: String,
}

const FORMS: &str = "expected `${NAME}` or `${NAME:-default}`";

pub(super) fn expand(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expansion, ExpandError> {
    let mut value = String::with_capacity(raw.len());
    let mut missing = Vec::new();
    let mut rest = 0;
    while let Some(found) = raw[rest..].find("${") {
        let start = rest + found;
        value.push_str(&raw[rest..start]);
        let Some(len) = raw[start..].find('}') else {
            return Err(ExpandError {
                offset: start,
                message: format!("unterminated `${{` ({FORMS})"),
            });
        };
        let reference = parse_reference(&raw[start + 2..start + len], start)?;
        match resolve(&reference, env) {
            Some(text) => value.push_str(&text),
            None => missing.push(Missing {
                name: reference.name.to_owned(),
                offset: start,
            }),
        }
        rest = start + len + 1;
    }
    value.push_str(&raw[rest..]);
    Ok(Expansion { value, missing })
}

struct Reference<'r> {
    name: &'r str,
    default: Option<&'r str>,
}

/// Parses what is between `${` and `}`.
fn parse_reference(body: &str, offset: usize) -> Result<Reference<'_>, ExpandError> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    let error = |message: String| Err(ExpandError { offset, message });
    if !super::env_file::is_env_name(name) {
        return error(format!("invalid variable reference `${{{body}}}`: {FORMS}"));
    }
    if default.is_some_and(|d| d.contains("${")) {
        return error(format!(
            "nested `${{` in the default of `${{{name}:-…}}` is not supported"
        ));
    }
    Ok(Reference { name, default })
}

fn resolve(reference: &Reference<'_>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let value = env(reference.name);
    match reference.default {
        None => value,
        Some(default) => Some(
            value
                .filter(|v| !v.is_empty())
                .unwrap_or(default.to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn value(raw: &str) -> String {
        let expansion = expand(raw, &env).unwrap();
        assert!(expansion.missing.is_empty(), "{raw}");
        expansion.value
    }

    #[test]
    fn substitutes_variables_and_defaults() {
        assert_eq!(value("a-${SET}-b"), "a-value-b");
        assert_eq!(value("${EMPTY}"), "");
        assert_eq!(value("${EMPTY:-d}"), "d");
        assert_eq!(value("${UNSET:-d e}"), "d e");
        assert_eq!(value("${SET:-d}"), "value");
        assert_eq!(value("${UNSET:-}"), "");
    }

    #[test]
    fn other_dollars_are_literal() {
        assert_eq!(value("$SET $$ $ a$"), "$SET $$ $ a$");
        assert_eq!(value("$${SET}"), "$value");
        assert_eq!(value("${SET:-a:-b}"), "value");
    }

    #[test]
    fn reports_missing_variables_with_their_offset() {
        let expansion = expand("x ${UNSET} ${SET} ${OTHER}", &env).unwrap();
        assert_eq!(expansion.value, "x  value ");
        let names: Vec<_> = expansion
            .missing
            .iter()
            .map(|m| (m.name.as_str(), m.offset))
            .collect();
        assert_eq!(names, [("UNSET", 2), ("OTHER", 18)]);
    }

    #[test]
    fn rejects_malformed_references() {
        let offset = |raw| expand(raw, &env).unwrap_err().offset;
        assert_eq!(offset("ab ${SET"), 3);
        assert_eq!(offset("${}"), 0);
        assert_eq!(offset("x${1A}"), 1);
        assert_eq!(offset("${A-b}"), 0);
        assert_eq!(offset("${A:-${B}}"), 0);
        assert!(
            expand("${SET", &env)
                .unwrap_err()
                .message
                .contains("unterminated")
        );
    }
}
