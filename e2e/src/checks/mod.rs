//! The check categories, in the order the suite runs them. The last two
//! stop and start components, so they run after everything that needs the
//! whole platform.

pub mod alerting;
pub mod auth;
pub mod browser;
pub mod cache;
pub mod connectivity;
pub mod failure;
pub mod flows;
pub mod observability;
pub mod readme;
