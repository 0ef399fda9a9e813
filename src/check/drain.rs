//! [`Drain`]: the body of a refused request, read and discarded within
//! bounds so its HTTP/1.1 connection can carry the next request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http::Response;
use http::header::{CONNECTION, HeaderValue};
use tokio::time::Sleep;

/// Says `Connection: close` on an HTTP/1.1 response.
pub(crate) fn close<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

/// The body of a refused request being read and discarded, within a byte
/// limit and a deadline, so that its HTTP/1.1 connection stays usable.
pub struct Drain {
    body: Pin<Box<dyn Discard + Send>>,
    /// The bytes read, when they are kept.
    kept: Option<Vec<u8>>,
    remaining: u64,
    timeout: Duration,
    /// Started when the body first makes the drain wait (a body that is
    /// all there needs no timer).
    deadline: Option<Pin<Box<Sleep>>>,
}

/// A body read only to be thrown away: how many bytes came, or `Err` when it
/// failed.
trait Discard {
    /// The next frame's length, its bytes appended to `keep` if given.
    fn poll_discard(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        keep: Option<&mut Vec<u8>>,
    ) -> Poll<Option<Result<u64, ()>>>;
}

impl<B: http_body::Body> Discard for B {
    fn poll_discard(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        keep: Option<&mut Vec<u8>>,
    ) -> Poll<Option<Result<u64, ()>>> {
        self.poll_frame(cx).map(|frame| {
            frame.map(|frame| match frame {
                Ok(frame) => Ok(match frame.into_data() {
                    Ok(mut data) => {
                        let len = data.remaining() as u64;
                        if let Some(keep) = keep {
                            while data.has_remaining() {
                                let chunk = data.chunk();
                                let taken = chunk.len();
                                keep.extend_from_slice(chunk);
                                data.advance(taken);
                            }
                        }
                        len
                    }
                    Err(_) => 0,
                }),
                Err(_) => Err(()),
            })
        })
    }
}

impl Drain {
    /// Reads `body` within `limit` bytes and `timeout`, keeping what it
    /// reads when `keep`.
    pub(crate) fn new<B>(body: B, limit: u64, timeout: Duration, keep: bool) -> Self
    where
        B: http_body::Body + Send + 'static,
    {
        Self {
            body: Box::pin(body),
            kept: keep.then(Vec::new),
            remaining: limit,
            timeout,
            deadline: None,
        }
    }

    /// Reads on until the body ends (`true`: the connection is reusable) or
    /// passes its limit, fails, or outlives the deadline (`false`).
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match self.body.as_mut().poll_discard(cx, self.kept.as_mut()) {
                Poll::Ready(None) => return Poll::Ready(true),
                Poll::Ready(Some(Err(()))) => return Poll::Ready(false),
                Poll::Ready(Some(Ok(len))) => match self.remaining.checked_sub(len) {
                    Some(left) => self.remaining = left,
                    None => return Poll::Ready(false),
                },
                Poll::Pending => {
                    let timeout = self.timeout;
                    let deadline = self
                        .deadline
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    return match deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(false),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Drain {
    /// The bytes read, when they were kept.
    pub(crate) fn take_kept(&mut self) -> Option<Vec<u8>> {
        self.kept.take()
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
