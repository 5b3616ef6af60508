//! Creating, reading, updating and deleting users through the gRPC API,
//! including case-insensitive email uniqueness and concurrent updates.

mod common;

use std::time::Duration;

use common::{TestService, assert_status, micros};
use lintas_common::time::now_micros;
use lintas_proto::user::v1::{
    BatchGetUsersRequest, CreateUserRequest, DeleteUserRequest, GetUserRequest, ListUsersRequest,
    UpdateUserRequest, User, UserStatus,
};
use tonic::Code;
use uuid::Uuid;

/// Pause between writes, so that consecutive `updated_at` values differ even
/// on a coarse clock.
const CLOCK_STEP: Duration = Duration::from_millis(5);

async fn get_user(service: &TestService, id: &str) -> User {
    service
        .client()
        .get_user(GetUserRequest { id: id.to_owned() })
        .await
        .unwrap_or_else(|status| panic!("GetUser {id} failed: {status:?}"))
        .into_inner()
        .user
        .expect("GetUser response has a user")
}

async fn update_user(service: &TestService, request: UpdateUserRequest) -> User {
    service
        .client()
        .update_user(request.clone())
        .await
        .unwrap_or_else(|status| panic!("UpdateUser {request:?} failed: {status:?}"))
        .into_inner()
        .user
        .expect("UpdateUser response has a user")
}

#[tokio::test]
async fn create_user_stores_trimmed_fields() {
    let service = TestService::start().await;
    let before = now_micros();

    let created = service
        .create_user("  Ada Lovelace ", " Ada.Lovelace@Example.COM  ")
        .await;

    assert!(Uuid::parse_str(&created.id).is_ok(), "id {:?}", created.id);
    assert_eq!(created.name, "Ada Lovelace");
    assert_eq!(created.email, "Ada.Lovelace@Example.COM");
    assert_eq!(created.status(), UserStatus::Active);
    assert_eq!(created.version, 1);
    assert_eq!(created.created_at, created.updated_at);
    let created_at = micros(created.created_at.as_ref());
    assert!(
        (before..=now_micros()).contains(&created_at),
        "created_at {created_at} lies outside the call"
    );

    let fetched = get_user(&service, &created.id).await;
    assert_eq!(fetched, created);

    service.stop().await;
}

#[tokio::test]
async fn create_user_keeps_requested_status() {
    let service = TestService::start().await;

    let suspended = service
        .create_user_with_status("Grace", "grace@example.com", UserStatus::Suspended)
        .await;
    let active = service
        .create_user_with_status("Linus", "linus@example.com", UserStatus::Active)
        .await;

    assert_eq!(suspended.status(), UserStatus::Suspended);
    assert_eq!(active.status(), UserStatus::Active);
    let fetched = get_user(&service, &suspended.id).await;
    assert_eq!(fetched.status(), UserStatus::Suspended);

    service.stop().await;
}

#[tokio::test]
async fn create_user_accepts_maximum_name_length() {
    let service = TestService::start().await;

    let ascii = "a".repeat(100);
    let user = service.create_user(&ascii, "ascii@example.com").await;
    assert_eq!(user.name, ascii);

    // The limit counts characters, and each of these takes two bytes.
    let accented = "é".repeat(100);
    let user = service.create_user(&accented, "accented@example.com").await;
    assert_eq!(user.name, accented);

    service.stop().await;
}

#[tokio::test]
async fn batch_get_users_returns_existing_users() {
    let service = TestService::start().await;
    let ada = service.create_user("Ada", "ada@example.com").await;
    let grace = service.create_user("Grace", "grace@example.com").await;
    service.create_user("Linus", "linus@example.com").await;
    let missing = Uuid::now_v7().to_string();

    let response = service
        .client()
        .batch_get_users(BatchGetUsersRequest {
            ids: vec![grace.id.clone(), missing, ada.id.clone(), grace.id.clone()],
        })
        .await
        .expect("BatchGetUsers failed")
        .into_inner();

    // The order is unspecified, and missing and repeated ids add nothing.
    let mut users = response.users;
    users.sort_by(|left, right| left.name.cmp(&right.name));
    assert_eq!(users, vec![ada, grace]);

    service.stop().await;
}

#[tokio::test]
async fn batch_get_users_accepts_100_ids() {
    let service = TestService::start().await;
    let ada = service.create_user("Ada", "ada@example.com").await;
    let mut ids: Vec<String> = (0..99).map(|_| Uuid::now_v7().to_string()).collect();
    ids.push(ada.id.clone());

    let response = service
        .client()
        .batch_get_users(BatchGetUsersRequest { ids })
        .await
        .expect("BatchGetUsers with 100 ids failed")
        .into_inner();

    assert_eq!(response.users, vec![ada]);

    service.stop().await;
}

#[tokio::test]
async fn update_user_bumps_version_and_updated_at() {
    let service = TestService::start().await;
    let created = service.create_user("Ada", "ada@example.com").await;
    let created_at = micros(created.created_at.as_ref());

    tokio::time::sleep(CLOCK_STEP).await;
    let renamed = update_user(
        &service,
        UpdateUserRequest {
            id: created.id.clone(),
            name: Some(" Ada King ".to_owned()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(renamed.version, 2);
    assert_eq!(renamed.name, "Ada King");
    assert_eq!(renamed.email, "ada@example.com");
    assert_eq!(renamed.status(), UserStatus::Active);
    assert_eq!(micros(renamed.created_at.as_ref()), created_at);
    assert!(micros(renamed.updated_at.as_ref()) > micros(created.updated_at.as_ref()));

    tokio::time::sleep(CLOCK_STEP).await;
    let readdressed = update_user(
        &service,
        UpdateUserRequest {
            id: created.id.clone(),
            email: Some("Ada.King@Example.org".to_owned()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(readdressed.version, 3);
    assert_eq!(readdressed.name, "Ada King");
    assert_eq!(readdressed.email, "Ada.King@Example.org");
    assert_eq!(micros(readdressed.created_at.as_ref()), created_at);
    assert!(micros(readdressed.updated_at.as_ref()) > micros(renamed.updated_at.as_ref()));

    tokio::time::sleep(CLOCK_STEP).await;
    let suspended = update_user(
        &service,
        UpdateUserRequest {
            id: created.id.clone(),
            status: Some(UserStatus::Suspended as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(suspended.version, 4);
    assert_eq!(suspended.status(), UserStatus::Suspended);
    assert_eq!(suspended.email, "Ada.King@Example.org");
    assert_eq!(micros(suspended.created_at.as_ref()), created_at);
    assert!(micros(suspended.updated_at.as_ref()) > micros(readdressed.updated_at.as_ref()));

    let fetched = get_user(&service, &created.id).await;
    assert_eq!(fetched, suspended);

    service.stop().await;
}

#[tokio::test]
async fn update_user_with_unchanged_values_still_counts() {
    let service = TestService::start().await;
    let created = service.create_user("Ada", "ada@example.com").await;

    let updated = update_user(
        &service,
        UpdateUserRequest {
            id: created.id.clone(),
            name: Some("Ada".to_owned()),
            email: Some("ada@example.com".to_owned()),
            status: Some(UserStatus::Active as i32),
            expected_version: None,
        },
    )
    .await;

    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, created.name);
    assert_eq!(updated.email, created.email);

    service.stop().await;
}

#[tokio::test]
async fn create_user_rejects_email_differing_only_in_case() {
    let service = TestService::start().await;
    let original = service.create_user("Ada", "Ada@Example.com").await;

    for duplicate in ["ada@example.com", "ADA@EXAMPLE.COM", "  aDa@example.COM "] {
        let result = service
            .client()
            .create_user(CreateUserRequest {
                name: "Impostor".to_owned(),
                email: duplicate.to_owned(),
                status: 0,
                idempotency_key: String::new(),
            })
            .await;
        assert_status(result, Code::AlreadyExists, "email");
    }

    assert_eq!(service.listed_user_count().await, 1);
    let stored = get_user(&service, &original.id).await;
    assert_eq!(stored.email, "Ada@Example.com");

    service.stop().await;
}

#[tokio::test]
async fn update_user_rejects_email_of_other_user() {
    let service = TestService::start().await;
    service.create_user("Ada", "Ada@Example.com").await;
    let other = service.create_user("Grace", "grace@example.com").await;

    let result = service
        .client()
        .update_user(UpdateUserRequest {
            id: other.id.clone(),
            email: Some("ADA@example.COM".to_owned()),
            ..Default::default()
        })
        .await;
    assert_status(result, Code::AlreadyExists, "email");

    let stored = get_user(&service, &other.id).await;
    assert_eq!(stored, other, "a rejected update changed the user");

    service.stop().await;
}

#[tokio::test]
async fn update_user_changes_case_of_own_email() {
    let service = TestService::start().await;
    let created = service.create_user("Ada", "ada@example.com").await;

    let updated = update_user(
        &service,
        UpdateUserRequest {
            id: created.id.clone(),
            email: Some("ADA@Example.com".to_owned()),
            ..Default::default()
        },
    )
    .await;

    assert_eq!(updated.email, "ADA@Example.com");
    assert_eq!(updated.version, 2);

    service.stop().await;
}

#[tokio::test]
async fn missing_user_is_not_found() {
    let service = TestService::start().await;
    service.create_user("Ada", "ada@example.com").await;
    let missing = Uuid::now_v7().to_string();
    let mut client = service.client();

    let result = client
        .get_user(GetUserRequest {
            id: missing.clone(),
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    let result = client
        .update_user(UpdateUserRequest {
            id: missing.clone(),
            name: Some("Nobody".to_owned()),
            ..Default::default()
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    let result = client
        .delete_user(DeleteUserRequest {
            id: missing.clone(),
            expected_version: None,
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    assert_eq!(service.listed_user_count().await, 1);

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn deleted_user_is_not_found() {
    let service = TestService::start().await;
    let deleted = service.create_user("Ada", "ada@example.com").await;
    let grace = service.create_user("Grace", "grace@example.com").await;
    let mut client = service.client();

    client
        .delete_user(DeleteUserRequest {
            id: deleted.id.clone(),
            expected_version: None,
        })
        .await
        .expect("DeleteUser failed");

    let result = client
        .get_user(GetUserRequest {
            id: deleted.id.clone(),
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    let result = client
        .delete_user(DeleteUserRequest {
            id: deleted.id.clone(),
            expected_version: None,
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    let result = client
        .update_user(UpdateUserRequest {
            id: deleted.id.clone(),
            name: Some("Ada".to_owned()),
            ..Default::default()
        })
        .await;
    assert_status(result, Code::NotFound, "user not found");

    let remaining = service.list_all(ListUsersRequest::default()).await;
    assert_eq!(remaining, vec![grace]);

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn deleted_user_frees_email_address() {
    let service = TestService::start().await;
    let deleted = service.create_user("Ada", "ada@example.com").await;

    service
        .client()
        .delete_user(DeleteUserRequest {
            id: deleted.id.clone(),
            expected_version: None,
        })
        .await
        .expect("DeleteUser failed");
    let recreated = service.create_user("Ada", "ADA@example.com").await;

    assert_ne!(recreated.id, deleted.id);
    assert_eq!(recreated.version, 1);

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_no_version() {
    const WRITERS: usize = 8;
    let service = TestService::start().await;
    let created = service.create_user("Ada", "ada@example.com").await;

    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let mut client = service.client();
        let id = created.id.clone();
        writers.spawn(async move {
            client
                .update_user(UpdateUserRequest {
                    id,
                    name: Some(format!("Writer {writer}")),
                    ..Default::default()
                })
                .await
        });
    }

    let mut succeeded = 0;
    while let Some(joined) = writers.join_next().await {
        match joined.expect("writer task panicked") {
            Ok(_) => succeeded += 1,
            // A writer that lost the race gets ABORTED instead of overwriting silently.
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }

    assert!(succeeded >= 1, "every concurrent update failed");
    let stored = get_user(&service, &created.id).await;
    assert_eq!(stored.version, 1 + succeeded);

    service.stop().await;
}
