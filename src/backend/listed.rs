//! An item of a server's list (a tool, prompt, resource or template) as the server wrote it:
//! rmcp's typed item, which the gateway reads and rewrites (its name), and the members rmcp's
//! type does not know, kept aside so that they reach clients untouched.
//!
//! rmcp's types drop what they do not know — a newer spec's `execution.taskSupport` on a
//! tool, a vendor's own keys — and the gateway must not be the component that hides a server's
//! newer features from a newer client. So each item is kept as `item` plus `unknown`, and
//! written as one object again: in the schema cache (the same shape as the item alone, so a
//! cache of either form reads as the other), in the byte path's serialized pages, and merged
//! into rmcp's answers to lists.

use std::sync::Arc;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Members of an item that its rmcp type does not know.
pub type Members = Arc<Map<String, Value>>;

/// An item's unknown [`Members`]; `None` when there are none (the usual case, so that most
/// items cost nothing more).
pub type Unknown = Option<Members>;

/// A listed item and the members its type does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub item: T,
    pub unknown: Unknown,
}

impl<T> Listed<T> {
    /// An item with nothing unknown (from a transport that gives only typed items).
    pub fn known(item: T) -> Self {
        Self {
            item,
            unknown: None,
        }
    }
}

/// A listed item reads as its typed item: the unknown members only matter where it is
/// written.
impl<T> std::ops::Deref for Listed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T> std::ops::DerefMut for Listed<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

impl<T: Serialize + DeserializeOwned> Listed<T> {
    /// Reads one item of a list as the server wrote it: the typed item, and what the type left
    /// out of the object (anything it does not write back).
    pub fn from_object(object: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let item: T = serde_json::from_value(Value::Object(object.clone()))?;
        let Value::Object(known) = serde_json::to_value(&item)? else {
            return Err(serde_json::Error::custom("an item must be an object"));
        };
        // A member rmcp knows but leaves out when null (`"description": null`) is not unknown:
        // nulls are not kept, as rmcp did not (strict clients reject them where a value is
        // optional).
        let unknown: Map<String, Value> = object
            .into_iter()
            .filter(|(key, value)| !known.contains_key(key) && !value.is_null())
            .collect();
        Ok(Self {
            item,
            unknown: (!unknown.is_empty()).then(|| Arc::new(unknown)),
        })
    }

    /// The item as one object again: the typed item's members, then the unknown ones.
    pub fn to_object(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let Value::Object(mut object) = serde_json::to_value(&self.item)? else {
            return Err(serde_json::Error::custom("an item must be an object"));
        };
        merge_unknown(&mut object, self.unknown.as_deref());
        Ok(object)
    }
}

/// Adds `unknown`'s members to `object`, never replacing one it has (what the gateway wrote,
/// such as an exposed name, stays).
pub fn merge_unknown(object: &mut Map<String, Value>, unknown: Option<&Map<String, Value>>) {
    for (key, value) in unknown.into_iter().flatten() {
        if !object.contains_key(key) {
            object.insert(key.clone(), value.clone());
        }
    }
}

/// Where the unknown members of one request's result go once its response is read: filled by
/// the backend (from the response as written), merged into the answer by the session's service.
#[derive(Clone, Default)]
pub struct ResultMembers(Arc<std::sync::Mutex<Option<Members>>>);

impl ResultMembers {
    pub fn set(&self, members: Members) {
        *self.0.lock().unwrap() = Some(members);
    }

    pub fn take(&self) -> Option<Members> {
        self.0.lock().unwrap().take()
    }
}

/// The members rmcp's type of a result knows, by the request's method (at the top level; what
/// they hold is rmcp's). `None` for results whose unknown members are not kept.
pub fn known_result_members(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "tools/call" => &[
            "content",
            "structuredContent",
            "isError",
            "_meta",
            "resultType",
        ],
        "prompts/get" => &["description", "messages", "_meta", "resultType"],
        "resources/read" => &["contents", "_meta", "resultType", "ttlMs", "cacheScope"],
        "completion/complete" => &["completion", "_meta", "resultType"],
        _ => return None,
    })
}

/// The members of the result in a whole response line that are not in `known`, if any: the
/// line is read once (its result's members found, their values not parsed unless unknown).
pub fn unknown_members_of_response(line: &[u8], known: &[&str]) -> Option<Members> {
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        result: Option<crate::wire::RawMembers<'a>>,
    }
    let response: Response = serde_json::from_slice(line).ok()?;
    unknown_among(response.result?, known)
}

fn unknown_among(members: crate::wire::RawMembers<'_>, known: &[&str]) -> Option<Members> {
    let unknown: Map<String, Value> = members
        .0
        .into_iter()
        .filter(|(key, _)| !known.contains(&key.as_ref()))
        .filter_map(|(key, value)| {
            Some((key.into_owned(), serde_json::from_str(value.get()).ok()?))
        })
        .collect();
    (!unknown.is_empty()).then(|| Arc::new(unknown))
}

impl<T: Serialize + DeserializeOwned> Serialize for Listed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.unknown.is_none() {
            return self.item.serialize(serializer);
        }
        self.to_object()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Listed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::deserialize(deserializer)?;
        Self::from_object(object).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::Tool;
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_members_survive_a_round_trip_and_known_ones_are_typed() {
        let written = json!({
            "name": "research",
            "inputSchema": {"type": "object"},
            "execution": {"taskSupport": "required"},
            "x-vendor": [1, 2, 3],
        });
        let listed: Listed<Tool> = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(listed.item.name, "research");
        let unknown = listed.unknown.as_deref().unwrap();
        assert_eq!(
            unknown.keys().collect::<Vec<_>>(),
            ["execution", "x-vendor"]
        );
        assert_eq!(serde_json::to_value(&listed).unwrap(), written);
    }

    #[test]
    fn a_known_member_written_null_does_not_come_back_as_null() {
        let written = json!({"name": "t", "inputSchema": {}, "description": null, "x": null});
        let listed: Listed<Tool> = serde_json::from_value(written).unwrap();
        assert!(listed.unknown.is_none(), "{:?}", listed.unknown);
        let object = listed.to_object().unwrap();
        assert!(!object.contains_key("description"), "{object:?}");
    }

    #[test]
    fn an_item_with_nothing_unknown_costs_nothing_and_reads_as_before() {
        let tool = Tool::new("echo", "Echoes", Arc::new(Map::new()));
        let plain = serde_json::to_value(&tool).unwrap();
        let listed: Listed<Tool> = serde_json::from_value(plain.clone()).unwrap();
        assert!(listed.unknown.is_none());
        assert_eq!(listed, Listed::known(tool));
        assert_eq!(serde_json::to_value(&listed).unwrap(), plain);
    }

    #[test]
    fn what_the_gateway_wrote_is_never_replaced_by_an_unknown_member() {
        let mut object = Map::new();
        object.insert("name".into(), json!("server_echo"));
        let mut unknown = Map::new();
        unknown.insert("name".into(), json!("echo"));
        unknown.insert("execution".into(), json!({}));
        merge_unknown(&mut object, Some(&unknown));
        assert_eq!(object["name"], "server_echo");
        assert_eq!(object["execution"], json!({}));
    }
}
