//! The data set: users and orders created through the services' gRPC APIs,
//! as clients would create them, with a few concurrent callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use lintas_e2e::client::{order_client, user_client};
use lintas_proto::order::v1::{Address, CreateOrderRequest, OrderItem};
use lintas_proto::user::v1::CreateUserRequest;
use rand::Rng;
use tokio::task::JoinSet;

/// Concurrent callers while seeding.
const WORKERS: usize = 32;

/// Creates `count` users and returns their ids.
pub async fn users(address: &str, count: usize, tag: &str) -> anyhow::Result<Vec<String>> {
    let client = user_client(address)?;
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Progress::new("users", count);
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let mut client = client.clone();
        let next = next.clone();
        let progress = progress.clone();
        let tag = tag.to_owned();
        workers.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(ids);
                }
                let reply = client
                    .create_user(CreateUserRequest {
                        name: format!("Bench User {index:05}"),
                        email: format!("bench.{tag}.{index}@example.com"),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("failed to create user {index}"))?;
                ids.push(reply.into_inner().user.context("no user in reply")?.id);
                progress.advance();
            }
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(result) = workers.join_next().await {
        ids.extend(result??);
    }
    progress.finish();
    Ok(ids)
}

/// Creates `count` orders, each for a user picked at random from `users`.
pub async fn orders(address: &str, users: &[String], count: usize) -> anyhow::Result<()> {
    let client = order_client(address)?;
    let users: Arc<[String]> = users.into();
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Progress::new("orders", count);
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let mut client = client.clone();
        let next = next.clone();
        let progress = progress.clone();
        let users = users.clone();
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(());
                }
                let user_id = users[rand::rng().random_range(0..users.len())].clone();
                client
                    .create_order(order_request(user_id, index))
                    .await
                    .with_context(|| format!("failed to create order {index}"))?;
                progress.advance();
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    progress.finish();
    Ok(())
}

fn order_request(user_id: String, index: usize) -> CreateOrderRequest {
    let items = (0..1 + index % 3)
        .map(|item| OrderItem {
            sku: format!("SKU-{:04}", (index + item) % 500),
            quantity: 1 + (index % 4) as i32,
            unit_price: 10_000 + ((index * 7 + item) % 90) as i64 * 1_000,
        })
        .collect();
    CreateOrderRequest {
        user_id,
        items,
        currency: "IDR".to_owned(),
        shipping_address: Some(Address {
            recipient: "Bench User".to_owned(),
            line1: "Jl. Merdeka 17".to_owned(),
            city: "Jakarta".to_owned(),
            postal_code: "10110".to_owned(),
            country: "ID".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Progress of seeding, printed at most once a second.
#[derive(Clone)]
struct Progress {
    label: &'static str,
    total: usize,
    done: Arc<AtomicUsize>,
    started: Instant,
    last_print: Arc<std::sync::Mutex<Instant>>,
}

impl Progress {
    fn new(label: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Self {
            label,
            total,
            done: Arc::new(AtomicUsize::new(0)),
            started: now,
            last_print: Arc::new(std::sync::Mutex::new(now)),
        }
    }

    fn advance(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_print.lock().expect("progress lock");
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            println!("    {} {done}/{}", self.label, self.total);
        }
    }

    fn finish(&self) {
        let seconds = self.started.elapsed().as_secs_f64();
        println!(
            "    {} {} created in {seconds:.1} s ({:.0}/s)",
            self.total,
            self.label,
            self.total as f64 / seconds.max(0.001)
        );
    }
}
