//! Runtimes on threads of their own, for background I/O that must keep
//! moving while the main runtime is overloaded.
//!
//! A task on the main runtime waits its turn behind every runnable request
//! task. Under overload that wait reaches hundreds of milliseconds: the
//! benchmark at 1,000 connections had a median latency of 166 to 248 ms.
//! A connection driven there reads replies late, so span exports fall
//! behind until spans are dropped, and cache reads time out. A one-thread runtime
//! gets its own share of the CPU from the operating system instead.

use tokio::runtime::{Builder, Handle};

/// Starts a one-thread Tokio runtime on a thread named `name`, which runs
/// for the life of the process, and returns its handle.
pub fn start(name: &str) -> std::io::Result<Handle> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .thread_name(name)
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_runs_tasks_without_a_caller_runtime() {
        let handle = super::start("io-thread-test").unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        handle.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            sender
                .send(std::thread::current().name().map(str::to_owned))
                .unwrap();
        });
        let name = receiver
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(name.as_deref(), Some("io-thread-test"));
    }
}
