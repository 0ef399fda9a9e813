//! Errors and codes: the ground floor every other module builds on.
//!
//! Every rejection, from every check, is an [`ApiError`] with a stable
//! [`ErrorCode`] from one catalogue (its status and [`Category`]), naming
//! the [`Rule`] that refused. A [`CodeMap`] respells the codes as an
//! existing API's contract has them. How an `ApiError` becomes a response
//! is the [`render`](crate::render) module's business.
//!
//! [`StoreError`] is what a key store or a shared rate store answers when
//! it cannot; clients see `upstream_failed`, never its text.
//! [`ConfigError`](crate::ConfigError) names a configuration mistake.
//!
//! ```
//! use tollgate::error::{ApiError, Category, ErrorCode, Rule};
//!
//! let error = ApiError::from(ErrorCode::RATE_LIMITED).with_rule(Rule::RateLimit);
//! assert_eq!(error.status(), http::StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(error.category(), Category::RateLimit);
//! assert_eq!(error.code().as_str(), "rate_limited");
//! ```

mod api_error;
mod catalogue;
mod code_map;
pub(crate) mod config_error;
mod rule;
pub(crate) mod sentence;
mod store_error;

pub use api_error::ApiError;
pub(crate) use api_error::TypedDetails;
pub(crate) use catalogue::rule_code;
pub use catalogue::{Category, ErrorCode};
pub use code_map::CodeMap;
pub use rule::Rule;
pub use store_error::StoreError;
