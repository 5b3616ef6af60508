//! Conversions between stored timestamps and protobuf `Timestamp`s.
//!
//! Both services store instants as signed microseconds since the Unix epoch
//! in a 64-bit integer column, which SQLite and PostgreSQL handle alike.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// Returns the current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
}

/// Converts microseconds since the Unix epoch to a protobuf `Timestamp`.
pub fn micros_to_timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // The remainder is below 1_000_000, so the product fits in i32.
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Converts a protobuf `Timestamp` to microseconds since the Unix epoch.
///
/// Returns `None` when the timestamp is not normalised (nanos outside
/// 0..1e9) or lies outside the range that 64-bit microseconds can hold.
pub fn timestamp_to_micros(timestamp: &Timestamp) -> Option<i64> {
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return None;
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(timestamp.nanos / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_before_and_after_epoch() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, -1_234_567] {
            let timestamp = micros_to_timestamp(micros);
            assert_eq!(timestamp_to_micros(&timestamp), Some(micros));
        }
    }

    #[test]
    fn timestamp_with_invalid_nanos_is_rejected() {
        let timestamp = Timestamp {
            seconds: 1,
            nanos: -5,
        };
        assert_eq!(timestamp_to_micros(&timestamp), None);
        let timestamp = Timestamp {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert_eq!(timestamp_to_micros(&timestamp), None);
    }

    #[test]
    fn timestamp_out_of_range_is_rejected() {
        let timestamp = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(timestamp_to_micros(&timestamp), None);
    }
}
