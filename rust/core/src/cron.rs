//! Next-fire-time computation for standard 5-field cron expressions in an IANA time zone.
//!
//! # Syntax
//!
//! A spec is five whitespace-separated fields, `minute hour day-of-month month day-of-week`:
//!
//! | field        | values                                 |
//! |--------------|----------------------------------------|
//! | minute       | 0-59                                   |
//! | hour         | 0-23                                   |
//! | day-of-month | 1-31                                   |
//! | month        | 1-12 or JAN-DEC                        |
//! | day-of-week  | 0-7 or SUN-SAT (both 0 and 7 are Sunday) |
//!
//! Each field is a comma-separated list of items. An item is `*`, `N` or `A-B`, optionally
//! followed by `/STEP`: `*/15`, `1-30/5`, and `5/15`, which means "from 5 to the end of the
//! field, every 15" (for day-of-week the end is 6, so `1/2` is `1,3,5`). A step runs from 1 to the field's span (60 for minutes, 7 for days of the
//! week). Names are case-insensitive and allowed wherever a number is (`MON-FRI`). Ranges do not
//! wrap around: `FRI-MON` is an error, write `FRI-SAT,SUN-MON`.
//!
//! The macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and
//! `@hourly` stand for `0 0 1 1 *`, `0 0 1 * *`, `0 0 * * 0`, `0 0 * * *` and `0 * * * *`.
//!
//! Day-of-month and day-of-week combine as in Vixie cron. A field is *restricted* unless its
//! text starts with `*`. When both are restricted a day matches if either matches, so
//! `0 0 13 * FRI` fires on every 13th and on every Friday. Otherwise a day must match both, so
//! `0 0 */2 * FRI` fires only on Fridays that fall on an odd day of the month.
//!
//! A spec that can never fire, such as `0 0 30 2 *`, is rejected by [`CronSchedule::parse`].
//!
//! # Time zones and daylight saving time
//!
//! Specs are matched against the local wall-clock time in the given zone, and fire at whole
//! local minutes:
//!
//! - A local time skipped when clocks go forward does not exist, so it does not fire. In
//!   Europe/Berlin, `30 2 * * *` does not fire on 2026-03-29.
//! - A local time repeated when clocks go back fires once, at its first occurrence. In
//!   Europe/Berlin, `30 2 * * *` fires at 02:30 CEST on 2026-10-25 but not at 02:30 CET, and
//!   `*/30 * * * *` pauses for the repeated hour.

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike,
};
use chrono_tz::Tz;

use crate::error::{CoreError, CoreResult};

/// How far past `after_ms` [`CronSchedule::next_after`] looks before giving up. Parsing rejects
/// specs that can never fire, so this only ends searches for very rare fire times, such as
/// February 29 when it is also a Sunday.
const SEARCH_BOUND_YEARS: u32 = 30;

/// A parsed cron spec: one set of selected values per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    minutes: ValueSet,
    hours: ValueSet,
    days_of_month: ValueSet,
    months: ValueSet,
    /// Sunday is 0; a 7 in the spec is stored as 0.
    days_of_week: ValueSet,
    /// Whether the day-of-month text does not start with `*` (decides the OR/AND rule).
    dom_restricted: bool,
    /// Whether the day-of-week text does not start with `*` (decides the OR/AND rule).
    dow_restricted: bool,
    spec: String,
}

impl CronSchedule {
    /// Parses a 5-field spec or a macro such as `@daily`.
    ///
    /// Errors are [`CoreError::InvalidCron`] naming the spec, what is wrong and what is allowed.
    pub fn parse(spec: &str) -> CoreResult<Self> {
        let text = spec.trim();
        let fields = if text.starts_with('@') {
            expand_macro(text)
        } else {
            Ok(text)
        };
        fields
            .and_then(|fields| Self::from_fields(fields, spec))
            .map_err(|problem| {
                CoreError::InvalidCron(format!("invalid cron spec '{spec}': {problem}"))
            })
    }

    /// The first fire time strictly after `after_ms` (Unix epoch milliseconds), in epoch
    /// milliseconds, with the spec evaluated on the local wall-clock time in `tz`.
    ///
    /// Fire times are whole local minutes. Daylight saving time follows two rules:
    ///
    /// - A local time skipped when clocks go forward does not exist and does not fire; the
    ///   search continues with the next matching local time.
    /// - A local time repeated when clocks go back fires once, at its earlier instant. If that
    ///   instant is not after `after_ms`, the time has already fired and is skipped, even when
    ///   its second instant is still ahead.
    ///
    /// Returns `None` if nothing fires within 30 years of `after_ms`, or if `after_ms` is
    /// outside the range chrono can represent.
    pub fn next_after(&self, after_ms: i64, tz: Tz) -> Option<i64> {
        let after_local = DateTime::from_timestamp_millis(after_ms)?
            .with_timezone(&tz)
            .naive_local();
        let after_minute =
            after_local
                .date()
                .and_hms_opt(after_local.hour(), after_local.minute(), 0)?;
        let mut from = next_minute(after_minute)?;
        let limit = from
            .checked_add_months(Months::new(12 * SEARCH_BOUND_YEARS))
            .unwrap_or(NaiveDateTime::MAX);
        while let Some(local) = self.next_local_match(from, limit) {
            // `earliest` is the only instant of an ordinary local time, the first instant of a
            // repeated one, and nothing for a skipped one: exactly the rules documented above.
            if let Some(instant) = tz.from_local_datetime(&local).earliest() {
                let instant_ms = instant.timestamp_millis();
                if instant_ms > after_ms {
                    return Some(instant_ms);
                }
            }
            from = next_minute(local)?;
        }
        None
    }

    /// The spec text exactly as it was given to [`CronSchedule::parse`].
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Builds a schedule from the five field texts; `spec` is the original text to keep.
    fn from_fields(fields: &str, spec: &str) -> Result<Self, String> {
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or a macro \
                 such as @daily, but found {} fields",
                fields.len()
            ));
        };
        let schedule = Self {
            minutes: MINUTE.parse(minute)?,
            hours: HOUR.parse(hour)?,
            days_of_month: DAY_OF_MONTH.parse(day_of_month)?,
            months: MONTH.parse(month)?,
            days_of_week: DAY_OF_WEEK.parse(day_of_week)?,
            dom_restricted: !day_of_month.starts_with('*'),
            dow_restricted: !day_of_week.starts_with('*'),
            spec: spec.to_owned(),
        };
        schedule.check_can_fire()?;
        Ok(schedule)
    }

    /// Rejects specs whose selected days of the month exist in none of the selected months.
    ///
    /// That is the only way a spec can starve: every field selects at least one value, a
    /// restricted day-of-week adds days to every month (OR rule), and an unrestricted
    /// day-of-month starts with `*` and so always includes the 1st.
    fn check_can_fire(&self) -> Result<(), String> {
        if !self.dom_restricted || self.dow_restricted {
            return Ok(());
        }
        let some_day_exists = self.months.iter().any(|month| {
            self.days_of_month
                .iter()
                .any(|day| day <= longest_month_length(month))
        });
        if some_day_exists {
            return Ok(());
        }
        let days: Vec<String> = self
            .days_of_month
            .iter()
            .map(|day| day.to_string())
            .collect();
        Err(match days.as_slice() {
            [day] => format!("never fires: no selected month has day {day}"),
            _ => format!(
                "never fires: no selected month has any of days {}",
                days.join(", ")
            ),
        })
    }

    /// The first local date-time at or after `from` (and not after `limit`) whose fields all
    /// match. Jumps a month, a day or an hour at a time instead of scanning minutes.
    fn next_local_match(&self, from: NaiveDateTime, limit: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let (mut hour, mut minute) = (from.hour(), from.minute());
        while date <= limit.date() {
            if !self.months.contains(date.month()) {
                date = date.with_day(1)?.checked_add_months(Months::new(1))?;
            } else if !self.day_matches(date) {
                date = date.succ_opt()?;
            } else if let Some(time) = self.first_time_from(hour, minute) {
                let candidate = date.and_time(time);
                return (candidate <= limit).then_some(candidate);
            } else {
                date = date.succ_opt()?;
            }
            // Whichever branch ran, `date` is now a later day, searched from its first minute.
            (hour, minute) = (0, 0);
        }
        None
    }

    /// Applies the day-of-month / day-of-week OR rule (see the module documentation).
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom_matches = self.days_of_month.contains(date.day());
        let dow_matches = self
            .days_of_week
            .contains(date.weekday().num_days_from_sunday());
        if self.dom_restricted && self.dow_restricted {
            dom_matches || dow_matches
        } else {
            dom_matches && dow_matches
        }
    }

    /// The first selected time of day at or after `hour:minute`, if one is left on that day.
    fn first_time_from(&self, hour: u32, minute: u32) -> Option<NaiveTime> {
        let later_this_hour = if self.hours.contains(hour) {
            self.minutes.first_from(minute)
        } else {
            None
        };
        let (hour, minute) = match later_this_hour {
            Some(minute) => (hour, minute),
            None => (
                self.hours.first_from(hour + 1)?,
                self.minutes.first_from(0)?,
            ),
        };
        NaiveTime::from_hms_opt(hour, minute, 0)
    }
}

/// Looks up an IANA time zone name such as `UTC` or `Europe/Berlin` (case-sensitive).
pub fn parse_time_zone(name: &str) -> CoreResult<Tz> {
    name.parse().map_err(|_| {
        CoreError::InvalidTimeZone(format!(
            "unknown time zone '{name}': use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ))
    })
}

fn next_minute(time: NaiveDateTime) -> Option<NaiveDateTime> {
    time.checked_add_signed(TimeDelta::minutes(1))
}

/// The most days `month` can have; February counts as 29 so that leap days are allowed.
fn longest_month_length(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Replaces a macro by the five fields it stands for.
fn expand_macro(text: &str) -> Result<&'static str, String> {
    match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        "@reboot" => Err(
            "@reboot is not supported: schedules fire at clock times, not when a \
             process starts; use a 5-field spec or @yearly, @monthly, @weekly, @daily or @hourly"
                .to_owned(),
        ),
        _ => Err(format!(
            "unknown macro '{text}'; allowed macros are @yearly, @annually, @monthly, @weekly, \
             @daily, @midnight and @hourly"
        )),
    }
}

/// What one of the five fields accepts, for parsing and for error messages.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names of the values `min`, `min + 1`, ...; empty when the field has no names.
    names: &'static [&'static str],
    /// Day-of-week accepts 7 as a second spelling of Sunday (0).
    seven_is_sunday: bool,
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    seven_is_sunday: false,
};

const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    seven_is_sunday: false,
};

const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    seven_is_sunday: false,
};

const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    seven_is_sunday: false,
};

const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 6,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    seven_is_sunday: true,
};

impl Field {
    /// Parses a comma-separated list of items into the set of values it selects.
    fn parse(&self, text: &str) -> Result<ValueSet, String> {
        let mut values = ValueSet::default();
        for item in text.split(',') {
            values = values.union(self.parse_item(item)?);
        }
        if self.seven_is_sunday && values.contains(7) {
            values = values.without(7).with(0);
        }
        Ok(values)
    }

    /// Parses `*`, `N` or `A-B`, each optionally followed by `/STEP`.
    fn parse_item(&self, item: &str) -> Result<ValueSet, String> {
        if item.is_empty() {
            return Err(format!(
                "{} field has an empty item; separate values with single commas, as in '1,15,30'",
                self.name
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(self.parse_step(step, item)?)),
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (self.min, self.max)
        } else if let Some((start, end)) = range.split_once('-') {
            let (first, last) = (self.parse_value(start, item)?, self.parse_value(end, item)?);
            if first > last {
                return Err(format!(
                    "{} range '{range}' runs backwards; write the smaller value first \
                     (ranges do not wrap around; use a list such as 'FRI-SAT,SUN-MON' instead)",
                    self.name
                ));
            }
            (first, last)
        } else {
            let value = self.parse_value(range, item)?;
            // `5/15` runs from 5 to the end of the field, as in `5-59/15`.
            let last = if step.is_some() {
                value.max(self.max)
            } else {
                value
            };
            (value, last)
        };
        let step = step.unwrap_or(1) as usize;
        Ok((first..=last).step_by(step).collect())
    }

    fn parse_step(&self, step: &str, item: &str) -> Result<u32, String> {
        let span = self.max - self.min + 1;
        if step.is_empty() || !step.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(format!(
                "{} step '{step}' in '{item}' is not a number; allowed: 1-{span}",
                self.name
            ));
        }
        match step.parse() {
            Ok(step) if (1..=span).contains(&step) => Ok(step),
            _ => Err(format!(
                "{} step {step} in '{item}' is out of range 1-{span}",
                self.name
            )),
        }
    }

    /// Parses one number or name of `item`.
    fn parse_value(&self, token: &str, item: &str) -> Result<u32, String> {
        if token.is_empty() {
            return Err(format!(
                "{} item '{item}' is missing a value; allowed: {}",
                self.name,
                self.allowed()
            ));
        }
        let largest = self.largest_number();
        if token.bytes().all(|byte| byte.is_ascii_digit()) {
            return match token.parse() {
                Ok(value) if (self.min..=largest).contains(&value) => Ok(value),
                _ => Err(format!(
                    "{} {token} is out of range {}-{largest}",
                    self.name, self.min
                )),
            };
        }
        if let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(token))
        {
            return Ok(self.min + index as u32);
        }
        let is_word = token.bytes().all(|byte| byte.is_ascii_alphabetic());
        if is_word && !self.names.is_empty() {
            return Err(format!(
                "unknown {} name '{token}'; allowed: {}",
                self.name,
                self.allowed()
            ));
        }
        Err(format!(
            "{} value '{token}' is not valid; allowed: {}",
            self.name,
            self.allowed()
        ))
    }

    /// The largest number accepted in the spec: `max`, or 7 for day-of-week.
    fn largest_number(&self) -> u32 {
        if self.seven_is_sunday {
            7
        } else {
            self.max
        }
    }

    /// Describes the accepted values for error messages, e.g. `1-12 or JAN-DEC`.
    fn allowed(&self) -> String {
        let mut allowed = format!("{}-{}", self.min, self.largest_number());
        if let (Some(first), Some(last)) = (self.names.first(), self.names.last()) {
            allowed.push_str(&format!(" or {first}-{last}"));
        }
        if self.seven_is_sunday {
            allowed.push_str(" (0 and 7 are Sunday)");
        }
        allowed
    }
}

/// A set of cron field values as a bitmask; every value a field accepts is below 64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ValueSet(u64);

impl ValueSet {
    fn contains(self, value: u32) -> bool {
        value < 64 && (self.0 >> value) & 1 == 1
    }

    /// The smallest member that is at least `value`.
    fn first_from(self, value: u32) -> Option<u32> {
        let at_or_above = self.0 & u64::MAX.checked_shl(value).unwrap_or(0);
        (at_or_above != 0).then(|| at_or_above.trailing_zeros())
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    fn with(self, value: u32) -> Self {
        Self(self.0 | 1 << value)
    }

    fn without(self, value: u32) -> Self {
        Self(self.0 & !(1 << value))
    }

    fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&value| self.contains(value))
    }
}

impl FromIterator<u32> for ValueSet {
    fn from_iter<I: IntoIterator<Item = u32>>(values: I) -> Self {
        values.into_iter().fold(Self::default(), Self::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Asia, Europe};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const MINUTE_MS: i64 = 60_000;
    const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

    fn parse(spec: &str) -> CronSchedule {
        CronSchedule::parse(spec).unwrap_or_else(|error| panic!("{spec}: {error}"))
    }

    /// Milliseconds of a local "YYYY-MM-DD HH:MM" in `tz`, which must exist and be unambiguous.
    fn ms_in(tz: Tz, local: &str) -> i64 {
        let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect(local);
        tz.from_local_datetime(&local)
            .single()
            .expect("an unambiguous local time")
            .timestamp_millis()
    }

    fn ms(utc: &str) -> i64 {
        ms_in(Tz::UTC, utc)
    }

    /// Formats `ms` as local time in `tz`, with the offset when it is not UTC.
    fn show(ms: i64, tz: Tz) -> String {
        let time = DateTime::from_timestamp_millis(ms)
            .expect("a representable time")
            .with_timezone(&tz);
        if tz == Tz::UTC {
            time.format("%Y-%m-%d %H:%M %a").to_string()
        } else {
            time.format("%Y-%m-%d %H:%M %:z").to_string()
        }
    }

    /// The next `count` fire times after local `after` in `tz`, formatted by [`show`].
    fn fires_in(spec: &str, tz: Tz, after: &str, count: usize) -> Vec<String> {
        let schedule = parse(spec);
        let mut after = ms_in(tz, after);
        (0..count)
            .map(|_| {
                after = schedule.next_after(after, tz).expect("a fire time");
                show(after, tz)
            })
            .collect()
    }

    fn fires(spec: &str, after: &str, count: usize) -> Vec<String> {
        fires_in(spec, Tz::UTC, after, count)
    }

    fn cron_error(spec: &str) -> String {
        match CronSchedule::parse(spec) {
            Err(CoreError::InvalidCron(message)) => message,
            other => panic!("{spec}: expected InvalidCron, got {other:?}"),
        }
    }

    /// Asserts the error names the spec and contains `expected`.
    fn assert_error(spec: &str, expected: &str) {
        let message = cron_error(spec);
        assert!(
            message.starts_with(&format!("invalid cron spec '{spec}': ")),
            "{message}"
        );
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }

    #[test]
    fn star_fires_every_minute() {
        assert_eq!(
            fires("* * * * *", "2026-01-01 23:58", 3),
            [
                "2026-01-01 23:59 Thu",
                "2026-01-02 00:00 Fri",
                "2026-01-02 00:01 Fri"
            ]
        );
    }

    #[test]
    fn seconds_within_the_minute_are_ignored() {
        let schedule = parse("* * * * *");
        let after = ms("2026-01-01 12:00") + 59_999;
        assert_eq!(
            schedule.next_after(after, Tz::UTC),
            Some(ms("2026-01-01 12:01"))
        );
    }

    #[test]
    fn single_values() {
        assert_eq!(
            fires("30 14 * * *", "2026-01-01 15:00", 2),
            ["2026-01-02 14:30 Fri", "2026-01-03 14:30 Sat"]
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            fires("0,15,45 * * * *", "2026-01-01 12:00", 4),
            [
                "2026-01-01 12:15 Thu",
                "2026-01-01 12:45 Thu",
                "2026-01-01 13:00 Thu",
                "2026-01-01 13:15 Thu"
            ]
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            fires("0 9-11 * * *", "2026-01-01 10:30", 3),
            [
                "2026-01-01 11:00 Thu",
                "2026-01-02 09:00 Fri",
                "2026-01-02 10:00 Fri"
            ]
        );
    }

    #[test]
    fn star_with_step() {
        assert_eq!(
            fires("*/15 * * * *", "2026-01-01 12:50", 2),
            ["2026-01-01 13:00 Thu", "2026-01-01 13:15 Thu"]
        );
    }

    #[test]
    fn range_with_step() {
        assert_eq!(
            fires("1-30/10 * * * *", "2026-01-01 12:00", 4),
            [
                "2026-01-01 12:01 Thu",
                "2026-01-01 12:11 Thu",
                "2026-01-01 12:21 Thu",
                "2026-01-01 13:01 Thu"
            ]
        );
    }

    #[test]
    fn start_with_step_runs_to_the_end_of_the_field() {
        assert_eq!(
            fires("5/20 * * * *", "2026-01-01 12:00", 4),
            [
                "2026-01-01 12:05 Thu",
                "2026-01-01 12:25 Thu",
                "2026-01-01 12:45 Thu",
                "2026-01-01 13:05 Thu"
            ]
        );
        // Day-of-week ends at 6 here, so `1/2` does not reach 7 (Sunday).
        assert_eq!(
            parse("0 0 * * 1/2").days_of_week,
            parse("0 0 * * 1,3,5").days_of_week
        );
    }

    #[test]
    fn steps_as_large_as_the_field_select_only_the_start() {
        assert_eq!(
            fires("*/60 */24 * * *", "2026-01-01 12:00", 1),
            ["2026-01-02 00:00 Fri"]
        );
    }

    #[test]
    fn mixed_list_items() {
        assert_eq!(
            fires("0 1,5-6,20/2 * * *", "2026-01-01 00:00", 6),
            [
                "2026-01-01 01:00 Thu",
                "2026-01-01 05:00 Thu",
                "2026-01-01 06:00 Thu",
                "2026-01-01 20:00 Thu",
                "2026-01-01 22:00 Thu",
                "2026-01-02 01:00 Fri"
            ]
        );
    }

    #[test]
    fn surrounding_and_repeated_whitespace_is_accepted() {
        assert_eq!(
            fires("  0\t12  *  * *\n", "2026-01-01 00:00", 1),
            ["2026-01-01 12:00 Thu"]
        );
    }

    #[test]
    fn month_names_in_any_case() {
        assert_eq!(
            fires("0 0 1 jan,Jul *", "2026-02-01 00:00", 2),
            ["2026-07-01 00:00 Wed", "2027-01-01 00:00 Fri"]
        );
        assert_eq!(
            fires("0 0 1 FEB-apr *", "2026-01-15 00:00", 4),
            [
                "2026-02-01 00:00 Sun",
                "2026-03-01 00:00 Sun",
                "2026-04-01 00:00 Wed",
                "2027-02-01 00:00 Mon"
            ]
        );
    }

    #[test]
    fn weekday_names_in_any_case() {
        // 2026-01-02 is a Friday.
        assert_eq!(
            fires("0 9 * * mon-FRI", "2026-01-02 10:00", 2),
            ["2026-01-05 09:00 Mon", "2026-01-06 09:00 Tue"]
        );
        assert_eq!(
            fires("0 9 * * SUN,sat", "2026-01-02 10:00", 2),
            ["2026-01-03 09:00 Sat", "2026-01-04 09:00 Sun"]
        );
    }

    #[test]
    fn seven_is_sunday() {
        assert_eq!(
            fires("0 0 * * 7", "2026-01-01 00:00", 2),
            ["2026-01-04 00:00 Sun", "2026-01-11 00:00 Sun"]
        );
        assert_eq!(
            fires("0 0 * * 5-7", "2026-01-01 00:00", 4),
            [
                "2026-01-02 00:00 Fri",
                "2026-01-03 00:00 Sat",
                "2026-01-04 00:00 Sun",
                "2026-01-09 00:00 Fri"
            ]
        );
        assert_eq!(
            parse("0 0 * * 0-7").days_of_week,
            parse("0 0 * * *").days_of_week
        );
        assert_eq!(
            parse("0 0 * * 7").days_of_week,
            parse("0 0 * * SUN").days_of_week
        );
    }

    #[test]
    fn macros_match_their_expansions() {
        let after = ms("2026-05-17 13:45");
        for (name, expansion) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            let schedule = parse(name);
            assert_eq!(schedule.spec(), name);
            assert_eq!(
                schedule.next_after(after, Tz::UTC),
                parse(expansion).next_after(after, Tz::UTC),
                "{name}"
            );
        }
        assert_eq!(
            fires("@yearly", "2026-05-17 13:45", 1),
            ["2027-01-01 00:00 Fri"]
        );
        assert_eq!(
            fires("@weekly", "2026-05-17 13:45", 1),
            ["2026-05-24 00:00 Sun"]
        );
        assert_eq!(
            fires("@hourly", "2026-05-17 13:45", 1),
            ["2026-05-17 14:00 Sun"]
        );
    }

    #[test]
    fn macros_ignore_case_and_surrounding_whitespace() {
        assert_eq!(
            fires("  @DAILY ", "2026-05-17 13:45", 1),
            ["2026-05-18 00:00 Mon"]
        );
        assert_eq!(parse(" @Monthly").spec(), " @Monthly");
    }

    #[test]
    fn both_day_fields_restricted_fire_on_either() {
        // 2026-02-13 and 2026-03-13 are Fridays; 2026-01-13 is a Tuesday.
        assert_eq!(
            fires("0 0 13 * FRI", "2026-01-01 00:00", 5),
            [
                "2026-01-02 00:00 Fri",
                "2026-01-09 00:00 Fri",
                "2026-01-13 00:00 Tue",
                "2026-01-16 00:00 Fri",
                "2026-01-23 00:00 Fri"
            ]
        );
    }

    #[test]
    fn only_day_of_month_restricted() {
        assert_eq!(
            fires("0 0 13 * *", "2026-01-01 00:00", 2),
            ["2026-01-13 00:00 Tue", "2026-02-13 00:00 Fri"]
        );
    }

    #[test]
    fn only_day_of_week_restricted() {
        assert_eq!(
            fires("0 0 * * FRI", "2026-01-01 00:00", 2),
            ["2026-01-02 00:00 Fri", "2026-01-09 00:00 Fri"]
        );
    }

    #[test]
    fn a_field_starting_with_star_is_unrestricted_so_both_must_match() {
        // Odd days of the month that are also Fridays.
        assert_eq!(
            fires("0 0 */2 * FRI", "2026-01-01 00:00", 3),
            [
                "2026-01-09 00:00 Fri",
                "2026-01-23 00:00 Fri",
                "2026-02-13 00:00 Fri"
            ]
        );
        // The 13th when it is a Sunday, Wednesday or Saturday (`*/3` is 0, 3 and 6).
        assert_eq!(
            fires("0 0 13 * */3", "2026-01-01 00:00", 2),
            ["2026-05-13 00:00 Wed", "2026-06-13 00:00 Sat"]
        );
    }

    #[test]
    fn leap_day_fires_only_in_leap_years() {
        assert_eq!(
            fires("0 0 29 2 *", "2026-01-01 00:00", 3),
            [
                "2028-02-29 00:00 Tue",
                "2032-02-29 00:00 Sun",
                "2036-02-29 00:00 Fri"
            ]
        );
        // 2100 is not a leap year.
        assert_eq!(
            fires("0 0 29 2 *", "2096-03-01 00:00", 1),
            ["2104-02-29 00:00 Fri"]
        );
    }

    #[test]
    fn month_ends_skip_shorter_months() {
        assert_eq!(
            fires("0 0 31 * *", "2026-01-31 00:00", 3),
            [
                "2026-03-31 00:00 Tue",
                "2026-05-31 00:00 Sun",
                "2026-07-31 00:00 Fri"
            ]
        );
        assert_eq!(
            fires("0 12 30 * *", "2026-01-30 12:00", 2),
            ["2026-03-30 12:00 Mon", "2026-04-30 12:00 Thu"]
        );
    }

    #[test]
    fn year_rollover() {
        assert_eq!(
            fires("59 23 31 12 *", "2026-12-31 23:59", 1),
            ["2027-12-31 23:59 Fri"]
        );
        assert_eq!(
            fires("0 0 1 1 *", "2026-12-31 23:59", 1),
            ["2027-01-01 00:00 Fri"]
        );
        assert_eq!(
            fires("*/30 * * * *", "2026-12-31 23:45", 2),
            ["2027-01-01 00:00 Fri", "2027-01-01 00:30 Fri"]
        );
    }

    #[test]
    fn fire_times_are_strictly_after() {
        let schedule = parse("0 12 * * *");
        let noon = ms("2026-01-01 12:00");
        assert_eq!(
            schedule.next_after(noon, Tz::UTC),
            Some(ms("2026-01-02 12:00"))
        );
        assert_eq!(schedule.next_after(noon - 1, Tz::UTC), Some(noon));
    }

    #[test]
    fn times_before_1970_work() {
        let schedule = parse("0 0 1 1 *");
        assert_eq!(
            schedule.next_after(ms("1969-06-01 00:00"), Tz::UTC),
            Some(0)
        );
    }

    #[test]
    fn unrepresentable_instants_give_none_instead_of_panicking() {
        let schedule = parse("* * * * *");
        assert_eq!(schedule.next_after(i64::MAX, Tz::UTC), None);
        assert_eq!(schedule.next_after(i64::MIN, Tz::UTC), None);
    }

    #[test]
    fn rare_fire_times_beyond_thirty_years_give_none() {
        // February 29 that is also a Sunday (AND rule, as day-of-week starts with `*`):
        // 2032 and then 2060, 28 years later.
        let schedule = parse("0 0 29 2 */7");
        let after = ms("2032-03-01 00:00");
        assert_eq!(
            schedule.next_after(after, Tz::UTC),
            Some(ms("2060-02-29 00:00"))
        );
        let after = ms("2088-03-01 00:00");
        assert_eq!(schedule.next_after(after, Tz::UTC), None);
    }

    #[test]
    fn non_utc_offset() {
        // Asia/Kolkata is UTC+05:30 all year.
        let schedule = parse("0 9 * * *");
        let after = ms("2026-01-01 00:00");
        let next = schedule.next_after(after, Asia::Kolkata);
        assert_eq!(next, Some(ms("2026-01-01 03:30")));
        assert_eq!(
            fires_in("0 9 * * *", Asia::Kolkata, "2026-01-01 09:00", 1),
            ["2026-01-02 09:00 +05:30"]
        );
        // UTC 18:45 on Jan 1 is already 00:15 on Jan 2 in Kolkata.
        assert_eq!(
            parse("0 0 2 * *").next_after(ms("2026-01-01 18:45"), Asia::Kolkata),
            Some(ms("2026-02-01 18:30"))
        );
    }

    #[test]
    fn skipped_local_time_does_not_fire() {
        // Berlin jumps from 02:00 CET to 03:00 CEST on 2026-03-29: 02:30 does not exist.
        assert_eq!(
            fires_in("30 2 * * *", Europe::Berlin, "2026-03-28 03:00", 2),
            ["2026-03-30 02:30 +02:00", "2026-03-31 02:30 +02:00"]
        );
        assert_eq!(
            fires_in("*/30 * * * *", Europe::Berlin, "2026-03-29 01:00", 3),
            [
                "2026-03-29 01:30 +01:00",
                "2026-03-29 03:00 +02:00",
                "2026-03-29 03:30 +02:00"
            ]
        );
    }

    #[test]
    fn repeated_local_time_fires_once_at_its_first_occurrence() {
        // Berlin goes back from 03:00 CEST to 02:00 CET on 2026-10-25: 02:30 happens twice.
        assert_eq!(
            fires_in("30 2 * * *", Europe::Berlin, "2026-10-24 12:00", 2),
            ["2026-10-25 02:30 +02:00", "2026-10-26 02:30 +01:00"]
        );
        // The hour is repeated but fires once, so an interval schedule pauses during it.
        assert_eq!(
            fires_in("*/30 * * * *", Europe::Berlin, "2026-10-25 01:30", 4),
            [
                "2026-10-25 02:00 +02:00",
                "2026-10-25 02:30 +02:00",
                "2026-10-25 03:00 +01:00",
                "2026-10-25 03:30 +01:00"
            ]
        );
    }

    #[test]
    fn repeated_local_time_does_not_fire_again_when_asked_during_its_second_occurrence() {
        let schedule = parse("30 2 * * *");
        // 01:10 UTC is 02:10 CET, in the repeated hour, after 02:30 CEST (00:30 UTC) fired.
        let during_second_pass = ms("2026-10-25 01:10");
        assert_eq!(
            schedule.next_after(during_second_pass, Europe::Berlin),
            Some(ms("2026-10-26 01:30"))
        );
        // 00:10 UTC is 02:10 CEST, in the first pass: 02:30 CEST is still ahead.
        let during_first_pass = ms("2026-10-25 00:10");
        assert_eq!(
            schedule.next_after(during_first_pass, Europe::Berlin),
            Some(ms("2026-10-25 00:30"))
        );
    }

    #[test]
    fn spec_returns_the_original_text() {
        assert_eq!(parse(" */5 * * * * ").spec(), " */5 * * * * ");
    }

    #[test]
    fn time_zones_by_iana_name() {
        assert_eq!(parse_time_zone("UTC"), Ok(Tz::UTC));
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Europe::Berlin));
        assert_eq!(parse_time_zone("Asia/Kolkata"), Ok(Asia::Kolkata));
        assert_eq!(
            parse_time_zone("Mars/Olympus"),
            Err(CoreError::InvalidTimeZone(
                "unknown time zone 'Mars/Olympus': use an IANA name such as 'UTC' or \
                 'Europe/Berlin'"
                    .to_owned()
            ))
        );
        assert!(parse_time_zone("").is_err());
    }

    #[test]
    fn wrong_field_count_is_an_error() {
        assert_error("* * * *", "expected 5 fields");
        assert_error("* * * *", "found 4 fields");
        assert_error("* * * * * *", "found 6 fields");
        assert_error("", "found 0 fields");
        assert_error("   ", "found 0 fields");
    }

    #[test]
    fn empty_items_are_errors() {
        assert_error("1,,2 * * * *", "minute field has an empty item");
        assert_error("* 1, * * *", "hour field has an empty item");
        assert_error("* * * ,1 *", "month field has an empty item");
    }

    #[test]
    fn out_of_range_values_are_errors() {
        assert_eq!(
            cron_error("61 * * * *"),
            "invalid cron spec '61 * * * *': minute 61 is out of range 0-59"
        );
        assert_error("* 24 * * *", "hour 24 is out of range 0-23");
        assert_error("* * 0 * *", "day-of-month 0 is out of range 1-31");
        assert_error("* * 32 * *", "day-of-month 32 is out of range 1-31");
        assert_error("* * * 0 *", "month 0 is out of range 1-12");
        assert_error("* * * 13 *", "month 13 is out of range 1-12");
        assert_error("* * * * 8", "day-of-week 8 is out of range 0-7");
        assert_error("0-60 * * * *", "minute 60 is out of range 0-59");
        assert_error(
            "99999999999999999999 * * * *",
            "minute 99999999999999999999 is out of range 0-59",
        );
    }

    #[test]
    fn reversed_ranges_are_errors() {
        assert_error("5-1 * * * *", "minute range '5-1' runs backwards");
        assert_error(
            "* * * * FRI-MON",
            "day-of-week range 'FRI-MON' runs backwards",
        );
        assert_error("* * * DEC-JAN *", "month range 'DEC-JAN' runs backwards");
    }

    #[test]
    fn bad_steps_are_errors() {
        assert_error("*/0 * * * *", "minute step 0 in '*/0' is out of range 1-60");
        assert_error(
            "* */25 * * *",
            "hour step 25 in '*/25' is out of range 1-24",
        );
        assert_error(
            "* * * * */8",
            "day-of-week step 8 in '*/8' is out of range 1-7",
        );
        assert_error("*/x * * * *", "minute step 'x' in '*/x' is not a number");
        assert_error("*/ * * * *", "minute step '' in '*/' is not a number");
        assert_error(
            "*/2/3 * * * *",
            "minute step '2/3' in '*/2/3' is not a number",
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert_error("a * * * *", "minute value 'a' is not valid; allowed: 0-59");
        assert_error("5x * * * *", "minute value '5x' is not valid");
        assert_error("+5 * * * *", "minute value '+5' is not valid");
        assert_error("1-2-3 * * * *", "minute value '2-3' is not valid");
        assert_error(
            "-5 * * * *",
            "minute item '-5' is missing a value; allowed: 0-59",
        );
        assert_error("5- * * * *", "minute item '5-' is missing a value");
        assert_error("/5 * * * *", "minute item '/5' is missing a value");
        assert_error(
            "* * ? * *",
            "day-of-month value '?' is not valid; allowed: 1-31",
        );
        assert_error("* * L * *", "day-of-month value 'L' is not valid");
        assert_error("JAN * * * *", "minute value 'JAN' is not valid");
        assert_error(
            "* * * 1x *",
            "month value '1x' is not valid; allowed: 1-12 or JAN-DEC",
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_error(
            "* * * FOO *",
            "unknown month name 'FOO'; allowed: 1-12 or JAN-DEC",
        );
        assert_error(
            "* * * * MONDAY",
            "unknown day-of-week name 'MONDAY'; allowed: 0-7 or SUN-SAT (0 and 7 are Sunday)",
        );
        assert_error("* * * * JAN", "unknown day-of-week name 'JAN'");
        assert_error("* * * MON *", "unknown month name 'MON'");
    }

    #[test]
    fn unsupported_and_unknown_macros_are_errors() {
        assert_error("@reboot", "@reboot is not supported");
        assert_error("@REBOOT", "@reboot is not supported");
        assert_error(
            "@fortnightly",
            "unknown macro '@fortnightly'; allowed macros are",
        );
        assert_error("@daily 5", "unknown macro '@daily 5'");
    }

    #[test]
    fn specs_that_never_fire_are_errors() {
        assert_error("0 0 30 2 *", "never fires: no selected month has day 30");
        assert_error(
            "0 0 31 4,6,9,11 *",
            "never fires: no selected month has day 31",
        );
        assert_error(
            "0 0 30,31 FEB *",
            "never fires: no selected month has any of days 30, 31",
        );
        assert_error("0 0 30 2 */2", "never fires");
    }

    #[test]
    fn specs_that_fire_rarely_are_accepted() {
        parse("0 0 29 2 *");
        parse("0 0 31 1,4 *");
        // Either day field may match under the OR rule, so Mondays in February count.
        parse("0 0 30 2 MON");
    }

    // ---- property tests ----

    const YEAR_2000_MS: i64 = 946_684_800_000;
    const YEAR_2100_MS: i64 = 4_102_444_800_000;

    const MONTH_NAMES: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    /// A spec built from explicit value sets (`None` is `*`), with an independent matcher.
    #[derive(Debug, Clone)]
    struct RandomSpec {
        minutes: Option<BTreeSet<u32>>,
        hours: Option<BTreeSet<u32>>,
        days_of_month: Option<BTreeSet<u32>>,
        months: Option<BTreeSet<u32>>,
        days_of_week: Option<BTreeSet<u32>>,
        use_names: bool,
        sunday_as_seven: bool,
    }

    impl RandomSpec {
        fn text(&self) -> String {
            let number = |value: u32| value.to_string();
            let month = |value: u32| {
                if self.use_names {
                    MONTH_NAMES[value as usize - 1].to_owned()
                } else {
                    value.to_string()
                }
            };
            let weekday = |value: u32| match value {
                7 => "7".to_owned(),
                _ if self.use_names => WEEKDAY_NAMES[value as usize].to_owned(),
                _ => value.to_string(),
            };
            let days_of_week = self.days_of_week.as_ref().map(|days| {
                let sunday = if self.sunday_as_seven { 7 } else { 0 };
                days.iter()
                    .map(|&day| if day == 0 { sunday } else { day })
                    .collect()
            });
            [
                render(&self.minutes, number),
                render(&self.hours, number),
                render(&self.days_of_month, number),
                render(&self.months, month),
                render(&days_of_week, weekday),
            ]
            .join(" ")
        }

        fn matches(&self, local: NaiveDateTime) -> bool {
            let selects = |values: &Option<BTreeSet<u32>>, value: u32| {
                values.as_ref().is_none_or(|values| values.contains(&value))
            };
            let dom = selects(&self.days_of_month, local.day());
            let dow = selects(&self.days_of_week, local.weekday().num_days_from_sunday());
            let day = if self.days_of_month.is_some() && self.days_of_week.is_some() {
                dom || dow
            } else {
                dom && dow
            };
            selects(&self.minutes, local.minute())
                && selects(&self.hours, local.hour())
                && selects(&self.months, local.month())
                && day
        }

        /// Whether the spec fires at `instant_ms`: its local time matches and this instant is
        /// the first with that local time (a repeated local time fires once).
        fn fires_at(&self, instant_ms: i64, tz: Tz) -> bool {
            let instant = DateTime::from_timestamp_millis(instant_ms)
                .expect("a representable time")
                .with_timezone(&tz);
            let local = instant.naive_local();
            self.matches(local) && tz.from_local_datetime(&local).earliest() == Some(instant)
        }

        /// Whether the selected days exist in no selected month (Feb counts 29 days).
        fn cannot_fire(&self) -> bool {
            let (Some(days), None) = (&self.days_of_month, &self.days_of_week) else {
                return false;
            };
            let months = self.months.clone().unwrap_or_else(|| (1..=12).collect());
            let lengths = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            months
                .iter()
                .all(|&month| days.iter().all(|&day| day > lengths[month as usize - 1]))
        }
    }

    /// Renders a value set as a cron field, grouping consecutive values into ranges.
    fn render(values: &Option<BTreeSet<u32>>, name: impl Fn(u32) -> String) -> String {
        let Some(values) = values else {
            return "*".to_owned();
        };
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &value in values {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == value => *last = value,
                _ => runs.push((value, value)),
            }
        }
        runs.iter()
            .map(|&(first, last)| {
                if first == last {
                    name(first)
                } else {
                    format!("{}-{}", name(first), name(last))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `*` or a small set drawn from `min..=max`; small sets keep fire times close together.
    fn field(min: u32, max: u32, max_len: usize) -> impl Strategy<Value = Option<BTreeSet<u32>>> {
        prop_oneof![
            Just(None),
            proptest::collection::btree_set(min..=max, 1..=max_len).prop_map(Some),
        ]
    }

    fn random_spec() -> impl Strategy<Value = RandomSpec> {
        (
            field(0, 59, 8),
            field(0, 23, 6),
            field(1, 31, 10),
            field(1, 12, 6),
            field(0, 6, 4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    minutes,
                    hours,
                    days_of_month,
                    months,
                    days_of_week,
                    use_names,
                    sunday_as_seven,
                )| {
                    RandomSpec {
                        minutes,
                        hours,
                        days_of_month,
                        months,
                        days_of_week,
                        use_names,
                        sunday_as_seven,
                    }
                },
            )
    }

    /// An instant within two days before or one day after a Berlin DST change (last Sunday of
    /// March or October, 01:00 UTC) in 2000-2099.
    fn near_berlin_dst_change() -> impl Strategy<Value = i64> {
        (
            2000..2100i32,
            prop_oneof![Just(3u32), Just(10u32)],
            -2 * DAY_MS..DAY_MS,
        )
            .prop_map(|(year, month, offset)| {
                let last_day = NaiveDate::from_ymd_opt(year, month, 31).expect("a valid date");
                let sunday = last_day
                    - TimeDelta::days(i64::from(last_day.weekday().num_days_from_sunday()));
                let change = sunday.and_hms_opt(1, 0, 0).expect("a valid time").and_utc();
                change.timestamp_millis() + offset
            })
    }

    /// Checks `next_after` against the spec's own matcher, and (over the first three days)
    /// against a brute-force scan of every minute.
    fn check_next_after(spec: &RandomSpec, after_ms: i64, tz: Tz) -> Result<(), TestCaseError> {
        let text = spec.text();
        let schedule = match CronSchedule::parse(&text) {
            Ok(schedule) => schedule,
            Err(error) => {
                prop_assert!(spec.cannot_fire(), "{text}: {error}");
                prop_assert!(error.to_string().contains("never fires"), "{error}");
                return Ok(());
            }
        };
        prop_assert!(!spec.cannot_fire(), "{text} parsed but cannot fire");
        let next = schedule.next_after(after_ms, tz);
        let next = next.ok_or_else(|| TestCaseError::fail(format!("{text}: no fire time")))?;
        prop_assert!(next > after_ms);
        prop_assert_eq!(next.rem_euclid(MINUTE_MS), 0);
        prop_assert!(
            spec.fires_at(next, tz),
            "{text}: {} does not fire",
            show(next, tz)
        );
        let first_minute = (after_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
        let scan_end = next.min(first_minute + 3 * DAY_MS);
        let mut minute = first_minute;
        while minute < scan_end {
            prop_assert!(
                !spec.fires_at(minute, tz),
                "{text}: skipped {} before {}",
                show(minute, tz),
                show(next, tz)
            );
            minute += MINUTE_MS;
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn next_after_is_the_first_fire_time_in_utc(
            spec in random_spec(),
            after_ms in YEAR_2000_MS..YEAR_2100_MS,
        ) {
            check_next_after(&spec, after_ms, Tz::UTC)?;
        }

        #[test]
        fn next_after_is_the_first_fire_time_in_berlin(
            spec in random_spec(),
            after_ms in YEAR_2000_MS..YEAR_2100_MS,
        ) {
            check_next_after(&spec, after_ms, Europe::Berlin)?;
        }

        #[test]
        fn next_after_is_the_first_fire_time_across_dst_changes(
            spec in random_spec(),
            after_ms in near_berlin_dst_change(),
        ) {
            check_next_after(&spec, after_ms, Europe::Berlin)?;
        }
    }
}
