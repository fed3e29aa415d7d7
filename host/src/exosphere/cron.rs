//! Five-field cron expressions (`minute hour day-of-month month
//! day-of-week`, UTC), as Exosphere's `CronTrigger` takes them: `*`, lists
//! (`1,15`), ranges (`1-5`), steps (`*/15`, `10-40/10`), day-of-week 0–7
//! (0 and 7 are Sunday). When both day fields are restricted, a day matches
//! either, as in classic cron.

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

/// One field's allowed values as a bit set over `min..=max`.
fn field(text: &str, min: u32, max: u32, name: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 =
                    step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                        format!("the {name} step `{step}` is not a number above 0")
                    })?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |value: &str| {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("the {name} `{value}` is not a number from {min} to {max}"))
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((from, to)) => (number(from)?, number(to)?),
                // `5/15` runs from 5 to the end, as cron reads it.
                None if step > 1 => (number(range)?, max),
                None => {
                    let at = number(range)?;
                    (at, at)
                }
            },
        };
        if from > to {
            return Err(format!("the {name} range `{range}` runs backwards"));
        }
        let mut value = from;
        while value <= to {
            bits |= 1 << value;
            value += step;
        }
    }
    Ok(bits)
}

impl Schedule {
    /// Parses `expression`, saying what is wrong with it.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "`{expression}` has {} fields; a cron expression has 5: minute hour day-of-month month day-of-week",
                fields.len()
            ));
        };
        let weekdays = field(weekday, 0, 7, "day of week")?;
        Ok(Self {
            minutes: field(minute, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")? as u32,
            days: field(day, 1, 31, "day of month")? as u32,
            months: field(month, 1, 12, "month")? as u16,
            // Sunday is 0 and 7.
            weekdays: ((weekdays | (weekdays >> 7)) & 0x7f) as u8,
            any_day: *day == "*",
            any_weekday: *weekday == "*",
        })
    }

    /// Whether the minute that starts at `unix_minute` minutes after the
    /// epoch (UTC) is one the schedule fires in.
    pub fn matches(&self, unix_minute: u64) -> bool {
        let minute = unix_minute % 60;
        let hour = (unix_minute / 60) % 24;
        let days = unix_minute / (60 * 24);
        let (_, month, day) = civil_from_days(days as i64);
        // 1970-01-01 was a Thursday (4).
        let weekday = (days + 4) % 7;
        let day_matches = self.days & (1 << day) != 0;
        let weekday_matches = self.weekdays & (1 << weekday) != 0;
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday_matches,
            (false, true) => day_matches,
            (false, false) => day_matches || weekday_matches,
        };
        self.minutes & (1 << minute) != 0
            && self.hours & (1 << hour) != 0
            && self.months & (1 << month) != 0
            && day_ok
    }
}

use crate::core::clock::civil_date as civil_from_days;

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes since the epoch of a UTC date and time.
    fn at(days: u64, hour: u64, minute: u64) -> u64 {
        (days * 24 + hour) * 60 + minute
    }

    // 2026-12-03 is day 20,790 since 1970-01-01, a Thursday.
    const DEC_3_2026: u64 = 20_790;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(DEC_3_2026 as i64), (2026, 12, 3));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn fields_match_as_cron_reads_them() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert!(every_minute.matches(at(DEC_3_2026, 13, 7)));
        let weekdays_at_nine = Schedule::parse("0 9 * * 1-5").unwrap();
        assert!(weekdays_at_nine.matches(at(DEC_3_2026, 9, 0)), "a Thursday");
        assert!(!weekdays_at_nine.matches(at(DEC_3_2026, 9, 1)));
        assert!(
            !weekdays_at_nine.matches(at(DEC_3_2026 + 2, 9, 0)),
            "a Saturday"
        );
        let quarter_hours = Schedule::parse("*/15 * * * *").unwrap();
        assert!(quarter_hours.matches(at(DEC_3_2026, 4, 45)));
        assert!(!quarter_hours.matches(at(DEC_3_2026, 4, 46)));
        let sunday = Schedule::parse("30 6 * * 7").unwrap();
        assert!(sunday.matches(at(DEC_3_2026 + 3, 6, 30)), "7 is Sunday");
        // Both day fields restricted: either matches.
        let third_or_monday = Schedule::parse("0 0 3 * 1").unwrap();
        assert!(third_or_monday.matches(at(DEC_3_2026, 0, 0)));
        assert!(third_or_monday.matches(at(DEC_3_2026 + 4, 0, 0)));
        assert!(!third_or_monday.matches(at(DEC_3_2026 + 1, 0, 0)));
        let december = Schedule::parse("0 12 1,3 12 *").unwrap();
        assert!(december.matches(at(DEC_3_2026, 12, 0)));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expression, says) in [
            ("* * * *", "has 4 fields"),
            ("60 * * * *", "minute `60`"),
            ("* * * * mon", "day of week `mon`"),
            ("*/0 * * * *", "step `0`"),
            ("5-1 * * * *", "backwards"),
        ] {
            let err = Schedule::parse(expression).unwrap_err();
            assert!(err.contains(says), "{expression}: {err}");
        }
    }
}
