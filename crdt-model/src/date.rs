//! Dates and times. The model never reads the clock: callers pass `now`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::ValidationError;

/// Serialises a type through its `Display` form and parses it back.
macro_rules! serde_as_text {
    ($ty:ty, |$text:ident| $parse:expr) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let $text = String::deserialize(d)?;
                $parse.map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Milliseconds since the Unix epoch, UTC. Shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub fn as_millis(self) -> i64 {
        self.0
    }
    pub fn to_offset_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
    /// The UTC calendar day of this instant.
    pub fn utc_date(self) -> Day {
        Day(self.to_offset_datetime().date())
    }
    /// Parses RFC 3339 (`2026-11-27T10:00:00Z`) or a bare date (midnight UTC).
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        if let Ok(t) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
            return Ok(Self((t.unix_timestamp_nanos() / 1_000_000) as i64));
        }
        let day = Day::parse(field, text)?;
        Ok(Self(day.0.midnight().assume_utc().unix_timestamp() * 1000))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_offset_datetime().format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

serde_as_text!(Timestamp, |text| Self::parse("timestamp", &text));

/// A full calendar date, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

impl Day {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        match PartialDate::parse(field, text)? {
            PartialDate { year, month: Some(month), day: Some(day) } => {
                Ok(Self(calendar_date(field, text, year, month, day)?))
            }
            _ => Err(ValidationError::Malformed { field, value: text.to_string(), expected: "a full date YYYY-MM-DD" }),
        }
    }
    pub fn date(self) -> Date {
        self.0
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), u8::from(self.0.month()), self.0.day())
    }
}

serde_as_text!(Day, |text| Self::parse("date", &text));

/// A date that may be known only to the year or month, as dates of birth often are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartialDate {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

/// How two possibly partial dates relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateAgreement {
    /// Both full and equal.
    Same,
    /// Equal as far as the less precise one goes.
    Compatible,
    /// Same year, but month or day differ.
    SameYearOnly,
    /// Different years.
    Clash,
}

impl PartialDate {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, rejecting impossible dates.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let trimmed = text.trim();
        let bad = |reason: &str| ValidationError::ImpossibleDate {
            field,
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = trimmed.split('-').collect();
        let widths_ok = match parts.as_slice() {
            [y] => y.len() == 4,
            [y, m] => y.len() == 4 && m.len() == 2,
            [y, m, d] => y.len() == 4 && m.len() == 2 && d.len() == 2,
            _ => false,
        };
        if !widths_ok || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(ValidationError::Malformed {
                field,
                value: text.to_string(),
                expected: "YYYY, YYYY-MM or YYYY-MM-DD",
            });
        }
        let number = |s: &str| s.parse::<i32>().map_err(|_| bad("not a number"));
        let year = number(parts[0])?;
        if !(1800..=2200).contains(&year) {
            return Err(bad("year out of range 1800..2200"));
        }
        let month = parts.get(1).map(|m| number(m)).transpose()?;
        let day = parts.get(2).map(|d| number(d)).transpose()?;
        if let Some(m) = month
            && !(1..=12).contains(&m)
        {
            return Err(bad("month must be 01..12"));
        }
        let month = month.map(|m| m as u8);
        let day = day.map(|d| d.clamp(0, 255) as u8);
        if let (Some(m), Some(d)) = (month, day) {
            calendar_date(field, text, year, m, d)?;
        }
        Ok(Self { year, month, day })
    }

    /// The earliest full date this partial date may stand for.
    pub fn earliest(self) -> Date {
        let month = self.month.and_then(|m| Month::try_from(m).ok()).unwrap_or(Month::January);
        Date::from_calendar_date(self.year, month, self.day.unwrap_or(1)).unwrap_or(Date::MIN)
    }

    pub fn agreement(self, other: PartialDate) -> DateAgreement {
        if self.year != other.year {
            return DateAgreement::Clash;
        }
        match (self.month, other.month) {
            (Some(a), Some(b)) if a != b => return DateAgreement::SameYearOnly,
            (Some(_), Some(_)) => {}
            _ => return DateAgreement::Compatible,
        }
        match (self.day, other.day) {
            (Some(a), Some(b)) if a != b => DateAgreement::SameYearOnly,
            (Some(_), Some(_)) => DateAgreement::Same,
            _ => DateAgreement::Compatible,
        }
    }
}

fn calendar_date(field: &'static str, text: &str, year: i32, month: u8, day: u8) -> Result<Date, ValidationError> {
    let month = Month::try_from(month).map_err(|_| ValidationError::ImpossibleDate {
        field,
        value: text.to_string(),
        reason: "month must be 01..12".into(),
    })?;
    Date::from_calendar_date(year, month, day).map_err(|_| ValidationError::ImpossibleDate {
        field,
        value: text.to_string(),
        reason: format!("{month} {year} has no day {day}"),
    })
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

serde_as_text!(PartialDate, |text| Self::parse("date", &text));

/// A moment as the post saw it: the instant plus the post's UTC offset, so
/// the record shows local time and still orders correctly across time zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime(OffsetDateTime);

impl LocalTime {
    /// Parses RFC 3339 (`2026-11-27T14:05:00+05:00`), the same without seconds,
    /// or a local time without offset (`2026-11-27 14:05`), which is taken to be
    /// at `default_offset`.
    pub fn parse(field: &'static str, text: &str, default_offset: UtcOffset) -> Result<Self, ValidationError> {
        let trimmed = text.trim();
        if let Ok(t) = OffsetDateTime::parse(trimmed, &Rfc3339) {
            return Ok(Self(t));
        }
        let with_offset =
            format_description!("[year]-[month]-[day]T[hour]:[minute][offset_hour sign:mandatory]:[offset_minute]");
        if let Ok(t) = OffsetDateTime::parse(trimmed, with_offset) {
            return Ok(Self(t));
        }
        let normalised = trimmed.replacen(' ', "T", 1);
        let local_forms = [
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
            format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        ];
        for form in local_forms {
            if let Ok(t) = PrimitiveDateTime::parse(&normalised, form) {
                return Ok(Self(t.assume_offset(default_offset)));
            }
        }
        Err(ValidationError::BadTime {
            field,
            value: text.to_string(),
            reason: "expected RFC 3339 such as 2026-11-27T14:05:00+05:00, or 2026-11-27 14:05 in post time".into(),
        })
    }

    pub fn at(instant: Timestamp, offset: UtcOffset) -> Self {
        Self(instant.to_offset_datetime().to_offset(offset))
    }

    pub fn instant(self) -> Timestamp {
        Timestamp::from_millis((self.0.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// `YYYY-MM` of the instant in UTC; names the monthly incident document.
    pub fn utc_month(self) -> String {
        let utc = self.0.to_offset(UtcOffset::UTC);
        format!("{:04}-{:02}", utc.year(), u8::from(utc.month()))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.format(&Rfc3339).map_err(|_| fmt::Error)?)
    }
}

serde_as_text!(LocalTime, |text| Self::parse("time", &text, UtcOffset::UTC));

/// Parses a UTC offset such as `+05:00`, `-03:30` or `Z`.
pub fn parse_utc_offset(text: &str) -> Result<UtcOffset, ValidationError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("z") || trimmed == "+00:00" {
        return Ok(UtcOffset::UTC);
    }
    UtcOffset::parse(trimmed, format_description!("[offset_hour sign:mandatory]:[offset_minute]")).map_err(|_| {
        ValidationError::Malformed { field: "UTC offset", value: text.to_string(), expected: "+HH:MM, e.g. +05:00" }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dates_parse_at_each_precision() {
        assert_eq!(PartialDate::parse("dob", "1985").map(|d| d.to_string()).ok(), Some("1985".into()));
        assert_eq!(PartialDate::parse("dob", "1985-03").map(|d| d.to_string()).ok(), Some("1985-03".into()));
        assert_eq!(PartialDate::parse("dob", "1985-03-07").map(|d| d.to_string()).ok(), Some("1985-03-07".into()));
    }

    #[test]
    fn impossible_dates_are_rejected_with_a_reason() {
        let err = PartialDate::parse("dob", "1985-02-30").unwrap_err().to_string();
        assert!(err.contains("impossible date \"1985-02-30\""), "{err}");
        assert!(err.contains("no day 30"), "{err}");
        assert!(PartialDate::parse("dob", "1985-13").is_err());
        assert!(PartialDate::parse("dob", "85-01-01").is_err());
        assert!(PartialDate::parse("dob", "2023-02-29").is_err());
        assert!(PartialDate::parse("dob", "2024-02-29").is_ok());
    }

    #[test]
    fn agreement_respects_precision() {
        let p = |s| PartialDate::parse("dob", s).unwrap();
        assert_eq!(p("1985").agreement(p("1985-03-07")), DateAgreement::Compatible);
        assert_eq!(p("1985-03-07").agreement(p("1985-03-07")), DateAgreement::Same);
        assert_eq!(p("1985-03-07").agreement(p("1985-04-07")), DateAgreement::SameYearOnly);
        assert_eq!(p("1985").agreement(p("1986")), DateAgreement::Clash);
    }

    #[test]
    fn local_time_keeps_the_offset_and_defaults_to_the_post_offset() {
        let plus5 = parse_utc_offset("+05:00").unwrap();
        let t = LocalTime::parse("at", "2026-11-27 01:30", plus5).unwrap();
        assert_eq!(t.to_string(), "2026-11-27T01:30:00+05:00");
        assert_eq!(t.utc_month(), "2026-11");
        let early = LocalTime::parse("at", "2026-12-01T03:00+05:00", UtcOffset::UTC).unwrap();
        assert_eq!(early.utc_month(), "2026-11");
        assert!(LocalTime::parse("at", "yesterday", plus5).is_err());
    }

    #[test]
    fn timestamps_print_as_rfc3339() {
        assert_eq!(Timestamp::from_millis(0).to_string(), "1970-01-01T00:00:00Z");
        let t = Timestamp::parse("since", "2026-11-27").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T00:00:00Z");
    }
}
