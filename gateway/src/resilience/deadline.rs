//! The total time budget of one HTTP request, carried in a task-local so
//! that every backend call made for the request, including those of
//! DataLoader batches on spawned tasks, sends the time left as its gRPC
//! deadline.

use std::future::Future;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
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
pub async fn limit(State(budget): State<Duration>, request: Request, next: Next) -> Response {
    let deadline = Instant::now() + budget;
    DEADLINE.scope(deadline, next.run(request)).await
}
