//! `GetUserMetrics`: totals, counts per status and users created in the last
//! 24 hours, checked against what each test did.

mod common;

use common::{TestDatabase, TestService};
use lintas_common::time::now_micros;
use lintas_proto::user::v1::{
    DeleteUserRequest, GetUserMetricsResponse, UpdateUserRequest, UserStatus, UserStatusCount,
};
use uuid::Uuid;

const HOUR_MICROS: i64 = 60 * 60 * 1_000_000;

fn status_counts(active: i64, suspended: i64) -> Vec<UserStatusCount> {
    vec![
        UserStatusCount {
            status: UserStatus::Active as i32,
            count: active,
        },
        UserStatusCount {
            status: UserStatus::Suspended as i32,
            count: suspended,
        },
    ]
}

/// Checks every count of `metrics`. The order of `users_by_status` is not
/// part of the contract, so the entries are sorted first.
fn assert_metrics(
    metrics: GetUserMetricsResponse,
    total: i64,
    active: i64,
    suspended: i64,
    created_last_24h: i64,
) {
    let mut by_status = metrics.users_by_status;
    by_status.sort_by_key(|count| count.status);
    assert_eq!(metrics.total_users, total, "total_users");
    assert_eq!(
        by_status,
        status_counts(active, suspended),
        "users_by_status"
    );
    assert_eq!(
        metrics.users_created_last_24h, created_last_24h,
        "users_created_last_24h"
    );
}

#[tokio::test]
async fn metrics_of_empty_database_list_both_statuses() {
    let service = TestService::start().await;

    let metrics = service.metrics().await;

    assert_metrics(metrics, 0, 0, 0, 0);
    service.stop().await;
}

#[tokio::test]
async fn metrics_follow_creates_updates_and_deletes() {
    let service = TestService::start().await;
    let mut active = Vec::new();
    for index in 0..3 {
        let email = format!("active{index}@example.com");
        active.push(service.create_user("Active", &email).await);
    }
    let mut suspended = Vec::new();
    for index in 0..2 {
        let email = format!("suspended{index}@example.com");
        let user = service
            .create_user_with_status("Suspended", &email, UserStatus::Suspended)
            .await;
        suspended.push(user);
    }
    assert_metrics(service.metrics().await, 5, 3, 2, 5);

    let mut client = service.client();
    client
        .update_user(UpdateUserRequest {
            id: active[0].id.clone(),
            status: Some(UserStatus::Suspended as i32),
            ..Default::default()
        })
        .await
        .expect("UpdateUser failed");
    assert_metrics(service.metrics().await, 5, 2, 3, 5);

    client
        .delete_user(DeleteUserRequest {
            id: suspended[0].id.clone(),
            expected_version: None,
        })
        .await
        .expect("DeleteUser failed");
    assert_metrics(service.metrics().await, 4, 2, 2, 4);

    client
        .update_user(UpdateUserRequest {
            id: suspended[1].id.clone(),
            status: Some(UserStatus::Active as i32),
            ..Default::default()
        })
        .await
        .expect("UpdateUser failed");
    assert_metrics(service.metrics().await, 4, 3, 1, 4);

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn metrics_count_only_last_24_hours() {
    let database = TestDatabase::new().await;
    let service = TestService::start_on(&database, None).await;
    service.create_user("Fresh", "fresh@example.com").await;

    // The API cannot back-date a user, so these rows go straight into the
    // service's database.
    let now = now_micros();
    insert_user(&database, "old1@example.com", now - 25 * HOUR_MICROS).await;
    insert_user(&database, "old2@example.com", now - 48 * HOUR_MICROS).await;
    insert_user(&database, "recent@example.com", now - 23 * HOUR_MICROS).await;

    assert_metrics(service.metrics().await, 4, 4, 0, 2);

    service.stop().await;
}

/// Inserts an active user created at `created_at` microseconds since the
/// Unix epoch, using the columns of the service's migration.
async fn insert_user(database: &TestDatabase, email: &str, created_at: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database.url())
        .await
        .expect("failed to open the test database");
    sqlx::query(
        "INSERT INTO users (id, name, name_folded, email, email_folded, status, \
         created_at, updated_at, version) VALUES ($1, 'Old', 'old', $2, $3, 'ACTIVE', $4, $5, 1)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(email)
    .bind(email.to_lowercase())
    .bind(created_at)
    .bind(created_at)
    .execute(&pool)
    .await
    .expect("failed to insert a back-dated user");
    pool.close().await;
}
