//! Invalid requests to every RPC: each is rejected with `INVALID_ARGUMENT`
//! and a message naming the field, and none of them writes anything.

mod common;

use common::TestService;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_proto::user::v1::{
    BatchGetUsersRequest, CreateUserRequest, DeleteUserRequest, GetUserRequest, ListUsersRequest,
    UpdateUserRequest, UserOrderBy,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// One request to any RPC of the service.
#[derive(Debug, Clone)]
enum Call {
    Get(GetUserRequest),
    BatchGet(BatchGetUsersRequest),
    List(ListUsersRequest),
    Create(CreateUserRequest),
    Update(UpdateUserRequest),
    Delete(DeleteUserRequest),
}

impl Call {
    /// Sends the request and drops the response body, which these tests
    /// never expect to get.
    async fn send(self, client: &mut UserServiceClient<Channel>) -> Result<(), Status> {
        match self {
            Call::Get(request) => client.get_user(request).await.map(drop),
            Call::BatchGet(request) => client.batch_get_users(request).await.map(drop),
            Call::List(request) => client.list_users(request).await.map(drop),
            Call::Create(request) => client.create_user(request).await.map(drop),
            Call::Update(request) => client.update_user(request).await.map(drop),
            Call::Delete(request) => client.delete_user(request).await.map(drop),
        }
    }
}

/// An invalid request and the status it must get.
struct Case {
    call: Call,
    code: Code,
    /// Text that the status message must contain. It starts with the field name.
    fragment: &'static str,
}

fn case(call: Call, fragment: &'static str) -> Case {
    Case {
        call,
        code: Code::InvalidArgument,
        fragment,
    }
}

fn create(name: &str, email: &str, status: i32) -> Call {
    Call::Create(CreateUserRequest {
        name: name.to_owned(),
        email: email.to_owned(),
        status,
        idempotency_key: String::new(),
    })
}

fn update(id: &str, name: Option<&str>, email: Option<&str>, status: Option<i32>) -> Call {
    Call::Update(UpdateUserRequest {
        id: id.to_owned(),
        name: name.map(str::to_owned),
        email: email.map(str::to_owned),
        status,
        expected_version: None,
    })
}

fn list(request: ListUsersRequest) -> Call {
    Call::List(request)
}

fn order_by(field: i32, direction: i32) -> Option<UserOrderBy> {
    Some(UserOrderBy { field, direction })
}

/// Returns the invalid requests of the table. `id` names an existing user,
/// so that only the broken field can cause the rejection.
fn invalid_requests(id: &str) -> Vec<Case> {
    let long_name = "a".repeat(101);
    let long_accented_name = "é".repeat(101);
    let long_email = format!("{}@example.com", "a".repeat(243));
    let long_filter = "a".repeat(101);

    vec![
        // GetUser
        case(
            Call::Get(GetUserRequest { id: String::new() }),
            "id: is required",
        ),
        case(
            Call::Get(GetUserRequest {
                id: "42".to_owned(),
            }),
            "id: not a valid UUID",
        ),
        case(
            Call::Get(GetUserRequest {
                id: format!("{id}0"),
            }),
            "id: not a valid UUID",
        ),
        case(
            Call::Get(GetUserRequest {
                id: format!(" {id}"),
            }),
            "id: not a valid UUID",
        ),
        // BatchGetUsers
        case(
            Call::BatchGet(BatchGetUsersRequest { ids: Vec::new() }),
            "ids: at least one id is required",
        ),
        case(
            Call::BatchGet(BatchGetUsersRequest {
                ids: vec![id.to_owned(); 101],
            }),
            "ids: at most 100 ids per call, got 101",
        ),
        case(
            Call::BatchGet(BatchGetUsersRequest {
                ids: vec![String::new()],
            }),
            "ids[0]: is required",
        ),
        case(
            Call::BatchGet(BatchGetUsersRequest {
                ids: vec![id.to_owned(), "x".to_owned()],
            }),
            "ids[1]: not a valid UUID",
        ),
        // DeleteUser
        case(
            Call::Delete(DeleteUserRequest {
                id: String::new(),
                expected_version: None,
            }),
            "id: is required",
        ),
        case(
            Call::Delete(DeleteUserRequest {
                id: "not-a-uuid".to_owned(),
                expected_version: None,
            }),
            "id: not a valid UUID",
        ),
        // CreateUser: name
        case(create("", "new@example.com", 0), "name: is required"),
        case(create(" \t\n ", "new@example.com", 0), "name: is required"),
        case(
            create(&long_name, "new@example.com", 0),
            "name: must have at most 100 characters, got 101",
        ),
        case(
            create(&long_accented_name, "new@example.com", 0),
            "name: must have at most 100 characters",
        ),
        case(
            create("Ada\u{0}Lovelace", "new@example.com", 0),
            "name: must not contain control characters",
        ),
        case(
            create("Ada\nLovelace", "new@example.com", 0),
            "name: must not contain control characters",
        ),
        case(
            create("Ada\u{1b}[31m", "new@example.com", 0),
            "name: must not contain control characters",
        ),
        case(
            create("Ada\u{7f}", "new@example.com", 0),
            "name: must not contain control characters",
        ),
        // CreateUser: email
        case(create("New", "", 0), "email: is required"),
        case(create("New", "   ", 0), "email: is required"),
        case(create("New", "new", 0), "email: not a valid address"),
        case(create("New", "new@", 0), "email: not a valid address"),
        case(
            create("New", "@example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new@localhost", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new user@example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new@example.", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new@@example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new@.example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new@-example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "new..user@example.com", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "New User <new@example.com>", 0),
            "email: not a valid address",
        ),
        case(
            create("New", "<new@example.com>", 0),
            "email: not a valid address",
        ),
        case(
            create("New", &long_email, 0),
            "email: must have at most 254 characters, got 255",
        ),
        case(
            create("New", "new@example.com\u{0}", 0),
            "email: must not contain control characters",
        ),
        // CreateUser: status
        case(
            create("New", "new@example.com", 3),
            "status: must be ACTIVE or SUSPENDED, got 3",
        ),
        case(
            create("New", "new@example.com", -1),
            "status: must be ACTIVE or SUSPENDED",
        ),
        // UpdateUser
        case(update("", Some("New"), None, None), "id: is required"),
        case(
            update("nope", Some("New"), None, None),
            "id: not a valid UUID",
        ),
        case(
            update(id, None, None, None),
            "update: at least one of name, email or status is required",
        ),
        case(update(id, Some(""), None, None), "name: is required"),
        case(update(id, Some("   "), None, None), "name: is required"),
        case(
            update(id, Some(&long_name), None, None),
            "name: must have at most 100 characters",
        ),
        case(
            update(id, Some("Ada\u{7}"), None, None),
            "name: must not contain control characters",
        ),
        case(update(id, None, Some(""), None), "email: is required"),
        case(
            update(id, None, Some("ada"), None),
            "email: not a valid address",
        ),
        case(
            update(id, None, Some("Ada <ada@example.com>"), None),
            "email: not a valid address",
        ),
        case(
            update(id, None, Some("a\u{7}@example.com"), None),
            "email: must not contain control characters",
        ),
        case(
            update(id, None, None, Some(0)),
            "status: must be ACTIVE or SUSPENDED, got 0",
        ),
        case(
            update(id, None, None, Some(3)),
            "status: must be ACTIVE or SUSPENDED, got 3",
        ),
        // A valid field beside an invalid one is not written either.
        case(
            update(id, Some("Renamed"), Some("not-an-address"), None),
            "email: not a valid address",
        ),
        case(
            update(id, Some("Renamed"), None, Some(9)),
            "status: must be ACTIVE or SUSPENDED, got 9",
        ),
        // ListUsers
        case(
            list(ListUsersRequest {
                page_size: 101,
                ..Default::default()
            }),
            "page_size: must be between 1 and 100, got 101",
        ),
        case(
            list(ListUsersRequest {
                page_size: -1,
                ..Default::default()
            }),
            "page_size: must be between 1 and 100, got -1",
        ),
        case(
            list(ListUsersRequest {
                page_size: i32::MIN,
                ..Default::default()
            }),
            "page_size: must be between 1 and 100",
        ),
        case(
            list(ListUsersRequest {
                status: 3,
                ..Default::default()
            }),
            "status: must be ACTIVE or SUSPENDED, got 3",
        ),
        case(
            list(ListUsersRequest {
                order_by: order_by(4, 0),
                ..Default::default()
            }),
            "order_by.field: unknown field 4",
        ),
        case(
            list(ListUsersRequest {
                order_by: order_by(-1, 1),
                ..Default::default()
            }),
            "order_by.field",
        ),
        case(
            list(ListUsersRequest {
                order_by: order_by(2, 3),
                ..Default::default()
            }),
            "order_by.direction: unknown direction 3",
        ),
        case(
            list(ListUsersRequest {
                name_contains: long_filter.clone(),
                ..Default::default()
            }),
            "name_contains: must have at most 100 characters",
        ),
        case(
            list(ListUsersRequest {
                email_contains: long_filter,
                ..Default::default()
            }),
            "email_contains: must have at most 100 characters",
        ),
        case(
            list(ListUsersRequest {
                email_contains: "a\u{0}b".to_owned(),
                ..Default::default()
            }),
            "email_contains: must not contain control characters",
        ),
    ]
}

#[tokio::test]
async fn invalid_requests_are_rejected_without_writes() {
    let service = TestService::start().await;
    let existing = service.create_user("Ada", "ada@example.com").await;
    let mut client = service.client();
    let metrics_before = service.metrics().await;
    let listed_before = service.listed_user_count().await;

    for Case {
        call,
        code,
        fragment,
    } in invalid_requests(&existing.id)
    {
        let result = call.clone().send(&mut client).await;
        let Err(status) = result else {
            panic!("{call:?} succeeded, expected {code:?} with {fragment:?}");
        };
        assert_eq!(status.code(), code, "{call:?}: {:?}", status.message());
        assert!(
            status.message().contains(fragment),
            "{call:?}: message {:?} does not contain {fragment:?}",
            status.message()
        );
    }

    let metrics_after = service.metrics().await;
    assert_eq!(metrics_after.total_users, metrics_before.total_users);
    assert_eq!(
        metrics_after.users_by_status,
        metrics_before.users_by_status
    );
    assert_eq!(service.listed_user_count().await, listed_before);
    let stored = client
        .get_user(GetUserRequest {
            id: existing.id.clone(),
        })
        .await
        .expect("GetUser failed")
        .into_inner()
        .user;
    assert_eq!(stored, Some(existing), "a rejected update changed the user");

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn rejected_create_leaves_email_free() {
    let service = TestService::start().await;

    let result = service
        .client()
        .create_user(CreateUserRequest {
            name: "\u{0}".to_owned(),
            email: "ada@example.com".to_owned(),
            status: 0,
            idempotency_key: String::new(),
        })
        .await;
    assert!(result.is_err(), "invalid name was accepted");

    // The address was never stored, so it is still free to use.
    let user = service.create_user("Ada", "ada@example.com").await;
    assert_eq!(user.version, 1);
    assert_eq!(service.metrics().await.total_users, 1);

    service.stop().await;
}
