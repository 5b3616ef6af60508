//! JSON Schemas of request fields and response headers that the derived
//! schemas cannot state: each one accepts exactly the values that the
//! gateway and the services accept, so that a client can validate a request
//! before sending it.
//!
//! Patterns use the ECMA-262 syntax that OpenAPI 3.1 prescribes, limited to
//! the subset that Rust's `regex` and Python's `re` read the same way.

use std::str::FromStr;

use lintas_common::idempotency::MAX_KEY_LEN;
use lintas_common::limits::{order, user};
use lintas_common::page_token::MAX_TOKEN_LEN;
use lintas_common::validation::MAX_PAGE_SIZE;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, KnownFormat, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Object, ObjectBuilder, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::inputs::UpdateUserInput;
use crate::model::UserStatus;

/// Characters that `str::trim` removes: the Unicode `White_Space` property.
const WHITESPACE: &str =
    r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Characters that `char::is_control` matches: Unicode category Cc.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// A UUID in its hyphenated form, which the services return.
const UUID: &str = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";

/// Builds the schema of the strings that
/// `lintas_common::validation::text(field, value, min, max)` accepts: after
/// trimming whitespace, `min` to `max` characters and no control characters.
/// `min` is 0 or 1.
pub fn trimmed_text(min: usize, max: usize, description: &str) -> Object {
    string(&trimmed_text_pattern(min, max), description)
}

fn trimmed_text_pattern(min: usize, max: usize) -> String {
    assert!(
        min <= 1 && max >= 1,
        "unsupported text limits {min}..={max}"
    );
    let edge = format!("[^{WHITESPACE}{CONTROL}]");
    let inner = format!("[^{CONTROL}]");
    let core = match max {
        1 => edge.clone(),
        _ => format!("{edge}(?:{inner}{{0,{}}}{edge})?", max - 2),
    };
    let core = if min == 0 {
        format!("(?:{core})?")
    } else {
        core
    };
    format!("^[{WHITESPACE}]*{core}[{WHITESPACE}]*$")
}

fn string(pattern: &str, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// Returns the body of a regular expression that matches the decimal
/// numbers from 0 (or 1) to `max`, with any number of leading zeros.
fn decimal_at_most(max: u64, allow_zero: bool) -> String {
    let digits: Vec<u8> = max.to_string().bytes().map(|digit| digit - b'0').collect();
    let length = digits.len();
    let mut alternatives = Vec::new();
    if allow_zero {
        alternatives.push("0".to_owned());
    }
    if length > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", length - 2));
    }
    // Numbers as long as `max`: equal to it up to position `index`, then a
    // smaller digit there, then any digits.
    let mut prefix = String::new();
    for (index, &digit) in digits.iter().enumerate() {
        let lowest = u8::from(index == 0);
        if digit > lowest {
            let range = if digit - 1 == lowest {
                lowest.to_string()
            } else {
                format!("[{lowest}-{}]", digit - 1)
            };
            let rest = match length - index - 1 {
                0 => String::new(),
                count => format!("[0-9]{{{count}}}"),
            };
            alternatives.push(format!("{prefix}{range}{rest}"));
        }
        prefix.push(char::from(b'0' + digit));
    }
    alternatives.push(prefix);
    format!("0*(?:{})", alternatives.join("|"))
}

/// Body of a regular expression for the decimal numbers from 0 to 10^18 - 1
/// with leading zeros. It stands for "any non-negative `i64`", but the
/// numbers from 10^18 to `i64::MAX` need a much longer expression.
const NON_NEGATIVE_INT64: &str = "0*[0-9]{1,18}";

/// Builds the schema of an `Int64` input from 0 to `max`: a JSON integer, or
/// a decimal string that Rust's `i64::from_str` reads, with an optional `+`
/// and leading zeros.
fn int64_input(max: i64, description: &str) -> Schema {
    let digits = if max == i64::MAX {
        NON_NEGATIVE_INT64.to_owned()
    } else {
        decimal_at_most(max.unsigned_abs(), true)
    };
    let pattern = format!(r"^\+?{digits}$");
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(max)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        )
        .description(Some(format!(
            "{description} A JSON integer or a decimal string."
        )))
        .build()
        .into()
}

pub fn user_name() -> Object {
    trimmed_text(
        1,
        user::MAX_NAME_CHARS,
        "1 to 100 characters after trimming whitespace, without control characters.",
    )
}

pub fn email() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("email".to_owned())))
        .max_length(Some(user::MAX_EMAIL_CHARS))
        .description(Some(
            "An RFC 5322 addr-spec with a dot in the domain, at most 254 characters after trimming whitespace.",
        ))
        .build()
}

pub fn name_filter() -> Object {
    trimmed_text(
        0,
        user::MAX_FILTER_CHARS,
        "Case-insensitive substring of the name: at most 100 characters after trimming whitespace. Empty means no filter.",
    )
}

pub fn email_filter() -> Object {
    trimmed_text(
        0,
        user::MAX_FILTER_CHARS,
        "Case-insensitive substring of the email address: at most 100 characters after trimming whitespace. Empty means no filter.",
    )
}

pub fn page_size() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(0))
        .maximum(Some(MAX_PAGE_SIZE))
        .description(Some("Items per page, 1 to 100. 0 or no value means 20."))
        .build()
}

pub fn page_token() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_TOKEN_LEN))
        .description(Some(
            "`next_page_token` of the previous page, with the same filters and order. \
             Tokens are signed and expire after a day; empty means the first page.",
        ))
        .build()
}

/// Builds the schema of a user id filter: a UUID, or empty for no filter.
pub fn user_id_filter() -> Object {
    string(
        &format!("^(?:{UUID})?$"),
        "Orders of this user only. Empty means no filter.",
    )
}

pub fn min_total() -> Object {
    string(
        &format!(r"^\+?{NON_NEGATIVE_INT64}$"),
        "Orders whose total is at least this many minor units: a decimal integer from 0.",
    )
}

pub fn sku() -> Object {
    string(
        &format!("^[A-Za-z0-9._-]{{1,{}}}$", order::MAX_SKU_CHARS),
        "1 to 64 characters: A-Z, a-z, 0-9, '-', '_' and '.'.",
    )
}

pub fn quantity() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(1))
        .maximum(Some(order::MAX_QUANTITY))
        .build()
}

pub fn unit_price() -> Schema {
    int64_input(
        order::MAX_UNIT_PRICE,
        "Price of one unit in minor units, 0 to 1000000000000.",
    )
}

pub fn payment_amount() -> Schema {
    int64_input(
        i64::MAX,
        "Amount in minor units; must equal the order's total.",
    )
}

pub fn currency() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(currency_codes()))
        .description(Some(
            "Upper-case ISO 4217 code of a current currency with a minor unit, for example \"IDR\".",
        ))
        .build()
}

/// Lists the codes that order-svc's currency check accepts: current ISO 4217
/// codes with a minor unit.
///
/// NOTE: this repeats the rule of `currency` in order-svc/src/validate.rs
/// with the same `iso_currency` crate; change both together.
fn currency_codes() -> Vec<String> {
    three_letter_codes()
        .filter(|code| {
            iso_currency::Currency::from_code(code).is_some_and(|currency| {
                currency.is_superseded().is_none() && currency.exponent().is_some()
            })
        })
        .collect()
}

fn three_letter_codes() -> impl Iterator<Item = String> {
    let letters = || b'A'..=b'Z';
    letters().flat_map(move |first| {
        letters().flat_map(move |second| {
            letters().map(move |third| String::from_utf8(vec![first, second, third]).unwrap())
        })
    })
}

pub fn country() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(country_codes()))
        .description(Some(
            "Upper-case ISO 3166-1 alpha-2 code, for example \"ID\".",
        ))
        .build()
}

/// Lists the codes that order-svc's country check accepts: two characters
/// that `iso_country` reads as a country.
///
/// NOTE: this repeats the rule of `country` in order-svc/src/validate.rs
/// with the same `iso_country` crate; change both together.
fn country_codes() -> Vec<String> {
    let characters = || b'!'..=b'~';
    characters()
        .flat_map(|first| characters().map(move |second| [first, second]))
        .map(|pair| String::from_utf8(pair.to_vec()).unwrap())
        .filter(|code| iso_country::Country::from_str(code).is_ok())
        .collect()
}

pub fn recipient() -> Object {
    trimmed_text(
        1,
        order::MAX_RECIPIENT_CHARS,
        "1 to 100 characters after trimming whitespace, without control characters.",
    )
}

pub fn address_line1() -> Object {
    trimmed_text(
        1,
        order::MAX_ADDRESS_LINE_CHARS,
        "1 to 200 characters after trimming whitespace, without control characters.",
    )
}

pub fn address_line2() -> Object {
    trimmed_text(
        0,
        order::MAX_ADDRESS_LINE_CHARS,
        "At most 200 characters after trimming whitespace, without control characters.",
    )
}

pub fn city() -> Object {
    trimmed_text(
        1,
        order::MAX_CITY_CHARS,
        "1 to 100 characters after trimming whitespace, without control characters.",
    )
}

pub fn region() -> Object {
    trimmed_text(
        0,
        order::MAX_REGION_CHARS,
        "At most 100 characters after trimming whitespace, without control characters.",
    )
}

pub fn postal_code() -> Object {
    trimmed_text(
        1,
        order::MAX_POSTAL_CODE_CHARS,
        "1 to 20 characters after trimming whitespace, without control characters.",
    )
}

pub fn cancel_reason() -> Object {
    trimmed_text(
        0,
        order::MAX_REASON_CHARS,
        "At most 500 characters after trimming whitespace, without control characters.",
    )
}

pub fn payment_token() -> Object {
    string(
        &format!("^[^{CONTROL}]{{1,{}}}$", order::MAX_PAYMENT_TOKEN_CHARS),
        "Token from the payment provider: 1 to 200 characters, without control characters, not trimmed. \
         The built-in test provider declines tokens that start with \"tok_decline\".",
    )
}

/// Targets of `POST /orders/{id}/status`: the statuses that request can reach.
pub fn status_change_target() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["SHIPPED", "DELIVERED", "CANCELLED"]))
        .description(Some(
            "SHIPPED, DELIVERED or CANCELLED. PAID is reached by paying.",
        ))
        .build()
}

pub fn idempotency_key() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[!-~]{{1,{MAX_KEY_LEN}}}$")))
        .description(Some(
            "1 to 255 visible ASCII characters, without spaces. A retry with the same key and \
             the same body returns the first result; the same key with another body gets 409. \
             Keys expire after a day.",
        ))
        .build()
}

/// `If-Match` of a user write: `*`, or one ETag that GET returned.
pub fn if_match() -> Object {
    string(
        r#"^(?:\*|(?:W/)?"\+?0*[1-9][0-9]{0,17}")$"#,
        "An ETag from a read, such as \"3\": the write applies only while the user is at that \
         version, and gets 412 otherwise. `*` or no header applies it at any version.",
    )
}

pub fn etag() -> Object {
    string(
        r#"^"[1-9][0-9]*"$"#,
        "The user's version in quotes, for If-Match.",
    )
}

pub fn location(collection: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri-reference".to_owned())))
        .pattern(Some(format!("^/api/v1/{collection}/{UUID}$")))
        .description(Some(format!(
            "Path of the new resource, under /api/v1/{collection}."
        )))
        .build()
}

pub fn retry_after() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9]+$"))
        .description(Some("Seconds to wait before retrying."))
        .build()
}

/// Schema of the `WWW-Authenticate` header of a 401 (RFC 6750).
pub fn www_authenticate() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^Bearer realm=\"lintas\""))
        .description(Some(
            "The bearer challenge, with `error` and `error_description` when a token was sent.",
        ))
        .build()
}

/// Schema of a nullable field: the field's own schema or `null`.
pub fn nullable(schema: impl Into<RefOr<Schema>>) -> Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .item(schema)
        .build()
        .into()
}

impl PartialSchema for UpdateUserInput {
    fn schema() -> RefOr<Schema> {
        let status = || RefOr::Ref(Ref::from_schema_name(UserStatus::name()));
        let fields = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("name", nullable(user_name()))
            .property("email", nullable(email()))
            .property("status", nullable(status()))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let present = |name: &str, schema: RefOr<Schema>| {
            ObjectBuilder::new().property(name, schema).required(name)
        };
        let at_least_one = AnyOfBuilder::new()
            .item(present(
                "name",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ))
            .item(present(
                "email",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ))
            .item(present("status", status()));
        AllOfBuilder::new()
            .item(fields)
            .item(at_least_one)
            .description(Some(
                "Fields to change; at least one must be present and not null. A field that is \
                 missing or null keeps its value.",
            ))
            .into()
    }
}

impl ToSchema for UpdateUserInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((UserStatus::name().into_owned(), UserStatus::schema()));
        <UserStatus as ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use lintas_common::validation;
    use regex::Regex;

    use super::*;

    fn anchored(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|error| panic!("{pattern}: {error}"))
    }

    #[test]
    fn trimmed_text_matches_the_services_rule() {
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "\ta\n",
            "a b",
            "a\u{0}b",
            "a\u{85}",
            "\u{85}a",
            "a\u{7f}b",
            "\u{3000}a\u{3000}",
            "\u{1c}a",
            "ab",
            "abc",
            "abcd",
            "  abcd  ",
            "abcde",
            "é",
            "éééé",
            "\u{feff}",
            "a\r\nb",
        ];
        for (min, max) in [(0, 1), (1, 1), (0, 4), (1, 4), (1, 2)] {
            let pattern = anchored(&trimmed_text_pattern(min, max));
            for sample in samples {
                let accepted = validation::text("field", sample, min, max).is_ok();
                assert_eq!(
                    pattern.is_match(sample),
                    accepted,
                    "{sample:?} with limits {min}..={max}"
                );
            }
        }
    }

    #[test]
    fn decimal_pattern_bounds() {
        let unit_price = anchored(&format!("^{}$", decimal_at_most(1_000_000_000_000, true)));
        for accepted in [
            "0",
            "000",
            "7",
            "999999999999",
            "1000000000000",
            "01000000000000",
        ] {
            assert!(unit_price.is_match(accepted), "{accepted}");
        }
        for rejected in [
            "",
            "1000000000001",
            "1999999999999",
            "10000000000000",
            "-1",
            "1.5",
        ] {
            assert!(!unit_price.is_match(rejected), "{rejected}");
        }

        let positive = anchored(&format!(
            "^{}$",
            decimal_at_most(i64::MAX.unsigned_abs(), false)
        ));
        for accepted in [
            "1",
            "42",
            "9223372036854775807",
            "9223372036854775799",
            "0009",
        ] {
            assert!(positive.is_match(accepted), "{accepted}");
        }
        for rejected in ["0", "00", "9223372036854775808", "9300000000000000000", "x"] {
            assert!(!positive.is_match(rejected), "{rejected}");
        }
    }

    #[test]
    fn decimal_pattern_near_powers_of_ten() {
        for max in [1_u64, 9, 10, 99, 100, 101, 250, 1_000] {
            let pattern = anchored(&format!("^{}$", decimal_at_most(max, true)));
            for number in 0..=1_100_u64 {
                assert_eq!(
                    pattern.is_match(&number.to_string()),
                    number <= max,
                    "{number} against {max}"
                );
            }
        }
    }

    #[test]
    fn if_match_pattern_matches_parser() {
        let pattern = anchored(&if_match().pattern.unwrap());
        for accepted in ["*", "\"3\"", "W/\"12\"", "\"+5\""] {
            assert!(pattern.is_match(accepted), "{accepted}");
        }
        for rejected in ["3", "\"x\"", "\"0\"", "\"1\", \"2\"", "\"-1\"", ""] {
            assert!(!pattern.is_match(rejected), "{rejected}");
        }
    }

    #[test]
    fn country_codes_are_upper_case_alpha2() {
        let codes = country_codes();
        for code in ["ID", "US", "SS", "CW"] {
            assert!(codes.contains(&code.to_owned()), "{code} missing");
        }
        for code in ["UK", "AN", "id", "XX", "1D"] {
            assert!(!codes.contains(&code.to_owned()), "{code} listed");
        }
    }

    #[test]
    fn currency_codes_are_current_with_minor_units() {
        let codes = currency_codes();
        for code in ["IDR", "USD", "EUR", "JPY"] {
            assert!(codes.contains(&code.to_owned()), "{code} missing");
        }
        for code in ["HRK", "XAU", "XXX"] {
            assert!(!codes.contains(&code.to_owned()), "{code} listed");
        }
    }
}
