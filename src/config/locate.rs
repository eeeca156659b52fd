//! Where a node of the tree is in the source text.
//!
//! yaml_serde exposes no spans, but it stamps the position of the node being deserialized on any
//! error a visitor raises there (`Error::location()`). So to find a node we deserialize the text
//! again, walk down the node's index path skipping everything else, and fail on purpose when we
//! reach it: the error carries the parser's own line, column and byte offset for that node. This
//! costs one parse per position, and positions are only asked for when there is something to
//! report, so a valid config is parsed once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess};

/// One step down the tree, by index in document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Step {
    /// The key of the n-th entry of a mapping.
    Key(usize),
    /// The value of the n-th entry of a mapping.
    Value(usize),
    /// The n-th item of a list.
    Item(usize),
}

/// A node's address in the tree: the steps from the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct NodePath(Vec<Step>);

impl NodePath {
    pub(super) fn then(&self, step: Step) -> NodePath {
        let mut steps = self.0.clone();
        steps.push(step);
        NodePath(steps)
    }
}

/// A position in the source: byte offset, and 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub index: usize,
    pub line: usize,
    pub column: usize,
}

pub(super) struct Locator<'t> {
    text: &'t str,
    cache: RefCell<HashMap<NodePath, Option<Mark>>>,
}

impl<'t> Locator<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        Locator {
            text,
            cache: RefCell::default(),
        }
    }

    /// Where the node starts: a scalar's first character (its quote if quoted), a flow
    /// collection's bracket, a block mapping's first key, a block list's first `-`.
    pub(super) fn node(&self, path: &NodePath) -> Option<Mark> {
        if let Some(found) = self.cache.borrow().get(path) {
            return *found;
        }
        let found = probe(self.text, path);
        self.cache.borrow_mut().insert(path.clone(), found);
        found
    }

    /// Where the `nth` occurrence of `needle` is, searching the source from the node's start.
    /// Used to point inside a scalar (at a `${VAR}`); falls back to the node's start.
    pub(super) fn inside(&self, path: &NodePath, needle: &str, nth: usize) -> Option<Mark> {
        let start = self.node(path)?;
        let found = self.text.get(start.index..).and_then(|rest| {
            rest.match_indices(needle)
                .nth(nth)
                .map(|(offset, _)| start.index + offset)
        });
        Some(found.map_or(start, |index| mark_at(self.text, index)))
    }
}

/// The line and column of a byte offset, counted the way libyaml counts them.
fn mark_at(text: &str, index: usize) -> Mark {
    let before = &text[..index];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Mark {
        index,
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The message that tells our own arrival apart from a real error.
const ARRIVED: &str = "mcpgw-config: node located";

fn probe(text: &str, path: &NodePath) -> Option<Mark> {
    let error = Probe(&path.0)
        .deserialize(yaml_serde::Deserializer::from_str(text))
        .err()?;
    if !error.to_string().contains(ARRIVED) {
        return None;
    }
    let location = error.location()?;
    Some(Mark {
        index: location.index(),
        line: location.line(),
        column: location.column(),
    })
}

/// Walks down `steps`, ignoring every other node, and fails when it reaches the last one.
struct Probe<'p>(&'p [Step]);

impl Probe<'_> {
    /// Called on reaching a node: fails with the marker if it is the one we look for.
    fn arrive<E: de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(ARRIVED))
        } else {
            lost()
        }
    }
}

/// The path names a node that is not in the document.
fn lost<E: de::Error>() -> Result<(), E> {
    Err(E::custom("path does not exist"))
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.arrive()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.arrive()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.arrive()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.arrive()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.arrive()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.arrive()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.arrive()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.arrive()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.arrive()
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.arrive()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Item(n), rest)) = self.0.split_first() else {
            return self.arrive();
        };
        for _ in 0..*n {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return lost();
            }
        }
        seq.next_element_seed(Probe(rest))?;
        lost()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (n, rest, at_key) = match self.0.split_first() {
            Some((Step::Key(n), rest)) => (*n, rest, true),
            Some((Step::Value(n), rest)) => (*n, rest, false),
            _ => return self.arrive(),
        };
        // Stopping at the end matters: asking for a value past the last entry panics in yaml_serde.
        for _ in 0..n {
            if map.next_entry::<IgnoredAny, IgnoredAny>()?.is_none() {
                return lost();
            }
        }
        if at_key {
            map.next_key_seed(Probe(rest))?;
        } else if map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Probe(rest))?;
        }
        lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, steps: &[Step]) -> Option<(usize, usize)> {
        let path = steps
            .iter()
            .fold(NodePath::default(), |path, step| path.then(*step));
        Locator::new(text).node(&path).map(|m| (m.line, m.column))
    }

    #[test]
    fn finds_keys_values_items_and_collections() {
        let text = "a: 1\nb:\n  - x\n  - {c: [y, z]}\nd: |\n  text\n";
        assert_eq!(at(text, &[Step::Key(0)]), Some((1, 1)));
        assert_eq!(at(text, &[Step::Value(0)]), Some((1, 4)));
        assert_eq!(at(text, &[Step::Value(1)]), Some((3, 3)));
        assert_eq!(at(text, &[Step::Value(1), Step::Item(1)]), Some((4, 5)));
        let z = [Step::Value(1), Step::Item(1), Step::Value(0), Step::Item(1)];
        assert_eq!(at(text, &z), Some((4, 13)));
        assert_eq!(at(text, &[Step::Value(2)]), Some((5, 4)));
        assert_eq!(at(text, &[Step::Value(7)]), None);
    }

    #[test]
    fn points_inside_a_scalar() {
        let text = "k: \"a ${X} b ${X}\"\n";
        let path = NodePath::default().then(Step::Value(0));
        let locator = Locator::new(text);
        assert_eq!(locator.inside(&path, "${X", 1).map(|m| m.column), Some(14));
        assert_eq!(locator.inside(&path, "${Y", 0).map(|m| m.column), Some(4));
    }
}
