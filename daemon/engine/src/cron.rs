//! Cron schedules: the standard five-field cron syntax as Kubernetes reads it (minute,
//! hour, day of month, month, day of week; `*`, `?`, lists, ranges, steps, month and day
//! names, and the `@hourly`-style macros), the next time a schedule fires, and whether a
//! window it opens is open. CronJobs' next runs and the disruption budget's windows read it.
//!
//! # Caveats
//! `@every` and seconds fields are not Kubernetes CronJob syntax and are refused. Like the
//! CronJob controller (robfig/cron), a schedule that restricts both day of month and day
//! of week fires on either; a wall-clock time a daylight-saving change skips fires at the
//! next instant that exists.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule: the minutes, hours, days, months and weekdays it fires on, as bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month or day of week was `*`/`?`: then both must match, else either.
    any_day: bool,
}

/// One field's bounds and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY: Field = Field { name: "day of month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const WEEKDAY: Field =
    Field { name: "day of week", min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

/// The most calendar steps a search takes: past this, the schedule never fires (`0 0 30 2 *`).
const MAX_STEPS: u32 = 20_000;

impl Schedule {
    /// Parses a CronJob's `spec.schedule`. The error names the part that is wrong.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = expr.trim();
        let expanded = match expr {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            macro_ if macro_.starts_with('@') => return Err(format!("`{macro_}` is not a schedule a CronJob takes")),
            plain => plain,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!("`{expr}` has {} fields, not 5 (minute hour day month weekday)", fields.len()));
        };
        let (days, day_star) = bits(day, &DAY)?;
        let (weekdays, weekday_star) = bits(weekday, &WEEKDAY)?;
        Ok(Schedule {
            minutes: bits(minute, &MINUTE)?.0,
            hours: bits(hour, &HOUR)?.0,
            days,
            months: bits(month, &MONTH)?.0,
            weekdays,
            any_day: day_star || weekday_star,
        })
    }

    /// The first time after `after` that the schedule fires, in `zone`; none when it never
    /// does (the 30th of February).
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(zone.clone()).datetime();
        let mut at = start.date().at(start.hour(), start.minute(), 0, 0).checked_add(1.minute()).ok()?;
        for _ in 0..MAX_STEPS {
            let date = at.date();
            at = if !has(self.months, date.month() as u32) {
                first_of_next_month(date)?
            } else if !self.day_matches(date) {
                date.tomorrow().ok()?.at(0, 0, 0, 0)
            } else if !has(self.hours, at.hour() as u32) {
                date.at(at.hour(), 0, 0, 0).checked_add(1.hour()).ok()?
            } else if !has(self.minutes, at.minute() as u32) {
                at.checked_add(1.minute()).ok()?
            } else {
                match at.to_zoned(zone.clone()).map(|z| z.timestamp()) {
                    Ok(fires) if fires > after => return Some(fires),
                    _ => at.checked_add(1.minute()).ok()?,
                }
            };
        }
        None
    }

    /// When the schedule fired within `span` up to `at` (`at` included): a window that opens
    /// when the schedule fires and lasts `span` is open at `at` since then. The earliest such
    /// firing; none when the window is shut.
    pub fn fired_within(&self, at: Timestamp, span: jiff::SignedDuration, zone: &TimeZone) -> Option<Timestamp> {
        let opened = self.next_after(at.checked_sub(span).ok()?, zone)?;
        (opened <= at).then_some(opened)
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = has(self.days, date.day() as u32);
        let weekday = has(self.weekdays, date.weekday().to_sunday_zero_offset() as u32);
        if self.any_day { day && weekday } else { day || weekday }
    }
}

fn has(bits: u64, value: u32) -> bool {
    bits & (1 << value) != 0
}

fn first_of_next_month(date: Date) -> Option<DateTime> {
    Some(date.first_of_month().checked_add(1.month()).ok()?.at(0, 0, 0, 0))
}

/// A field's values as bits, and whether it was `*` or `?` (a step over it is not).
fn bits(expr: &str, field: &Field) -> Result<(u64, bool), String> {
    let mut all = 0u64;
    let mut star = false;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let wildcard = range == "*" || range == "?";
        let (low, high) = if wildcard {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low, field)?, value(high, field)?)
        } else {
            let low = value(range, field)?;
            // `N/step` runs from N to the field's end.
            (low, if step.is_some() { field.max } else { low })
        };
        let step =
            match step {
                Some(s) => s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{}: the step `{s}` in `{part}` is not a whole number above 0", field.name)
                })?,
                None => 1,
            };
        if low > high {
            return Err(format!("{}: the range `{part}` runs backwards", field.name));
        }
        star |= wildcard && step == 1;
        all |= (low..=high).step_by(step as usize).fold(0, |acc, v| acc | 1 << v);
    }
    Ok((all, star))
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    let value = match field.names.iter().position(|n| *n == lower) {
        Some(i) => i as u32 + field.min,
        None => text.parse::<u32>().map_err(|_| format!("{}: `{text}` is not a number or a name", field.name))?,
    };
    if value < field.min || value > field.max {
        return Err(format!("{}: {value} is outside {}-{}", field.name, field.min, field.max));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        Schedule::parse(expr).unwrap().next_after(utc(after), &TimeZone::UTC).unwrap().to_string()
    }

    #[test]
    fn the_next_run_is_the_first_matching_minute_strictly_after() {
        assert_eq!(next("*/15 1-3 * * *", "2026-11-24T00:50:00Z"), "2026-11-24T01:00:00Z");
        assert_eq!(next("*/15 1-3 * * *", "2026-11-24T01:00:00Z"), "2026-11-24T01:15:00Z", "not the same minute");
        assert_eq!(next("*/15 1-3 * * *", "2026-11-24T03:50:30Z"), "2026-11-25T01:00:00Z", "past 03:45: tomorrow");
        assert_eq!(next("@hourly", "2026-11-24T09:06:44Z"), "2026-11-24T10:00:00Z");
        assert_eq!(next("30 9 * * MON-FRI", "2026-11-27T10:00:00Z"), "2026-11-30T09:30:00Z", "Friday to Monday");
        assert_eq!(next("0 0 1 jan *", "2026-11-24T00:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next("5/20 * * * *", "2026-11-24T09:46:00Z"), "2026-11-24T10:05:00Z", "5, 25 and 45");
    }

    #[test]
    fn a_window_is_open_from_a_firing_for_its_span_and_shut_at_its_end() {
        let weekdays = Schedule::parse("0 9 * * mon-fri").unwrap();
        let eight_hours = jiff::SignedDuration::from_hours(8);
        let open = |at: &str| weekdays.fired_within(utc(at), eight_hours, &TimeZone::UTC).map(|t| t.to_string());
        assert_eq!(open("2026-11-27T08:59:59Z"), None, "Friday, before nine");
        assert_eq!(open("2026-11-27T09:00:00Z").as_deref(), Some("2026-11-27T09:00:00Z"), "the firing minute itself");
        assert_eq!(open("2026-11-27T16:59:59Z").as_deref(), Some("2026-11-27T09:00:00Z"));
        assert_eq!(open("2026-11-27T17:00:00Z"), None, "eight hours on, shut");
        assert_eq!(open("2026-11-28T10:00:00Z"), None, "Saturday");
    }

    #[test]
    fn day_of_month_and_day_of_week_both_restricted_fire_on_either() {
        // The 1st, or any Sunday: Sunday 2026-11-29 comes before 1 December.
        assert_eq!(next("0 12 1 * 0", "2026-11-24T00:00:00Z"), "2026-11-29T12:00:00Z");
        // With day of week `*`, only the 1st.
        assert_eq!(next("0 12 1 * *", "2026-11-24T00:00:00Z"), "2026-12-01T12:00:00Z");
        // A stepped day of week is a restriction, not `*`: either again.
        assert_eq!(next("0 12 15 * */3", "2026-11-24T00:00:00Z"), "2026-11-25T12:00:00Z", "Wednesday");
    }

    #[test]
    fn a_named_time_zone_fires_at_its_wall_clock_time() {
        let berlin = TimeZone::get("Europe/Berlin").expect("the time zone database (Debian's tzdata) is installed");
        let schedule = Schedule::parse("0 2 * * *").unwrap();
        let fires = schedule.next_after(utc("2026-11-24T00:00:00Z"), &berlin).unwrap();
        assert_eq!(fires.to_string(), "2026-11-24T01:00:00Z", "02:00 in Berlin is 01:00 UTC in winter");
    }

    #[test]
    fn bad_schedules_name_the_field_and_the_part_and_an_impossible_one_never_fires() {
        let error = |expr: &str| Schedule::parse(expr).unwrap_err();
        assert!(error("61 * * * *").contains("minute: 61 is outside 0-59"), "{}", error("61 * * * *"));
        assert!(error("* * * foo *").contains("month: `foo` is not a number or a name"));
        assert!(error("*/0 * * * *").contains("minute: the step `0`"));
        assert!(error("* 5-2 * * *").contains("hour: the range `5-2` runs backwards"));
        assert!(error("* * * *").contains("has 4 fields, not 5"));
        assert!(error("@every 5m").contains("`@every 5m` is not a schedule a CronJob takes"));
        let february_30 = Schedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(february_30.next_after(utc("2026-11-24T00:00:00Z"), &TimeZone::UTC), None);
    }
}
