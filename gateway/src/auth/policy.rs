//! What each caller may do: the platform's one authorization rule.
//!
//! An admin may do everything. A regular user may read and update their
//! own user record (but not its status), and read, create, pay and cancel
//! their own orders. Everything else needs an admin: listing users,
//! creating and deleting users, the business metrics, and order status
//! changes other than cancelling.

use axum::http::StatusCode;

use super::{Caller, Identity};
use crate::error::ApiError;

/// An operation, with the owner it touches where ownership matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    ReadUser {
        id: &'a str,
    },
    UpdateUser {
        id: &'a str,
        changes_status: bool,
    },
    ListUsers,
    CreateUser,
    DeleteUser,
    ReadMetrics,
    /// Reading the orders of one user.
    ReadOrdersOf {
        user_id: &'a str,
    },
    /// Listing orders of every user.
    ListAllOrders,
    ReadOrder {
        owner: &'a str,
    },
    CreateOrder {
        owner: &'a str,
    },
    PayOrder {
        owner: &'a str,
    },
    CancelOrder {
        owner: &'a str,
    },
    ChangeOrderStatus,
}

/// Allows `action` to `caller`, or says why not.
pub fn authorize(caller: &Caller, action: Action<'_>) -> Result<(), ApiError> {
    require_identity(caller)?;
    // Past that check, any other caller means authentication is off.
    let Caller::Authenticated(identity) = caller else {
        return Ok(());
    };
    if identity.admin || allowed_to_user(identity, action) {
        Ok(())
    } else {
        Err(forbidden(action))
    }
}

/// Rejects a caller that did not pass authentication, before an operation
/// looks anything up to decide.
pub fn require_identity(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Anonymous => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "authentication required",
        )),
        Caller::Unchecked | Caller::Authenticated(_) => Ok(()),
    }
}

fn allowed_to_user(identity: &Identity, action: Action<'_>) -> bool {
    let own = |id: &str| id == identity.subject;
    match action {
        Action::ReadUser { id } => own(id),
        Action::UpdateUser { id, changes_status } => own(id) && !changes_status,
        Action::ReadOrdersOf { user_id } => own(user_id),
        Action::ReadOrder { owner }
        | Action::CreateOrder { owner }
        | Action::PayOrder { owner }
        | Action::CancelOrder { owner } => own(owner),
        Action::ListUsers
        | Action::CreateUser
        | Action::DeleteUser
        | Action::ReadMetrics
        | Action::ListAllOrders
        | Action::ChangeOrderStatus => false,
    }
}

fn forbidden(action: Action<'_>) -> ApiError {
    let detail = match action {
        Action::ReadUser { .. } => "you may read only your own user record",
        Action::UpdateUser {
            changes_status: true,
            ..
        } => "changing a user's status needs the admin role",
        Action::UpdateUser { .. } => "you may update only your own user record",
        Action::ReadOrdersOf { .. } => "you may read only your own orders",
        Action::ReadOrder { .. } => "you may read only your own orders",
        Action::CreateOrder { .. } => "you may create orders only for yourself",
        Action::PayOrder { .. } => "you may pay only your own orders",
        Action::CancelOrder { .. } => "you may cancel only your own orders",
        Action::ListUsers => "listing users needs the admin role",
        Action::CreateUser => "creating users needs the admin role",
        Action::DeleteUser => "deleting users needs the admin role",
        Action::ReadMetrics => "business metrics need the admin role",
        Action::ListAllOrders => {
            "listing every user's orders needs the admin role; filter by your own user_id"
        }
        Action::ChangeOrderStatus => "changing an order's status needs the admin role",
    };
    ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "0190a000-0000-7000-8000-000000000001";
    const OTHER: &str = "0190a000-0000-7000-8000-000000000002";

    fn user() -> Caller {
        Caller::Authenticated(Identity {
            subject: ME.to_owned(),
            admin: false,
        })
    }

    fn admin() -> Caller {
        Caller::Authenticated(Identity {
            subject: "ops".to_owned(),
            admin: true,
        })
    }

    /// Every action, with whether a regular user owning `ME` may do it.
    fn table() -> Vec<(Action<'static>, bool)> {
        vec![
            (Action::ReadUser { id: ME }, true),
            (Action::ReadUser { id: OTHER }, false),
            (
                Action::UpdateUser {
                    id: ME,
                    changes_status: false,
                },
                true,
            ),
            (
                Action::UpdateUser {
                    id: ME,
                    changes_status: true,
                },
                false,
            ),
            (
                Action::UpdateUser {
                    id: OTHER,
                    changes_status: false,
                },
                false,
            ),
            (Action::ListUsers, false),
            (Action::CreateUser, false),
            (Action::DeleteUser, false),
            (Action::ReadMetrics, false),
            (Action::ReadOrdersOf { user_id: ME }, true),
            (Action::ReadOrdersOf { user_id: OTHER }, false),
            (Action::ListAllOrders, false),
            (Action::ReadOrder { owner: ME }, true),
            (Action::ReadOrder { owner: OTHER }, false),
            (Action::CreateOrder { owner: ME }, true),
            (Action::CreateOrder { owner: OTHER }, false),
            (Action::PayOrder { owner: ME }, true),
            (Action::PayOrder { owner: OTHER }, false),
            (Action::CancelOrder { owner: ME }, true),
            (Action::CancelOrder { owner: OTHER }, false),
            (Action::ChangeOrderStatus, false),
        ]
    }

    #[test]
    fn regular_users_touch_only_what_they_own() {
        for (action, allowed) in table() {
            let outcome = authorize(&user(), action);
            assert_eq!(outcome.is_ok(), allowed, "{action:?}");
            if let Err(error) = outcome {
                assert_eq!(error.status, StatusCode::FORBIDDEN, "{action:?}");
                assert_eq!(error.code, "FORBIDDEN");
            }
        }
    }

    #[test]
    fn admins_and_disabled_authentication_may_do_everything() {
        for (action, _) in table() {
            assert!(authorize(&admin(), action).is_ok(), "{action:?}");
            assert!(authorize(&Caller::Unchecked, action).is_ok(), "{action:?}");
        }
    }

    #[test]
    fn anonymous_callers_are_asked_to_authenticate() {
        for (action, _) in table() {
            let error = authorize(&Caller::Anonymous, action).unwrap_err();
            assert_eq!(error.status, StatusCode::UNAUTHORIZED, "{action:?}");
        }
    }
}
