//! Rebuilds the crate when a migration file changes, because
//! `sqlx::migrate!` embeds the migrations at compile time and cargo does not
//! otherwise watch those folders.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
