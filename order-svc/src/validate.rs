//! Turns protobuf requests into checked inputs for the store.
//!
//! Every field is checked here, before the user service is called or anything
//! is written, and a broken rule comes back as a [`FieldViolation`] naming
//! the field path, for example `items[2].quantity` (indexes start at 0).
//!
//! Currency and country codes must be upper case, as ISO 4217 and
//! ISO 3166-1 write them: `"usd"` is rejected with a message that names the
//! upper-case code instead of being silently normalised.

use std::str::FromStr;

use iso_currency::Currency;
use lintas_common::idempotency::IdempotencyKey;
use lintas_common::limits::order::{
    MAX_ADDRESS_LINE_CHARS, MAX_CITY_CHARS, MAX_ITEMS, MAX_PAYMENT_TOKEN_CHARS,
    MAX_POSTAL_CODE_CHARS, MAX_QUANTITY, MAX_REASON_CHARS, MAX_RECIPIENT_CHARS, MAX_REGION_CHARS,
    MAX_SKU_CHARS, MAX_UNIT_PRICE,
};
use lintas_common::time::timestamp_to_micros;
use lintas_common::validation::{self, FieldViolation};
use lintas_proto::common::v1::SortDirection;
use lintas_proto::order::v1::{
    Address, CancelOrderRequest, CreateOrderRequest, GetOrdersByUserRequest,
    ListOrdersByUsersRequest, ListOrdersRequest, OrderItem, OrderOrderField, OrderStatus,
    PaymentMethod, ProcessPaymentRequest, UpdateOrderStatusRequest,
};
use uuid::Uuid;

use crate::lifecycle::Transition;

const MAX_BATCH_USERS: usize = 100;
const DEFAULT_LIMIT_PER_USER: i64 = 10;
const MAX_LIMIT_PER_USER: i32 = 100;
/// Scopes of idempotency keys, one per RPC, so one key may serve both.
const CREATE_ORDER_SCOPE: &str = "CreateOrder";
const PROCESS_PAYMENT_SCOPE: &str = "ProcessPayment";

/// An order to insert, with its total already computed.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub user_id: Uuid,
    pub items: Vec<OrderItem>,
    pub currency: String,
    pub total: i64,
    pub shipping_address: Address,
}

/// A status change that `UpdateOrderStatus` or `CancelOrder` may apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    Ship,
    Deliver,
    /// Cancellation, with `reason` empty when the caller gave none.
    Cancel {
        reason: String,
    },
}

/// Target status of a checked `UpdateOrderStatus` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedStatus {
    /// A change this RPC may apply, if the order's status allows it.
    Change(StatusChange),
    /// PENDING, which no order returns to, or PAID, which only
    /// ProcessPayment reaches. The request fails whatever the order's status.
    Unreachable(OrderStatus),
}

/// A payment to charge and record.
#[derive(Debug, Clone)]
pub struct PaymentInput {
    pub order_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub method: PaymentMethod,
    /// Opaque provider token, which is never stored or logged.
    pub token: String,
}

/// Column a listing is sorted by. Ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    Total,
    /// NOTE: an order changed while a caller pages through this ordering
    /// moves past the cursor, so it can be skipped or returned twice.
    UpdatedAt,
}

/// A checked listing request, without its page token.
#[derive(Debug, Clone)]
pub struct OrderQuery {
    pub user_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    /// Inclusive lower bound on `created_at`, in microseconds.
    pub created_after: Option<i64>,
    /// Exclusive upper bound on `created_at`, in microseconds.
    pub created_before: Option<i64>,
    pub min_total: Option<i64>,
    pub sort_field: SortField,
    pub descending: bool,
    pub limit: i64,
}

/// A checked `ListOrdersByUsers` request.
#[derive(Debug, Clone)]
pub struct UsersQuery {
    /// Distinct user ids, in the order first given.
    pub user_ids: Vec<Uuid>,
    pub limit_per_user: i64,
    /// Whether to leave out the items and payments.
    pub omit_details: bool,
}

impl StatusChange {
    pub fn transition(&self) -> Transition {
        match self {
            StatusChange::Ship => Transition::Ship,
            StatusChange::Deliver => Transition::Deliver,
            StatusChange::Cancel { .. } => Transition::Cancel,
        }
    }
}

impl OrderQuery {
    /// Describes the RPC, filters and order, so that a page token issued
    /// for one listing is rejected by any other.
    pub fn fingerprint(&self, rpc: &str) -> String {
        format!(
            "{rpc}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
            self.user_id,
            self.status,
            self.created_after,
            self.created_before,
            self.min_total,
            self.sort_field,
            self.descending
        )
    }
}

pub fn order_id(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    validation::parse_id(field, value)
}

pub fn create_request(request: &CreateOrderRequest) -> Result<NewOrder, FieldViolation> {
    let user_id = validation::parse_id("user_id", &request.user_id)?;
    let items = items(&request.items)?;
    let total = order_total(&items)?;
    let currency = currency("currency", &request.currency)?;
    let shipping_address = match &request.shipping_address {
        Some(address) => shipping_address(address)?,
        None => return Err(FieldViolation::new("shipping_address", "is required")),
    };
    Ok(NewOrder {
        user_id,
        items,
        currency,
        total,
        shipping_address,
    })
}

/// Checks the idempotency key of a CreateOrder request, if it has one, and
/// fingerprints the request without the key.
pub fn create_key(request: &CreateOrderRequest) -> Result<Option<IdempotencyKey>, FieldViolation> {
    let unkeyed = CreateOrderRequest {
        idempotency_key: String::new(),
        ..request.clone()
    };
    IdempotencyKey::parse(CREATE_ORDER_SCOPE, &request.idempotency_key, &unkeyed)
}

/// Checks the idempotency key of a ProcessPayment request, if it has one,
/// and fingerprints the request without the key.
pub fn payment_key(
    request: &ProcessPaymentRequest,
) -> Result<Option<IdempotencyKey>, FieldViolation> {
    let unkeyed = ProcessPaymentRequest {
        idempotency_key: String::new(),
        ..request.clone()
    };
    IdempotencyKey::parse(PROCESS_PAYMENT_SCOPE, &request.idempotency_key, &unkeyed)
}

pub fn update_status_request(
    request: &UpdateOrderStatusRequest,
) -> Result<(Uuid, RequestedStatus), FieldViolation> {
    let id = order_id("id", &request.id)?;
    let requested = match OrderStatus::try_from(request.status) {
        Ok(OrderStatus::Unspecified) => {
            return Err(FieldViolation::new(
                "status",
                "is required, one of SHIPPED, DELIVERED or CANCELLED",
            ));
        }
        Ok(OrderStatus::Shipped) => RequestedStatus::Change(StatusChange::Ship),
        Ok(OrderStatus::Delivered) => RequestedStatus::Change(StatusChange::Deliver),
        Ok(OrderStatus::Cancelled) => RequestedStatus::Change(StatusChange::Cancel {
            reason: String::new(),
        }),
        Ok(status @ (OrderStatus::Pending | OrderStatus::Paid)) => {
            RequestedStatus::Unreachable(status)
        }
        Err(_) => return Err(unknown_status("status", request.status)),
    };
    Ok((id, requested))
}

pub fn cancel_request(
    request: &CancelOrderRequest,
) -> Result<(Uuid, StatusChange), FieldViolation> {
    let id = order_id("id", &request.id)?;
    let reason = validation::text("reason", &request.reason, 0, MAX_REASON_CHARS)?;
    Ok((id, StatusChange::Cancel { reason }))
}

pub fn payment_request(request: &ProcessPaymentRequest) -> Result<PaymentInput, FieldViolation> {
    let order_id = order_id("order_id", &request.order_id)?;
    if request.amount < 0 {
        return Err(FieldViolation::new(
            "amount",
            format!("must be at least 0, got {}", request.amount),
        ));
    }
    let currency = currency("currency", &request.currency)?;
    let method = match PaymentMethod::try_from(request.method) {
        Ok(PaymentMethod::Unspecified) => {
            return Err(FieldViolation::new(
                "method",
                "is required, one of CARD, BANK_TRANSFER or WALLET",
            ));
        }
        Ok(method) => method,
        Err(_) => {
            return Err(FieldViolation::new(
                "method",
                format!("unknown payment method {}", request.method),
            ));
        }
    };
    let token = payment_token(&request.payment_token)?;
    Ok(PaymentInput {
        order_id,
        amount: request.amount,
        currency,
        method,
        token,
    })
}

pub fn list_request(request: &ListOrdersRequest) -> Result<OrderQuery, FieldViolation> {
    let limit = validation::page_size("page_size", request.page_size)?;
    let user_id = match request.user_id.as_str() {
        "" => None,
        value => Some(validation::parse_id("user_id", value)?),
    };
    let status = match OrderStatus::try_from(request.status) {
        Ok(OrderStatus::Unspecified) => None,
        Ok(status) => Some(status),
        Err(_) => return Err(unknown_status("status", request.status)),
    };
    let created_after = request
        .created_after
        .as_ref()
        .map(|timestamp| instant("created_after", timestamp))
        .transpose()?;
    let created_before = request
        .created_before
        .as_ref()
        .map(|timestamp| instant("created_before", timestamp))
        .transpose()?;
    if let (Some(after), Some(before)) = (created_after, created_before)
        && before <= after
    {
        return Err(FieldViolation::new(
            "created_before",
            "must be later than created_after",
        ));
    }
    if let Some(min_total) = request.min_total
        && min_total < 0
    {
        return Err(FieldViolation::new(
            "min_total",
            format!("must be at least 0, got {min_total}"),
        ));
    }

    let order_by = request.order_by.unwrap_or_default();
    let sort_field = match OrderOrderField::try_from(order_by.field) {
        Ok(OrderOrderField::Unspecified | OrderOrderField::CreatedAt) => SortField::CreatedAt,
        Ok(OrderOrderField::Total) => SortField::Total,
        Ok(OrderOrderField::UpdatedAt) => SortField::UpdatedAt,
        Err(_) => {
            return Err(FieldViolation::new(
                "order_by.field",
                format!("unknown field {}", order_by.field),
            ));
        }
    };
    let descending = match SortDirection::try_from(order_by.direction) {
        // Newest first for the instants, and largest first for the total.
        Ok(SortDirection::Unspecified | SortDirection::Desc) => true,
        Ok(SortDirection::Asc) => false,
        Err(_) => {
            return Err(FieldViolation::new(
                "order_by.direction",
                format!("unknown direction {}", order_by.direction),
            ));
        }
    };

    Ok(OrderQuery {
        user_id,
        status,
        created_after,
        created_before,
        min_total: request.min_total,
        sort_field,
        descending,
        limit,
    })
}

/// Checks a `GetOrdersByUser` request, which lists one user's orders
/// newest first.
pub fn by_user_request(request: &GetOrdersByUserRequest) -> Result<OrderQuery, FieldViolation> {
    let user_id = validation::parse_id("user_id", &request.user_id)?;
    let limit = validation::page_size("page_size", request.page_size)?;
    Ok(OrderQuery {
        user_id: Some(user_id),
        status: None,
        created_after: None,
        created_before: None,
        min_total: None,
        sort_field: SortField::CreatedAt,
        descending: true,
        limit,
    })
}

/// Checks a `ListOrdersByUsers` request and drops repeated user ids.
pub fn by_users_request(request: &ListOrdersByUsersRequest) -> Result<UsersQuery, FieldViolation> {
    if request.user_ids.is_empty() {
        return Err(FieldViolation::new(
            "user_ids",
            "at least one user id is required",
        ));
    }
    if request.user_ids.len() > MAX_BATCH_USERS {
        return Err(FieldViolation::new(
            "user_ids",
            format!(
                "must have at most {MAX_BATCH_USERS} ids, got {}",
                request.user_ids.len()
            ),
        ));
    }
    let mut user_ids: Vec<Uuid> = Vec::with_capacity(request.user_ids.len());
    for (index, value) in request.user_ids.iter().enumerate() {
        let user_id = validation::parse_id(&format!("user_ids[{index}]"), value)?;
        if !user_ids.contains(&user_id) {
            user_ids.push(user_id);
        }
    }
    let limit_per_user = match request.limit_per_user {
        0 => DEFAULT_LIMIT_PER_USER,
        limit @ 1..=MAX_LIMIT_PER_USER => i64::from(limit),
        limit => {
            return Err(FieldViolation::new(
                "limit_per_user",
                format!("must be between 1 and {MAX_LIMIT_PER_USER}, got {limit}"),
            ));
        }
    };
    Ok(UsersQuery {
        user_ids,
        limit_per_user,
        omit_details: request.omit_details,
    })
}

fn items(items: &[OrderItem]) -> Result<Vec<OrderItem>, FieldViolation> {
    if items.is_empty() {
        return Err(FieldViolation::new(
            "items",
            "at least one item is required",
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(FieldViolation::new(
            "items",
            format!("must have at most {MAX_ITEMS} items, got {}", items.len()),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        sku(&format!("items[{index}].sku"), &item.sku)?;
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(FieldViolation::new(
                format!("items[{index}].quantity"),
                format!(
                    "must be between 1 and {MAX_QUANTITY}, got {}",
                    item.quantity
                ),
            ));
        }
        if !(0..=MAX_UNIT_PRICE).contains(&item.unit_price) {
            return Err(FieldViolation::new(
                format!("items[{index}].unit_price"),
                format!(
                    "must be between 0 and {MAX_UNIT_PRICE}, got {}",
                    item.unit_price
                ),
            ));
        }
    }
    Ok(items.to_vec())
}

/// Sums `quantity * unit_price` over the items with checked arithmetic.
///
/// NOTE: within the item limits the total is at most 10^18, below
/// `i64::MAX`, so the overflow error is only reachable if the limits grow.
pub fn order_total(items: &[OrderItem]) -> Result<i64, FieldViolation> {
    let mut total: i64 = 0;
    for (index, item) in items.iter().enumerate() {
        total = i64::from(item.quantity)
            .checked_mul(item.unit_price)
            .and_then(|line_total| total.checked_add(line_total))
            .ok_or_else(|| {
                FieldViolation::new(
                    format!("items[{index}]"),
                    "order total exceeds the largest amount a 64-bit integer can hold",
                )
            })?;
    }
    Ok(total)
}

fn sku(field: &str, value: &str) -> Result<(), FieldViolation> {
    let length = value.chars().count();
    if length == 0 {
        return Err(FieldViolation::new(field, "is required"));
    }
    if length > MAX_SKU_CHARS {
        return Err(FieldViolation::new(
            field,
            format!("must have at most {MAX_SKU_CHARS} characters, got {length}"),
        ));
    }
    let allowed = |character: char| character.is_ascii_alphanumeric() || "-_.".contains(character);
    if let Some(character) = value.chars().find(|character| !allowed(*character)) {
        return Err(FieldViolation::new(
            field,
            format!("contains {character:?}, only A-Z, a-z, 0-9, '-', '_' and '.' are allowed"),
        ));
    }
    Ok(())
}

/// Checks an ISO 4217 code: upper case, current (not withdrawn) and with a
/// minor unit, because every amount is an integer number of minor units.
/// That rules out codes such as XAU (gold) and XXX (no currency).
pub fn currency(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(
            field,
            "is required, an ISO 4217 code such as \"USD\"",
        ));
    }
    let upper = value.to_ascii_uppercase();
    if upper != value && Currency::from_code(&upper).is_some() {
        return Err(FieldViolation::new(
            field,
            format!("must be upper case, use {upper:?}"),
        ));
    }
    let Some(currency) = Currency::from_code(value) else {
        return Err(FieldViolation::new(field, "not an ISO 4217 code"));
    };
    if let Some(successor) = currency.is_superseded() {
        return Err(FieldViolation::new(
            field,
            format!(
                "{value} is withdrawn from ISO 4217, use {}",
                successor.code()
            ),
        ));
    }
    if currency.exponent().is_none() {
        return Err(FieldViolation::new(
            field,
            format!("{value} has no minor unit, so amounts in minor units are undefined"),
        ));
    }
    Ok(value.to_owned())
}

fn shipping_address(address: &Address) -> Result<Address, FieldViolation> {
    let field = |name: &str| format!("shipping_address.{name}");
    Ok(Address {
        recipient: validation::text(
            &field("recipient"),
            &address.recipient,
            1,
            MAX_RECIPIENT_CHARS,
        )?,
        line1: validation::text(&field("line1"), &address.line1, 1, MAX_ADDRESS_LINE_CHARS)?,
        line2: validation::text(&field("line2"), &address.line2, 0, MAX_ADDRESS_LINE_CHARS)?,
        city: validation::text(&field("city"), &address.city, 1, MAX_CITY_CHARS)?,
        region: validation::text(&field("region"), &address.region, 0, MAX_REGION_CHARS)?,
        postal_code: validation::text(
            &field("postal_code"),
            &address.postal_code,
            1,
            MAX_POSTAL_CODE_CHARS,
        )?,
        country: country(&field("country"), &address.country)?,
    })
}

/// Checks an ISO 3166-1 alpha-2 code in upper case, for example `ID`.
fn country(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(
            field,
            "is required, an ISO 3166-1 alpha-2 code such as \"ID\"",
        ));
    }
    let upper = value.to_ascii_uppercase();
    if upper != value && is_country_code(&upper) {
        return Err(FieldViolation::new(
            field,
            format!("must be upper case, use {upper:?}"),
        ));
    }
    if !is_country_code(value) {
        return Err(FieldViolation::new(field, "not an ISO 3166-1 alpha-2 code"));
    }
    Ok(value.to_owned())
}

fn is_country_code(value: &str) -> bool {
    // The crate parses "" as its `Unspecified` placeholder, so require two letters.
    value.len() == 2 && iso_country::Country::from_str(value).is_ok()
}

/// Checks a payment token without trimming it, because it is opaque.
fn payment_token(value: &str) -> Result<String, FieldViolation> {
    let length = value.chars().count();
    if length == 0 {
        return Err(FieldViolation::new("payment_token", "is required"));
    }
    if length > MAX_PAYMENT_TOKEN_CHARS {
        return Err(FieldViolation::new(
            "payment_token",
            format!("must have at most {MAX_PAYMENT_TOKEN_CHARS} characters, got {length}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            "payment_token",
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

fn instant(field: &str, timestamp: &prost_types::Timestamp) -> Result<i64, FieldViolation> {
    timestamp_to_micros(timestamp)
        .ok_or_else(|| FieldViolation::new(field, "not a valid timestamp"))
}

fn unknown_status(field: &str, value: i32) -> FieldViolation {
    FieldViolation::new(field, format!("unknown order status {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: i32, unit_price: i64) -> OrderItem {
        OrderItem {
            sku: sku.to_owned(),
            quantity,
            unit_price,
        }
    }

    fn address() -> Address {
        Address {
            recipient: "Ada Lovelace".into(),
            line1: "Jl. Sudirman 1".into(),
            line2: String::new(),
            city: "Jakarta".into(),
            region: String::new(),
            postal_code: "10220".into(),
            country: "ID".into(),
        }
    }

    fn create(items: Vec<OrderItem>) -> CreateOrderRequest {
        CreateOrderRequest {
            user_id: Uuid::now_v7().to_string(),
            items,
            currency: "IDR".into(),
            shipping_address: Some(address()),
            idempotency_key: String::new(),
        }
    }

    fn create_error(request: &CreateOrderRequest) -> String {
        create_request(request).unwrap_err().to_string()
    }

    #[test]
    fn create_computes_total() {
        let request = create(vec![item("A-1", 2, 150), item("b_2.x", 3, 1_000)]);
        assert_eq!(create_request(&request).unwrap().total, 3_300);
    }

    #[test]
    fn create_accepts_item_limits() {
        let items = vec![item(&"s".repeat(64), MAX_QUANTITY, MAX_UNIT_PRICE); MAX_ITEMS];
        let order = create_request(&create(items)).unwrap();
        assert_eq!(order.total, 1_000_000_000_000_000_000);
    }

    #[test]
    fn create_rejects_item_count() {
        assert_eq!(
            create_error(&create(vec![])),
            "items: at least one item is required"
        );
        assert_eq!(
            create_error(&create(vec![item("a", 1, 1); 101])),
            "items: must have at most 100 items, got 101"
        );
    }

    #[test]
    fn create_rejects_bad_items_by_index() {
        let cases = [
            (item("", 1, 1), "items[1].sku: is required"),
            (
                item(&"s".repeat(65), 1, 1),
                "items[1].sku: must have at most 64 characters, got 65",
            ),
            (
                item("ab c", 1, 1),
                "items[1].sku: contains ' ', only A-Z, a-z, 0-9, '-', '_' and '.' are allowed",
            ),
            (
                item("a", 0, 1),
                "items[1].quantity: must be between 1 and 10000, got 0",
            ),
            (
                item("a", 10_001, 1),
                "items[1].quantity: must be between 1 and 10000, got 10001",
            ),
            (
                item("a", 1, -1),
                "items[1].unit_price: must be between 0 and 1000000000000, got -1",
            ),
            (
                item("a", 1, MAX_UNIT_PRICE + 1),
                "items[1].unit_price: must be between 0 and 1000000000000, got 1000000000001",
            ),
        ];
        for (bad_item, expected) in cases {
            let request = create(vec![item("ok", 1, 1), bad_item]);
            assert_eq!(create_error(&request), expected);
        }
    }

    #[test]
    fn order_total_reports_overflow() {
        let error = order_total(&[item("a", 1, 1), item("b", 2, i64::MAX)]).unwrap_err();
        assert_eq!(error.field, "items[1]");
        let error = order_total(&[item("a", 1, i64::MAX), item("b", 1, 1)]).unwrap_err();
        assert_eq!(error.field, "items[1]");
    }

    #[test]
    fn currency_rules() {
        assert_eq!(currency("currency", "IDR"), Ok("IDR".to_owned()));
        assert_eq!(currency("currency", "USN"), Ok("USN".to_owned()));
        let cases = [
            (
                "",
                "currency: is required, an ISO 4217 code such as \"USD\"",
            ),
            ("usd", "currency: must be upper case, use \"USD\""),
            ("Idr", "currency: must be upper case, use \"IDR\""),
            ("ABC", "currency: not an ISO 4217 code"),
            ("US", "currency: not an ISO 4217 code"),
            ("abc", "currency: not an ISO 4217 code"),
            ("HRK", "currency: HRK is withdrawn from ISO 4217, use EUR"),
            (
                "XAU",
                "currency: XAU has no minor unit, so amounts in minor units are undefined",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                currency("currency", value).unwrap_err().to_string(),
                expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn country_rules() {
        for valid in ["ID", "US", "SS", "CW"] {
            assert!(country("c", valid).is_ok(), "{valid} was rejected");
        }
        assert_eq!(
            country("c", "id").unwrap_err().to_string(),
            "c: must be upper case, use \"ID\""
        );
        for invalid in ["XX", "IDN", "I", "UK", "AN", "1D"] {
            assert_eq!(
                country("c", invalid).unwrap_err().to_string(),
                "c: not an ISO 3166-1 alpha-2 code",
                "{invalid:?}"
            );
        }
    }

    /// A change to a valid request, and the message it must cause.
    type Case<T> = (fn(&mut T), &'static str);

    #[test]
    fn create_rejects_bad_address() {
        let cases: [Case<Address>; 8] = [
            (
                |a| a.recipient = " ".into(),
                "shipping_address.recipient: is required",
            ),
            (|a| a.line1.clear(), "shipping_address.line1: is required"),
            (|a| a.city.clear(), "shipping_address.city: is required"),
            (
                |a| a.postal_code.clear(),
                "shipping_address.postal_code: is required",
            ),
            (
                |a| a.postal_code = "1".repeat(21),
                "shipping_address.postal_code: must have at most 20 characters, got 21",
            ),
            (
                |a| a.line2 = "x".repeat(201),
                "shipping_address.line2: must have at most 200 characters, got 201",
            ),
            (
                |a| a.country = "ZZ".into(),
                "shipping_address.country: not an ISO 3166-1 alpha-2 code",
            ),
            (
                |a| a.country.clear(),
                "shipping_address.country: is required, an ISO 3166-1 alpha-2 code such as \"ID\"",
            ),
        ];
        for (change, expected) in cases {
            let mut request = create(vec![item("a", 1, 1)]);
            change(request.shipping_address.as_mut().unwrap());
            assert_eq!(create_error(&request), expected);
        }

        let mut request = create(vec![item("a", 1, 1)]);
        request.shipping_address = None;
        assert_eq!(create_error(&request), "shipping_address: is required");
    }

    #[test]
    fn create_trims_address_and_keeps_optional_lines() {
        let mut request = create(vec![item("a", 1, 1)]);
        request.shipping_address.as_mut().unwrap().city = "  Bandung ".into();
        let order = create_request(&request).unwrap();
        assert_eq!(order.shipping_address.city, "Bandung");
        assert_eq!(order.shipping_address.line2, "");
    }

    #[test]
    fn update_status_maps_targets() {
        let id = Uuid::now_v7().to_string();
        let request = |status: OrderStatus| UpdateOrderStatusRequest {
            id: id.clone(),
            status: status as i32,
        };
        let requested = |status| update_status_request(&request(status)).unwrap().1;
        assert_eq!(
            requested(OrderStatus::Shipped),
            RequestedStatus::Change(StatusChange::Ship)
        );
        assert_eq!(
            requested(OrderStatus::Paid),
            RequestedStatus::Unreachable(OrderStatus::Paid)
        );
        assert_eq!(
            update_status_request(&request(OrderStatus::Unspecified))
                .unwrap_err()
                .to_string(),
            "status: is required, one of SHIPPED, DELIVERED or CANCELLED"
        );
        let unknown = UpdateOrderStatusRequest {
            id: id.clone(),
            status: 42,
        };
        assert_eq!(
            update_status_request(&unknown).unwrap_err().to_string(),
            "status: unknown order status 42"
        );
    }

    #[test]
    fn cancel_reason_limit() {
        let request = |reason: String| CancelOrderRequest {
            id: Uuid::now_v7().to_string(),
            reason,
        };
        assert!(cancel_request(&request("r".repeat(500))).is_ok());
        assert_eq!(
            cancel_request(&request("r".repeat(501)))
                .unwrap_err()
                .to_string(),
            "reason: must have at most 500 characters, got 501"
        );
    }

    #[test]
    fn payment_rules() {
        let valid = ProcessPaymentRequest {
            order_id: Uuid::now_v7().to_string(),
            amount: 100,
            currency: "IDR".into(),
            method: PaymentMethod::Card as i32,
            payment_token: "tok_visa".into(),
            idempotency_key: String::new(),
        };
        assert!(payment_request(&valid).is_ok());

        let cases: [Case<ProcessPaymentRequest>; 6] = [
            (|r| r.amount = -1, "amount: must be at least 0, got -1"),
            (
                |r| r.method = 0,
                "method: is required, one of CARD, BANK_TRANSFER or WALLET",
            ),
            (|r| r.method = 7, "method: unknown payment method 7"),
            (|r| r.payment_token.clear(), "payment_token: is required"),
            (
                |r| r.payment_token = "t".repeat(201),
                "payment_token: must have at most 200 characters, got 201",
            ),
            (
                |r| r.currency = "idr".into(),
                "currency: must be upper case, use \"IDR\"",
            ),
        ];
        for (change, expected) in cases {
            let mut request = valid.clone();
            change(&mut request);
            assert_eq!(payment_request(&request).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn idempotency_key_fingerprints_request_without_key() {
        let mut first = create(vec![item("a", 1, 1)]);
        first.idempotency_key = "key-1".into();
        let mut same_body = first.clone();
        same_body.idempotency_key = "key-2".into();
        let mut other_body = first.clone();
        other_body.items[0].quantity = 2;

        let first_key = create_key(&first).unwrap().unwrap();
        assert_eq!(first_key.scope, "CreateOrder");
        assert_eq!(first_key.key, "key-1");
        assert_eq!(
            first_key.request_hash,
            create_key(&same_body).unwrap().unwrap().request_hash
        );
        assert_ne!(
            first_key.request_hash,
            create_key(&other_body).unwrap().unwrap().request_hash
        );
    }

    #[test]
    fn idempotency_key_is_optional_and_checked() {
        let mut request = ProcessPaymentRequest {
            order_id: Uuid::now_v7().to_string(),
            amount: 100,
            currency: "IDR".into(),
            method: PaymentMethod::Card as i32,
            payment_token: "tok_visa".into(),
            idempotency_key: String::new(),
        };
        assert!(payment_key(&request).unwrap().is_none());

        request.idempotency_key = "pay 1".into();
        assert_eq!(payment_key(&request).unwrap_err().field, "idempotency_key");

        request.idempotency_key = "pay-1".into();
        assert_eq!(
            payment_key(&request).unwrap().unwrap().scope,
            "ProcessPayment"
        );
    }

    #[test]
    fn list_defaults_to_newest_first() {
        let query = list_request(&ListOrdersRequest::default()).unwrap();
        assert_eq!(query.sort_field, SortField::CreatedAt);
        assert!(query.descending);
        assert_eq!(query.limit, 20);
    }

    #[test]
    fn list_rejects_bad_filters() {
        let timestamp = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        let cases = [
            (
                ListOrdersRequest {
                    page_size: 101,
                    ..Default::default()
                },
                "page_size: must be between 1 and 100, got 101",
            ),
            (
                ListOrdersRequest {
                    user_id: "nope".into(),
                    ..Default::default()
                },
                "user_id: not a valid UUID",
            ),
            (
                ListOrdersRequest {
                    status: 9,
                    ..Default::default()
                },
                "status: unknown order status 9",
            ),
            (
                ListOrdersRequest {
                    min_total: Some(-1),
                    ..Default::default()
                },
                "min_total: must be at least 0, got -1",
            ),
            (
                ListOrdersRequest {
                    created_after: Some(timestamp(10)),
                    created_before: Some(timestamp(10)),
                    ..Default::default()
                },
                "created_before: must be later than created_after",
            ),
            (
                ListOrdersRequest {
                    created_after: Some(prost_types::Timestamp {
                        seconds: 1,
                        nanos: -1,
                    }),
                    ..Default::default()
                },
                "created_after: not a valid timestamp",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(list_request(&request).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn by_users_dedupes_and_checks_limits() {
        let first = Uuid::now_v7().to_string();
        let second = Uuid::now_v7().to_string();
        let request = ListOrdersByUsersRequest {
            user_ids: vec![first.clone(), second.clone(), first.clone()],
            limit_per_user: 0,
            ..Default::default()
        };
        let query = by_users_request(&request).unwrap();
        assert_eq!(query.user_ids.len(), 2);
        assert_eq!(query.user_ids[0].to_string(), first);
        assert_eq!(query.limit_per_user, 10);

        let cases = [
            (
                ListOrdersByUsersRequest::default(),
                "user_ids: at least one user id is required",
            ),
            (
                ListOrdersByUsersRequest {
                    user_ids: vec![first.clone(); 101],
                    limit_per_user: 1,
                    ..Default::default()
                },
                "user_ids: must have at most 100 ids, got 101",
            ),
            (
                ListOrdersByUsersRequest {
                    user_ids: vec![first.clone(), "x".into()],
                    limit_per_user: 1,
                    ..Default::default()
                },
                "user_ids[1]: not a valid UUID",
            ),
            (
                ListOrdersByUsersRequest {
                    user_ids: vec![first.clone()],
                    limit_per_user: 101,
                    ..Default::default()
                },
                "limit_per_user: must be between 1 and 100, got 101",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                by_users_request(&request).unwrap_err().to_string(),
                expected
            );
        }
    }

    #[test]
    fn fingerprint_differs_by_filter_and_rpc() {
        let plain = list_request(&ListOrdersRequest::default()).unwrap();
        let filtered = list_request(&ListOrdersRequest {
            min_total: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_ne!(
            plain.fingerprint("ListOrders"),
            filtered.fingerprint("ListOrders")
        );
        assert_ne!(
            plain.fingerprint("ListOrders"),
            plain.fingerprint("GetOrdersByUser")
        );
    }
}
