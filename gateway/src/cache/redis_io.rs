//! A thread of its own for the Redis connections of the cache: the reads
//! and writes, and the near cache's invalidation connection.
//!
//! Under overload, a Redis connection driven by the main runtime reads
//! replies late (see `lintas_telemetry::io_thread`), so reads time out and
//! the cache's circuit breaker sends every request to the user service,
//! which makes the overload worse.

use std::future::Future;
use std::sync::LazyLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::store::StoreError;

/// The runtime of the Redis I/O thread, started on first use and kept for
/// the life of the process.
static RUNTIME: LazyLock<Handle> = LazyLock::new(|| {
    lintas_telemetry::io_thread::start("redis-io").expect("the Redis I/O thread starts")
});

/// Starts `task` on the Redis I/O thread.
pub(crate) fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    RUNTIME.spawn(task)
}

/// Runs `command` on the Redis I/O thread and returns its result. When the
/// caller stops waiting, the command still runs to its end.
pub(crate) async fn run<F, T>(command: F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, redis::RedisError>> + Send + 'static,
    T: Send + 'static,
{
    match RUNTIME.spawn(command).await {
        Ok(result) => Ok(result?),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(StoreError::IoThread(error.to_string())),
    }
}
