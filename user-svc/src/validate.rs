//! Turns protobuf requests into checked inputs for the store.
//!
//! Every field is checked here, before anything is written, and a broken rule
//! comes back as a [`FieldViolation`] naming the field.

use lintas_common::limits::user::{MAX_EMAIL_CHARS, MAX_FILTER_CHARS, MAX_NAME_CHARS};
use lintas_common::validation::{self, FieldViolation};
use lintas_proto::common::v1::SortDirection;
use lintas_proto::user::v1::{
    CreateUserRequest, ListUsersRequest, UpdateUserRequest, UserOrderField, UserStatus,
};
use uuid::Uuid;

/// Largest number of ids in one `BatchGetUsers` call.
pub const MAX_BATCH_IDS: usize = 100;

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub status: UserStatus,
}

/// Fields of a user to replace; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: Option<UserStatus>,
}

/// Column a listing is sorted by; ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    Name,
    Email,
}

/// A checked `ListUsers` request, without its page token.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub name_contains: Option<String>,
    pub email_contains: Option<String>,
    pub status: Option<UserStatus>,
    pub sort_field: SortField,
    pub descending: bool,
    pub limit: i64,
}

impl UserQuery {
    /// Describes the filters and order, so that a page token issued for one
    /// query is rejected by another.
    pub fn fingerprint(&self) -> String {
        format!(
            "users|{:?}|{:?}|{:?}|{:?}|{}",
            self.name_contains, self.email_contains, self.status, self.sort_field, self.descending
        )
    }
}

pub fn user_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    validation::parse_id(field, value)
}

/// Checks an optional `expected_version`: versions start at 1.
pub fn expected_version(value: Option<i64>) -> Result<Option<i64>, FieldViolation> {
    match value {
        Some(version) if version < 1 => Err(FieldViolation::new(
            "expected_version",
            format!("must be at least 1, got {version}"),
        )),
        other => Ok(other),
    }
}

/// Checks the ids of a `BatchGetUsers` call and removes duplicates.
pub fn batch_ids(ids: &[String]) -> Result<Vec<Uuid>, FieldViolation> {
    if ids.is_empty() {
        return Err(FieldViolation::new("ids", "at least one id is required"));
    }
    if ids.len() > MAX_BATCH_IDS {
        return Err(FieldViolation::new(
            "ids",
            format!("at most {MAX_BATCH_IDS} ids per call, got {}", ids.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let id = user_id(&format!("ids[{index}]"), id)?;
        if !parsed.contains(&id) {
            parsed.push(id);
        }
    }
    Ok(parsed)
}

pub fn create_request(request: &CreateUserRequest) -> Result<NewUser, FieldViolation> {
    let status = match UserStatus::try_from(request.status) {
        Ok(UserStatus::Unspecified) => UserStatus::Active,
        Ok(status) => status,
        Err(_) => return Err(invalid_status("status", request.status)),
    };
    Ok(NewUser {
        name: name(&request.name)?,
        email: email(&request.email)?,
        status,
    })
}

pub fn update_request(request: &UpdateUserRequest) -> Result<(Uuid, UserPatch), FieldViolation> {
    let id = user_id("id", &request.id)?;
    let patch = UserPatch {
        name: request.name.as_deref().map(name).transpose()?,
        email: request.email.as_deref().map(email).transpose()?,
        status: request.status.map(specified_status).transpose()?,
    };
    if patch.name.is_none() && patch.email.is_none() && patch.status.is_none() {
        return Err(FieldViolation::new(
            "update",
            "at least one of name, email or status is required",
        ));
    }
    Ok((id, patch))
}

pub fn list_request(request: &ListUsersRequest) -> Result<UserQuery, FieldViolation> {
    let limit = validation::page_size("page_size", request.page_size)?;
    let status = match UserStatus::try_from(request.status) {
        Ok(UserStatus::Unspecified) => None,
        Ok(status) => Some(status),
        Err(_) => return Err(invalid_status("status", request.status)),
    };
    let order_by = request.order_by.unwrap_or_default();
    let sort_field = match UserOrderField::try_from(order_by.field) {
        Ok(UserOrderField::Unspecified | UserOrderField::CreatedAt) => SortField::CreatedAt,
        Ok(UserOrderField::Name) => SortField::Name,
        Ok(UserOrderField::Email) => SortField::Email,
        Err(_) => {
            return Err(FieldViolation::new(
                "order_by.field",
                format!("unknown field {}", order_by.field),
            ));
        }
    };
    let descending = match SortDirection::try_from(order_by.direction) {
        // Newest first by default; names and emails read best A to Z.
        Ok(SortDirection::Unspecified) => sort_field == SortField::CreatedAt,
        Ok(SortDirection::Asc) => false,
        Ok(SortDirection::Desc) => true,
        Err(_) => {
            return Err(FieldViolation::new(
                "order_by.direction",
                format!("unknown direction {}", order_by.direction),
            ));
        }
    };
    Ok(UserQuery {
        name_contains: filter("name_contains", &request.name_contains)?,
        email_contains: filter("email_contains", &request.email_contains)?,
        status,
        sort_field,
        descending,
        limit,
    })
}

fn name(value: &str) -> Result<String, FieldViolation> {
    validation::text("name", value, 1, MAX_NAME_CHARS)
}

/// Checks an email address: trimmed, at most 254 characters, valid by
/// RFC 5322's `addr-spec` and with a dot in the domain.
pub fn email(value: &str) -> Result<String, FieldViolation> {
    let trimmed = validation::text("email", value, 1, MAX_EMAIL_CHARS)?;
    let domain_has_dot = trimmed
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
    // email_address 0.2 also accepts `Name <address>` by default, which is not an addr-spec.
    let options = email_address::Options::default().without_display_text();
    let is_addr_spec = email_address::EmailAddress::parse_with_options(&trimmed, options).is_ok();
    if !is_addr_spec || !domain_has_dot {
        return Err(FieldViolation::new("email", "not a valid address"));
    }
    Ok(trimmed)
}

fn filter(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    validation::text(field, value, 1, MAX_FILTER_CHARS).map(Some)
}

fn specified_status(value: i32) -> Result<UserStatus, FieldViolation> {
    match UserStatus::try_from(value) {
        Ok(UserStatus::Unspecified) | Err(_) => Err(invalid_status("status", value)),
        Ok(status) => Ok(status),
    }
}

fn invalid_status(field: &str, value: i32) -> FieldViolation {
    FieldViolation::new(field, format!("must be ACTIVE or SUSPENDED, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        for valid in ["ada@example.com", "  a.b+tag@sub.example.org ", "x@y.io"] {
            assert!(email(valid).is_ok(), "{valid} was rejected");
        }
        for invalid in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
            "ada@example.",
            "Ada <ada@example.com>",
        ] {
            assert!(email(invalid).is_err(), "{invalid:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(email(&long).is_err());
    }

    #[test]
    fn batch_ids_limits_and_duplicates() {
        assert_eq!(batch_ids(&[]).unwrap_err().field, "ids");
        let id = Uuid::now_v7().to_string();
        assert_eq!(batch_ids(&[id.clone(), id.clone()]).unwrap().len(), 1);
        assert_eq!(
            batch_ids(&[id.clone(), "x".into()]).unwrap_err().field,
            "ids[1]"
        );
        assert!(batch_ids(&vec![id; MAX_BATCH_IDS + 1]).is_err());
    }

    #[test]
    fn create_defaults_status_to_active() {
        let request = CreateUserRequest {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            status: 0,
            idempotency_key: String::new(),
        };
        assert_eq!(create_request(&request).unwrap().status, UserStatus::Active);
    }

    #[test]
    fn create_rejects_unknown_status() {
        let request = CreateUserRequest {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            status: 9,
            idempotency_key: String::new(),
        };
        assert_eq!(create_request(&request).unwrap_err().field, "status");
    }

    #[test]
    fn update_needs_a_field() {
        let request = UpdateUserRequest {
            id: Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert_eq!(update_request(&request).unwrap_err().field, "update");
    }

    #[test]
    fn update_rejects_unspecified_status() {
        let request = UpdateUserRequest {
            id: Uuid::now_v7().to_string(),
            status: Some(0),
            ..Default::default()
        };
        assert_eq!(update_request(&request).unwrap_err().field, "status");
    }

    #[test]
    fn list_rejects_oversized_page() {
        let request = ListUsersRequest {
            page_size: 101,
            ..Default::default()
        };
        assert_eq!(list_request(&request).unwrap_err().field, "page_size");
    }

    #[test]
    fn fingerprint_differs_by_filter() {
        let first = list_request(&ListUsersRequest::default()).unwrap();
        let second = list_request(&ListUsersRequest {
            name_contains: "a".into(),
            ..Default::default()
        })
        .unwrap();
        assert_ne!(first.fingerprint(), second.fingerprint());
    }
}
