//! ListOrders, GetOrdersByUser and ListOrdersByUsers: keyset pagination over
//! every ordering and filter, and page token checks.

use lintas_proto::common::v1::SortDirection;
use lintas_proto::order::v1::{
    GetOrdersByUserRequest, ListOrdersByUsersRequest, ListOrdersRequest, Order, OrderOrderBy,
    OrderOrderField, OrderStatus,
};
use prost_types::Timestamp;
use tonic::Code;

use crate::helpers::{
    GOOD_TOKEN, TestApp, assert_rejected, item, micros, order_request, spawn_app,
};

/// Largest number of pages a test follows before it gives up.
const MAX_PAGES: usize = 50;

struct Seeded {
    user_a: String,
    user_b: String,
    /// Every order, in its latest state, in creation order.
    orders: Vec<Order>,
}

/// Creates nine orders for two users with repeated totals, then pays,
/// ships and cancels some so statuses and `updated_at` differ.
async fn seed(app: &mut TestApp) -> Seeded {
    let user_a = app.create_user().await;
    let user_b = app.create_user().await;
    let totals = [500, 1_500, 1_500, 3_000, 700, 1_500, 9_000, 100, 2_500];

    let mut created = Vec::new();
    for (index, total) in totals.into_iter().enumerate() {
        let user_id = if index % 2 == 0 { &user_a } else { &user_b };
        let mut request = order_request(user_id);
        request.items = vec![item("SKU", 1, total)];
        created.push(app.create_order_with(request).await);
    }

    app.pay(&created[1], GOOD_TOKEN).await.unwrap();
    app.pay(&created[3], GOOD_TOKEN).await.unwrap();
    app.update_status(&created[3].id, OrderStatus::Shipped)
        .await
        .unwrap();
    app.cancel(&created[4].id, "").await.unwrap();
    app.pay(&created[0], GOOD_TOKEN).await.unwrap();

    let mut orders = Vec::new();
    for order in &created {
        orders.push(app.get_order(&order.id).await);
    }
    Seeded {
        user_a,
        user_b,
        orders,
    }
}

fn sort_key(order: &Order, field: OrderOrderField) -> i64 {
    match field {
        OrderOrderField::Unspecified | OrderOrderField::CreatedAt => micros(&order.created_at),
        OrderOrderField::Total => order.total,
        OrderOrderField::UpdatedAt => micros(&order.updated_at),
    }
}

/// Ids of `orders` that pass `filter`, sorted by `field` then id.
fn expected_ids(
    orders: &[Order],
    filter: impl Fn(&Order) -> bool,
    field: OrderOrderField,
    descending: bool,
) -> Vec<String> {
    let mut matching: Vec<&Order> = orders.iter().filter(|order| filter(order)).collect();
    matching.sort_by(|left, right| {
        let ordering = (sort_key(left, field), &left.id).cmp(&(sort_key(right, field), &right.id));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    matching.into_iter().map(|order| order.id.clone()).collect()
}

/// Follows `request`'s pages of `page_size` and returns the ids in order
/// and the number of pages.
async fn list_all_ids(
    app: &mut TestApp,
    request: &ListOrdersRequest,
    page_size: i32,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    for page in 1..=MAX_PAGES {
        let response = app
            .orders
            .list_orders(ListOrdersRequest {
                page_size,
                page_token: page_token.clone(),
                ..request.clone()
            })
            .await
            .expect("list orders")
            .into_inner();
        assert!(response.orders.len() <= page_size as usize);
        ids.extend(response.orders.into_iter().map(|order| order.id));
        if response.next_page_token.is_empty() {
            return (ids, page);
        }
        page_token = response.next_page_token;
    }
    panic!("listing did not end after {MAX_PAGES} pages");
}

fn order_by(field: OrderOrderField, direction: SortDirection) -> Option<OrderOrderBy> {
    Some(OrderOrderBy {
        field: field as i32,
        direction: direction as i32,
    })
}

#[tokio::test]
async fn list_orders_pages_through_every_ordering() {
    let mut app = spawn_app().await;
    let seeded = seed(&mut app).await;

    let orderings = [
        (
            OrderOrderField::Unspecified,
            SortDirection::Unspecified,
            true,
        ),
        (OrderOrderField::CreatedAt, SortDirection::Asc, false),
        (OrderOrderField::CreatedAt, SortDirection::Desc, true),
        (OrderOrderField::Total, SortDirection::Unspecified, true),
        (OrderOrderField::Total, SortDirection::Asc, false),
        (OrderOrderField::UpdatedAt, SortDirection::Asc, false),
        (OrderOrderField::UpdatedAt, SortDirection::Desc, true),
    ];
    for (field, direction, descending) in orderings {
        let request = ListOrdersRequest {
            order_by: order_by(field, direction),
            ..Default::default()
        };
        let (ids, pages) = list_all_ids(&mut app, &request, 2).await;

        let expected = expected_ids(&seeded.orders, |_| true, field, descending);
        assert_eq!(ids, expected, "{field:?} {direction:?}");
        assert_eq!(pages, 5, "{field:?} {direction:?}");
    }
}

#[tokio::test]
async fn list_orders_applies_each_filter() {
    let mut app = spawn_app().await;
    let seeded = seed(&mut app).await;
    let orders = &seeded.orders;
    let after = orders[3].created_at;
    let before = orders[6].created_at;
    let after_micros = micros(&after);
    let before_micros = micros(&before);
    let user_a = seeded.user_a.clone();

    type Filter = Box<dyn Fn(&Order) -> bool>;
    let cases: Vec<(&str, ListOrdersRequest, Filter)> = vec![
        (
            "user_id",
            ListOrdersRequest {
                user_id: user_a.clone(),
                ..Default::default()
            },
            Box::new({
                let user_a = user_a.clone();
                move |order| order.user_id == user_a
            }),
        ),
        (
            "status PAID",
            ListOrdersRequest {
                status: OrderStatus::Paid as i32,
                ..Default::default()
            },
            Box::new(|order| order.status() == OrderStatus::Paid),
        ),
        (
            "status PENDING",
            ListOrdersRequest {
                status: OrderStatus::Pending as i32,
                ..Default::default()
            },
            Box::new(|order| order.status() == OrderStatus::Pending),
        ),
        (
            "created_after is inclusive",
            ListOrdersRequest {
                created_after: after,
                ..Default::default()
            },
            Box::new(move |order| micros(&order.created_at) >= after_micros),
        ),
        (
            "created_before is exclusive",
            ListOrdersRequest {
                created_before: before,
                ..Default::default()
            },
            Box::new(move |order| micros(&order.created_at) < before_micros),
        ),
        (
            "created range",
            ListOrdersRequest {
                created_after: after,
                created_before: before,
                ..Default::default()
            },
            Box::new(move |order| {
                (after_micros..before_micros).contains(&micros(&order.created_at))
            }),
        ),
        (
            "min_total is inclusive",
            ListOrdersRequest {
                min_total: Some(1_500),
                ..Default::default()
            },
            Box::new(|order| order.total >= 1_500),
        ),
        (
            "min_total 0",
            ListOrdersRequest {
                min_total: Some(0),
                ..Default::default()
            },
            Box::new(|_| true),
        ),
        (
            "user, total and start combined",
            ListOrdersRequest {
                user_id: user_a.clone(),
                min_total: Some(600),
                created_after: orders[2].created_at,
                ..Default::default()
            },
            Box::new({
                let user_a = user_a.clone();
                let start = micros(&orders[2].created_at);
                move |order| {
                    order.user_id == user_a
                        && order.total >= 600
                        && micros(&order.created_at) >= start
                }
            }),
        ),
    ];

    for (name, request, filter) in cases {
        for (field, direction, descending) in [
            (OrderOrderField::CreatedAt, SortDirection::Desc, true),
            (OrderOrderField::Total, SortDirection::Asc, false),
        ] {
            let request = ListOrdersRequest {
                order_by: order_by(field, direction),
                ..request.clone()
            };
            let (ids, _) = list_all_ids(&mut app, &request, 2).await;
            let expected = expected_ids(orders, &filter, field, descending);
            assert!(!expected.is_empty(), "{name}: the seed matches nothing");
            assert_eq!(ids, expected, "{name}, {field:?}");
        }
    }

    let (ids, _) = list_all_ids(
        &mut app,
        &ListOrdersRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        },
        2,
    )
    .await;
    assert!(ids.is_empty(), "unknown user matched {ids:?}");
    assert_ne!(seeded.user_a, seeded.user_b);
}

#[tokio::test]
async fn list_orders_page_size_rules() {
    let mut app = spawn_app().await;
    let user_id = app.create_user().await;
    for _ in 0..21 {
        app.create_order(&user_id).await;
    }

    let first = app
        .orders
        .list_orders(ListOrdersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.orders.len(), 20);
    assert!(!first.next_page_token.is_empty());

    let second = app
        .orders
        .list_orders(ListOrdersRequest {
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.orders.len(), 1);
    assert!(second.next_page_token.is_empty());

    let all = app
        .orders
        .list_orders(ListOrdersRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.orders.len(), 21);
    assert!(all.next_page_token.is_empty());

    for page_size in [101, -1] {
        let result = app
            .orders
            .list_orders(ListOrdersRequest {
                page_size,
                ..Default::default()
            })
            .await;
        assert_rejected(
            result,
            Code::InvalidArgument,
            &format!("page_size: must be between 1 and 100, got {page_size}"),
        );
    }
}

#[tokio::test]
async fn list_orders_rejects_bad_filters() {
    let mut app = spawn_app().await;
    let timestamp = |seconds| Some(Timestamp { seconds, nanos: 0 });
    let cases = [
        (
            ListOrdersRequest {
                user_id: "someone".into(),
                ..Default::default()
            },
            "user_id: not a valid UUID",
        ),
        (
            ListOrdersRequest {
                status: 17,
                ..Default::default()
            },
            "status: unknown order status 17",
        ),
        (
            ListOrdersRequest {
                created_after: timestamp(20),
                created_before: timestamp(10),
                ..Default::default()
            },
            "created_before: must be later than created_after",
        ),
        (
            ListOrdersRequest {
                created_before: Some(Timestamp {
                    seconds: 0,
                    nanos: 2_000_000_000,
                }),
                ..Default::default()
            },
            "created_before: not a valid timestamp",
        ),
        (
            ListOrdersRequest {
                min_total: Some(-3),
                ..Default::default()
            },
            "min_total: must be at least 0, got -3",
        ),
        (
            ListOrdersRequest {
                order_by: Some(OrderOrderBy {
                    field: 8,
                    direction: 0,
                }),
                ..Default::default()
            },
            "order_by.field: unknown field 8",
        ),
        (
            ListOrdersRequest {
                order_by: Some(OrderOrderBy {
                    field: 0,
                    direction: 5,
                }),
                ..Default::default()
            },
            "order_by.direction: unknown direction 5",
        ),
    ];
    for (request, expected) in cases {
        let result = app.orders.list_orders(request).await;
        assert_rejected(result, Code::InvalidArgument, expected);
    }
}

#[tokio::test]
async fn page_tokens_are_bound_to_their_query() {
    let mut app = spawn_app().await;
    let seeded = seed(&mut app).await;
    let plain = ListOrdersRequest {
        page_size: 2,
        ..Default::default()
    };
    let token = app
        .orders
        .list_orders(plain.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());

    // The same query accepts the token, even with another page size.
    let result = app
        .orders
        .list_orders(ListOrdersRequest {
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        })
        .await;
    assert!(result.is_ok(), "{result:?}");

    let other_queries = [
        ListOrdersRequest {
            status: OrderStatus::Paid as i32,
            ..plain.clone()
        },
        ListOrdersRequest {
            min_total: Some(1),
            ..plain.clone()
        },
        ListOrdersRequest {
            order_by: order_by(OrderOrderField::CreatedAt, SortDirection::Asc),
            ..plain.clone()
        },
        ListOrdersRequest {
            order_by: order_by(OrderOrderField::Total, SortDirection::Desc),
            ..plain.clone()
        },
        ListOrdersRequest {
            user_id: seeded.user_a.clone(),
            ..plain.clone()
        },
    ];
    for request in other_queries {
        let result = app
            .orders
            .list_orders(ListOrdersRequest {
                page_token: token.clone(),
                ..request
            })
            .await;
        assert_rejected(
            result,
            Code::InvalidArgument,
            "page_token: issued for different filters or ordering",
        );
    }

    let result = app
        .orders
        .get_orders_by_user(GetOrdersByUserRequest {
            user_id: seeded.user_a.clone(),
            page_size: 2,
            page_token: token.clone(),
        })
        .await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "page_token: issued for different filters or ordering",
    );

    // One base64url character changed in the middle of the ciphertext.
    let mut forged = token.clone().into_bytes();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad_token in [forged.as_str(), "garbage", "a.b"] {
        let result = app
            .orders
            .list_orders(ListOrdersRequest {
                page_token: bad_token.to_owned(),
                ..plain.clone()
            })
            .await;
        assert_rejected(result, Code::InvalidArgument, "page_token: ");
    }
}

#[tokio::test]
async fn get_orders_by_user_pages_newest_first() {
    let mut app = spawn_app().await;
    let seeded = seed(&mut app).await;
    let expected = expected_ids(
        &seeded.orders,
        |order| order.user_id == seeded.user_a,
        OrderOrderField::CreatedAt,
        true,
    );

    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    for _ in 0..MAX_PAGES {
        let response = app
            .orders
            .get_orders_by_user(GetOrdersByUserRequest {
                user_id: seeded.user_a.clone(),
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(response.orders.len() <= 2);
        ids.extend(response.orders.into_iter().map(|order| order.id));
        if response.next_page_token.is_empty() {
            break;
        }
        page_token = response.next_page_token;
    }
    assert_eq!(ids, expected);
    assert_eq!(pages, 3);

    let unknown = app
        .orders
        .get_orders_by_user(GetOrdersByUserRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unknown.orders.is_empty());
    assert!(unknown.next_page_token.is_empty());

    for (request, expected) in [
        (GetOrdersByUserRequest::default(), "user_id: is required"),
        (
            GetOrdersByUserRequest {
                user_id: "abc".into(),
                ..Default::default()
            },
            "user_id: not a valid UUID",
        ),
        (
            GetOrdersByUserRequest {
                user_id: seeded.user_a.clone(),
                page_size: 500,
                ..Default::default()
            },
            "page_size: must be between 1 and 100, got 500",
        ),
    ] {
        let result = app.orders.get_orders_by_user(request).await;
        assert_rejected(result, Code::InvalidArgument, expected);
    }
}

#[tokio::test]
async fn list_orders_by_users_groups_newest_orders() {
    let mut app = spawn_app().await;
    let seeded = seed(&mut app).await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let newest_of = |user_id: &str| {
        expected_ids(
            &seeded.orders,
            |order| order.user_id == user_id,
            OrderOrderField::CreatedAt,
            true,
        )
    };

    let response = app
        .orders
        .list_orders_by_users(ListOrdersByUsersRequest {
            user_ids: vec![
                seeded.user_a.clone(),
                seeded.user_b.clone(),
                nobody.clone(),
                seeded.user_a.clone(),
            ],
            limit_per_user: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let user_ids: Vec<&str> = response
        .results
        .iter()
        .map(|result| result.user_id.as_str())
        .collect();
    assert_eq!(user_ids, [&seeded.user_a, &seeded.user_b, &nobody]);
    for result in &response.results[..2] {
        let ids: Vec<String> = result.orders.iter().map(|order| order.id.clone()).collect();
        assert_eq!(ids, newest_of(&result.user_id)[..2]);
        assert!(result.has_more);
    }
    assert!(response.results[2].orders.is_empty());
    assert!(!response.results[2].has_more);
    // Orders come back whole, payments included.
    let first_of_b = app.get_order(&response.results[1].orders[0].id).await;
    assert_eq!(response.results[1].orders[0], first_of_b);

    let summaries = app
        .orders
        .list_orders_by_users(ListOrdersByUsersRequest {
            user_ids: vec![seeded.user_b.clone()],
            limit_per_user: 2,
            omit_details: true,
        })
        .await
        .unwrap()
        .into_inner();
    let summary = &summaries.results[0].orders[0];
    assert!(summary.items.is_empty());
    assert!(summary.payments.is_empty());
    let whole = Order {
        items: Vec::new(),
        payments: Vec::new(),
        ..first_of_b.clone()
    };
    assert_eq!(*summary, whole);
    assert!(!first_of_b.items.is_empty());

    let everything = app
        .orders
        .list_orders_by_users(ListOrdersByUsersRequest {
            user_ids: vec![seeded.user_b.clone()],
            limit_per_user: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = everything.results[0]
        .orders
        .iter()
        .map(|order| order.id.clone())
        .collect();
    assert_eq!(ids, newest_of(&seeded.user_b));
    assert!(!everything.results[0].has_more);

    let result = app
        .orders
        .list_orders_by_users(ListOrdersByUsersRequest {
            user_ids: vec![seeded.user_a.clone(), "bad".into()],
            limit_per_user: 1,
            ..Default::default()
        })
        .await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "user_ids[1]: not a valid UUID",
    );

    let result = app
        .orders
        .list_orders_by_users(ListOrdersByUsersRequest::default())
        .await;
    assert_rejected(
        result,
        Code::InvalidArgument,
        "user_ids: at least one user id is required",
    );
}
