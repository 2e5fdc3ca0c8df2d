//! Cron schedules as Temporal reads them (robfig/cron's standard parser, UTC): five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges, steps and
//! month/day names; the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`; and `@every <duration>`. Times are unix millis.

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cron {
    /// Fields as bit sets.
    Fields {
        /// Minutes 0–59.
        minutes: u64,
        /// Hours 0–23.
        hours: u64,
        /// Days of month 1–31.
        days: u64,
        /// Months 1–12.
        months: u64,
        /// Days of week 0–6 (Sunday = 0).
        weekdays: u64,
        /// True when day of month was `*` (then only day of week restricts, and vice versa).
        any_day: bool,
        /// True when day of week was `*`.
        any_weekday: bool,
    },
    /// `@every`: a fixed period in millis.
    Every(i64),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn parse_value(s: &str, names: &[&str], first: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + first);
    }
    s.parse::<u32>().map_err(|_| format!("invalid value {s:?}"))
}

fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut any = false;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("invalid step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step of zero in {part:?}"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            any = step == 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, names, min)?, parse_value(b, names, min)?)
        } else {
            let v = parse_value(range, names, min)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, any))
}

fn parse_duration_ms(s: &str) -> Result<i64, String> {
    // Go-style durations: a sequence of <number><unit>, units h, m, s, ms.
    let mut total = 0i64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(format!("invalid duration unit in {s:?}"));
        };
        total += n * unit;
        rest = &rest[len..];
    }
    Ok(total)
}

impl Cron {
    /// Parses a schedule; the message says what is wrong.
    pub fn parse(spec: &str) -> Result<Cron, String> {
        let spec = spec.trim();
        if let Some(d) = spec.strip_prefix("@every ") {
            let ms = parse_duration_ms(d)?;
            if ms < 1_000 {
                return Err("@every needs at least one second".into());
            }
            return Ok(Cron::Every(ms));
        }
        let spec = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("expected 5 fields, found {}", fields.len()));
        }
        let (minutes, _) = parse_field(fields[0], 0, 59, &[])?;
        let (hours, _) = parse_field(fields[1], 0, 23, &[])?;
        let (days, any_day) = parse_field(fields[2], 1, 31, &[])?;
        let (months, _) = parse_field(fields[3], 1, 12, &MONTHS)?;
        let weekday_field = fields[4].replace('7', "0");
        let (weekdays, any_weekday) = parse_field(&weekday_field, 0, 6, &WEEKDAYS)?;
        Ok(Cron::Fields {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        })
    }

    /// The first fire time strictly after `after_ms`, if any within eight years.
    pub fn next(&self, after_ms: i64) -> Option<i64> {
        let Cron::Fields {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        } = *self
        else {
            let Cron::Every(period) = *self else {
                unreachable!()
            };
            // robfig's ConstantDelaySchedule: whole seconds after `after`.
            return Some((after_ms / 1_000) * 1_000 + period);
        };
        let mut minute = after_ms.div_euclid(60_000) + 1;
        let limit = minute + 8 * 366 * 24 * 60;
        while minute < limit {
            let day_number = minute.div_euclid(24 * 60);
            let (_, month, day) = civil_from_days(day_number);
            if months & (1 << month) == 0 {
                // Jump to the first day of the next month.
                let (y, m, _) = civil_from_days(day_number);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                minute = days_from_civil(ny, nm, 1) * 24 * 60;
                continue;
            }
            let weekday = (day_number + 4).rem_euclid(7) as u32;
            let day_ok = days & (1 << day) != 0;
            let weekday_ok = weekdays & (1 << weekday) != 0;
            let matches_day = if any_day || any_weekday {
                day_ok && weekday_ok
            } else {
                day_ok || weekday_ok
            };
            if !matches_day {
                minute = (day_number + 1) * 24 * 60;
                continue;
            }
            let minute_of_day = minute.rem_euclid(24 * 60);
            let (hour, min) = ((minute_of_day / 60) as u32, (minute_of_day % 60) as u32);
            if hours & (1 << hour) == 0 {
                minute = day_number * 24 * 60 + (i64::from(hour) + 1) * 60;
                continue;
            }
            if minutes & (1 << min) == 0 {
                minute += 1;
                continue;
            }
            return Some(minute * 60_000);
        }
        None
    }
}

/// (year, month 1–12, day 1–31) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    // 2026-11-27 21:33:10 UTC, a Friday.
    const NOW: i64 = 1_795_815_190_000;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        let d = days_from_civil(2026, 11, 27);
        assert_eq!(civil_from_days(d), (2026, 11, 27));
        assert_eq!(NOW.div_euclid(86_400_000), d);
        assert_eq!((d + 4).rem_euclid(7), 5, "a Friday");
    }

    #[test]
    fn every_minute_and_steps() {
        let c = Cron::parse("* * * * *").unwrap();
        assert_eq!(c.next(NOW), Some((NOW / MIN + 1) * MIN));
        let c = Cron::parse("*/15 * * * *").unwrap();
        let next = c.next(NOW).unwrap();
        assert_eq!((next / MIN) % 60, 45);
    }

    #[test]
    fn hours_days_and_names() {
        let c = Cron::parse("30 2 * * MON").unwrap();
        let next = c.next(NOW).unwrap();
        let day = next.div_euclid(86_400_000);
        assert_eq!(civil_from_days(day), (2026, 11, 30), "the next Monday");
        assert_eq!(next.rem_euclid(86_400_000), (2 * 60 + 30) * MIN);
        let c = Cron::parse("0 0 1 JAN *").unwrap();
        let next = c.next(NOW).unwrap();
        assert_eq!(civil_from_days(next.div_euclid(86_400_000)), (2027, 1, 1));
        assert_eq!(
            Cron::parse("@daily").unwrap(),
            Cron::parse("0 0 * * *").unwrap()
        );
    }

    #[test]
    fn every_and_errors() {
        assert_eq!(Cron::parse("@every 1m30s").unwrap(), Cron::Every(90_000));
        assert_eq!(Cron::Every(5_000).next(10_500), Some(15_000));
        assert!(Cron::parse("* * *").is_err());
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("*/0 * * * *").is_err());
        assert!(Cron::parse("@every 10ms").is_err());
    }
}
