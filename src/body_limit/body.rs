//! [`LimitedBody`]: a request body that refuses to yield past its cap.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// A boxed error, as bodies of mixed origin use.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The request body as the inner service sees it behind
    /// [`BodyLimitLayer`](super::BodyLimitLayer): frames pass through until
    /// the cap would be passed, then every poll is a [`BodyTooLarge`] error.
    /// Nothing is buffered.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
        over: bool,
        tripped: Option<Arc<AtomicBool>>,
    }
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, limit: u64, tripped: Option<Arc<AtomicBool>>) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            over: false,
            tripped,
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedBody")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.over {
            return Poll::Ready(Some(Err(BodyTooLarge { limit: *this.limit }.into())));
        }
        let frame = match std::task::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > *this.remaining {
                *this.over = true;
                if let Some(tripped) = this.tripped {
                    tripped.store(true, Ordering::Release);
                }
                return Poll::Ready(Some(Err(BodyTooLarge { limit: *this.limit }.into())));
            }
            *this.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        !self.over && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if hint.lower() > self.remaining {
            // It will fail; promise nothing.
            return SizeHint::default();
        }
        if hint.upper().is_none_or(|upper| upper > self.remaining) {
            hint.set_upper(self.remaining);
        }
        hint
    }
}

/// The error a [`LimitedBody`] yields past its cap. Handlers may see it; the
/// layer answers the standard `payload_too_large` whatever they do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    limit: u64,
}

impl BodyTooLarge {
    /// The cap, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body is over the limit of {} bytes",
            self.limit
        )
    }
}

impl std::error::Error for BodyTooLarge {}
