//! API keys: classification, digests, stores, and [`KeyLayer`].
//!
//! A key looks like `sk_live_<32 base62 characters><6-character checksum>`:
//! a kind prefix (`pk` publishable, `sk` secret, `rk` restricted; the table
//! is configurable), an optional environment (`live`, `test`), and a base62
//! secret ending in a CRC-32 checksum, so typos and garbage are refused as
//! `malformed_api_key` without touching the store.
//!
//! For each request, [`KeyLayer`]:
//!
//! 1. lets CORS preflights and public routes through untouched;
//! 2. takes the one credential from `Authorization: Bearer`, `X-API-Key` or
//!    (optionally, publishable keys only) a query parameter — two different
//!    ones are refused;
//! 3. parses it, then digests it with HMAC-SHA256 under a server pepper
//!    ([`KeyHasher`]): keys are never stored or compared in the clear;
//! 4. looks the digest up in a [`KeyStore`](store::KeyStore) (in memory, cached, in
//!    PostgreSQL with the `postgres` feature, or your own),
//!    with a timeout — a store error or timeout is `upstream_failed`, never a
//!    pass;
//! 5. refuses unknown, revoked, expired and mismatched keys, or inserts the
//!    [`Principal`] into the request's extensions and calls the inner service.
//!
//! | rejection | when |
//! |---|---|
//! | `missing_api_key` | no credential |
//! | `malformed_api_key` | bad prefix, characters, length or checksum; non-Bearer scheme; repeated or conflicting credentials; a non-publishable key in the query |
//! | `invalid_api_key` | unknown or revoked |
//! | `expired_api_key` | past its expiry |
//! | `key_kind_mismatch` | stored kind differs from the prefix |
//! | `upstream_failed` | the store failed or timed out |
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tollgate::key::{InMemoryKeyStore, KeyHasher, KeyKind, KeyLayer, KeyRecord, Principal};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let hasher = KeyHasher::with_pepper(b"server-side pepper");
//! let store = InMemoryKeyStore::new();
//! let minted = hasher.mint(KeyKind::Secret, None).unwrap();
//! store.insert(minted.digest(), KeyRecord::new("key_1", "acme", KeyKind::Secret));
//!
//! let service = ServiceBuilder::new()
//!     .layer(KeyLayer::new(store).hasher(hasher))
//!     .service_fn(|request: Request<()>| async move {
//!         let principal = request.extensions().get::<Principal>().unwrap();
//!         Ok::<_, Infallible>(Response::new(principal.project().to_owned()))
//!     });
//!
//! let request = Request::get("/").header("x-api-key", minted.key()).body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # });
//! ```

pub(crate) mod cache;
mod check;
mod checksum;
pub(crate) mod config;
pub(crate) mod credential;
mod digest;
mod failed;
pub mod format;
mod layer;
mod memory;
mod options;
pub(crate) mod policy;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod store;
mod verified;

pub use crate::context::digest::KeyDigest;
pub use crate::context::kind::{KeyEnv, KeyKind, KeyKinds};
pub use crate::context::principal::Principal;
pub use crate::context::record::{KeyRecord, KeyStatus};
pub use cache::{CachedKeyStore, CachedKeyStoreBuilder};
pub use check::KeyCheck;
pub use config::{Expiry, KeyConfig};
pub use credential::CredentialSource;
pub use digest::{KeyHasher, MintError, MintedKey};
pub use failed::FailedKeyBudget;
pub use layer::{KeyLayer, KeyService};
pub use memory::InMemoryKeyStore;
pub use options::{DEFAULT_LOOKUP_TIMEOUT, KeyOptions};
