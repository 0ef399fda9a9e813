//! [`ScopeRule`]: what one route demands of a key.

use std::sync::Arc;

use serde_json::json;

use super::syntax::{covers, has_param, is_safe_value, named_params, validate_scope};
use crate::ConfigError;
use crate::context::kind::{KeyKind, KeyKinds};
use crate::error::sentence::{Piece::Text, sentence};
use crate::error::{ApiError, ErrorCode, Rule, TypedDetails};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// What one route demands of a key: scopes and kinds, the code for a kind
/// that is not accepted, and whether refusals are hidden behind a 404.
///
/// ```
/// use http::StatusCode;
/// use tollgate::error::{Category, ErrorCode};
/// use tollgate::key::KeyKind;
/// use tollgate::scope::ScopeRule;
///
/// let forget = ScopeRule::new()
///     .kinds(KeyKind::Secret)
///     .kind_code(ErrorCode::custom("forget_requires_secret_key", StatusCode::FORBIDDEN, Category::Auth).unwrap());
/// let stats = ScopeRule::any_of(["read", "admin"]).unwrap().hidden(true);
/// # let _ = (forget, stats);
/// ```
#[derive(Clone, Debug)]
pub struct ScopeRule {
    required: Arc<[Box<str>]>,
    mode: Mode,
    kinds: KeyKinds,
    kind_code: ErrorCode,
    scope_code: ErrorCode,
    /// Refusing keys of another project; `None`: the scope code.
    project_code: Option<ErrorCode>,
    hidden: bool,
    resource: Option<Arc<Resource>>,
    /// Whether a required scope names a path parameter (known once, not
    /// looked for on every request).
    templated: bool,
    /// The refusal's message of a rule without parameters, made at its
    /// first refusal and shared by the next.
    message: std::sync::OnceLock<Arc<str>>,
}

/// The route's path pattern, to read the parameters a rule names.
#[derive(Debug)]
struct Resource {
    pattern: Box<str>,
    router: matchit::Router<()>,
    /// A parameter that must equal the caller's project.
    project_param: Option<Box<str>>,
}

impl ScopeRule {
    /// No scope required; every kind accepted.
    pub fn new() -> Self {
        Self {
            required: Arc::from([]),
            mode: Mode::All,
            kinds: KeyKinds::ALL,
            kind_code: ErrorCode::KEY_KIND_NOT_ALLOWED,
            scope_code: ErrorCode::INSUFFICIENT_SCOPE,
            project_code: None,
            hidden: false,
            resource: None,
            templated: false,
            message: std::sync::OnceLock::new(),
        }
    }

    /// Reads path parameters on `pattern` (the route's path, as
    /// `/stores/{store_id}/orders`): required scopes may then name them
    /// (`stores.{store_id}.write`), and
    /// [`project_param`](Self::project_param) may tie one to the caller's
    /// project. Every parameter a scope names must be in the pattern.
    pub fn on_path(mut self, pattern: &str) -> Result<Self, ConfigError> {
        let mut router = matchit::Router::new();
        router
            .insert(pattern, ())
            .map_err(|error| ConfigError::new("route", format!("`{pattern}`: {error}")))?;
        self.resource = Some(Arc::new(Resource {
            pattern: pattern.into(),
            router,
            project_param: None,
        }));
        self.check_params()?;
        Ok(self)
    }

    /// Requires the path parameter `name` to equal the caller's project
    /// (a key of project `acme` may call `/stores/acme/...` only). Needs
    /// [`on_path`](Self::on_path) first.
    pub fn project_param(mut self, name: &str) -> Result<Self, ConfigError> {
        let Some(resource) = &self.resource else {
            return Err(ConfigError::new(
                "project_param",
                "only a route with a path pattern has parameters",
            ));
        };
        if !has_param(&resource.pattern, name) {
            return Err(ConfigError::new(
                "project_param",
                format!("`{name}` is not a parameter of `{}`", resource.pattern),
            ));
        }
        self.resource = Some(Arc::new(Resource {
            pattern: resource.pattern.clone(),
            router: resource.router.clone(),
            project_param: Some(name.into()),
        }));
        Ok(self)
    }

    /// Every parameter a required scope names is in the pattern.
    fn check_params(&self) -> Result<(), ConfigError> {
        for scope in self.required() {
            for name in named_params(scope) {
                let known = self
                    .resource
                    .as_ref()
                    .is_some_and(|resource| has_param(&resource.pattern, name));
                if !known {
                    return Err(ConfigError::new(
                        "scopes",
                        format!(
                            "`{scope}` names `{{{name}}}`, which is not a parameter of this route's path"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Requires every one of `scopes`.
    pub fn all_of<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new().require(Mode::All, scopes)
    }

    /// Requires at least one of `scopes` (none listed: no requirement).
    pub fn any_of<I, S>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new().require(Mode::Any, scopes)
    }

    fn require<I, S>(mut self, mode: Mode, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let scopes = scopes
            .into_iter()
            .map(|scope| {
                validate_scope(scope.as_ref())?;
                Ok(Box::from(scope.as_ref()))
            })
            .collect::<Result<Vec<Box<str>>, ConfigError>>()?;
        self.templated = scopes
            .iter()
            .any(|scope| named_params(scope).next().is_some());
        self.required = scopes.into();
        self.mode = mode;
        self.message = std::sync::OnceLock::new();
        if self.resource.is_some() {
            self.check_params()?;
        }
        Ok(self)
    }

    /// Accepts only these kinds of key.
    #[must_use]
    pub fn kinds(mut self, kinds: impl Into<KeyKinds>) -> Self {
        self.kinds = kinds.into();
        self
    }

    /// Refuses other kinds with `code` instead of `key_kind_not_allowed`.
    #[must_use]
    pub fn kind_code(mut self, code: ErrorCode) -> Self {
        self.kind_code = code;
        self
    }

    /// Refuses keys without the scopes with `code` instead of
    /// `insufficient_scope`.
    #[must_use]
    pub fn scope_code(mut self, code: ErrorCode) -> Self {
        self.scope_code = code;
        self
    }

    /// Refuses keys of another project than the
    /// [`project_param`](Self::project_param) names with `code` instead of
    /// the scope code.
    #[must_use]
    pub fn project_code(mut self, code: ErrorCode) -> Self {
        self.project_code = Some(code);
        self
    }

    /// Answers every refusal with 404 `not_found`, so keys that may not call
    /// the route cannot tell it exists.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// The required scopes.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.required.iter().map(|scope| &**scope)
    }

    /// The accepted kinds.
    pub fn accepted_kinds(&self) -> KeyKinds {
        self.kinds
    }

    /// Whether any required scope names a path parameter.
    pub(crate) fn names_params(&self) -> bool {
        self.templated
    }

    fn satisfied_by(&self, granted: &[String]) -> bool {
        self.satisfied_with(self.required(), granted)
    }

    fn satisfied_with<'a>(
        &self,
        mut required: impl Iterator<Item = &'a str>,
        granted: &[String],
    ) -> bool {
        let held = |required: &str| granted.iter().any(|g| covers(g, required));
        match self.mode {
            Mode::All => required.all(held),
            Mode::Any => self.required.is_empty() || required.any(held),
        }
    }

    /// The required scopes with the path parameters of `path` filled in, or
    /// `None` when the rule has no path or a parameter is missing or unsafe
    /// in a scope; and whether the project parameter matches `project`.
    fn resolve(&self, path: &str, project: &str) -> (Option<Vec<String>>, bool) {
        let Some(resource) = &self.resource else {
            return (None, true);
        };
        let Ok(found) = resource.router.at(path) else {
            return (None, false);
        };
        let project_ok = resource
            .project_param
            .as_deref()
            .is_none_or(|name| found.params.get(name) == Some(project));
        let filled = self
            .required()
            .map(|scope| {
                let mut out = String::with_capacity(scope.len());
                let mut rest = scope;
                while let Some(open) = rest.find('{') {
                    let (name, after) = rest[open + 1..].split_once('}')?;
                    let value = found
                        .params
                        .get(name)
                        .filter(|value| is_safe_value(value))?;
                    out.push_str(&rest[..open]);
                    out.push_str(value);
                    rest = after;
                }
                out.push_str(rest);
                Some(out)
            })
            .collect();
        (filled, project_ok)
    }

    pub(super) fn judge(
        &self,
        kind: KeyKind,
        granted: &Arc<[String]>,
        project: &str,
        path: &str,
    ) -> Result<(), ApiError> {
        // Plain scopes are judged as they are; a rule on a path judges its
        // scopes filled in, and none can be held when they cannot be filled.
        let plain = self.resource.is_none() && !self.templated;
        let (filled, project_ok) = if plain {
            (None, true)
        } else {
            self.resolve(path, project)
        };
        let held = match &filled {
            _ if plain => self.satisfied_by(granted),
            Some(filled) => self.satisfied_with(filled.iter().map(String::as_str), granted),
            None => false,
        };
        let refusal = if !self.kinds.contains(kind) {
            let accepted: Vec<&str> = self.kinds.iter().map(KeyKind::as_str).collect();
            let message = format!(
                "This route does not accept {} keys; it accepts: {}.",
                kind.as_str(),
                accepted.join(", ")
            );
            ApiError::new(self.kind_code.clone(), message)
                .with_details(json!({ "accepted": accepted, "kind": kind.as_str() }))
                .with_rule(Rule::Kind)
        } else if !project_ok {
            ApiError::new(
                self.project_code
                    .as_ref()
                    .unwrap_or(&self.scope_code)
                    .clone(),
                "This API key's project may not use this resource.",
            )
            .with_details(json!({ "reason": "project" }))
            .with_rule(Rule::Scope)
        } else if !held {
            self.scope_refusal(filled, granted)
        } else {
            return Ok(());
        };
        if self.hidden {
            let rule = refusal.rule().unwrap_or(Rule::Scope);
            return Err(ApiError::from(ErrorCode::NOT_FOUND).with_rule(rule));
        }
        Err(refusal)
    }
}

impl ScopeRule {
    /// The refusal of a key holding `granted` that lacks this rule's scopes
    /// (`filled`: with the path's parameters filled in). A rule without
    /// parameters shares its scopes and message with every refusal: the
    /// details hold the rule's and the record's scopes, not copies.
    fn scope_refusal(&self, filled: Option<Vec<String>>, granted: &Arc<[String]>) -> ApiError {
        let (required, message) = match filled {
            Some(filled) => {
                let required: Arc<[Box<str>]> = filled.into_iter().map(Box::from).collect();
                let message = self.message_of(&required);
                (required, message)
            }
            None => (
                Arc::clone(&self.required),
                Arc::clone(self.message.get_or_init(|| self.message_of(&self.required))),
            ),
        };
        let mode = match self.mode {
            Mode::All => "all",
            Mode::Any => "any",
        };
        let held = |required: &str| granted.iter().any(|g| covers(g, required));
        let refusal = ApiError::shared(self.scope_code.clone(), message).with_rule(Rule::Scope);
        if required.len() > 64 {
            let missing = required
                .iter()
                .map(|scope| &**scope)
                .filter(|scope| !held(scope));
            return refusal
                .with_details(TypedDetails::scope_value(&required, granted, missing, mode));
        }
        let missing = required
            .iter()
            .enumerate()
            .filter(|(_, scope)| !held(scope))
            .fold(0u64, |mask, (index, _)| mask | 1 << index);
        refusal.with_typed_details(TypedDetails::Scope {
            required,
            granted: Arc::clone(granted),
            missing,
            mode,
        })
    }

    /// "This route requires the scopes: a, b." (or "one of the scopes").
    fn message_of(&self, required: &[Box<str>]) -> Arc<str> {
        let lead = match self.mode {
            Mode::All => "This route requires the scopes: ",
            Mode::Any => "This route requires one of the scopes: ",
        };
        Arc::from(sentence(&[
            Text(lead),
            Text(&required.join(", ")),
            Text("."),
        ]))
    }
}

impl Default for ScopeRule {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_any() {
        let granted = vec!["read".to_owned(), "people.*".to_owned()];
        assert!(
            ScopeRule::all_of(["read", "people.view"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            !ScopeRule::all_of(["read", "admin"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            ScopeRule::any_of(["admin", "people.view"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            !ScopeRule::any_of(["admin", "write"])
                .unwrap()
                .satisfied_by(&granted)
        );
        assert!(
            ScopeRule::any_of(Vec::<&str>::new())
                .unwrap()
                .satisfied_by(&[])
        );
        assert!(ScopeRule::new().satisfied_by(&[]));
    }

    /// A refusal's details are the same whether the missing scopes fit the
    /// typed details' mask (64) or not.
    #[test]
    fn refusal_details_past_the_mask_keep_their_shape() {
        let granted: Arc<[String]> = Arc::from(["s.1".to_owned(), "s.64".to_owned()]);
        for count in [3, 64, 65, 70] {
            let scopes: Vec<String> = (0..count).map(|index| format!("s.{index}")).collect();
            let rule = ScopeRule::all_of(&scopes).unwrap();
            let refusal = rule
                .judge(KeyKind::Secret, &granted, "acme", "/")
                .unwrap_err();
            let details = refusal.details().unwrap();
            let missing: Vec<&String> = scopes.iter().filter(|s| !granted.contains(s)).collect();
            assert_eq!(details["required"], json!(scopes), "{count}");
            assert_eq!(details["granted"], json!(&*granted), "{count}");
            assert_eq!(details["missing"], json!(missing), "{count}");
            assert_eq!(details["mode"], "all", "{count}");
            assert_eq!(details.as_object().unwrap().len(), 4, "{count}");
        }
    }

    #[test]
    fn required_scope_syntax_is_checked() {
        for bad in [
            "",
            "Read",
            "people.*",
            "*",
            "a..b",
            "a b",
            ".a",
            &"a".repeat(129),
        ] {
            let error = ScopeRule::all_of([bad]).unwrap_err();
            assert_eq!(error.field(), "scopes", "{bad}");
        }
        assert!(ScopeRule::all_of(["people.view_paygap", "billing:read", "a-b"]).is_ok());
    }
}
