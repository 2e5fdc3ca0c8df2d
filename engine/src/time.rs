//! Conversions between unix milliseconds (the engine's time unit) and protobuf types.

use prost_wkt_types::{Duration, Timestamp};

/// A protobuf timestamp from unix millis.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix millis from a protobuf timestamp.
pub fn timestamp_ms(ts: &Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

/// A protobuf duration from millis.
pub fn duration(ms: i64) -> Duration {
    Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Millis of an optional protobuf duration (0 when absent). Negative durations are returned as
/// they are, for validation to reject.
pub fn duration_ms(d: Option<&Duration>) -> i64 {
    d.map_or(0, |d| {
        d.seconds.saturating_mul(1000) + i64::from(d.nanos) / 1_000_000
    })
}

/// `Some(duration)` for a positive millis value, `None` for zero.
pub fn opt_duration(ms: i64) -> Option<Duration> {
    (ms > 0).then(|| duration(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(
            timestamp_ms(&timestamp(1_700_000_123_456)),
            1_700_000_123_456
        );
        assert_eq!(duration_ms(Some(&duration(1_500))), 1_500);
        assert_eq!(duration_ms(None), 0);
        assert_eq!(opt_duration(0), None);
    }
}
