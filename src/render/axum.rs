//! The `axum` feature: [`ApiError`] as a response, [`Principal`] as an
//! extractor, both in the gate's shape once a gate renders them again.

use http::HeaderMap;

use super::ErrorRenderer;
use super::renderer::{RenderedByDefault, with_rejection};
use crate::context::principal::Principal;
use crate::error::{ApiError, ErrorCode};

impl axum::response::IntoResponse for ApiError {
    /// The default envelope, without request context. Behind a gate, the
    /// gate renders it again in its own shape, with its codes and the
    /// request's id, route and caller.
    fn into_response(self) -> axum::response::Response {
        let headers = HeaderMap::new();
        let rendered =
            ErrorRenderer::default().rendered(self, None, None, &headers, &http::Extensions::new());
        let mut response = with_rejection(rendered).map(axum::body::Body::from);
        response.extensions_mut().insert(RenderedByDefault);
        response
    }
}

/// `Principal` is an extractor. Without a principal (no gate in front, or a
/// public route) it answers the standard `missing_api_key`; use
/// `Option<Principal>` on public routes.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            None => {
                let error = ApiError::from(ErrorCode::MISSING_API_KEY);
                let mut response = ErrorRenderer::default().respond_parts(error, parts);
                // Behind a gate, the gate renders it again in its shape.
                response.extensions_mut().insert(RenderedByDefault);
                Err(response.map(axum::body::Body::from))
            }
        }
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
