//! [`ResponseHeaders`]: the headers checks add to the response.

use std::fmt;

use http::header::RETRY_AFTER;
use http::{Extensions, HeaderName, HeaderValue, StatusCode};

/// The IETF draft's `RateLimit-Policy`.
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The IETF draft's `RateLimit`.
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Headers the checks add to the response, whichever response goes out:
/// your service's, or a rejection made after they were added. A header set
/// here replaces one of the same name.
///
/// The rate limit's own headers (`RateLimit-Policy` and `RateLimit`, which
/// admitted requests carry, and a refusal's `Retry-After`) are kept as
/// values in fields of their own, and written first: adding them allocates
/// nothing but their values, and they take little room in the response
/// future, which is moved (128 bytes, where two inline name-value pairs
/// took 200). Headers inserted by name come after them.
#[derive(Debug, Default)]
pub struct ResponseHeaders {
    /// `RateLimit-Policy`, `RateLimit`.
    rate_limit: [Option<HeaderValue>; 2],
    more: Vec<(HeaderName, HeaderValue)>,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// What a check asked to be told of the response that goes out (a
    /// cost settled after it).
    after: Option<AfterResponse>,
}

/// A check's call once the response is made: its status and extensions.
pub(crate) struct AfterResponse(Box<AfterFn>);

type AfterFn = dyn FnOnce(StatusCode, &Extensions) + Send;

impl fmt::Debug for AfterResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AfterResponse")
    }
}

impl ResponseHeaders {
    /// No headers.
    pub const fn new() -> Self {
        Self {
            rate_limit: [None, None],
            more: Vec::new(),
            retry_after: None,
            after: None,
        }
    }

    /// Adds `Retry-After: seconds` to the response (before the others, so
    /// that a `Retry-After` inserted by name replaces it).
    #[inline]
    pub(crate) fn retry_after(&mut self, seconds: u64) {
        self.retry_after = Some(seconds);
    }

    /// Adds the draft's `RateLimit-Policy` and `RateLimit` values, each
    /// given replacing an earlier one (written before those inserted by
    /// name).
    #[inline]
    pub(crate) fn rate_limit(
        &mut self,
        policy: Option<HeaderValue>,
        remaining: Option<HeaderValue>,
    ) {
        for (slot, value) in self.rate_limit.iter_mut().zip([policy, remaining]) {
            if value.is_some() {
                *slot = value;
            }
        }
    }

    /// Calls `after` with the status and extensions of the response that
    /// goes out, whichever it is (one call per request: a later one
    /// replaces it).
    pub(crate) fn after_response(
        &mut self,
        after: impl FnOnce(StatusCode, &Extensions) + Send + 'static,
    ) {
        self.after = Some(AfterResponse(Box::new(after)));
    }

    /// Adds `name: value` to the response.
    #[inline]
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.more.push((name, value));
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.rate_limit.iter().all(Option::is_none)
            && self.more.is_empty()
            && self.retry_after.is_none()
    }

    /// Writes them into `response`'s headers, in the order they were
    /// added, and tells a check that asked what the response is.
    pub(crate) fn apply<B>(self, response: &mut http::Response<B>) {
        if let Some(AfterResponse(after)) = self.after {
            after(response.status(), response.extensions());
        }
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, crate::render::number_value(seconds));
        }
        let [policy, remaining] = self.rate_limit;
        if let Some(policy) = policy {
            headers.insert(RATELIMIT_POLICY, policy);
        }
        if let Some(remaining) = remaining {
            headers.insert(RATELIMIT, remaining);
        }
        for (name, value) in self.more {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn more_than_fit_inline_are_kept_in_order_and_later_ones_win() {
        let mut headers = ResponseHeaders::new();
        assert!(headers.is_empty());
        for index in 0..6 {
            let name = HeaderName::try_from(format!("x-{index}")).unwrap();
            headers.insert(name, HeaderValue::from(index));
        }
        headers.insert(HeaderName::from_static("x-0"), HeaderValue::from(9));
        assert!(!headers.is_empty());
        let mut response = http::Response::new(());
        headers.apply(&mut response);
        let out: &HeaderMap = response.headers();
        assert_eq!(out.len(), 6);
        assert_eq!(out["x-0"], "9");
        assert_eq!(out["x-5"], "5");
    }

    #[test]
    fn retry_after_is_written_as_its_digits_and_a_named_one_replaces_it() {
        for seconds in [0, 1, 9, 10, 42, 99, 100, 3_600, u64::MAX] {
            let mut headers = ResponseHeaders::new();
            headers.retry_after(seconds);
            assert!(!headers.is_empty());
            let mut response = http::Response::new(());
            headers.apply(&mut response);
            assert_eq!(
                response.headers()[RETRY_AFTER],
                seconds.to_string().as_str()
            );
        }
        let mut headers = ResponseHeaders::new();
        headers.retry_after(5);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let mut response = http::Response::new(());
        headers.apply(&mut response);
        assert_eq!(response.headers().get_all(RETRY_AFTER).iter().count(), 1);
        assert_eq!(response.headers()[RETRY_AFTER], "7");
    }

    #[test]
    fn the_rate_limits_values_come_first_and_one_inserted_by_name_replaces_them() {
        let mut headers = ResponseHeaders::new();
        headers.rate_limit(
            Some(HeaderValue::from_static("\"r\";q=5;w=1")),
            Some(HeaderValue::from_static("\"r\";r=4;t=0")),
        );
        assert!(!headers.is_empty());
        let mut response = http::Response::new(());
        headers.apply(&mut response);
        let names: Vec<_> = response.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["ratelimit-policy", "ratelimit"]);
        assert_eq!(response.headers()[RATELIMIT], "\"r\";r=4;t=0");

        // A later check's values replace those it gives, and only those.
        let mut headers = ResponseHeaders::new();
        headers.rate_limit(
            Some(HeaderValue::from_static("\"r\";q=5;w=1")),
            Some(HeaderValue::from_static("\"r\";r=4;t=0")),
        );
        headers.rate_limit(None, Some(HeaderValue::from_static("\"r\";r=3;t=0")));
        let mut response = http::Response::new(());
        headers.apply(&mut response);
        assert_eq!(response.headers()[RATELIMIT_POLICY], "\"r\";q=5;w=1");
        assert_eq!(response.headers()[RATELIMIT], "\"r\";r=3;t=0");

        let mut headers = ResponseHeaders::new();
        headers.insert(RATELIMIT, HeaderValue::from_static("mine"));
        headers.rate_limit(None, Some(HeaderValue::from_static("\"r\";r=4;t=0")));
        let mut response = http::Response::new(());
        headers.apply(&mut response);
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.headers()[RATELIMIT], "mine");
    }
}
