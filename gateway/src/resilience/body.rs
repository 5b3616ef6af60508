//! The response body of a backend call, watched for a response that
//! breaks off or stalls past the call's deadline.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;
use tower::BoxError;

use super::Policy;
use super::breaker::Permit;

/// The breaker permit of a call whose status comes in the trailers, handed
/// from the attempt to the body through the response's extensions, which
/// take only values that can be cloned, with the attempt's deadline.
#[derive(Clone)]
pub(super) struct PendingPermit {
    permit: Arc<Mutex<Option<Permit>>>,
    pub deadline: Instant,
    /// Whether the request's budget left the call less than half its
    /// timeout, so that a timeout does not count against the breaker.
    pub budget_bound: bool,
}

impl PendingPermit {
    pub fn new(permit: Permit, deadline: Instant, budget_bound: bool) -> Self {
        Self {
            permit: Arc::new(Mutex::new(Some(permit))),
            deadline,
            budget_bound,
        }
    }

    pub fn take(&self) -> Option<Permit> {
        self.permit.lock().ok()?.take()
    }
}

/// Passes a response body through, except that a read error, or an end
/// without a `grpc-status` in the headers or trailers, becomes one
/// UNAVAILABLE error. Both happen when the backend or its connection dies
/// after the response headers. A body still incomplete at the attempt's
/// deadline ends with DEADLINE_EXCEEDED.
pub(super) struct Watched<B> {
    pub inner: B,
    pub policy: Arc<Policy>,
    /// Whether a status arrived, or the broken response was reported.
    pub status_seen: bool,
    /// Reported once the status arrives or the response breaks off.
    pub permit: Option<Permit>,
    /// The attempt's deadline, when the status is still to come.
    pub deadline: Option<Instant>,
    /// See [`PendingPermit::budget_bound`].
    pub budget_bound: bool,
    /// The timer of `deadline`, started only when a read has to wait,
    /// because a unary response usually arrives whole with its headers.
    pub timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Watched<B> {
    /// Returns true once the deadline has passed while the body waits.
    fn deadline_passed(&mut self, context: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(context).is_ready()
    }
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
        let polled = match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(polled) => polled,
            Poll::Pending if !this.status_seen && this.deadline_passed(context) => {
                this.status_seen = true;
                let code = Some(tonic::Code::DeadlineExceeded);
                Policy::settle(this.permit.take(), code, this.budget_bound);
                return Poll::Ready(Some(Err(super::deadline_error())));
            }
            Poll::Pending => return Poll::Pending,
        };
        let error: BoxError = match polled {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(super::grpc_status) {
                    this.status_seen = true;
                    Policy::settle(this.permit.take(), Some(code), this.budget_bound);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            None if this.status_seen => return Poll::Ready(None),
            Some(Err(error)) => error.into(),
            None => "the response ended without a gRPC status".into(),
        };
        this.status_seen = true;
        Policy::settle(this.permit.take(), None, this.budget_bound);
        Poll::Ready(Some(Err(this.policy.broken_response(&error))))
    }

    fn is_end_stream(&self) -> bool {
        self.status_seen && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
