//! Who may do what: each role against each REST endpoint and GraphQL
//! field. A regular user touches only their own user record and orders;
//! an admin may do everything; a caller without a token gets 401.

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::Platform;

/// Two users with orders, made by an admin.
struct World {
    platform: Platform,
    me: String,
    other: String,
    my_order: Value,
    other_order: Value,
}

impl World {
    async fn new() -> Self {
        let platform = common::start().await;
        let me = platform.create_user("Ayu", "ayu@example.com").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let other = platform.create_user("Budi", "budi@example.com").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let my_order = platform.create_order(&me, 10_000).await;
        let other_order = platform.create_order(&other, 20_000).await;
        Self {
            platform,
            me,
            other,
            my_order,
            other_order,
        }
    }

    fn client(&self, role: Role) -> Client {
        match role {
            Role::Admin => common::client_with(Some(&common::token("ops", true))),
            Role::Owner => common::client_with(Some(&common::token(&self.me, false))),
            Role::Anonymous => common::client_with(None),
        }
    }

    async fn send(
        &self,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client(role).request(method, self.platform.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    /// A regular user, owner of `me` and `my_order`.
    Owner,
    Anonymous,
}

/// One REST request and whether a regular user may send it.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    owner_allowed: bool,
}

fn case(method: Method, path: String, body: Option<Value>, owner_allowed: bool) -> Case {
    Case {
        method,
        path,
        body,
        owner_allowed,
    }
}

/// Every REST operation, reads first; writes that change state come last
/// and only once per role.
fn rest_cases(world: &World) -> Vec<Case> {
    let (me, other) = (&world.me, &world.other);
    let my_order = world.my_order["id"].as_str().unwrap();
    let other_order = world.other_order["id"].as_str().unwrap();
    let payment = |order: &Value| json!({ "amount": order["total"], "currency": "IDR", "method": "CARD", "payment_token": "tok_visa" });
    vec![
        case(Method::GET, "/api/v1/users".into(), None, false),
        case(Method::GET, format!("/api/v1/users/{me}"), None, true),
        case(Method::GET, format!("/api/v1/users/{other}"), None, false),
        case(
            Method::GET,
            format!("/api/v1/users/{me}/orders"),
            None,
            true,
        ),
        case(
            Method::GET,
            format!("/api/v1/users/{other}/orders"),
            None,
            false,
        ),
        case(Method::GET, "/api/v1/orders".into(), None, false),
        case(
            Method::GET,
            format!("/api/v1/orders?user_id={me}"),
            None,
            true,
        ),
        case(
            Method::GET,
            format!("/api/v1/orders?user_id={other}"),
            None,
            false,
        ),
        case(
            Method::GET,
            format!("/api/v1/orders/{my_order}"),
            None,
            true,
        ),
        case(
            Method::GET,
            format!("/api/v1/orders/{other_order}"),
            None,
            false,
        ),
        case(Method::GET, "/api/v1/metrics/users".into(), None, false),
        case(Method::GET, "/api/v1/metrics/orders".into(), None, false),
        case(
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({ "name": "Cici", "email": "cici@example.com" })),
            false,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/users/{me}"),
            Some(json!({ "name": "Ayu W" })),
            true,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/users/{me}"),
            Some(json!({ "status": "SUSPENDED" })),
            false,
        ),
        case(
            Method::PATCH,
            format!("/api/v1/users/{other}"),
            Some(json!({ "name": "Hacked" })),
            false,
        ),
        case(
            Method::POST,
            "/api/v1/orders".into(),
            Some(common::order_body(me, 5_000)),
            true,
        ),
        case(
            Method::POST,
            "/api/v1/orders".into(),
            Some(common::order_body(other, 5_000)),
            false,
        ),
        case(
            Method::POST,
            format!("/api/v1/orders/{other_order}/payments"),
            Some(payment(&world.other_order)),
            false,
        ),
        case(
            Method::POST,
            format!("/api/v1/orders/{other_order}/cancel"),
            Some(json!({ "reason": "mine now" })),
            false,
        ),
        case(
            Method::POST,
            format!("/api/v1/orders/{my_order}/status"),
            Some(json!({ "status": "SHIPPED" })),
            false,
        ),
        case(
            Method::POST,
            format!("/api/v1/orders/{my_order}/payments"),
            Some(payment(&world.my_order)),
            true,
        ),
        case(
            Method::POST,
            format!("/api/v1/orders/{my_order}/cancel"),
            Some(json!({ "reason": "changed my mind" })),
            true,
        ),
        case(
            Method::DELETE,
            format!("/api/v1/users/{other}"),
            None,
            false,
        ),
    ]
}

#[tokio::test]
async fn rest_rules_for_each_role() {
    let world = World::new().await;
    for case in rest_cases(&world) {
        let label = format!("{} {}", case.method, case.path);
        let (status, body) = world
            .send(
                Role::Anonymous,
                case.method.clone(),
                &case.path,
                case.body.clone(),
            )
            .await;
        common::assert_problem(status, &body, 401, "UNAUTHENTICATED");

        let (status, body) = world
            .send(
                Role::Owner,
                case.method.clone(),
                &case.path,
                case.body.clone(),
            )
            .await;
        if case.owner_allowed {
            assert!(status.is_success(), "owner {label}: {status} {body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "owner {label}: {body}");
            assert_eq!(body["code"], "FORBIDDEN", "owner {label}");
        }
    }
    // What the owner was denied wrote nothing.
    let (_, other) = world
        .platform
        .get(&format!("/api/v1/users/{}", world.other))
        .await;
    assert_eq!(other["name"], "Budi");
    let (_, orders) = world
        .platform
        .get(&format!("/api/v1/users/{}/orders", world.other))
        .await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
    assert_eq!(orders["orders"][0]["status"], "PENDING", "{orders}");
    let (_, me) = world
        .platform
        .get(&format!("/api/v1/users/{}", world.me))
        .await;
    assert_eq!(me["status"], "ACTIVE");
}

#[tokio::test]
async fn admins_may_do_everything() {
    let world = World::new().await;
    for case in rest_cases(&world) {
        let label = format!("{} {}", case.method, case.path);
        let (status, body) = world
            .send(Role::Admin, case.method, &case.path, case.body)
            .await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
            "admin {label}: {status} {body}"
        );
        assert!(!status.is_server_error(), "admin {label}: {status} {body}");
    }
}

/// One GraphQL operation and whether a regular user may run it.
fn graphql_cases(world: &World) -> Vec<(String, bool)> {
    let (me, other) = (&world.me, &world.other);
    let my_order = world.my_order["id"].as_str().unwrap();
    let other_order = world.other_order["id"].as_str().unwrap();
    let order_input = |user: &str| {
        format!(
            r#"{{ userId: "{user}", currency: "IDR", items: [{{ sku: "KOPI-1", quantity: 1, unitPrice: 1000 }}],
               shippingAddress: {{ recipient: "Siti", line1: "Jl. Merdeka 1", city: "Jakarta", postalCode: "10110", country: "ID" }} }}"#
        )
    };
    vec![
        (
            format!(r#"{{ user(id: "{me}") {{ id orders {{ id }} }} }}"#),
            true,
        ),
        (format!(r#"{{ user(id: "{other}") {{ id }} }}"#), false),
        ("{ users { nodes { id } } }".to_owned(), false),
        (
            format!(r#"{{ order(id: "{my_order}") {{ id user {{ id }} }} }}"#),
            true,
        ),
        (
            format!(r#"{{ order(id: "{other_order}") {{ id }} }}"#),
            false,
        ),
        (
            format!(r#"{{ orders(filter: {{ userId: "{me}" }}) {{ nodes {{ id }} }} }}"#),
            true,
        ),
        ("{ orders { nodes { id } } }".to_owned(), false),
        (
            format!(r#"{{ orders(filter: {{ userId: "{other}" }}) {{ nodes {{ id }} }} }}"#),
            false,
        ),
        ("{ userMetrics { totalUsers } }".to_owned(), false),
        ("{ orderMetrics { totalOrders } }".to_owned(), false),
        (
            r#"mutation { createUser(input: { name: "Cici", email: "cici@example.com" }) { id } }"#
                .to_owned(),
            false,
        ),
        (
            format!(
                r#"mutation {{ updateUser(id: "{me}", input: {{ name: "Ayu W" }}) {{ id }} }}"#
            ),
            true,
        ),
        (
            format!(
                r#"mutation {{ updateUser(id: "{me}", input: {{ status: SUSPENDED }}) {{ id }} }}"#
            ),
            false,
        ),
        (
            format!(
                r#"mutation {{ updateUser(id: "{other}", input: {{ name: "Hacked" }}) {{ id }} }}"#
            ),
            false,
        ),
        (
            format!(
                "mutation {{ createOrder(input: {}) {{ id }} }}",
                order_input(me)
            ),
            true,
        ),
        (
            format!(
                "mutation {{ createOrder(input: {}) {{ id }} }}",
                order_input(other)
            ),
            false,
        ),
        (
            format!(r#"mutation {{ cancelOrder(id: "{other_order}") {{ id }} }}"#),
            false,
        ),
        (
            format!(
                r#"mutation {{ updateOrderStatus(id: "{my_order}", status: SHIPPED) {{ id }} }}"#
            ),
            false,
        ),
        (
            format!(r#"mutation {{ deleteUser(id: "{other}") }}"#),
            false,
        ),
        (
            format!(r#"mutation {{ cancelOrder(id: "{my_order}") {{ id }} }}"#),
            true,
        ),
    ]
}

#[tokio::test]
async fn graphql_rules_match_rest() {
    let world = World::new().await;
    let client = world.client(Role::Owner);
    for (query, allowed) in graphql_cases(&world) {
        let response: Value = client
            .post(world.platform.url("/graphql"))
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let codes: Vec<&Value> = response["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| &error["extensions"]["code"])
                    .collect()
            })
            .unwrap_or_default();
        if allowed {
            assert!(codes.is_empty(), "owner {query}: {response}");
        } else {
            assert!(
                codes.contains(&&json!("FORBIDDEN")),
                "owner {query}: {response}"
            );
        }
    }
    let (_, other) = world
        .platform
        .get(&format!("/api/v1/users/{}", world.other))
        .await;
    assert_eq!(other["name"], "Budi", "a rejected mutation wrote nothing");
}

#[tokio::test]
async fn me_is_the_callers_own_record() {
    let world = World::new().await;
    let query = json!({ "query": "{ me { id name } }" });
    let mut answers = Vec::new();
    for role in [Role::Owner, Role::Admin] {
        let response: Value = world
            .client(role)
            .post(world.platform.url("/graphql"))
            .json(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push(response);
    }
    assert_eq!(
        answers[0]["data"]["me"]["id"],
        world.me.as_str(),
        "{}",
        answers[0]
    );
    // The admin's subject is no user id.
    assert_eq!(answers[1]["data"]["me"], Value::Null, "{}", answers[1]);
    assert!(answers[1]["errors"].is_null(), "{}", answers[1]);
}
