//! Black-box tests of the order service. Each test starts a real user
//! service and a real order service on loopback ports, each with a fresh
//! database on the backend that `LINTAS_TEST_BACKEND` selects (SQLite by
//! default, or PostgreSQL), and drives them only through tonic clients.

mod concurrency;
mod create;
mod health_metrics;
mod helpers;
mod idempotency;
mod lifecycle;
mod listing;
mod payments;
