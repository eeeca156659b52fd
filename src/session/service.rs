//! [`SessionService`]: what rmcp serves a client with — the client's [`Session`], with what
//! rmcp's typed answers leave out put back ([`PutBack`], which the HTTP listener applies to
//! rmcp's HTTP answers the same way).
//!
//! rmcp's results are typed, with no room for members rmcp does not know (a tool's
//! `execution`, a vendor's keys). The gateway keeps those beside each listed item
//! ([`crate::backend::listed`]) and, for a forwarded call, prompt, read or completion, in the
//! request's [`ResultMembers`] (put in the request's extensions, filled by the backend). They
//! are merged back into the answer rmcp made, after rmcp's own checks and per-version shaping
//! ran: the answer becomes the same object with the unknown members added (list items matched
//! by the name, URI or URI template the client sees). An answer with none is passed on as rmcp
//! made it, unserialized.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use rmcp::ErrorData as McpError;
use rmcp::model::{ClientNotification, ClientRequest, CustomResult, ServerInfo, ServerResult};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, Service};
use serde_json::{Map, Value};

use super::Session;
use crate::backend::listed::{Members, ResultMembers, known_result_members, merge_unknown};
use crate::table::{RoleView, UnknownMembers};

/// A [`Session`] as rmcp serves it.
pub struct SessionService(Session);

impl SessionService {
    pub fn new(session: Session) -> Self {
        Self(session)
    }
}

/// What the answer to one request may need put back: the unknown members of a list's items
/// (from the view the session answered from), or of a forwarded request's result. Its slots
/// go into the request's extensions first ([`PutBack::insert_into`]).
pub struct PutBack {
    list: Option<(List, UsedView)>,
    slot: Option<ResultMembers>,
}

/// The role view a list was answered from (set by the session's list handler), so that the
/// members put back come from the same table snapshot as the items.
#[derive(Clone, Default)]
pub struct UsedView(Arc<OnceLock<Arc<RoleView>>>);

impl UsedView {
    pub fn set(&self, view: &Arc<RoleView>) {
        let _ = self.0.set(view.clone());
    }
}

impl PutBack {
    /// For a request of `method`; `None` if its answer has nothing to put back.
    pub fn for_method(method: &str) -> Option<Self> {
        if let Some(list) = List::of(method) {
            return Some(Self {
                list: Some((list, UsedView::default())),
                slot: None,
            });
        }
        known_result_members(method)?;
        Some(Self {
            list: None,
            slot: Some(ResultMembers::default()),
        })
    }

    /// Puts the slots where the session finds them: the view a list is answered from, or
    /// where the backend puts the result's unknown members.
    pub fn insert_into(&self, extensions: &mut rmcp::model::Extensions) {
        if let Some((_, used)) = &self.list {
            extensions.insert(used.clone());
        }
        if let Some(slot) = &self.slot {
            extensions.insert(slot.clone());
        }
    }

    /// The same, in an HTTP request's extensions (rmcp hands them to the session).
    pub fn insert_into_http(&self, extensions: &mut axum::http::Extensions) {
        if let Some((_, used)) = &self.list {
            extensions.insert(used.clone());
        }
        if let Some(slot) = &self.slot {
            extensions.insert(slot.clone());
        }
    }

    /// What is to be put back, once the answer is made; `None` if nothing (the usual case).
    pub fn what(&self) -> Option<Missing> {
        if let Some((list, used)) = &self.list {
            let view = used.0.get()?.clone();
            return (!list.kept(&view.unknown).is_empty()).then_some(Missing::Items(*list, view));
        }
        self.slot.as_ref()?.take().map(Missing::Result)
    }
}

/// What [`PutBack::what`] found to put back.
pub enum Missing {
    Items(List, Arc<RoleView>),
    Result(Members),
}

impl Missing {
    /// Puts it into `result`, the answer's `result` object.
    pub fn apply(&self, result: &mut Map<String, Value>) {
        match self {
            Self::Result(unknown) => merge_unknown(result, Some(unknown)),
            Self::Items(list, view) => {
                let kept = list.kept(&view.unknown);
                let (items, name) = list.members();
                let Some(Value::Array(items)) = result.get_mut(items) else {
                    return;
                };
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    let unknown = item
                        .get(name)
                        .and_then(Value::as_str)
                        .and_then(|n| kept.get(n));
                    if let Some(unknown) = unknown.cloned() {
                        merge_unknown(item, Some(&unknown));
                    }
                }
            }
        }
    }
}

/// The lists whose items may carry unknown members: which member of the result holds them, and
/// where their unknown members are kept.
#[derive(Clone, Copy)]
pub enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl List {
    fn of(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => Self::Tools,
            "prompts/list" => Self::Prompts,
            "resources/list" => Self::Resources,
            "resources/templates/list" => Self::Templates,
            _ => return None,
        })
    }

    /// The result's member holding the items, and the item's member naming it.
    fn members(self) -> (&'static str, &'static str) {
        match self {
            Self::Tools => ("tools", "name"),
            Self::Prompts => ("prompts", "name"),
            Self::Resources => ("resources", "uri"),
            Self::Templates => ("resourceTemplates", "uriTemplate"),
        }
    }

    fn kept(self, unknown: &UnknownMembers) -> &HashMap<String, Members> {
        match self {
            Self::Tools => &unknown.tools,
            Self::Prompts => &unknown.prompts,
            Self::Resources => &unknown.resources,
            Self::Templates => &unknown.templates,
        }
    }
}

impl Service<RoleServer> for SessionService {
    async fn handle_request(
        &self,
        request: ClientRequest,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let put_back = PutBack::for_method(request.method());
        if let Some(put_back) = &put_back {
            put_back.insert_into(&mut context.extensions);
        }
        let result = Service::handle_request(&self.0, request, context).await?;
        let Some(missing) = put_back.and_then(|p| p.what()) else {
            return Ok(result);
        };
        match serde_json::to_value(&result) {
            Ok(Value::Object(mut answer)) => {
                missing.apply(&mut answer);
                Ok(ServerResult::CustomResult(CustomResult::new(
                    Value::Object(answer),
                )))
            }
            _ => Ok(result),
        }
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), McpError> {
        Service::handle_notification(&self.0, notification, context).await
    }

    fn get_info(&self) -> ServerInfo {
        Service::get_info(&self.0)
    }

    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        Service::supported_protocol_versions(&self.0)
    }
}
