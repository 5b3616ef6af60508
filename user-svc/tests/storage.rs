//! Storage guarantees on the selected backend: unique emails under
//! concurrency, idempotent creates, optimistic concurrency and the
//! migration check.

mod common;

use std::collections::HashSet;

use common::{TestDatabase, TestService, assert_status};
use lintas_common::database::MigrationMode;
use lintas_proto::user::v1::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, UpdateUserRequest,
};
use tonic::Code;

fn create_request(name: &str, email: &str, key: &str) -> CreateUserRequest {
    CreateUserRequest {
        name: name.to_owned(),
        email: email.to_owned(),
        status: 0,
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_email_make_one_user() {
    let service = TestService::start().await;
    let mut tasks = Vec::new();
    for index in 0..50 {
        let mut client = service.client();
        tasks.push(tokio::spawn(async move {
            client
                .create_user(create_request(
                    &format!("Racer {index}"),
                    "race@example.com",
                    "",
                ))
                .await
        }));
    }

    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(service.metrics().await.total_users, 1);
    service.stop().await;
}

#[tokio::test]
async fn create_retry_with_key_returns_first_user() {
    let service = TestService::start().await;
    let mut client = service.client();
    let request = create_request("Ada", "ada@example.com", "create-ada-1");

    let first = client
        .create_user(request.clone())
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let retry = client
        .create_user(request)
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(service.metrics().await.total_users, 1);

    let other = create_request("Ada", "other@example.com", "create-ada-1");
    let result = client.create_user(other).await;
    assert_status(result, Code::FailedPrecondition, "idempotency_key");
    assert_eq!(service.metrics().await.total_users, 1);

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn concurrent_creates_with_one_key_make_one_user() {
    let service = TestService::start().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut client = service.client();
        tasks.push(tokio::spawn(async move {
            client
                .create_user(create_request("Key", "key@example.com", "one-key"))
                .await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let user = task
            .await
            .unwrap()
            .expect("every retry succeeds")
            .into_inner()
            .user
            .unwrap();
        ids.insert(user.id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(service.metrics().await.total_users, 1);
    service.stop().await;
}

#[tokio::test]
async fn invalid_idempotency_key_writes_nothing() {
    let service = TestService::start().await;
    let mut client = service.client();
    for key in ["has space", &"k".repeat(256)] {
        let result = client
            .create_user(create_request("Bad", "bad@example.com", key))
            .await;
        assert_status(result, Code::InvalidArgument, "idempotency_key");
    }
    assert_eq!(service.metrics().await.total_users, 0);
    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn stale_expected_version_changes_nothing() {
    let service = TestService::start().await;
    let mut client = service.client();
    let user = service.create_user("Grace", "grace@example.com").await;

    let update = |version: i64, name: &str| UpdateUserRequest {
        id: user.id.clone(),
        name: Some(name.to_owned()),
        email: None,
        status: None,
        expected_version: Some(version),
    };
    let updated = client
        .update_user(update(1, "Grace H."))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.version, 2);

    let result = client.update_user(update(1, "Lost update")).await;
    assert_status(result, Code::Aborted, "version");
    let result = client.update_user(update(0, "Zero")).await;
    assert_status(result, Code::InvalidArgument, "expected_version");

    let result = client
        .delete_user(DeleteUserRequest {
            id: user.id.clone(),
            expected_version: Some(1),
        })
        .await;
    assert_status(result, Code::Aborted, "version");

    let stored = client
        .get_user(GetUserRequest {
            id: user.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(stored, updated);

    client
        .delete_user(DeleteUserRequest {
            id: user.id.clone(),
            expected_version: Some(2),
        })
        .await
        .expect("delete with the current version succeeds");
    let result = client
        .get_user(GetUserRequest {
            id: user.id.clone(),
        })
        .await;
    assert_status(result, Code::NotFound, "user");

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn migration_check_detects_missing_schema() {
    let database = TestDatabase::new().await;
    let settings = user_svc::Settings::new(database.url());
    if let Some(path) = database.url().strip_prefix("sqlite://") {
        // A check creates no SQLite file, and says so.
        let error = user_svc::open_database(&settings, MigrationMode::Check)
            .await
            .expect_err("a missing file has no schema");
        assert!(format!("{error:#}").contains("does not exist"), "{error:#}");
        std::fs::File::create(path.split('?').next().unwrap()).unwrap();
    }

    let error = user_svc::open_database(&settings, MigrationMode::Check)
        .await
        .expect_err("an empty database is not current");
    assert!(format!("{error:#}").contains("migration"), "{error:#}");

    user_svc::open_database(&settings, MigrationMode::Apply)
        .await
        .expect("migrations apply");
    user_svc::open_database(&settings, MigrationMode::Check)
        .await
        .expect("the schema is current after applying");
}
