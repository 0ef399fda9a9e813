//! The response body of every tollgate service.
//!
//! A layer either passes the inner service's response through or answers a
//! rejection itself; [`ResponseBody`] is either of the two, so a layer keeps
//! the inner body type (and its streaming) instead of buffering or boxing it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's body, or a rejection's complete body.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body made by a rejection.
    pub fn rejection(data: Bytes) -> Self {
        let data = if data.is_empty() { None } else { Some(data) };
        Self {
            kind: Kind::Rejection { data },
        }
    }
}

impl<B> Default for ResponseBody<B> {
    /// An empty body (what middleware such as a CORS layer uses for the
    /// responses it makes itself).
    fn default() -> Self {
        Self::rejection(Bytes::new())
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn rejection_body_yields_its_bytes_once() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::rejection(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }

    #[tokio::test]
    async fn empty_rejection_is_at_end() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::rejection(Bytes::new());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }
}
