//! Calendar dates from Unix time, for what people read (token lists, the
//! event history, cron schedules): no time-zone database, always UTC.

/// The proleptic Gregorian (year, month 1–12, day 1–31) `days` after
/// 1970-01-01: counted in 400-year eras that start on 1 March, so the leap
/// day ends an era's year.
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let of_era = shifted.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * of_year + 2) / 153; // 0 = March
    let day = (of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `at` (Unix seconds) as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_minutes(at: i64) -> String {
    let (date, of_day) = split(at);
    format!("{date} {:02}:{:02} UTC", of_day / 3600, of_day % 3600 / 60)
}

/// `at_ms` (Unix milliseconds) as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn utc_millis(at_ms: i64) -> String {
    let (date, of_day) = split(at_ms.div_euclid(1000));
    format!(
        "{date} {:02}:{:02}:{:02}.{:03} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        at_ms.rem_euclid(1000)
    )
}

fn split(at: i64) -> (String, i64) {
    let (year, month, day) = civil_date(at.div_euclid(86_400));
    (
        format!("{year:04}-{month:02}-{day:02}"),
        at.rem_euclid(86_400),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_across_leap_days_and_eras() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(utc_minutes(1_796_315_222), "2026-12-03 16:27 UTC");
        assert_eq!(utc_millis(1_796_315_222_900), "2026-12-03 16:27:02.900 UTC");
    }
}
