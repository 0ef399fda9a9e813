//! [`ResponseHeaders`]: the headers checks add to the response.

use std::fmt;

use http::{Extensions, HeaderName, HeaderValue, StatusCode};

/// How many headers fit before any allocation: the two of a rate limit's
/// draft set, which admitted requests carry. (Kept small: the headers ride
/// in every response future, which is moved.)
const INLINE: usize = 2;

/// Headers the checks add to the response, whichever response goes out:
/// your service's, or a rejection made after they were added. A header set
/// here replaces one of the same name.
///
/// The first few are kept inline: adding them allocates nothing but their
/// values.
#[derive(Debug, Default)]
pub struct ResponseHeaders {
    inline: [Option<(HeaderName, HeaderValue)>; INLINE],
    more: Vec<(HeaderName, HeaderValue)>,
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
            inline: [None, None],
            more: Vec::new(),
            after: None,
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
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some((name, value)),
            None => self.more.push((name, value)),
        }
    }

    /// Whether none was added.
    pub fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    /// Writes them into `response`'s headers, in the order they were
    /// added, and tells a check that asked what the response is.
    pub(crate) fn apply<B>(self, response: &mut http::Response<B>) {
        if let Some(AfterResponse(after)) = self.after {
            after(response.status(), response.extensions());
        }
        let headers = response.headers_mut();
        let inline = self.inline.into_iter().flatten();
        for (name, value) in inline.chain(self.more) {
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
}
