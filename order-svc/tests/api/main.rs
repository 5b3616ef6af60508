//! Black-box tests of the order service. Each test starts a real user
//! service and a real order service on loopback ports with fresh SQLite
//! files, and drives them only through tonic clients.

mod concurrency;
mod create;
mod health_metrics;
mod helpers;
mod lifecycle;
mod listing;
mod payments;
