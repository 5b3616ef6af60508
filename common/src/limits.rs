//! Field limits of the public API, written once: the services enforce them
//! and the gateway publishes them in its OpenAPI document.
//!
//! Character counts are Unicode scalar values (`str::chars`), counted after
//! trimming where the field is trimmed.

/// Limits of user fields.
pub mod user {
    pub const MAX_NAME_CHARS: usize = 100;
    /// RFC 5321 limits a forward path to 256 octets, which leaves 254 for the address.
    pub const MAX_EMAIL_CHARS: usize = 254;
    /// Longest `name_contains` or `email_contains` filter of a listing.
    pub const MAX_FILTER_CHARS: usize = 100;
}

/// Limits of order and payment fields.
pub mod order {
    /// Maximum number of items in one order.
    pub const MAX_ITEMS: usize = 100;
    pub const MAX_SKU_CHARS: usize = 64;
    pub const MAX_QUANTITY: i32 = 10_000;
    /// Highest unit price in minor units. With `MAX_ITEMS` and `MAX_QUANTITY`
    /// it keeps every order total at most 10^18, below `i64::MAX`.
    pub const MAX_UNIT_PRICE: i64 = 1_000_000_000_000;
    pub const MAX_REASON_CHARS: usize = 500;
    pub const MAX_PAYMENT_TOKEN_CHARS: usize = 200;
    pub const MAX_RECIPIENT_CHARS: usize = 100;
    pub const MAX_ADDRESS_LINE_CHARS: usize = 200;
    pub const MAX_CITY_CHARS: usize = 100;
    pub const MAX_REGION_CHARS: usize = 100;
    pub const MAX_POSTAL_CODE_CHARS: usize = 20;
}
