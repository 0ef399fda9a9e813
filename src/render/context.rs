//! [`RenderContext`]: what a renderer may know of the refused request.

use http::Method;

use crate::context::principal::Principal;
use crate::error::Rule;

/// What a renderer may know of the rejected request: its id, method and
/// route, who called (never the key itself), and which rule refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderContext<'a> {
    pub(super) request_id: Option<&'a str>,
    pub(super) route: Option<&'a str>,
    pub(super) method: Option<&'a Method>,
    pub(super) path: Option<&'a str>,
    pub(super) principal: Option<&'a Principal>,
    pub(super) subject: Option<(&'a str, &'a str)>,
    pub(super) rule: Option<Rule>,
    pub(super) body: Option<&'a [u8]>,
}

impl<'a> RenderContext<'a> {
    /// A context with the given request id and route name.
    pub fn new(request_id: Option<&'a str>, route: Option<&'a str>) -> Self {
        Self {
            request_id,
            route,
            ..Self::default()
        }
    }

    /// With the request's method.
    #[must_use]
    pub fn with_method(mut self, method: &'a Method) -> Self {
        self.method = Some(method);
        self
    }

    /// With the request's path.
    #[must_use]
    pub fn with_path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    /// The request's path, without its query (which may hold a key). After
    /// the request was handed on, only for a shape whose
    /// [`reads_path`](super::RenderError::reads_path) says it reads it.
    pub fn path(&self) -> Option<&'a str> {
        self.path
    }

    /// With the authenticated caller.
    #[must_use]
    pub fn with_principal(mut self, principal: &'a Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// With the rule that refused.
    #[must_use]
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// The request's method.
    pub fn method(&self) -> Option<&'a Method> {
        self.method
    }

    /// The caller, when a key was admitted before the refusal (an origin,
    /// scope, rate-limit or body refusal; not a key refusal).
    pub fn principal(&self) -> Option<&'a Principal> {
        self.principal
    }

    /// The caller's key id: the principal's, or that of a known key the key
    /// check refused (disabled, expired, of another kind).
    pub fn key_id(&self) -> Option<&'a str> {
        self.principal
            .map(Principal::key_id)
            .or(self.subject.map(|(key_id, _)| key_id))
    }

    /// The caller's project, likewise.
    pub fn project(&self) -> Option<&'a str> {
        self.principal
            .map(Principal::project)
            .or(self.subject.map(|(_, project)| project))
    }

    /// The start of the refused request's body, for a shape that asked the
    /// gate to read it ([`RenderError::body_read_limit`](super::RenderError::body_read_limit), as [`JsonRpc`](super::JsonRpc)
    /// does to echo the request's `id`): the bytes read, when the whole body
    /// was read within the limit; `None` otherwise.
    pub fn body(&self) -> Option<&'a [u8]> {
        self.body
    }

    /// The rule that refused.
    pub fn rule(&self) -> Option<Rule> {
        self.rule
    }

    /// The request's id, echoed from its request-id header when present.
    pub fn request_id(&self) -> Option<&'a str> {
        self.request_id
    }

    /// The name of the matched route (its pattern), when a
    /// [`RouteLayer`](crate::route::RouteLayer) ran.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }
}
