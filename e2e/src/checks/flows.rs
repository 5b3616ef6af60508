//! Business flows through REST and through GraphQL, and the business
//! numbers that the RPC, REST, GraphQL and Prometheus views report
//! afterwards.
//!
//! An admin token creates the users, changes order statuses and reads the
//! lists and numbers. Each user places, pays and cancels their own orders
//! with their own token, as a customer of the platform would.
//!
//! Names and emails carry a tag unique to the run, so that listing filters
//! see only this category's users. The business numbers are compared as
//! differences between a snapshot before the flows and one after. The
//! differences are exact because the categories run one after another.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Shared;
use crate::client::{Gateway, metric_value, order_client, user_client};
use crate::platform::Platform;
use crate::report::Category;

/// Business numbers of one view, with every count as a plain integer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Numbers {
    total_users: i64,
    users_by_status: BTreeMap<String, i64>,
    total_orders: i64,
    orders_by_status: BTreeMap<String, i64>,
    revenue_by_currency: BTreeMap<String, i64>,
    payments_succeeded: i64,
    payments_failed: i64,
}

/// The order service's Prometheus counters that the flows move.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    orders_created: f64,
    payments_succeeded: f64,
    payments_failed: f64,
}

pub async fn run(
    category: &mut Category,
    platform: &Platform,
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let gateway = platform.admin();
    let tag = &shared.tag;

    let before = category
        .step(
            "business numbers before the flows: RPC, REST and GraphQL agree",
            async { agreeing_numbers(platform, &gateway).await },
        )
        .await?;
    let counters_before = order_counters(platform).await?;

    // REST: users.
    let ayu = category
        .step(
            "REST: create a user, 201 with Location and version 1",
            async {
                create_user_rest(
                    &gateway,
                    &format!("Ayu {tag}"),
                    &format!("ayu.{tag}@example.com"),
                )
                .await
            },
        )
        .await?;
    let budi = create_user_rest(
        &gateway,
        &format!("Budi {tag}"),
        &format!("budi.{tag}@example.com"),
    )
    .await?;
    shared.user = Some((ayu.clone(), format!("Ayu {tag}")));
    let ayu_client = platform.user(&ayu)?;
    let budi_client = platform.user(&budi)?;

    category
        .step(
            "REST: a second user with the same email is rejected, 409 ALREADY_EXISTS",
            async {
                let body = json!({ "name": "Other", "email": format!("ayu.{tag}@example.com") });
                gateway
                    .post("/api/v1/users", &body)
                    .await?
                    .expect_problem(StatusCode::CONFLICT, "ALREADY_EXISTS")
            },
        )
        .await
        .ok();

    category
        .step(
            "REST: an invalid email is rejected, 400 INVALID_ARGUMENT naming the field",
            async {
                let reply = gateway
                    .post(
                        "/api/v1/users",
                        &json!({ "name": "Bad", "email": "not-an-address" }),
                    )
                    .await?;
                reply.expect_problem(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")?;
                let detail = reply.body["detail"].as_str().unwrap_or_default();
                ensure!(
                    detail.contains("email"),
                    "the detail does not name the field: {detail:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "REST: list users filtered by name, ordered by name both ways, in pages of 1",
            async {
                let path = format!("/api/v1/users?name_contains={tag}&order_by=name&direction=ASC");
                let names = user_names(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(
                    names == [format!("Ayu {tag}"), format!("Budi {tag}")],
                    "ascending: {names:?}"
                );

                let path =
                    format!("/api/v1/users?name_contains={tag}&order_by=name&direction=DESC");
                let names = user_names(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(
                    names == [format!("Budi {tag}"), format!("Ayu {tag}")],
                    "descending: {names:?}"
                );

                let path = format!("/api/v1/users?name_contains={tag}&order_by=name&page_size=1");
                let reply = gateway.get(&path).await?;
                let first = reply.expect(StatusCode::OK)?;
                let token = first["next_page_token"].as_str().unwrap_or_default();
                ensure!(
                    !token.is_empty(),
                    "the first page of 1 has no next_page_token: {first}"
                );
                let path = format!("{path}&page_token={token}");
                let second = user_names(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(second == [format!("Budi {tag}")], "second page: {second:?}");
                Ok(())
            },
        )
        .await
        .ok();

    // REST: an order through its whole life.
    let first_order = category
        .step(
            "REST: a user places an order with their own token, 201 PENDING with the computed total",
            async {
                let order = place_order_rest(
                    &ayu_client,
                    &ayu,
                    "IDR",
                    json!([
                        { "sku": "KOPI-250G", "quantity": 2, "unit_price": 85000 },
                        { "sku": "TEH-100G", "quantity": 1, "unit_price": "30000" }
                    ]),
                )
                .await?;
                ensure!(order["status"] == "PENDING", "{order}");
                ensure!(
                    order["total"] == "200000",
                    "total is {}, expected \"200000\"",
                    order["total"]
                );
                id_of(&order)
            },
        )
        .await?;

    category
        .step(
            "REST: the user pays it, order PAID and payment SUCCEEDED",
            async {
                let result =
                    pay_rest(&ayu_client, &first_order, "200000", "IDR", "tok_test").await?;
                ensure!(result["order"]["status"] == "PAID", "{result}");
                ensure!(result["payment"]["status"] == "SUCCEEDED", "{result}");
                Ok(())
            },
        )
        .await?;

    category
        .step("REST: an admin ships it, then delivers it", async {
            for status in ["SHIPPED", "DELIVERED"] {
                let order = change_status_rest(&gateway, &first_order, status)
                    .await?
                    .expect(StatusCode::OK)?
                    .clone();
                ensure!(order["status"] == status, "{order}");
            }
            Ok(())
        })
        .await?;

    category
        .step(
            "REST: a delivered order cannot be cancelled or shipped again, 409, unchanged",
            async {
                let before = gateway
                    .get(&format!("/api/v1/orders/{first_order}"))
                    .await?
                    .expect(StatusCode::OK)?
                    .clone();
                ayu_client
                    .post(&format!("/api/v1/orders/{first_order}/cancel"), &json!({}))
                    .await?
                    .expect_problem(StatusCode::CONFLICT, "FAILED_PRECONDITION")?;
                change_status_rest(&gateway, &first_order, "SHIPPED")
                    .await?
                    .expect_problem(StatusCode::CONFLICT, "FAILED_PRECONDITION")?;
                let after = gateway
                    .get(&format!("/api/v1/orders/{first_order}"))
                    .await?
                    .expect(StatusCode::OK)?
                    .clone();
                ensure!(after["status"] == "DELIVERED", "{after}");
                ensure!(
                    after["version"] == before["version"],
                    "version moved: {} -> {}",
                    before["version"],
                    after["version"]
                );
                Ok(())
            },
        )
        .await
        .ok();

    // REST: a second order that is declined, paid, then cancelled.
    let second_order = category
        .step("REST: a PENDING order cannot be shipped, 409", async {
            let order = place_order_rest(
                &budi_client,
                &budi,
                "IDR",
                json!([{ "sku": "GULA-1KG", "quantity": 3, "unit_price": 18000 }]),
            )
            .await?;
            let id = id_of(&order)?;
            change_status_rest(&gateway, &id, "SHIPPED")
                .await?
                .expect_problem(StatusCode::CONFLICT, "FAILED_PRECONDITION")?;
            Ok(id)
        })
        .await?;

    category
        .step("REST: a payment of the wrong amount is rejected, 400 INVALID_ARGUMENT", async {
            let body = json!({ "amount": "1", "currency": "IDR", "method": "CARD", "payment_token": "tok_test" });
            budi_client
                .post(&format!("/api/v1/orders/{second_order}/payments"), &body)
                .await?
                .expect_problem(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
        })
        .await
        .ok();

    category
        .step(
            "REST: a declined card is recorded as FAILED and the order stays PENDING",
            async {
                let result = pay_rest(
                    &budi_client,
                    &second_order,
                    "54000",
                    "IDR",
                    "tok_decline_insufficient_funds",
                )
                .await?;
                ensure!(result["payment"]["status"] == "FAILED", "{result}");
                ensure!(result["order"]["status"] == "PENDING", "{result}");
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "REST: cancel a paid order, CANCELLED, refunded, payment REFUNDED",
            async {
                let result =
                    pay_rest(&budi_client, &second_order, "54000", "IDR", "tok_test").await?;
                ensure!(result["order"]["status"] == "PAID", "{result}");
                let reply = budi_client
                    .post(
                        &format!("/api/v1/orders/{second_order}/cancel"),
                        &json!({ "reason": "changed my mind" }),
                    )
                    .await?;
                let order = reply.expect(StatusCode::OK)?;
                ensure!(order["status"] == "CANCELLED", "{order}");
                ensure!(order["refunded"] == true, "{order}");
                ensure!(order["cancel_reason"] == "changed my mind", "{order}");
                let statuses: Vec<&str> = order["payments"]
                    .as_array()
                    .context("no payments")?
                    .iter()
                    .filter_map(|payment| payment["status"].as_str())
                    .collect();
                ensure!(
                    statuses.contains(&"REFUNDED"),
                    "payment statuses {statuses:?}"
                );
                ensure!(
                    !statuses.contains(&"SUCCEEDED"),
                    "payment statuses {statuses:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step("REST: a cancelled order cannot be paid, 409", async {
            let body = json!({ "amount": "54000", "currency": "IDR", "method": "CARD", "payment_token": "tok_test" });
            budi_client
                .post(&format!("/api/v1/orders/{second_order}/payments"), &body)
                .await?
                .expect_problem(StatusCode::CONFLICT, "FAILED_PRECONDITION")
        })
        .await
        .ok();

    category
        .step(
            "REST: order filters by user, status and minimum total; a user's orders",
            async {
                let path = format!("/api/v1/orders?user_id={ayu}");
                let ids = order_ids(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(ids == [first_order.clone()], "orders of Ayu: {ids:?}");

                let path = format!("/api/v1/orders?user_id={budi}&status=CANCELLED");
                let ids = order_ids(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(
                    ids == [second_order.clone()],
                    "cancelled orders of Budi: {ids:?}"
                );

                let path = format!("/api/v1/orders?user_id={budi}&status=PAID");
                let ids = order_ids(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(ids.is_empty(), "paid orders of Budi: {ids:?}");

                let path = format!("/api/v1/orders?user_id={ayu}&min_total=200001");
                let ids = order_ids(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(ids.is_empty(), "orders of Ayu above 200000: {ids:?}");

                let path = format!("/api/v1/users/{ayu}/orders");
                let ids = order_ids(gateway.get(&path).await?.expect(StatusCode::OK)?);
                ensure!(
                    ids == [first_order.clone()],
                    "GET /users/{{id}}/orders: {ids:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    // GraphQL: the same life cycle in another currency.
    let citra = category
        .step("GraphQL: createUser, then users filtered and ordered by name", async {
            let data = gateway
                .graphql(
                    "mutation ($input: CreateUserInput!) { createUser(input: $input) { id name status version } }",
                    json!({ "input": { "name": format!("Citra {tag}"), "email": format!("citra.{tag}@example.com") } }),
                )
                .await?;
            let user = &data["createUser"];
            ensure!(user["status"] == "ACTIVE", "{user}");
            ensure!(user["version"] == "1", "{user}");
            let data = gateway
                .graphql(
                    "query ($tag: String!) { users(filter: {nameContains: $tag}, orderBy: {field: NAME, direction: ASC}) { nodes { name } pageInfo { hasNextPage } } }",
                    json!({ "tag": tag }),
                )
                .await?;
            let names: Vec<&str> = data["users"]["nodes"]
                .as_array()
                .context("no nodes")?
                .iter()
                .filter_map(|node| node["name"].as_str())
                .collect();
            let expected = [format!("Ayu {tag}"), format!("Budi {tag}"), format!("Citra {tag}")];
            ensure!(names == expected, "names {names:?}, expected {expected:?}");
            ensure!(data["users"]["pageInfo"]["hasNextPage"] == false, "{data}");
            id_of(user)
        })
        .await?;
    let citra_client = platform.user(&citra)?;

    let third_order = category
        .step("GraphQL: the user's createOrder and processPayment, then SHIPPED, DELIVERED by an admin", async {
            let data = citra_client
                .graphql(
                    "mutation ($input: CreateOrderInput!) { createOrder(input: $input) { id status total } }",
                    json!({ "input": {
                        "userId": citra, "currency": "USD",
                        "items": [
                            { "sku": "BOOK-1", "quantity": 1, "unitPrice": "2999" },
                            { "sku": "PEN-BLUE", "quantity": 3, "unitPrice": "150" }
                        ],
                        "shippingAddress": { "recipient": "Citra", "line1": "1 Main St", "city": "Austin", "postalCode": "78701", "country": "US" }
                    } }),
                )
                .await?;
            let order = &data["createOrder"];
            ensure!(order["status"] == "PENDING", "{order}");
            ensure!(order["total"] == "3449", "total {}, expected \"3449\"", order["total"]);
            let id = id_of(order)?;

            let data = citra_client
                .graphql(
                    "mutation ($id: ID!) { processPayment(orderId: $id, input: {amount: \"3449\", currency: \"USD\", method: CARD, paymentToken: \"tok_test\"}) { order { status } payment { status } } }",
                    json!({ "id": id }),
                )
                .await?;
            ensure!(data["processPayment"]["order"]["status"] == "PAID", "{data}");
            ensure!(data["processPayment"]["payment"]["status"] == "SUCCEEDED", "{data}");

            for status in ["SHIPPED", "DELIVERED"] {
                let data = gateway
                    .graphql(
                        "mutation ($id: ID!, $status: OrderStatus!) { updateOrderStatus(id: $id, status: $status) { status } }",
                        json!({ "id": id, "status": status }),
                    )
                    .await?;
                ensure!(data["updateOrderStatus"]["status"] == status, "{data}");
            }
            Ok(id)
        })
        .await?;

    category
        .step(
            "GraphQL: cancelOrder on a delivered order fails with FAILED_PRECONDITION",
            async {
                let code = citra_client
                    .graphql_error_code(
                        "mutation ($id: ID!) { cancelOrder(id: $id) { status } }",
                        json!({ "id": third_order }),
                    )
                    .await?;
                ensure!(code == "FAILED_PRECONDITION", "extensions.code is {code}");
                Ok(())
            },
        )
        .await
        .ok();

    let fourth_order = category
        .step("GraphQL: cancelOrder on an unpaid order, CANCELLED and not refunded", async {
            let data = citra_client
                .graphql(
                    "mutation ($input: CreateOrderInput!) { createOrder(input: $input) { id } }",
                    json!({ "input": {
                        "userId": citra, "currency": "USD",
                        "items": [{ "sku": "MUG", "quantity": 1, "unitPrice": "1000" }],
                        "shippingAddress": { "recipient": "Citra", "line1": "1 Main St", "city": "Austin", "postalCode": "78701", "country": "US" }
                    } }),
                )
                .await?;
            let id = id_of(&data["createOrder"])?;
            let data = citra_client
                .graphql(
                    "mutation ($id: ID!) { cancelOrder(id: $id, reason: \"duplicate\") { status refunded cancelReason } }",
                    json!({ "id": id }),
                )
                .await?;
            let order = &data["cancelOrder"];
            ensure!(order["status"] == "CANCELLED", "{order}");
            ensure!(order["refunded"] == false, "{order}");
            ensure!(order["cancelReason"] == "duplicate", "{order}");
            Ok(id)
        })
        .await
        .ok();

    category
        .step("GraphQL: the user reads their own record with nested orders, and their orders by status", async {
            let data = citra_client
                .graphql(
                    "query ($id: ID!) { user(id: $id) { name orders { id status total user { email } } } }",
                    json!({ "id": citra }),
                )
                .await?;
            let orders = data["user"]["orders"].as_array().context("no orders")?;
            let mut statuses: Vec<&str> = orders.iter().filter_map(|order| order["status"].as_str()).collect();
            statuses.sort_unstable();
            let expected: &[&str] = if fourth_order.is_some() { &["CANCELLED", "DELIVERED"] } else { &["DELIVERED"] };
            ensure!(statuses == expected, "statuses {statuses:?}, expected {expected:?}");
            ensure!(
                orders.iter().all(|order| order["user"]["email"] == format!("citra.{tag}@example.com")),
                "Order.user is not Citra: {data}"
            );
            let data = citra_client
                .graphql(
                    "query ($id: ID!) { orders(filter: {userId: $id, status: DELIVERED}) { nodes { id } } }",
                    json!({ "id": citra }),
                )
                .await?;
            let ids: Vec<&str> = data["orders"]["nodes"]
                .as_array()
                .context("no nodes")?
                .iter()
                .filter_map(|node| node["id"].as_str())
                .collect();
            ensure!(ids == [third_order.as_str()], "delivered orders of Citra: {ids:?}");
            Ok(())
        })
        .await
        .ok();

    // The business numbers.
    category
        .step(
            "business numbers after the flows: RPC, REST and GraphQL agree with the flows",
            async {
                let after = agreeing_numbers(platform, &gateway).await?;
                let mut expected = before.clone();
                expected.total_users += 3;
                *expected.users_by_status.entry("ACTIVE".into()).or_default() += 3;
                expected.total_orders += 4;
                *expected
                    .orders_by_status
                    .entry("DELIVERED".into())
                    .or_default() += 2;
                *expected
                    .orders_by_status
                    .entry("CANCELLED".into())
                    .or_default() += 2;
                *expected
                    .revenue_by_currency
                    .entry("IDR".into())
                    .or_default() += 200_000;
                *expected
                    .revenue_by_currency
                    .entry("USD".into())
                    .or_default() += 3449;
                // A refunded payment still counts as succeeded.
                expected.payments_succeeded += 3;
                expected.payments_failed += 1;
                ensure!(
                    after == expected,
                    "after the flows:\n  {after:?}\nexpected:\n  {expected:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step("order-svc Prometheus counters: 4 orders created, 3 payments succeeded, 1 failed", async {
            let after = order_counters(platform).await?;
            let created = after.orders_created - counters_before.orders_created;
            let succeeded = after.payments_succeeded - counters_before.payments_succeeded;
            let failed = after.payments_failed - counters_before.payments_failed;
            ensure!(
                (created, succeeded, failed) == (4.0, 3.0, 1.0),
                "orders_created_total +{created}, payments_total{{status=\"succeeded\"}} +{succeeded}, {{status=\"failed\"}} +{failed}"
            );
            Ok(())
        })
        .await
        .ok();

    Ok(())
}

async fn create_user_rest(gateway: &Gateway, name: &str, email: &str) -> anyhow::Result<String> {
    let reply = gateway
        .post("/api/v1/users", &json!({ "name": name, "email": email }))
        .await?;
    let user = reply.expect(StatusCode::CREATED)?;
    let id = id_of(user)?;
    let location = reply.header("location").unwrap_or_default();
    ensure!(
        location == format!("/api/v1/users/{id}"),
        "Location is {location:?}"
    );
    ensure!(user["version"] == "1", "version is {}", user["version"]);
    ensure!(user["status"] == "ACTIVE", "status is {}", user["status"]);
    Ok(id)
}

async fn place_order_rest(
    gateway: &Gateway,
    user_id: &str,
    currency: &str,
    items: Value,
) -> anyhow::Result<Value> {
    let body = json!({
        "user_id": user_id, "currency": currency, "items": items,
        "shipping_address": { "recipient": "Penerima", "line1": "Jl. Merdeka 17", "city": "Jakarta", "postal_code": "10110", "country": "ID" }
    });
    let reply = gateway.post("/api/v1/orders", &body).await?;
    let order = reply.expect(StatusCode::CREATED)?.clone();
    let location = reply.header("location").unwrap_or_default();
    ensure!(
        location == format!("/api/v1/orders/{}", id_of(&order)?),
        "Location is {location:?}"
    );
    Ok(order)
}

async fn pay_rest(
    gateway: &Gateway,
    order_id: &str,
    amount: &str,
    currency: &str,
    token: &str,
) -> anyhow::Result<Value> {
    let body =
        json!({ "amount": amount, "currency": currency, "method": "CARD", "payment_token": token });
    Ok(gateway
        .post(&format!("/api/v1/orders/{order_id}/payments"), &body)
        .await?
        .expect(StatusCode::OK)?
        .clone())
}

async fn change_status_rest(
    gateway: &Gateway,
    order_id: &str,
    status: &str,
) -> anyhow::Result<crate::client::Reply> {
    gateway
        .post(
            &format!("/api/v1/orders/{order_id}/status"),
            &json!({ "status": status }),
        )
        .await
}

fn id_of(value: &Value) -> anyhow::Result<String> {
    value["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id in {value}"))
}

fn user_names(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|user| user["name"].as_str().map(str::to_owned))
        .collect()
}

fn order_ids(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|order| order["id"].as_str().map(str::to_owned))
        .collect()
}

/// Reads the numbers through gRPC, REST and GraphQL and fails unless the
/// three agree.
async fn agreeing_numbers(platform: &Platform, gateway: &Gateway) -> anyhow::Result<Numbers> {
    let rpc = numbers_rpc(platform).await.context("gRPC view")?;
    let rest = numbers_rest(gateway).await.context("REST view")?;
    let graphql = numbers_graphql(gateway).await.context("GraphQL view")?;
    ensure!(
        rpc == rest,
        "gRPC and REST disagree:\n  gRPC {rpc:?}\n  REST {rest:?}"
    );
    ensure!(
        rpc == graphql,
        "gRPC and GraphQL disagree:\n  gRPC {rpc:?}\n  GraphQL {graphql:?}"
    );
    Ok(rpc)
}

async fn numbers_rpc(platform: &Platform) -> anyhow::Result<Numbers> {
    use lintas_proto::order::v1::{GetOrderMetricsRequest, OrderStatus};
    use lintas_proto::user::v1::{GetUserMetricsRequest, UserStatus};

    let users = user_client(&platform.addresses.user_grpc)?
        .get_user_metrics(GetUserMetricsRequest {})
        .await?
        .into_inner();
    let orders = order_client(&platform.addresses.order_grpc)?
        .get_order_metrics(GetOrderMetricsRequest {})
        .await?
        .into_inner();
    Ok(Numbers {
        total_users: users.total_users,
        users_by_status: users
            .users_by_status
            .iter()
            .map(|entry| {
                let name = UserStatus::try_from(entry.status)
                    .map_or("UNKNOWN", |status| status.as_str_name());
                (
                    name.trim_start_matches("USER_STATUS_").to_owned(),
                    entry.count,
                )
            })
            .collect(),
        total_orders: orders.total_orders,
        orders_by_status: orders
            .orders_by_status
            .iter()
            .map(|entry| {
                let name = OrderStatus::try_from(entry.status)
                    .map_or("UNKNOWN", |status| status.as_str_name());
                (
                    name.trim_start_matches("ORDER_STATUS_").to_owned(),
                    entry.count,
                )
            })
            .collect(),
        revenue_by_currency: orders
            .revenue_by_currency
            .iter()
            .map(|entry| (entry.currency.clone(), entry.amount))
            .collect(),
        payments_succeeded: orders.payments_succeeded,
        payments_failed: orders.payments_failed,
    })
}

async fn numbers_rest(gateway: &Gateway) -> anyhow::Result<Numbers> {
    let users = gateway
        .get("/api/v1/metrics/users")
        .await?
        .expect(StatusCode::OK)?
        .clone();
    let orders = gateway
        .get("/api/v1/metrics/orders")
        .await?
        .expect(StatusCode::OK)?
        .clone();
    Ok(Numbers {
        total_users: int64(&users["total_users"])?,
        users_by_status: counts(&users["users_by_status"], "status", "count")?,
        total_orders: int64(&orders["total_orders"])?,
        orders_by_status: counts(&orders["orders_by_status"], "status", "count")?,
        revenue_by_currency: counts(&orders["revenue_by_currency"], "currency", "amount")?,
        payments_succeeded: int64(&orders["payments_succeeded"])?,
        payments_failed: int64(&orders["payments_failed"])?,
    })
}

async fn numbers_graphql(gateway: &Gateway) -> anyhow::Result<Numbers> {
    let data = gateway
        .graphql(
            "{ userMetrics { totalUsers usersByStatus { status count } } orderMetrics { totalOrders ordersByStatus { status count } revenueByCurrency { currency amount } paymentsSucceeded paymentsFailed } }",
            json!({}),
        )
        .await?;
    let users = &data["userMetrics"];
    let orders = &data["orderMetrics"];
    Ok(Numbers {
        total_users: int64(&users["totalUsers"])?,
        users_by_status: counts(&users["usersByStatus"], "status", "count")?,
        total_orders: int64(&orders["totalOrders"])?,
        orders_by_status: counts(&orders["ordersByStatus"], "status", "count")?,
        revenue_by_currency: counts(&orders["revenueByCurrency"], "currency", "amount")?,
        payments_succeeded: int64(&orders["paymentsSucceeded"])?,
        payments_failed: int64(&orders["paymentsFailed"])?,
    })
}

/// Reads an int64 that travels as a JSON string, as the API documents.
fn int64(value: &Value) -> anyhow::Result<i64> {
    value
        .as_str()
        .with_context(|| format!("expected an int64 as a string, got {value}"))?
        .parse()
        .with_context(|| format!("not an integer: {value}"))
}

fn counts(list: &Value, key: &str, count: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    list.as_array()
        .with_context(|| format!("expected a list, got {list}"))?
        .iter()
        .map(|entry| {
            let name = entry[key]
                .as_str()
                .with_context(|| format!("no {key} in {entry}"))?;
            Ok((name.to_owned(), int64(&entry[count])?))
        })
        .collect()
}

async fn order_counters(platform: &Platform) -> anyhow::Result<Counters> {
    let url = format!("http://{}/metrics", platform.addresses.order_metrics);
    let text = platform.http.get(url).send().await?.text().await?;
    Ok(Counters {
        orders_created: metric_value(&text, "orders_created_total", &[]).unwrap_or(0.0),
        payments_succeeded: metric_value(&text, "payments_total", &[("status", "succeeded")])
            .unwrap_or(0.0),
        payments_failed: metric_value(&text, "payments_total", &[("status", "failed")])
            .unwrap_or(0.0),
    })
}
