//! The end-to-end suite's parts: starting the platform on loopback
//! (`platform`), HTTP and gRPC clients (`client`), the checks by category
//! (`checks`) and the progress report (`report`). The `lintas-e2e` binary
//! runs them, and the benchmark driver reuses the platform parts.

pub mod checks;
pub mod client;
pub mod platform;
pub mod report;

/// Values that one category produces and later ones use.
pub struct Shared {
    /// Unique to the run; names and emails carry it.
    pub tag: String,
    /// A user created by the flows: id and name.
    pub user: Option<(String, String)>,
}
