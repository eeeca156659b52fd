//! The env file's variables as an import sees them, and the names a new one must not take.

use std::collections::{BTreeMap, BTreeSet};

use crate::import::vars::env_name;

/// The env file's variables: those it has (a secret already there under that name and value
/// is reused), those reserved for values the user fills in, and those this import adds.
///
/// A new variable is never given a name something already means: the env file's variables
/// come first in `${NAME}`'s lookup, before the daemon's environment, so one named like a
/// variable a server of gateway.yaml (or another imported server) takes from the environment
/// would silently hand that server this secret instead. `taken` holds those names.
#[derive(Default)]
pub struct Stash {
    existing: BTreeMap<String, String>,
    reserved: BTreeSet<String>,
    taken: BTreeSet<String>,
    /// Added by this import, in order.
    pub added: Vec<(String, String)>,
}

impl Stash {
    /// `existing`: the env file's variables; `taken`: names referenced or set elsewhere (see
    /// [`Stash`]), which a new variable does not get.
    pub fn new(existing: BTreeMap<String, String>, taken: BTreeSet<String>) -> Self {
        Stash {
            existing,
            taken,
            ..Stash::default()
        }
    }

    /// Keeps `name` for a value the user fills in (not given to a secret).
    pub fn reserve(&mut self, name: &str) {
        self.reserved.insert(name.to_owned());
    }

    /// Whether the env file sets `name` already.
    pub fn has(&self, name: &str) -> bool {
        self.existing.contains_key(name)
    }

    /// The variable holding `value`: `wanted` (or `wanted_2`, …) — the same one again for the
    /// same value.
    pub fn put(&mut self, wanted: &str, value: &str) -> String {
        let base = env_name(wanted);
        for n in 1.. {
            let name = match n {
                1 => base.clone(),
                n => format!("{base}_{n}"),
            };
            let current = self
                .existing
                .get(&name)
                .or_else(|| self.added.iter().find(|(k, _)| *k == name).map(|(_, v)| v));
            match current {
                Some(held) if held == value => return name,
                Some(_) => continue,
                None if self.reserved.contains(&name) || self.taken.contains(&name) => continue,
                None => {
                    self.added.push((name.clone(), value.to_owned()));
                    return name;
                }
            }
        }
        unreachable!("some name is free")
    }
}

/// The names of the `${NAME}` and `${NAME:-…}` references in `text`.
pub fn referenced(text: &str) -> impl Iterator<Item = &str> {
    text.split("${").skip(1).filter_map(|after| {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        (end > 0).then(|| &after[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_reserved_and_taken_ones_avoided() {
        let taken = referenced("x: ${B_TOKEN} ${C_KEY:-d} $${D} ${}").map(str::to_owned);
        let mut stash = Stash::new(
            BTreeMap::from([("A_TOKEN".to_string(), "old".to_string())]),
            taken.collect(),
        );
        stash.reserve("A_KEY");
        assert_eq!(stash.put("B_TOKEN", "b"), "B_TOKEN_2");
        assert_eq!(stash.put("C_KEY", "c"), "C_KEY_2");
        assert_eq!(stash.put("D", "d"), "D_2");
        assert_eq!(stash.put("A_TOKEN", "new"), "A_TOKEN_2");
        assert_eq!(stash.put("A_TOKEN", "old"), "A_TOKEN");
        assert_eq!(stash.put("A_TOKEN", "new"), "A_TOKEN_2");
        assert_eq!(stash.put("a key", "x"), "A_KEY_2");
    }
}
