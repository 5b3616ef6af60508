//! Field validation errors and the checks both services share.
//!
//! A violation names the field and the rule it broke, for example
//! `email: not a valid address`, and becomes `INVALID_ARGUMENT` at the gRPC
//! boundary. The gateway passes the message through to REST and GraphQL
//! clients unchanged.

use tonic::Status;
use uuid::Uuid;

/// Default number of rows in a page when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
/// Largest page a caller may request; larger requests are rejected.
pub const MAX_PAGE_SIZE: i32 = 100;

/// A request field that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Name of the field as it appears in the protobuf request.
    pub field: String,
    /// The rule that was broken, in plain words.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.field, self.description)
    }
}

impl From<FieldViolation> for Status {
    fn from(violation: FieldViolation) -> Self {
        Status::invalid_argument(violation.to_string())
    }
}

/// Parses a UUID id field.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| FieldViolation::new(field, "not a valid UUID"))
}

/// Resolves a requested page size: 0 means the default, 1 to the maximum is
/// taken as is, anything else is rejected.
pub fn page_size(field: &str, requested: i32) -> Result<i64, FieldViolation> {
    match requested {
        0 => Ok(i64::from(DEFAULT_PAGE_SIZE)),
        1..=MAX_PAGE_SIZE => Ok(i64::from(requested)),
        _ => Err(FieldViolation::new(
            field,
            format!("must be between 1 and {MAX_PAGE_SIZE}, got {requested}"),
        )),
    }
}

/// Trims `value` and checks that it has between `min` and `max` characters
/// and no control characters.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, FieldViolation> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length < min {
        let rule = if min == 1 {
            "is required".to_owned()
        } else {
            format!("must have at least {min} characters")
        };
        return Err(FieldViolation::new(field, rule));
    }
    if length > max {
        return Err(FieldViolation::new(
            field,
            format!("must have at most {max} characters, got {length}"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_id_rejects_empty_and_garbage() {
        assert_eq!(
            parse_id("id", "").unwrap_err().to_string(),
            "id: is required"
        );
        assert_eq!(
            parse_id("id", "42").unwrap_err().to_string(),
            "id: not a valid UUID"
        );
        assert!(parse_id("id", "0190f0f0-0000-7000-8000-000000000000").is_ok());
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size("page_size", 0), Ok(20));
        assert_eq!(page_size("page_size", 1), Ok(1));
        assert_eq!(page_size("page_size", 100), Ok(100));
        assert!(page_size("page_size", 101).is_err());
        assert!(page_size("page_size", -1).is_err());
    }

    #[test]
    fn text_trims_and_checks_length() {
        assert_eq!(text("name", "  Ada  ", 1, 5), Ok("Ada".to_owned()));
        assert_eq!(
            text("name", "   ", 1, 5).unwrap_err().to_string(),
            "name: is required"
        );
        assert!(text("name", "abcdef", 1, 5).is_err());
        assert!(text("name", "a\u{0}b", 1, 5).is_err());
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        assert!(text("name", "ééééé", 1, 5).is_ok());
    }

    #[test]
    fn violation_becomes_invalid_argument() {
        let status = Status::from(FieldViolation::new("email", "not a valid address"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "email: not a valid address");
    }
}
