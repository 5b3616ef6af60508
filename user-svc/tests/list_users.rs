//! `ListUsers`: page sizes, keyset pagination in every order, filters, and
//! the checks on page tokens.

mod common;

use std::collections::HashSet;

use common::{TEST_SECRET, TestDatabase, TestService, assert_status, micros};
use lintas_proto::common::v1::SortDirection;
use lintas_proto::user::v1::{
    DeleteUserRequest, ListUsersRequest, ListUsersResponse, User, UserOrderBy, UserOrderField,
    UserStatus,
};
use tonic::Code;

/// Names of the ordering fixture. Several fold to the same lower-case name,
/// so that pages of two users split runs of equal sort keys.
const TIED_NAMES: [&str; 10] = [
    "bob", "Carol", "BOB", "alice", "Bob", "dave", "Alice", "carol", "Dave", "eve",
];

async fn list_page(service: &TestService, request: ListUsersRequest) -> ListUsersResponse {
    service
        .client()
        .list_users(request.clone())
        .await
        .unwrap_or_else(|status| panic!("ListUsers {request:?} failed: {status:?}"))
        .into_inner()
}

fn order_by(field: UserOrderField, direction: SortDirection) -> Option<UserOrderBy> {
    Some(UserOrderBy {
        field: field as i32,
        direction: direction as i32,
    })
}

/// Sorts `users` the way the service documents: by the folded field, then by
/// id, both in `direction`.
fn sorted(users: &[User], field: UserOrderField, direction: SortDirection) -> Vec<User> {
    let mut users = users.to_vec();
    users.sort_by(|left, right| {
        let by_key = match field {
            UserOrderField::Name => left.name.to_lowercase().cmp(&right.name.to_lowercase()),
            UserOrderField::Email => left.email.to_lowercase().cmp(&right.email.to_lowercase()),
            UserOrderField::CreatedAt | UserOrderField::Unspecified => {
                micros(left.created_at.as_ref()).cmp(&micros(right.created_at.as_ref()))
            }
        };
        let ascending = by_key.then_with(|| left.id.cmp(&right.id));
        match direction {
            SortDirection::Desc => ascending.reverse(),
            SortDirection::Asc | SortDirection::Unspecified => ascending,
        }
    });
    users
}

fn names(users: &[User]) -> Vec<String> {
    let mut names: Vec<String> = users.iter().map(|user| user.name.clone()).collect();
    names.sort();
    names
}

/// Creates two users per name of [`TIED_NAMES`], with emails whose order
/// differs from both creation order and name order.
async fn create_tied_users(service: &TestService) -> Vec<User> {
    let mut users = Vec::new();
    for (index, name) in TIED_NAMES.iter().chain(TIED_NAMES.iter()).enumerate() {
        let prefix = if index % 2 == 0 { "Zed" } else { "amy" };
        let email = format!("{prefix}{:02}@Example.com", 40 - index);
        users.push(service.create_user(name, &email).await);
    }
    users
}

#[tokio::test]
async fn pagination_visits_every_user_once_in_each_order() {
    let service = TestService::start().await;
    let users = create_tied_users(&service).await;
    let fields = [
        UserOrderField::CreatedAt,
        UserOrderField::Name,
        UserOrderField::Email,
    ];
    let directions = [SortDirection::Asc, SortDirection::Desc];

    for field in fields {
        for direction in directions {
            let mut request = ListUsersRequest {
                page_size: 2,
                order_by: order_by(field, direction),
                ..Default::default()
            };
            let mut listed: Vec<User> = Vec::new();
            let mut pages = 0;
            loop {
                let page = list_page(&service, request.clone()).await;
                pages += 1;
                assert!(
                    page.users.len() <= 2,
                    "{field:?} {direction:?}: page too long"
                );
                listed.extend(page.users);
                if page.next_page_token.is_empty() {
                    break;
                }
                assert!(
                    pages < 100,
                    "{field:?} {direction:?}: pagination never ends"
                );
                request.page_token = page.next_page_token;
            }

            let unique: HashSet<&str> = listed.iter().map(|user| user.id.as_str()).collect();
            assert_eq!(
                unique.len(),
                listed.len(),
                "{field:?} {direction:?}: a user was listed twice"
            );
            assert_eq!(
                listed,
                sorted(&users, field, direction),
                "{field:?} {direction:?}: wrong users or order"
            );
            assert_eq!(
                pages,
                users.len() / 2,
                "{field:?} {direction:?}: page count"
            );
        }
    }

    service.stop().await;
}

#[tokio::test]
async fn unspecified_order_is_newest_first() {
    let service = TestService::start().await;
    let users = create_tied_users(&service).await;
    let newest_first = sorted(&users, UserOrderField::CreatedAt, SortDirection::Desc);

    for order in [
        None,
        order_by(UserOrderField::Unspecified, SortDirection::Unspecified),
        order_by(UserOrderField::CreatedAt, SortDirection::Unspecified),
    ] {
        let request = ListUsersRequest {
            page_size: 3,
            order_by: order,
            ..Default::default()
        };
        let listed = service.list_all(request).await;
        assert_eq!(listed, newest_first, "order_by {order:?}");
    }

    service.stop().await;
}

#[tokio::test]
async fn page_size_defaults_to_20_and_allows_100() {
    let service = TestService::start().await;
    for index in 0..101 {
        service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }

    let first = list_page(&service, ListUsersRequest::default()).await;
    assert_eq!(first.users.len(), 20, "default page size");
    assert!(!first.next_page_token.is_empty());

    let largest = list_page(
        &service,
        ListUsersRequest {
            page_size: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(largest.users.len(), 100, "maximum page size");
    assert!(!largest.next_page_token.is_empty());

    let rest = list_page(
        &service,
        ListUsersRequest {
            page_size: 100,
            page_token: largest.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rest.users.len(), 1);
    assert!(rest.next_page_token.is_empty(), "last page has a token");

    let single = list_page(
        &service,
        ListUsersRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(single.users.len(), 1);

    service.stop().await;
}

#[tokio::test]
async fn page_size_above_100_is_rejected() {
    let service = TestService::start().await;
    for index in 0..3 {
        service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }

    let result = service
        .client()
        .list_users(ListUsersRequest {
            page_size: 101,
            ..Default::default()
        })
        .await;
    let status = assert_status(result, Code::InvalidArgument, "page_size");
    assert!(status.message().contains("101"), "{:?}", status.message());

    service.stop().await;
}

#[tokio::test]
async fn exact_last_page_has_no_token() {
    let service = TestService::start().await;
    for index in 0..4 {
        service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }

    let first = list_page(
        &service,
        ListUsersRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let second = list_page(
        &service,
        ListUsersRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;

    assert_eq!(second.users.len(), 2);
    assert!(second.next_page_token.is_empty(), "no users remain");

    service.stop().await;
}

#[tokio::test]
async fn empty_listing_has_no_users_and_no_token() {
    let service = TestService::start().await;

    let page = list_page(&service, ListUsersRequest::default()).await;

    assert!(page.users.is_empty());
    assert!(page.next_page_token.is_empty());

    service.stop().await;
}

#[tokio::test]
async fn filters_select_matching_users() {
    let service = TestService::start().await;
    let fixture = [
        ("Ada Lovelace", "ada@example.com", UserStatus::Active),
        ("ADA King", "king@Example.ORG", UserStatus::Suspended),
        ("Grace Hopper", "grace_hopper@navy.mil", UserStatus::Active),
        ("Gracie", "gracexhopper@navy.mil", UserStatus::Suspended),
        ("100% Pure", "percent%off@example.com", UserStatus::Active),
        ("100 Pure", "percent@example.com", UserStatus::Active),
        ("under_score", "under@example.com", UserStatus::Active),
        ("underXscore", "underx@example.com", UserStatus::Active),
        ("Back\\slash", "back@example.com", UserStatus::Active),
    ];
    for (name, email, status) in fixture {
        service.create_user_with_status(name, email, status).await;
    }

    let cases: Vec<(ListUsersRequest, Vec<&str>)> = vec![
        (
            ListUsersRequest {
                name_contains: "ada".to_owned(),
                ..Default::default()
            },
            vec!["ADA King", "Ada Lovelace"],
        ),
        (
            ListUsersRequest {
                name_contains: "LOVELACE".to_owned(),
                ..Default::default()
            },
            vec!["Ada Lovelace"],
        ),
        (
            ListUsersRequest {
                name_contains: "%".to_owned(),
                ..Default::default()
            },
            vec!["100% Pure"],
        ),
        (
            ListUsersRequest {
                name_contains: "_".to_owned(),
                ..Default::default()
            },
            vec!["under_score"],
        ),
        (
            ListUsersRequest {
                name_contains: "\\".to_owned(),
                ..Default::default()
            },
            vec!["Back\\slash"],
        ),
        (
            ListUsersRequest {
                name_contains: "nobody".to_owned(),
                ..Default::default()
            },
            vec![],
        ),
        (
            ListUsersRequest {
                email_contains: "EXAMPLE.org".to_owned(),
                ..Default::default()
            },
            vec!["ADA King"],
        ),
        (
            ListUsersRequest {
                email_contains: "_".to_owned(),
                ..Default::default()
            },
            vec!["Grace Hopper"],
        ),
        (
            ListUsersRequest {
                email_contains: "%".to_owned(),
                ..Default::default()
            },
            vec!["100% Pure"],
        ),
        (
            ListUsersRequest {
                email_contains: "NAVY".to_owned(),
                ..Default::default()
            },
            vec!["Grace Hopper", "Gracie"],
        ),
        (
            ListUsersRequest {
                status: UserStatus::Suspended as i32,
                ..Default::default()
            },
            vec!["ADA King", "Gracie"],
        ),
        (
            ListUsersRequest {
                status: UserStatus::Active as i32,
                ..Default::default()
            },
            vec![
                "100 Pure",
                "100% Pure",
                "Ada Lovelace",
                "Back\\slash",
                "Grace Hopper",
                "underXscore",
                "under_score",
            ],
        ),
        (
            ListUsersRequest {
                name_contains: "grac".to_owned(),
                status: UserStatus::Active as i32,
                ..Default::default()
            },
            vec!["Grace Hopper"],
        ),
        (
            ListUsersRequest {
                name_contains: "ada".to_owned(),
                email_contains: "example.com".to_owned(),
                ..Default::default()
            },
            vec!["Ada Lovelace"],
        ),
        (
            // Blank filters select everything.
            ListUsersRequest {
                name_contains: "   ".to_owned(),
                ..Default::default()
            },
            vec![
                "100 Pure",
                "100% Pure",
                "ADA King",
                "Ada Lovelace",
                "Back\\slash",
                "Grace Hopper",
                "Gracie",
                "underXscore",
                "under_score",
            ],
        ),
    ];

    for (request, expected) in cases {
        // A page size of 1 makes every match a page of its own, so the filter
        // must hold across page tokens too.
        let paged = ListUsersRequest {
            page_size: 1,
            ..request.clone()
        };
        let listed = service.list_all(paged).await;
        assert_eq!(names(&listed), expected, "filter {request:?}");
    }

    service.stop().await;
}

#[tokio::test]
async fn deleting_cursor_user_keeps_next_page() {
    let service = TestService::start().await;
    let mut users = Vec::new();
    for index in 0..5 {
        let user = service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
        users.push(user);
    }
    let request = ListUsersRequest {
        page_size: 2,
        order_by: order_by(UserOrderField::Name, SortDirection::Asc),
        ..Default::default()
    };

    let first = list_page(&service, request.clone()).await;
    let cursor_user = first.users.last().expect("first page has users").clone();
    service
        .client()
        .delete_user(DeleteUserRequest {
            id: cursor_user.id.clone(),
            expected_version: None,
        })
        .await
        .expect("DeleteUser failed");
    let second = list_page(
        &service,
        ListUsersRequest {
            page_token: first.next_page_token,
            ..request
        },
    )
    .await;

    let second_names: Vec<&str> = second.users.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(second_names, ["User 2", "User 3"]);

    service.stop().await;
}

#[tokio::test]
async fn token_for_other_query_is_rejected() {
    let service = TestService::start().await;
    for index in 0..5 {
        service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }
    let issued_for = ListUsersRequest {
        page_size: 2,
        name_contains: "user".to_owned(),
        order_by: order_by(UserOrderField::Name, SortDirection::Asc),
        ..Default::default()
    };
    let token = list_page(&service, issued_for.clone())
        .await
        .next_page_token;
    assert!(!token.is_empty());

    let changed_queries = [
        ListUsersRequest {
            name_contains: "User 1".to_owned(),
            ..issued_for.clone()
        },
        ListUsersRequest {
            name_contains: String::new(),
            ..issued_for.clone()
        },
        ListUsersRequest {
            email_contains: "example".to_owned(),
            ..issued_for.clone()
        },
        ListUsersRequest {
            status: UserStatus::Active as i32,
            ..issued_for.clone()
        },
        ListUsersRequest {
            order_by: order_by(UserOrderField::Name, SortDirection::Desc),
            ..issued_for.clone()
        },
        ListUsersRequest {
            order_by: order_by(UserOrderField::Email, SortDirection::Asc),
            ..issued_for.clone()
        },
        ListUsersRequest {
            order_by: order_by(UserOrderField::CreatedAt, SortDirection::Asc),
            ..issued_for.clone()
        },
    ];
    for changed in changed_queries {
        let result = service
            .client()
            .list_users(ListUsersRequest {
                page_token: token.clone(),
                ..changed.clone()
            })
            .await;
        assert_status(result, Code::InvalidArgument, "page_token");
    }

    // The token still works with the query it was issued for.
    let second = list_page(
        &service,
        ListUsersRequest {
            page_token: token,
            ..issued_for
        },
    )
    .await;
    assert_eq!(second.users.len(), 2);

    service.stop().await;
}

#[tokio::test]
async fn altered_or_garbage_token_is_rejected() {
    let service = TestService::start().await;
    for index in 0..3 {
        service
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }
    let request = ListUsersRequest {
        page_size: 1,
        ..Default::default()
    };
    let token = list_page(&service, request.clone()).await.next_page_token;
    // A token is base64url text; altering a character at the start, the
    // middle or the end changes the nonce, the ciphertext or the tag.
    let altered_start = replace_character(&token, 0);
    let altered_middle = replace_character(&token, token.len() / 2);
    let altered_end = replace_character(&token, token.len() - 1);
    let truncated = token[..token.len() - 4].to_owned();
    let too_long = format!("{token}{}", "A".repeat(4096));
    let bad_tokens = [
        altered_start.as_str(),
        altered_middle.as_str(),
        altered_end.as_str(),
        truncated.as_str(),
        too_long.as_str(),
        "garbage",
        ".",
        "a.b.c",
        "!!!.???",
        "eyJxIjoiIiwiaWF0IjowLCJjIjpudWxsfQ.",
    ];
    for bad_token in bad_tokens {
        let result = service
            .client()
            .list_users(ListUsersRequest {
                page_token: bad_token.to_owned(),
                ..request.clone()
            })
            .await;
        let status = assert_status(result, Code::InvalidArgument, "page_token");
        assert!(
            !status.message().is_empty(),
            "token {bad_token:?} gave an empty message"
        );
    }

    service.stop().await;
}

/// Replaces the middle character of a base64url string with another one from
/// the same alphabet.
fn replace_character(text: &str, position: usize) -> String {
    let replacement = if &text[position..=position] == "A" {
        "B"
    } else {
        "A"
    };
    format!(
        "{}{replacement}{}",
        &text[..position],
        &text[position + 1..]
    )
}

#[tokio::test]
async fn token_from_other_secret_is_rejected() {
    let database = TestDatabase::new().await;
    let issuer = TestService::start_on(&database, Some("first-secret")).await;
    let other_secret = TestService::start_on(&database, Some("second-secret")).await;
    let random_secret = TestService::start_on(&database, None).await;
    for index in 0..3 {
        issuer
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }
    let request = ListUsersRequest {
        page_size: 1,
        ..Default::default()
    };
    let token = list_page(&issuer, request.clone()).await.next_page_token;

    for verifier in [&other_secret, &random_secret] {
        let result = verifier
            .client()
            .list_users(ListUsersRequest {
                page_token: token.clone(),
                ..request.clone()
            })
            .await;
        assert_status(result, Code::InvalidArgument, "page_token");
    }

    random_secret.stop().await;
    other_secret.stop().await;
    issuer.stop().await;
}

#[tokio::test]
async fn instance_with_shared_secret_accepts_token() {
    let database = TestDatabase::new().await;
    let first = TestService::start_on(&database, Some(TEST_SECRET)).await;
    let second = TestService::start_on(&database, Some(TEST_SECRET)).await;
    for index in 0..5 {
        first
            .create_user(
                &format!("User {index}"),
                &format!("user{index}@example.com"),
            )
            .await;
    }
    let request = ListUsersRequest {
        page_size: 2,
        order_by: order_by(UserOrderField::Email, SortDirection::Desc),
        ..Default::default()
    };
    let everyone = first.list_all(request.clone()).await;

    let first_page = list_page(&first, request.clone()).await;
    let second_page = list_page(
        &second,
        ListUsersRequest {
            page_token: first_page.next_page_token,
            ..request.clone()
        },
    )
    .await;
    let third_page = list_page(
        &first,
        ListUsersRequest {
            page_token: second_page.next_page_token,
            ..request
        },
    )
    .await;

    let mut listed = first_page.users;
    listed.extend(second_page.users);
    listed.extend(third_page.users);
    assert_eq!(listed, everyone);
    assert!(third_page.next_page_token.is_empty());

    second.stop().await;
    first.stop().await;
}

#[test]
fn sorted_breaks_ties_by_id() {
    let user = |id: &str, name: &str| User {
        id: id.to_owned(),
        name: name.to_owned(),
        ..Default::default()
    };
    let users = [user("b", "Bob"), user("a", "bob"), user("c", "alice")];

    let ascending = sorted(&users, UserOrderField::Name, SortDirection::Asc);
    let descending = sorted(&users, UserOrderField::Name, SortDirection::Desc);

    let ids = |users: &[User]| users.iter().map(|user| user.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&ascending), ["c", "a", "b"]);
    assert_eq!(ids(&descending), ["b", "a", "c"]);
}
