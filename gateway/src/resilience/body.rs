//! The response body of a backend call, watched for a response that
//! breaks off.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tower::BoxError;

use super::Policy;
use super::breaker::Permit;

/// The breaker permit of a call whose status comes in the trailers, handed
/// from the attempt to the body through the response's extensions, which
/// take only values that can be cloned.
#[derive(Clone)]
pub(super) struct PendingPermit(Arc<Mutex<Option<Permit>>>);

impl PendingPermit {
    pub fn new(permit: Permit) -> Self {
        Self(Arc::new(Mutex::new(Some(permit))))
    }

    pub fn take(self) -> Option<Permit> {
        self.0.lock().ok()?.take()
    }
}

/// Passes a response body through, except that a read error, or an end
/// without a `grpc-status` in the headers or trailers, becomes one
/// UNAVAILABLE error. Both happen when the backend or its connection dies
/// after the response headers.
pub(super) struct Watched<B> {
    pub inner: B,
    pub policy: Arc<Policy>,
    /// Whether a status arrived, or the broken response was reported.
    pub status_seen: bool,
    /// Reported once the status arrives or the response breaks off.
    pub permit: Option<Permit>,
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(context));
        let error: BoxError = match polled {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(super::grpc_status) {
                    this.status_seen = true;
                    Policy::settle(this.permit.take(), Some(code));
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            None if this.status_seen => return Poll::Ready(None),
            Some(Err(error)) => error.into(),
            None => "the response ended without a gRPC status".into(),
        };
        this.status_seen = true;
        Policy::settle(this.permit.take(), None);
        Poll::Ready(Some(Err(this.policy.broken_response(&error))))
    }

    fn is_end_stream(&self) -> bool {
        self.status_seen && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
