//! Helpers shared by the fuzz targets in `fuzz_targets/`.

/// Stack size of a tokio worker thread (tokio 1.x's default), on which the
/// gateway handles every request.
pub const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

/// Runs `work` on a new thread with a tokio worker's stack, so that
/// recursion that would overflow the gateway's stack overflows here too,
/// instead of fitting in the larger stack of the fuzzer's main thread.
pub fn on_worker_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(WORKER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .expect("the fuzzer can start a thread");
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
