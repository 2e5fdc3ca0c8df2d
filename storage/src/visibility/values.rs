//! The value forms Temporal's visibility accepts that are more than a literal: RFC 3339
//! timestamps, and execution durations as Go durations (with a `d` unit) or `hh:mm:ss`.

/// A point in time: seconds since the Unix epoch and nanoseconds within the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// From nanoseconds since the epoch, as an integer in a query means for a datetime.
    pub fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp {
            seconds: nanos.div_euclid(1_000_000_000),
            nanos: nanos.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// Microseconds since the epoch (saturating): the precision visibility compares times at,
    /// as Temporal's SQL visibility keeps them.
    pub fn unix_micros(&self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(self.nanos / 1000))
    }

    /// Milliseconds since the epoch (saturating), the unit Sundial stores times in.
    pub fn unix_millis(&self) -> i64 {
        self.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / 1_000_000))
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as Go's `time.RFC3339Nano` layout does.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        let count = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if count == 0 || count > 9 {
            return None;
        }
        let fraction: u32 = s[at + 1..at + 1 + count].parse().ok()?;
        nanos = fraction * 10u32.pow(9 - count as u32);
        at += 1 + count;
    }
    let offset = match b.get(at)? {
        b'Z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    Some(Timestamp { seconds, nanos })
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An execution duration in nanoseconds from a query string: integer nanoseconds, a Go
/// duration whose units may include `d` (24 h), or `hh:mm:ss`, as Temporal reads them.
pub fn parse_execution_duration(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    parse_go_duration(s).or_else(|| parse_hhmmss(s))
}

/// A Go duration (`1h30m`, `1.5s`, `-2d`, `0`), in nanoseconds; `None` if malformed or out of
/// range.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = match &rest[..number] {
            "" | "." => return None,
            n => n.parse().ok()?,
        };
        rest = &rest[number..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return None,
        };
        rest = &rest[unit..];
        total += value * nanos_per;
    }
    let total = if negative { -total } else { total };
    (total.abs() <= i64::MAX as f64).then_some(total as i64)
}

/// `hh:mm:ss` (hours any non-negative count, minutes and seconds below 60), in nanoseconds.
fn parse_hhmmss(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let mut field = || -> Option<i64> {
        let p = parts.next()?;
        (!p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = (field()?, field()?, field()?);
    if parts.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    h.checked_mul(3600)?
        .checked_add(m * 60 + sec)?
        .checked_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_parse_as_go_reads_them() {
        let t = |s| parse_rfc3339(s);
        assert_eq!(
            t("1970-01-01T00:00:00Z"),
            Some(Timestamp::from_unix_nanos(0))
        );
        assert_eq!(
            t("2024-02-29T12:30:45.5+01:00"),
            Some(Timestamp {
                seconds: 1_709_206_245,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            t("1969-12-31T23:59:59.000000001Z"),
            Some(Timestamp {
                seconds: -1,
                nanos: 1
            })
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn execution_durations_take_nanoseconds_go_durations_and_clock_times() {
        let d = parse_execution_duration;
        assert_eq!(d("1500"), Some(1500));
        assert_eq!(d("1h30m"), Some(5_400_000_000_000));
        assert_eq!(d("1.5s"), Some(1_500_000_000));
        assert_eq!(d("2d"), Some(172_800_000_000_000));
        assert_eq!(d("-3ms"), Some(-3_000_000));
        assert_eq!(d("0"), Some(0));
        assert_eq!(d("01:02:03"), Some(3_723_000_000_000));
        for bad in ["", "h", "1x", "1:60:00", "1:2", "1:2:3:4", "1.s.", "-"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
