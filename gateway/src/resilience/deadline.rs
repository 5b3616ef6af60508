//! The total time budget of one HTTP request, carried in a task-local so
//! that every backend call made for the request, including those of
//! DataLoader batches on spawned tasks, sends the time left as its gRPC
//! deadline.

use std::future::Future;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Returns the deadline of the request being served, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `future` with `deadline`, or without one when it is `None`.
pub async fn scope<F: Future>(deadline: Option<Instant>, future: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, future).await,
        None => future.await,
    }
}

/// Middleware that gives each request `budget` from its arrival.
///
/// A request still in progress a second after its budget, most often one
/// whose client sends its body slowly or never finishes it, gets 408 and
/// its connection is closed. The second lets a backend call that ran out of
/// time answer 504 first.
pub async fn limit<F>(
    budget: Duration,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let deadline = Instant::now() + budget;
    let served = DEADLINE.scope(deadline, next(request));
    match tokio::time::timeout_at(deadline + OVERRUN_GRACE, served).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = crate::error::ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "the request did not complete within its time budget (REQUEST_TIMEOUT_MS); send the whole body at once",
            )
            .into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// Time past the budget before a request is given up with 408.
const OVERRUN_GRACE: Duration = Duration::from_secs(1);
