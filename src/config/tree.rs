//! The YAML document as a plain tree that keeps document order and duplicate keys, so that the
//! checker can report a duplicate where it is and address every node by its index path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicates are kept (yaml_serde's `Value` would refuse them
    /// and point at the mapping rather than at the repeated key).
    Map(Vec<(Node, Node)>),
    /// `!tag value`; never valid in our format, kept so that the error can name the tag.
    Tagged(String),
}

impl Node {
    /// What the node is, for "found …" in messages; never the value itself, which may be secret.
    pub(super) fn describe(&self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(_) => "a boolean".into(),
            Node::Int(_) => "an integer".into(),
            Node::Float(_) => "a number".into(),
            Node::Str(_) => "a string".into(),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a mapping".into(),
            Node::Tagged(tag) => format!("a value tagged `!{tag}`"),
        }
    }

    /// The node as JSON (a command argument's default or bounds); `None` for what JSON has no
    /// value for (a tag, a map with a key that is not a string, an integer out of range).
    pub(super) fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(n) => match i64::try_from(*n) {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(u64::try_from(*n).ok()?),
            },
            Node::Float(f) => Value::from(serde_json::Number::from_f64(*f)?),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => {
                Value::Array(items.iter().map(Node::to_json).collect::<Option<_>>()?)
            }
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| match k {
                        Node::Str(k) => Some((k.clone(), v.to_json()?)),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            ),
            Node::Tagged(_) => return None,
        })
    }

    /// A scalar YAML would turn into a string if it were quoted.
    pub(super) fn is_unquoted_scalar(&self) -> bool {
        matches!(self, Node::Bool(_) | Node::Int(_) | Node::Float(_))
    }
}

/// Parses one YAML document. Syntax errors carry yaml_serde's location.
pub(super) fn parse(text: &str) -> Result<Node, yaml_serde::Error> {
    yaml_serde::from_str(text)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i128::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        // The tagged content must still be consumed so the rest of the document stays in step.
        let (tag, content): (String, _) = data.variant()?;
        content.newtype_variant::<Node>()?;
        Ok(Node::Tagged(tag))
    }
}
