//! Conversions between unix milliseconds (the engine's time unit) and protobuf types, and the
//! range check every duration from a client or a worker passes.

use prost_wkt_types::{Duration, Timestamp};

/// The longest duration the server keeps: Temporal's `maxAllowedDuration` (100 years of 365
/// days). Longer durations are capped to it, as Temporal's `ValidateAndCapProtoDuration` does.
pub const MAX_DURATION_SECONDS: i64 = 100 * 365 * 24 * 3600;

/// Why a protobuf duration is refused (the texts are Temporal's, from
/// `common/primitives/timestamp/duration.go`; out-of-range nanos are refused as protobuf's
/// `durationpb.CheckValid` refuses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Seconds and nanos have different signs.
    #[error("duration has seconds and nanos with different signs")]
    MismatchedSigns,
    /// Nanos above 999_999_999 (below -999_999_999 the duration is already negative).
    #[error("duration has out-of-range nanos")]
    NanosOutOfRange,
    /// The duration is below zero.
    #[error("negative duration")]
    Negative,
}

/// Checks an optional protobuf duration from a client or a worker and caps it to
/// [`MAX_DURATION_SECONDS`] in place. An absent duration is valid (it means zero).
pub fn validate_and_cap(d: Option<&mut Duration>) -> Result<(), DurationError> {
    let Some(d) = d else {
        return Ok(());
    };
    if (d.seconds > 0 && d.nanos < 0) || (d.seconds < 0 && d.nanos > 0) {
        return Err(DurationError::MismatchedSigns);
    }
    if d.seconds < 0 || d.nanos < 0 {
        return Err(DurationError::Negative);
    }
    if d.nanos > 999_999_999 {
        return Err(DurationError::NanosOutOfRange);
    }
    if d.seconds >= MAX_DURATION_SECONDS {
        d.seconds = MAX_DURATION_SECONDS;
        d.nanos = 0;
    }
    Ok(())
}

/// A protobuf timestamp from unix millis.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix millis from a protobuf timestamp, saturating at the ends of `i64`.
pub fn timestamp_ms(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// A protobuf duration from millis.
pub fn duration(ms: i64) -> Duration {
    Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Millis of an optional protobuf duration (0 when absent), saturating at the ends of `i64`.
/// Negative durations are returned as they are, for validation to reject.
pub fn duration_ms(d: Option<&Duration>) -> i64 {
    d.map_or(0, |d| {
        d.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(d.nanos) / 1_000_000)
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

    #[test]
    fn conversions_saturate_instead_of_overflowing() {
        let d = |seconds, nanos| Duration { seconds, nanos };
        assert_eq!(duration_ms(Some(&d(i64::MAX, 999_999_999))), i64::MAX);
        assert_eq!(duration_ms(Some(&d(i64::MIN, -999_999_999))), i64::MIN);
        assert_eq!(duration_ms(Some(&d(i64::MAX / 1000, i32::MAX))), i64::MAX);
        let ts = |seconds, nanos| Timestamp { seconds, nanos };
        assert_eq!(timestamp_ms(&ts(i64::MAX, 999_999_999)), i64::MAX);
        assert_eq!(timestamp_ms(&ts(i64::MIN, -1)), i64::MIN);
    }

    #[test]
    fn durations_are_checked_and_capped_as_temporal_does() {
        let check = |seconds, nanos| {
            let mut d = Duration { seconds, nanos };
            validate_and_cap(Some(&mut d)).map(|()| (d.seconds, d.nanos))
        };
        assert_eq!(validate_and_cap(None), Ok(()));
        assert_eq!(check(0, 0), Ok((0, 0)));
        assert_eq!(check(1, 500), Ok((1, 500)));
        assert_eq!(check(-1, 0), Err(DurationError::Negative));
        assert_eq!(check(0, -1), Err(DurationError::Negative));
        assert_eq!(check(i64::MIN, 0), Err(DurationError::Negative));
        assert_eq!(check(1, -1), Err(DurationError::MismatchedSigns));
        assert_eq!(check(-1, 1), Err(DurationError::MismatchedSigns));
        assert_eq!(check(0, 1_000_000_000), Err(DurationError::NanosOutOfRange));
        assert_eq!(check(0, -1_000_000_000), Err(DurationError::Negative));
        assert_eq!(check(i64::MAX, 999_999_999), Ok((MAX_DURATION_SECONDS, 0)));
        assert_eq!(
            check(MAX_DURATION_SECONDS, 1),
            Ok((MAX_DURATION_SECONDS, 0))
        );
        assert_eq!(
            check(MAX_DURATION_SECONDS - 1, 1),
            Ok((MAX_DURATION_SECONDS - 1, 1))
        );
        assert_eq!(
            DurationError::MismatchedSigns.to_string(),
            "duration has seconds and nanos with different signs"
        );
        assert_eq!(DurationError::Negative.to_string(), "negative duration");
    }
}
