//! The built-in test payment provider, which charges nothing.
//!
//! It declines every token that starts with `tok_decline` and accepts all
//! others, so callers can exercise both outcomes without a real provider.
//!
//! The store charges inside the payment's write transaction, after the
//! order's status, amount and currency pass and after the idempotency key is
//! claimed, so a replay or a rejected payment charges nothing.
//!
//! NOTE: a real provider would be a network call made while the transaction
//! holds the order's row lock (PostgreSQL) or the database's write lock
//! (SQLite). It would also need the payment's id as its own idempotency key,
//! and a void of the charge when the transaction fails after the charge.

/// Prefix of the tokens that the test provider declines.
pub const DECLINE_PREFIX: &str = "tok_decline";

/// Result of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded,
    /// The provider refused the charge, for the given reason.
    Declined {
        reason: String,
    },
}

/// Charges the payment described by `token`.
pub fn charge(token: &str) -> ChargeOutcome {
    if token.starts_with(DECLINE_PREFIX) {
        ChargeOutcome::Declined {
            reason: "declined by the test payment provider".to_owned(),
        }
    } else {
        ChargeOutcome::Succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_prefix_declines() {
        assert!(matches!(
            charge("tok_decline_insufficient_funds"),
            ChargeOutcome::Declined { .. }
        ));
        assert_eq!(charge("tok_visa"), ChargeOutcome::Succeeded);
        assert_eq!(charge("tok_declin"), ChargeOutcome::Succeeded);
    }
}
