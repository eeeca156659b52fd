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

/// What the answer to one request may need put back: the unknown members of a list's items,
/// or of a forwarded request's result (then `slot` goes into the request's extensions first).
pub struct PutBack {
    list: Option<List>,
    slot: Option<ResultMembers>,
}

impl PutBack {
    /// For a request of `method`; `None` if its answer has nothing to put back.
    pub fn for_method(method: &str) -> Option<Self> {
        if let Some(list) = List::of(method) {
            return Some(Self {
                list: Some(list),
                slot: None,
            });
        }
        known_result_members(method)?;
        Some(Self {
            list: None,
            slot: Some(ResultMembers::default()),
        })
    }

    /// Where the backend puts the result's unknown members (to be put in the request's
    /// extensions, where the session finds it).
    pub fn slot(&self) -> Option<&ResultMembers> {
        self.slot.as_ref()
    }

    /// What is to be put back, once the answer is made; `None` if nothing (the usual case).
    /// `view` is the current view of the client's role, asked for only for a list.
    pub fn what(&self, view: impl FnOnce() -> std::sync::Arc<RoleView>) -> Option<Missing> {
        if let Some(list) = self.list {
            let view = view();
            return (!list.kept(&view.unknown).is_empty()).then_some(Missing::Items(list, view));
        }
        self.slot.as_ref()?.take().map(Missing::Result)
    }
}

/// What [`PutBack::what`] found to put back.
pub enum Missing {
    Items(List, std::sync::Arc<RoleView>),
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
        if let Some(slot) = put_back.as_ref().and_then(PutBack::slot) {
            context.extensions.insert(slot.clone());
        }
        let result = Service::handle_request(&self.0, request, context).await?;
        let view = || self.0.gateway.table().view(self.0.role());
        let Some(missing) = put_back.and_then(|p| p.what(view)) else {
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
