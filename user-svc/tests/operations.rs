//! What operators and tooling rely on: the `HealthCheck` RPC, the standard
//! gRPC health and reflection services, request ids in response metadata,
//! and data that survives a restart.

mod common;

use common::{TEST_SECRET, TestDatabase, TestService};
use lintas_proto::common::v1::health_check_response::ServingStatus;
use lintas_proto::common::v1::{HealthCheckRequest, ResponseMetadata};
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{
    BatchGetUsersRequest, CreateUserRequest, DeleteUserRequest, GetUserMetricsRequest,
    GetUserRequest, ListUsersRequest, UpdateUserRequest,
};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus as StandardServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use uuid::Uuid;

const SERVICE_NAME: &str = "user.v1.UserService";

#[tokio::test]
async fn health_check_rpc_reports_serving() {
    let service = TestService::start().await;

    let response = service
        .client()
        .health_check(HealthCheckRequest {})
        .await
        .expect("HealthCheck failed")
        .into_inner();

    assert_eq!(response.status(), ServingStatus::Serving);
    assert_eq!(response.service, SERVICE_NAME);
    assert_eq!(response.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        response.checks.get("database").map(String::as_str),
        Some("ok")
    );

    service.stop().await;
}

#[tokio::test]
async fn standard_health_reports_serving() {
    let service = TestService::start().await;
    let mut health = HealthClient::new(service.channel.clone());

    for name in [SERVICE_NAME, ""] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: name.to_owned(),
            })
            .await
            .unwrap_or_else(|status| panic!("Check {name:?} failed: {status:?}"))
            .into_inner();
        assert_eq!(
            response.status(),
            StandardServingStatus::Serving,
            "service {name:?}"
        );
    }

    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await;
    let status = unknown.expect_err("an unknown service was reported");
    assert_eq!(status.code(), Code::NotFound);

    drop(health);
    service.stop().await;
}

/// Sends one reflection request and returns the single response.
async fn reflect(service: &TestService, request: MessageRequest) -> MessageResponse {
    let mut reflection = ServerReflectionClient::new(service.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("ServerReflectionInfo failed")
        .into_inner();
    let response: ServerReflectionResponse = responses
        .message()
        .await
        .expect("reflection stream failed")
        .expect("reflection stream ended without a response");
    response
        .message_response
        .expect("reflection response has a message")
}

#[tokio::test]
async fn reflection_lists_user_service() {
    let service = TestService::start().await;

    let response = reflect(&service, MessageRequest::ListServices(String::new())).await;
    let MessageResponse::ListServicesResponse(list) = response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<&str> = list
        .service
        .iter()
        .map(|service| service.name.as_str())
        .collect();
    assert!(names.contains(&SERVICE_NAME), "services: {names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health"),
        "services: {names:?}"
    );
    assert!(
        names.contains(&"grpc.reflection.v1.ServerReflection"),
        "services: {names:?}"
    );
    assert!(
        !names.contains(&"order.v1.OrderService"),
        "services: {names:?}"
    );

    let response = reflect(
        &service,
        MessageRequest::FileContainingSymbol(SERVICE_NAME.to_owned()),
    )
    .await;
    let MessageResponse::FileDescriptorResponse(files) = response else {
        panic!("expected file descriptors, got {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    service.stop().await;
}

fn with_request_id<T>(message: T, request_id: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(request_id) = request_id {
        let value = request_id
            .parse()
            .expect("test request id is a valid metadata value");
        request.metadata_mut().insert("x-request-id", value);
    }
    request
}

/// Calls every RPC of the service once with `request_id` as `x-request-id`
/// (or none) and returns each RPC's name with its response metadata.
async fn call_every_rpc(
    service: &TestService,
    request_id: Option<&str>,
) -> Vec<(&'static str, Option<ResponseMetadata>)> {
    let mut client: UserServiceClient<Channel> = service.client();
    let mut results = Vec::new();
    let suffix = Uuid::new_v4().simple().to_string();

    let created = client
        .create_user(with_request_id(
            CreateUserRequest {
                name: "Ada".to_owned(),
                email: format!("ada-{suffix}@example.com"),
                status: 0,
                idempotency_key: String::new(),
            },
            request_id,
        ))
        .await
        .expect("CreateUser failed")
        .into_inner();
    let id = created.user.expect("CreateUser response has a user").id;
    results.push(("CreateUser", created.metadata));

    let fetched = client
        .get_user(with_request_id(
            GetUserRequest { id: id.clone() },
            request_id,
        ))
        .await
        .expect("GetUser failed")
        .into_inner();
    results.push(("GetUser", fetched.metadata));

    let batch = client
        .batch_get_users(with_request_id(
            BatchGetUsersRequest {
                ids: vec![id.clone()],
            },
            request_id,
        ))
        .await
        .expect("BatchGetUsers failed")
        .into_inner();
    results.push(("BatchGetUsers", batch.metadata));

    let listed = client
        .list_users(with_request_id(ListUsersRequest::default(), request_id))
        .await
        .expect("ListUsers failed")
        .into_inner();
    results.push(("ListUsers", listed.metadata));

    let updated = client
        .update_user(with_request_id(
            UpdateUserRequest {
                id: id.clone(),
                name: Some("Ada King".to_owned()),
                ..Default::default()
            },
            request_id,
        ))
        .await
        .expect("UpdateUser failed")
        .into_inner();
    results.push(("UpdateUser", updated.metadata));

    let metrics = client
        .get_user_metrics(with_request_id(GetUserMetricsRequest {}, request_id))
        .await
        .expect("GetUserMetrics failed")
        .into_inner();
    results.push(("GetUserMetrics", metrics.metadata));

    let health = client
        .health_check(with_request_id(HealthCheckRequest {}, request_id))
        .await
        .expect("HealthCheck failed")
        .into_inner();
    results.push(("HealthCheck", health.metadata));

    let deleted = client
        .delete_user(with_request_id(
            DeleteUserRequest {
                id,
                expected_version: None,
            },
            request_id,
        ))
        .await
        .expect("DeleteUser failed")
        .into_inner();
    results.push(("DeleteUser", deleted.metadata));

    results
}

#[tokio::test]
async fn valid_request_id_is_echoed() {
    let service = TestService::start().await;
    let longest = "a".repeat(128);

    for request_id in ["req-42_abc.DEF", "0", longest.as_str()] {
        for (rpc, metadata) in call_every_rpc(&service, Some(request_id)).await {
            let metadata = metadata.unwrap_or_else(|| panic!("{rpc}: metadata is missing"));
            assert_eq!(metadata.request_id, request_id, "{rpc}");
        }
    }

    service.stop().await;
}

#[tokio::test]
async fn invalid_or_missing_request_id_is_replaced() {
    let service = TestService::start().await;
    let too_long = "a".repeat(129);
    let mut seen = Vec::new();

    for request_id in [
        None,
        Some(""),
        Some("has space"),
        Some("a/b"),
        Some("quote\"d"),
        Some(too_long.as_str()),
    ] {
        for (rpc, metadata) in call_every_rpc(&service, request_id).await {
            let metadata = metadata.unwrap_or_else(|| panic!("{rpc}: metadata is missing"));
            let generated = metadata.request_id;
            assert!(
                Uuid::parse_str(&generated).is_ok(),
                "{rpc} with {request_id:?}: {generated:?} is not a UUID"
            );
            assert_ne!(Some(generated.as_str()), request_id, "{rpc}");
            assert!(
                !seen.contains(&generated),
                "{rpc} with {request_id:?}: request id {generated} was used before"
            );
            seen.push(generated);
        }
    }

    service.stop().await;
}

#[tokio::test]
async fn users_survive_restart() {
    let database = TestDatabase::new().await;
    let service = TestService::start_on(&database, Some(TEST_SECRET)).await;
    let ada = service.create_user("Ada", "Ada@Example.com").await;
    let grace = service.create_user("Grace", "grace@example.com").await;
    let linus = service.create_user("Linus", "linus@example.com").await;
    let mut client = service.client();
    let ada = client
        .update_user(UpdateUserRequest {
            id: ada.id.clone(),
            name: Some("Ada King".to_owned()),
            ..Default::default()
        })
        .await
        .expect("UpdateUser failed")
        .into_inner()
        .user
        .expect("UpdateUser response has a user");
    client
        .delete_user(DeleteUserRequest {
            id: linus.id.clone(),
            expected_version: None,
        })
        .await
        .expect("DeleteUser failed");
    let page_request = ListUsersRequest {
        page_size: 1,
        ..Default::default()
    };
    let first_page = client
        .list_users(page_request.clone())
        .await
        .expect("ListUsers failed")
        .into_inner();
    drop(client);
    service.stop().await;

    let restarted = TestService::start_on(&database, Some(TEST_SECRET)).await;
    let mut client = restarted.client();

    for expected in [&ada, &grace] {
        let stored = client
            .get_user(GetUserRequest {
                id: expected.id.clone(),
            })
            .await
            .expect("GetUser after restart failed")
            .into_inner()
            .user;
        assert_eq!(stored.as_ref(), Some(expected));
    }
    let deleted = client
        .get_user(GetUserRequest {
            id: linus.id.clone(),
        })
        .await;
    assert_eq!(
        deleted.expect_err("deleted user came back").code(),
        Code::NotFound
    );

    // A page token issued before the restart still works, because the
    // secret is configured rather than random.
    let second_page = client
        .list_users(ListUsersRequest {
            page_token: first_page.next_page_token,
            ..page_request
        })
        .await
        .expect("ListUsers with a token from before the restart failed")
        .into_inner();
    let mut listed = first_page.users;
    listed.extend(second_page.users);
    assert_eq!(listed, vec![grace.clone(), ada.clone()]);

    // The unique index survives too.
    let duplicate = client
        .create_user(CreateUserRequest {
            name: "Impostor".to_owned(),
            email: "ada@example.com".to_owned(),
            status: 0,
            idempotency_key: String::new(),
        })
        .await;
    assert_eq!(
        duplicate.expect_err("duplicate email was accepted").code(),
        Code::AlreadyExists
    );

    drop(client);
    restarted.stop().await;
}
