//! The decision hook: one event per request that reached the gate.

use std::sync::Arc;

use http::StatusCode;

use crate::error::{ApiError, ErrorCode};

/// What the gate decided for one request: passed to the hook set with
/// [`GateBuilder::on_decision`](super::GateBuilder::on_decision) once the
/// response is ready.
#[derive(Clone, Copy, Debug)]
pub struct GateEvent<'a> {
    route: &'a str,
    status: StatusCode,
    error: Option<&'a ApiError>,
}

impl<'a> GateEvent<'a> {
    pub(crate) fn new(route: &'a str, status: StatusCode, error: Option<&'a ApiError>) -> Self {
        Self {
            route,
            status,
            error,
        }
    }

    /// The matched route's name (`default` when none matched).
    pub fn route(&self) -> &str {
        self.route
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The rejection's code, or `None` when the request was let through.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.error.map(ApiError::code)
    }

    /// The rejection, if any.
    pub fn error(&self) -> Option<&ApiError> {
        self.error
    }

    /// Whether the request reached your service and was not replaced by a
    /// rejection afterwards (a streamed body over its cap is).
    pub fn is_allowed(&self) -> bool {
        self.error.is_none()
    }
}

/// The decision hook, shared by every clone of the gate's service.
pub(crate) type Hook = Arc<dyn Fn(&GateEvent<'_>) + Send + Sync>;
