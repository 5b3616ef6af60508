//! Business counters of the order service, exported to Prometheus. Retries
//! answered from an idempotency key are not counted again.

use lintas_proto::order::v1::{Order, Payment, PaymentStatus};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Counters for orders, status changes and payments.
#[derive(Clone)]
pub struct BusinessMetrics {
    orders_created: IntCounter,
    status_changes: IntCounterVec,
    payments: IntCounterVec,
    payment_amounts: IntCounterVec,
}

impl BusinessMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let orders_created = IntCounter::new("orders_created_total", "Orders created.")?;
        let status_changes = IntCounterVec::new(
            Opts::new(
                "order_status_changes_total",
                "Orders moved to a status, by the new status.",
            ),
            &["status"],
        )?;
        let payments = IntCounterVec::new(
            Opts::new(
                "payments_total",
                "Payment attempts by outcome: succeeded or failed.",
            ),
            &["status"],
        )?;
        let payment_amounts = IntCounterVec::new(
            Opts::new(
                "payments_amount_minor_units_total",
                "Sum of payment amounts in minor units, by ISO 4217 currency and outcome.",
            ),
            &["currency", "status"],
        )?;
        registry.register(Box::new(orders_created.clone()))?;
        registry.register(Box::new(status_changes.clone()))?;
        registry.register(Box::new(payments.clone()))?;
        registry.register(Box::new(payment_amounts.clone()))?;
        Ok(Self {
            orders_created,
            status_changes,
            payments,
            payment_amounts,
        })
    }

    pub fn order_created(&self) {
        self.orders_created.inc();
    }

    pub fn status_changed(&self, order: &Order) {
        let status = order
            .status()
            .as_str_name()
            .trim_start_matches("ORDER_STATUS_");
        self.status_changes.with_label_values(&[status]).inc();
    }

    pub fn payment_recorded(&self, payment: &Payment) {
        let status = match payment.status() {
            PaymentStatus::Succeeded => "succeeded",
            _ => "failed",
        };
        self.payments.with_label_values(&[status]).inc();
        // Currencies were validated against ISO 4217, so the label stays bounded.
        let amount = u64::try_from(payment.amount).unwrap_or(0);
        self.payment_amounts
            .with_label_values(&[payment.currency.as_str(), status])
            .inc_by(amount);
    }
}
