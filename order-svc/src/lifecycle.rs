//! The order state machine: which status an order may move to from which.
//!
//! ```text
//! PENDING --ProcessPayment--> PAID --> SHIPPED --> DELIVERED
//! PENDING, PAID --> CANCELLED (a PAID order is refunded)
//! ```
//!
//! This module only decides. The store applies a transition with the
//! allowed source statuses in the `UPDATE`'s `WHERE` clause, so two
//! concurrent transitions from one status cannot both succeed.

use lintas_proto::order::v1::OrderStatus;

/// A status change that some RPC can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// PENDING to PAID, only through a succeeded payment.
    Pay,
    Ship,
    Deliver,
    /// PENDING or PAID to CANCELLED; a PAID order is refunded.
    Cancel,
}

/// A transition that the order's current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order is {}, cannot move to {}", status_name(*.from), status_name(*.to))]
pub struct TransitionRejected {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl Transition {
    /// Status the order has after the transition.
    pub fn target(self) -> OrderStatus {
        match self {
            Transition::Pay => OrderStatus::Paid,
            Transition::Ship => OrderStatus::Shipped,
            Transition::Deliver => OrderStatus::Delivered,
            Transition::Cancel => OrderStatus::Cancelled,
        }
    }

    /// Statuses the transition may start from.
    pub fn sources(self) -> &'static [OrderStatus] {
        match self {
            Transition::Pay => &[OrderStatus::Pending],
            Transition::Ship => &[OrderStatus::Paid],
            Transition::Deliver => &[OrderStatus::Shipped],
            Transition::Cancel => &[OrderStatus::Pending, OrderStatus::Paid],
        }
    }

    /// Checks that an order in status `from` may take this transition.
    pub fn check(self, from: OrderStatus) -> Result<(), TransitionRejected> {
        if self.sources().contains(&from) {
            Ok(())
        } else {
            Err(TransitionRejected {
                from,
                to: self.target(),
            })
        }
    }
}

/// Every status an order can have, in lifecycle order.
pub const STATUSES: [OrderStatus; 5] = [
    OrderStatus::Pending,
    OrderStatus::Paid,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
    OrderStatus::Cancelled,
];

/// Short upper-case name of a status, as stored and as shown in messages:
/// `PENDING` rather than the protobuf name `ORDER_STATUS_PENDING`.
pub fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Unspecified => "UNSPECIFIED",
        OrderStatus::Pending => "PENDING",
        OrderStatus::Paid => "PAID",
        OrderStatus::Shipped => "SHIPPED",
        OrderStatus::Delivered => "DELIVERED",
        OrderStatus::Cancelled => "CANCELLED",
    }
}

/// Parses a name written by [`status_name`].
pub fn status_from_name(name: &str) -> Option<OrderStatus> {
    STATUSES
        .into_iter()
        .find(|status| status_name(*status) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use OrderStatus::{Cancelled, Delivered, Paid, Pending, Shipped};

    const TRANSITIONS: [Transition; 4] = [
        Transition::Pay,
        Transition::Ship,
        Transition::Deliver,
        Transition::Cancel,
    ];

    /// Every allowed (from, transition) pair; all other pairs are rejected.
    const ALLOWED: [(OrderStatus, Transition); 5] = [
        (Pending, Transition::Pay),
        (Paid, Transition::Ship),
        (Shipped, Transition::Deliver),
        (Pending, Transition::Cancel),
        (Paid, Transition::Cancel),
    ];

    #[test]
    fn transition_table_matches_contract() {
        for from in STATUSES {
            for transition in TRANSITIONS {
                let expected_allowed = ALLOWED.contains(&(from, transition));
                assert_eq!(
                    transition.check(from).is_ok(),
                    expected_allowed,
                    "{transition:?} from {from:?}"
                );
            }
        }
    }

    #[test]
    fn terminal_statuses_allow_nothing() {
        for from in [Delivered, Cancelled] {
            for transition in TRANSITIONS {
                assert!(
                    transition.check(from).is_err(),
                    "{transition:?} from {from:?}"
                );
            }
        }
    }

    #[test]
    fn rejection_message_names_both_statuses() {
        let rejected = Transition::Pay.check(Shipped).unwrap_err();
        assert_eq!(
            rejected.to_string(),
            "order is SHIPPED, cannot move to PAID"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in STATUSES {
            assert_eq!(status_from_name(status_name(status)), Some(status));
        }
        assert_eq!(status_from_name("UNSPECIFIED"), None);
        assert_eq!(status_from_name("pending"), None);
    }
}
