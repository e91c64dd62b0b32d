//! Hours of the week a policy acts in: windows of the day (UTC), optionally on some
//! weekdays only (`headroom`'s scheduled reserves, `expiry`'s rotation hours).

use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// From `from` to `to` (`HH:MM`, UTC; `to` before `from` runs past midnight), on `days`
/// (`mon` ... `sun`; empty: every day).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Window {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub days: Vec<String>,
}

fn minute_of_day(text: &str) -> Result<u64, String> {
    let parsed = text.split_once(':').and_then(|(h, m)| Some((h.parse::<u64>().ok()?, m.parse::<u64>().ok()?)));
    match parsed {
        Some((h, m)) if h < 24 && m < 60 && text.len() == 5 => Ok(h * 60 + m),
        _ => Err(format!("`{text}` is not a time of day; write HH:MM, e.g. 07:30")),
    }
}

impl Window {
    pub fn validate(&self) -> Result<(), String> {
        minute_of_day(&self.from).map_err(|e| format!("from: {e}"))?;
        minute_of_day(&self.to).map_err(|e| format!("to: {e}"))?;
        for (i, d) in self.days.iter().enumerate() {
            if !DAYS.contains(&d.as_str()) {
                return Err(format!("days[{i}]: `{d}` is not one of {}", DAYS.join(", ")));
            }
        }
        Ok(())
    }

    /// True if the instant (Unix millis) falls in the window. A window that runs past
    /// midnight belongs to the day it starts on.
    pub fn contains(&self, at_millis: u64) -> bool {
        let (Ok(from), Ok(to)) = (minute_of_day(&self.from), minute_of_day(&self.to)) else { return false };
        let minutes = at_millis / 60_000;
        let (day, minute) = (minutes / 1440, minutes % 1440);
        // 1970-01-01 was a Thursday.
        let weekday = |day: u64| DAYS[((day + 3) % 7) as usize];
        let on = |day: u64| self.days.is_empty() || self.days.iter().any(|d| d == weekday(day));
        if from <= to {
            minute >= from && minute < to && on(day)
        } else {
            (minute >= from && on(day)) || (minute < to && day > 0 && on(day - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(from: &str, to: &str, days: &[&str]) -> Window {
        Window { from: from.into(), to: to.into(), days: days.iter().map(|d| d.to_string()).collect() }
    }

    /// 2026-01-05 was a Monday.
    const MONDAY: u64 = 1_767_571_200_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn windows_follow_the_clock_the_weekday_and_midnight() {
        let office = window("08:00", "18:00", &["mon", "tue", "wed", "thu", "fri"]);
        assert!(office.contains(MONDAY + 9 * HOUR));
        assert!(!office.contains(MONDAY + 19 * HOUR));
        assert!(!office.contains(MONDAY + 5 * 24 * HOUR + 9 * HOUR), "Saturday");
        let night = window("22:00", "02:00", &["fri"]);
        assert!(night.contains(MONDAY + 4 * 24 * HOUR + 23 * HOUR), "Friday 23:00");
        assert!(night.contains(MONDAY + 5 * 24 * HOUR + HOUR), "Saturday 01:00 is Friday's night");
        assert!(!night.contains(MONDAY + HOUR), "Monday 01:00 is Sunday's night");
        assert!(window("7:30", "08:00", &[]).validate().unwrap_err().contains("`7:30`"));
        assert!(window("07:30", "08:00", &["monday"]).validate().unwrap_err().contains("days[0]"));
    }
}
