//! A 64-bit integer that travels as a JSON string, as the proto3 JSON
//! mapping does, so that JavaScript clients never lose precision.
//!
//! Input accepts a JSON integer or a decimal string; output is always a string.
//! A JSON integer may be written with a zero fraction (`5.0`), which JSON
//! Schema counts as an integer too, as long as a double represents it exactly.

use std::fmt;

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Signed 64-bit integer carried as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Int64(pub i64);

impl From<i64> for Int64 {
    fn from(value: i64) -> Self {
        Self(value)
    }
}

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Int64Visitor)
    }
}

struct Int64Visitor;

impl Visitor<'_> for Int64Visitor {
    type Value = Int64;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a 64-bit integer as a number or a decimal string")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Int64, E> {
        Ok(Int64(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Int64, E> {
        i64::try_from(value)
            .map(Int64)
            .map_err(|_| E::custom(format!("{value} does not fit in a 64-bit signed integer")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Int64, E> {
        exact_integer(value).map(Int64).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Int64, E> {
        parse(value).map_err(E::custom)
    }
}

/// Largest magnitude up to which every integer has an exact `f64`: 2^53.
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// Converts a JSON number that serde read as a double, such as `5.0`, to
/// the integer it spells.
fn exact_integer(value: f64) -> Result<i64, String> {
    if value.fract() != 0.0 || !value.is_finite() {
        return Err(format!("{value} is not an integer"));
    }
    if value.abs() > MAX_EXACT_F64 {
        return Err(format!(
            "{value} is beyond 2^53, where a JSON number loses precision; send it as a decimal string"
        ));
    }
    // Exact: the value is an integer within 2^53.
    Ok(value as i64)
}

/// Deserializes an `i32` field from a JSON integer, also one written with a
/// zero fraction (`5.0`). Unlike [`Int64`], it takes no strings.
pub fn deserialize_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(I32Visitor)
}

struct I32Visitor;

impl Visitor<'_> for I32Visitor {
    type Value = i32;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a 32-bit integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i32, E> {
        i32::try_from(value)
            .map_err(|_| E::custom(format!("{value} does not fit in a 32-bit signed integer")))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i32, E> {
        i32::try_from(value)
            .map_err(|_| E::custom(format!("{value} does not fit in a 32-bit signed integer")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i32, E> {
        let integer = exact_integer(value).map_err(E::custom)?;
        self.visit_i64(integer)
    }
}

fn parse(value: &str) -> Result<Int64, String> {
    value
        .parse::<i64>()
        .map(Int64)
        .map_err(|_| format!("{value:?} is not a 64-bit integer"))
}

impl utoipa::PartialSchema for Int64 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^-?[0-9]{1,19}$"))
            .description(Some(
                "64-bit integer as a decimal string; input also accepts a JSON number.",
            ))
            .examples([serde_json::json!("1500000")])
            .into()
    }
}

impl utoipa::ToSchema for Int64 {}

/// GraphQL scalar `Int64`: a decimal string on output; a string or an Int on input.
#[Scalar(name = "Int64")]
impl ScalarType for Int64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => parse(text).map_err(InputValueError::custom),
            Value::Number(number) => number.as_i64().map(Int64).ok_or_else(|| {
                InputValueError::custom(format!("{number} is not a 64-bit integer"))
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_string() {
        assert_eq!(
            serde_json::to_string(&Int64(i64::MAX)).unwrap(),
            "\"9223372036854775807\""
        );
    }

    #[test]
    fn accepts_number_and_string() {
        assert_eq!(serde_json::from_str::<Int64>("42").unwrap(), Int64(42));
        assert_eq!(
            serde_json::from_str::<Int64>("\"-42\"").unwrap(),
            Int64(-42)
        );
    }

    #[test]
    fn accepts_integers_with_zero_fraction() {
        assert_eq!(
            serde_json::from_str::<Int64>("65536.0").unwrap(),
            Int64(65536)
        );
        assert_eq!(serde_json::from_str::<Int64>("-2.0").unwrap(), Int64(-2));
        assert_eq!(serde_json::from_str::<Int64>("1e3").unwrap(), Int64(1000));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Quantity {
        #[serde(deserialize_with = "deserialize_i32")]
        value: i32,
    }

    #[test]
    fn i32_accepts_zero_fraction_but_no_strings() {
        let parse = |json: &str| serde_json::from_str::<Quantity>(json).map(|q| q.value);
        assert_eq!(parse(r#"{"value": 308.0}"#).unwrap(), 308);
        assert_eq!(parse(r#"{"value": -7}"#).unwrap(), -7);
        for input in [
            r#"{"value": 1.5}"#,
            r#"{"value": "3"}"#,
            r#"{"value": 2147483648}"#,
            r#"{"value": null}"#,
        ] {
            assert!(parse(input).is_err(), "{input} was accepted");
        }
    }

    #[test]
    fn rejects_fractions_overflow_and_text() {
        for input in [
            "1.5",
            "9223372036854775808",
            "9007199254740994.0",
            "\"12a\"",
            "\"\"",
            "\"5.0\"",
            "true",
        ] {
            assert!(
                serde_json::from_str::<Int64>(input).is_err(),
                "{input} was accepted"
            );
        }
    }
}
