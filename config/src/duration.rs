//! Serde helpers for durations in human units (`500ms`, `10s`, `1m`, `1h`, `1h 30m`), as in
//! Temporal's YAML. A bare number is rejected: a duration without a unit is ambiguous.
//!
//! Use `#[serde(with = "crate::duration")]` on a `Duration` field and
//! `#[serde(default, with = "crate::duration::option")]` on an `Option<Duration>` field.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// Parses a human duration such as `10s` or `1h 30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?}: {err} (expected a number with a unit, like 500ms, 10s, 1m, 1h)")
    })
}

/// Writes `duration` back in the form [`parse`] reads.
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

struct HumanDuration;

impl Visitor<'_> for HumanDuration {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration with a unit, like 500ms, 10s, 1m or 1h")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

/// Deserializes a `Duration` from a human duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(HumanDuration)
}

/// Serializes a `Duration` as a human duration string.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// The same helpers for `Option<Duration>`; pair with `#[serde(default)]`.
pub mod option {
    use super::*;

    struct Wrapped(Duration);

    impl<'de> serde::Deserialize<'de> for Wrapped {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::deserialize(deserializer).map(Wrapped)
        }
    }

    /// Deserializes an optional human duration (YAML `null` or absent is `None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let wrapped: Option<Wrapped> = serde::Deserialize::deserialize(deserializer)?;
        Ok(wrapped.map(|Wrapped(duration)| duration))
    }

    /// Serializes an optional duration as a human duration string or `null`.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn rejects_missing_unit_and_garbage() {
        assert!(parse("10").is_err());
        assert!(parse("ten seconds").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "10s", "1m", "1h", "1h 30m"] {
            let duration = parse(text).unwrap();
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
    }
}
