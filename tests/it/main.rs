//! The integration tests, in one binary: each module is one area, and
//! `common` holds what they share. (Only the tests that must run alone
//! have binaries of their own: `tests/metrics.rs` installs a process-wide
//! metrics recorder, `tests/browser.rs` drives a headless Chromium.)

mod common;

mod body_limit;
mod contract;
mod contract_gaps;
mod credits;
mod demo_server;
mod error_rendering;
mod failed_keys;
mod floods;
mod floors;
mod gate_config;
mod gateway;
mod keep_alive;
mod key_layer;
mod operating;
mod origin;
mod per_caller;
mod pipeline;
#[cfg(feature = "postgres")]
mod postgres_store;
mod properties;
mod quotas;
mod rate_limit;
mod readme;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_store;
mod response_costs;
mod scope;
#[cfg(feature = "tracing")]
mod secrets;
mod socket;
mod with_axum;
mod with_hyper;
mod with_tonic;
