//! Demo data for the quickstart, written through the services' own gRPC
//! APIs so it passes the same validation as any client's data.

use std::time::Duration;

use anyhow::Context;
use lintas_proto::order::v1 as order_pb;
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::user::v1 as user_pb;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use tonic::transport::Channel;

const USERS: &[(&str, &str)] = &[
    ("Siti Rahayu", "siti@example.com"),
    ("Budi Santoso", "budi@example.com"),
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Linus Torvalds", "linus@example.com"),
];

/// Creates demo users and orders when the user service has no users.
pub async fn load_if_empty(user_url: &str, order_url: &str) -> anyhow::Result<()> {
    let mut users = UserServiceClient::new(channel(user_url).await?);
    let mut orders = OrderServiceClient::new(channel(order_url).await?);

    let existing = users
        .list_users(user_pb::ListUsersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .context("failed to list users")?;
    if !existing.into_inner().users.is_empty() {
        return Ok(());
    }

    let mut ids = Vec::new();
    for (name, email) in USERS {
        let created = users
            .create_user(user_pb::CreateUserRequest {
                name: (*name).to_owned(),
                email: (*email).to_owned(),
                status: 0,
                idempotency_key: String::new(),
            })
            .await
            .with_context(|| format!("failed to create demo user {email}"))?;
        ids.push(created.into_inner().user.unwrap_or_default().id);
    }

    // Orders in every status, so that each query and metric shows something.
    let plans: &[(usize, &str, &str, i64, &[order_pb::OrderStatus])] = &[
        (
            0,
            "IDR",
            "KOPI-250G",
            85_000,
            &[
                order_pb::OrderStatus::Paid,
                order_pb::OrderStatus::Shipped,
                order_pb::OrderStatus::Delivered,
            ],
        ),
        (0, "IDR", "TEH-100G", 30_000, &[]),
        (
            1,
            "IDR",
            "SAMBAL-1KG",
            120_000,
            &[order_pb::OrderStatus::Paid, order_pb::OrderStatus::Shipped],
        ),
        (
            2,
            "USD",
            "BOOK-ANALYTICAL-ENGINE",
            2_999,
            &[order_pb::OrderStatus::Paid],
        ),
        (
            3,
            "USD",
            "COBOL-MANUAL",
            4_500,
            &[
                order_pb::OrderStatus::Paid,
                order_pb::OrderStatus::Cancelled,
            ],
        ),
        (
            4,
            "EUR",
            "KEYBOARD",
            12_900,
            &[order_pb::OrderStatus::Cancelled],
        ),
    ];
    for (user_index, currency, sku, unit_price, steps) in plans {
        let order = orders
            .create_order(order_pb::CreateOrderRequest {
                user_id: ids[*user_index].clone(),
                items: vec![order_pb::OrderItem {
                    sku: (*sku).to_owned(),
                    quantity: 2,
                    unit_price: *unit_price,
                }],
                currency: (*currency).to_owned(),
                shipping_address: Some(order_pb::Address {
                    recipient: USERS[*user_index].0.to_owned(),
                    line1: "Jl. Merdeka 17".to_owned(),
                    city: "Jakarta".to_owned(),
                    postal_code: "10110".to_owned(),
                    country: "ID".to_owned(),
                    ..Default::default()
                }),
                idempotency_key: String::new(),
            })
            .await
            .with_context(|| format!("failed to create demo order {sku}"))?
            .into_inner()
            .order
            .unwrap_or_default();
        for step in *steps {
            advance(&mut orders, &order, *step).await?;
        }
    }
    tracing::info!(
        users = USERS.len(),
        orders = plans.len(),
        "demo data loaded"
    );
    Ok(())
}

/// Returns the id of the user created first, if any: with demo data, the
/// first demo user.
pub async fn oldest_user(user_url: &str) -> anyhow::Result<Option<String>> {
    let mut users = UserServiceClient::new(channel(user_url).await?);
    let response = users
        .list_users(user_pb::ListUsersRequest {
            page_size: 1,
            order_by: Some(user_pb::UserOrderBy {
                field: user_pb::UserOrderField::CreatedAt as i32,
                direction: lintas_proto::common::v1::SortDirection::Asc as i32,
            }),
            ..Default::default()
        })
        .await
        .context("failed to list users")?;
    Ok(response
        .into_inner()
        .users
        .into_iter()
        .next()
        .map(|user| user.id))
}

async fn advance(
    orders: &mut OrderServiceClient<Channel>,
    order: &order_pb::Order,
    step: order_pb::OrderStatus,
) -> anyhow::Result<()> {
    match step {
        order_pb::OrderStatus::Paid => {
            orders
                .process_payment(order_pb::ProcessPaymentRequest {
                    order_id: order.id.clone(),
                    amount: order.total,
                    currency: order.currency.clone(),
                    method: order_pb::PaymentMethod::Card as i32,
                    payment_token: "tok_demo".to_owned(),
                    idempotency_key: String::new(),
                })
                .await
                .context("failed to pay demo order")?;
        }
        order_pb::OrderStatus::Cancelled => {
            orders
                .cancel_order(order_pb::CancelOrderRequest {
                    id: order.id.clone(),
                    reason: "changed my mind".to_owned(),
                })
                .await
                .context("failed to cancel demo order")?;
        }
        status => {
            orders
                .update_order_status(order_pb::UpdateOrderStatusRequest {
                    id: order.id.clone(),
                    status: status as i32,
                })
                .await
                .context("failed to advance demo order")?;
        }
    }
    Ok(())
}

/// Connects to a service that was just started, retrying for up to five
/// seconds while it binds its handlers.
async fn channel(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(url.to_owned())?.timeout(Duration::from_secs(5));
    let mut attempts = 0;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(error) if attempts < 50 => {
                attempts += 1;
                tracing::debug!(%error, attempts, "service not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("failed to connect to {url}")),
        }
    }
}
