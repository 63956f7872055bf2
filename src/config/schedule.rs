//! When a rollout may advance: `[routes.rollout] windows` (office hours, in a time zone) and
//! `freeze` (periods that hold every step). Rollbacks never wait for either; the machine
//! ([`crate::control::machine`]) asks only before a step passes.
//!
//! Time zones are IANA names from the tz database bundled with `jiff`, so a machine without
//! `tzdata` reads them the same way.

use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A weekly window: on these days, from `start` to `end` local time (past midnight when `end`
/// is not after `start`).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: u16,
    end: u16,
    tz: TimeZone,
    text: String,
}

/// A period in which no step passes: `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Freeze {
    from: Timestamp,
    to: Timestamp,
    text: String,
}

/// A rollout's windows and freezes. Empty: a step may pass at any time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub windows: Vec<Window>,
    pub freeze: Vec<Freeze>,
}

/// Why a step cannot pass at a moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    Frozen(String),
    OutsideWindows(Vec<String>),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Frozen(period) => write!(f, "frozen ({period})"),
            Closed::OutsideWindows(windows) => write!(f, "outside the rollout windows ({})", windows.join("; ")),
        }
    }
}

/// Monday first, as `Weekday::to_monday_zero_offset` counts.
const DAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn day_index(d: Weekday) -> usize {
    d.to_monday_zero_offset() as usize
}

fn parse_day(s: &str) -> Result<usize, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .ok_or_else(|| format!("{s:?} is not a day; use Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
}

/// `Mon-Fri`, `Sat,Sun`, `Mon-Wed,Fri`, `daily`.
fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    if s.eq_ignore_ascii_case("daily") {
        return Ok([true; 7]);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                // A range may wrap past Sunday: `Fri-Mon`.
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(part)?] = true,
        }
    }
    Ok(days)
}

/// `09:00` as minutes after midnight; `24:00` is the end of the day.
fn parse_minutes(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day; write HH:MM, e.g. 09:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name)
            .map_err(|_| format!("{name:?} is not a time zone; use an IANA name such as Europe/Berlin or UTC")),
    }
}

impl Window {
    /// `"Mon-Fri 09:00-17:00 Europe/Berlin"`; the zone is UTC when left out.
    pub fn parse(text: &str) -> Result<Window, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (days, hours, zone) = match words[..] {
            [days, hours] => (days, hours, None),
            [days, hours, zone] => (days, hours, Some(zone)),
            _ => return Err("write DAYS HH:MM-HH:MM [ZONE], e.g. \"Mon-Fri 09:00-17:00 Europe/Berlin\"".into()),
        };
        let days = parse_days(days)?;
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| format!("{hours:?} is not a span of hours; write HH:MM-HH:MM, e.g. 09:00-17:00"))?;
        let (start, end) = (parse_minutes(start)?, parse_minutes(end)?);
        if start == end {
            return Err(format!("{hours:?} is empty; a window ends after it starts"));
        }
        if start == 24 * 60 {
            return Err("a window cannot start at 24:00; write 00:00".into());
        }
        Ok(Window { days, start, end, tz: parse_zone(zone)?, text: text.to_string() })
    }

    fn local(&self, at: Timestamp) -> DateTime {
        at.to_zoned(self.tz.clone()).datetime()
    }

    /// As written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        let local = self.local(at);
        let day = day_index(local.weekday());
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            (self.days[day] && minute >= self.start) || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }

    /// The first start of this window after `at` (a start that falls in a skipped hour of a DST
    /// change is the moment the clocks jumped to).
    fn next_start(&self, at: Timestamp) -> Option<Timestamp> {
        let today = self.local(at).date();
        let time = Time::new((self.start / 60) as i8, (self.start % 60) as i8, 0, 0).ok()?;
        (0..=7i32).find_map(|d| {
            let date: Date = today.checked_add(d.days()).ok()?;
            if !self.days[day_index(date.weekday())] {
                return None;
            }
            let local = self.tz.to_ambiguous_timestamp(date.to_datetime(time));
            let skipped = matches!(local.offset(), AmbiguousOffset::Gap { .. });
            let mut start = local.compatible().ok()?;
            if skipped {
                // The window's first existing minute is the moment the clocks jumped.
                start = self.tz.preceding(start).next().map_or(start, |t| t.timestamp());
            }
            (start > at).then_some(start)
        })
    }
}

/// `2026-12-20` (the whole day) or `2026-12-20T18:00` (from that minute), in `tz`; `end` reads a
/// date as the end of that day.
fn parse_moment(s: &str, tz: &TimeZone, end: bool) -> Result<Timestamp, String> {
    let bad = || format!("{s:?} is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM");
    let local: DateTime = if s.contains('T') {
        s.parse().map_err(|_| bad())?
    } else {
        let date: Date = s.parse().map_err(|_| bad())?;
        let date = if end { date.tomorrow().map_err(|_| bad())? } else { date };
        date.to_datetime(Time::midnight())
    };
    Ok(local.to_zoned(tz.clone()).map_err(|e| e.to_string())?.timestamp())
}

impl Freeze {
    /// `"2026-12-20/2027-01-04"` (both days whole) or with times, `"2026-12-20T18:00/2027-01-04T09:00"`,
    /// optionally followed by a time zone (UTC when left out).
    pub fn parse(text: &str) -> Result<Freeze, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (span, zone) = match words[..] {
            [span] => (span, None),
            [span, zone] => (span, Some(zone)),
            _ => return Err("write FROM/TO [ZONE], e.g. \"2026-12-20/2027-01-04 Europe/Berlin\"".into()),
        };
        let tz = parse_zone(zone)?;
        let (from, to) = span
            .split_once('/')
            .ok_or_else(|| format!("{span:?} is not a period; write FROM/TO, e.g. 2026-12-20/2027-01-04"))?;
        let (from, to) = (parse_moment(from, &tz, false)?, parse_moment(to, &tz, true)?);
        if to <= from {
            return Err(format!("{span:?} ends before it begins"));
        }
        Ok(Freeze { from, to, text: text.to_string() })
    }

    /// As written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64).unwrap_or(Timestamp::MAX)
}

fn millis(t: Timestamp) -> u64 {
    t.as_millisecond().max(0) as u64
}

impl Schedule {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.freeze.is_empty()
    }

    /// Why a step cannot pass at `ms` (Unix milliseconds); `None` when it may.
    pub fn closed(&self, ms: u64) -> Option<Closed> {
        let at = timestamp(ms);
        if let Some(f) = self.freeze.iter().find(|f| f.contains(at)) {
            return Some(Closed::Frozen(f.text.clone()));
        }
        if !self.windows.is_empty() && !self.windows.iter().any(|w| w.contains(at)) {
            return Some(Closed::OutsideWindows(self.windows.iter().map(|w| w.text.clone()).collect()));
        }
        None
    }

    /// The first moment at or after `ms` at which a step may pass; `None` when there is none
    /// in sight (windows that never open outside a freeze, a freeze past year 9999).
    pub fn next_open(&self, ms: u64) -> Option<u64> {
        let mut at = timestamp(ms);
        // Each turn moves past a freeze or to a window's start; a window start inside a freeze
        // or in a skipped DST hour takes another turn.
        for _ in 0..1000 {
            if let Some(f) = self.freeze.iter().filter(|f| f.contains(at)).max_by_key(|f| f.to) {
                at = f.to;
                continue;
            }
            if self.windows.is_empty() || self.windows.iter().any(|w| w.contains(at)) {
                return Some(millis(at));
            }
            at = self.windows.iter().filter_map(|w| w.next_start(at)).min()?;
        }
        None
    }
}

/// Unix milliseconds as RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: u64) -> String {
    timestamp(ms).round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        millis(rfc3339.parse::<Timestamp>().expect("a timestamp"))
    }

    fn office_hours() -> Schedule {
        Schedule { windows: vec![Window::parse("Mon-Fri 09:00-17:00 Europe/Berlin").expect("window")], freeze: vec![] }
    }

    #[test]
    fn a_window_is_read_in_its_time_zone_on_both_sides_of_a_dst_change() {
        let s = office_hours();
        // Winter (CET, UTC+1): 09:00 Berlin is 08:00 UTC.
        assert!(s.closed(ms("2026-03-24T07:59:00Z")).is_some());
        assert_eq!(s.closed(ms("2026-03-24T08:00:00Z")), None);
        assert!(s.closed(ms("2026-03-24T16:00:00Z")).is_some(), "17:00 CET is the end");
        // Berlin moves to CEST (UTC+2) on Sunday 2026-03-29: 09:00 is now 07:00 UTC.
        assert_eq!(s.closed(ms("2026-03-30T07:00:00Z")), None);
        assert!(s.closed(ms("2026-03-30T15:00:00Z")).is_some());
        // Friday after hours (CET) to Monday morning (CEST): the next opening is one hour earlier
        // in UTC than the week before.
        assert_eq!(s.next_open(ms("2026-03-27T16:30:00Z")), Some(ms("2026-03-30T07:00:00Z")));
        assert_eq!(s.next_open(ms("2026-03-20T16:30:00Z")), Some(ms("2026-03-23T08:00:00Z")));
        // And back in autumn (2026-10-25).
        assert_eq!(s.next_open(ms("2026-10-23T15:30:00Z")), Some(ms("2026-10-26T08:00:00Z")));
        // Inside a window, now is the next opening.
        assert_eq!(s.next_open(ms("2026-03-30T10:00:00Z")), Some(ms("2026-03-30T10:00:00Z")));
    }

    #[test]
    fn a_window_that_starts_in_the_skipped_hour_opens_when_the_clocks_jump() {
        let s =
            Schedule { windows: vec![Window::parse("Sun 02:30-04:00 Europe/Berlin").expect("window")], freeze: vec![] };
        // 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
        assert_eq!(s.next_open(ms("2026-03-28T12:00:00Z")), Some(ms("2026-03-29T01:00:00Z")));
        assert!(s.closed(ms("2026-03-29T02:00:00Z")).is_some(), "04:00 CEST is 02:00 UTC");
    }

    #[test]
    fn overnight_and_wrapping_windows() {
        let night = Window::parse("Fri-Mon 22:00-06:00").expect("window");
        let s = Schedule { windows: vec![night], freeze: vec![] };
        assert_eq!(s.closed(ms("2026-12-04T23:00:00Z")), None, "Friday night");
        assert_eq!(s.closed(ms("2026-12-05T05:59:00Z")), None, "Saturday early, from Friday's window");
        assert!(s.closed(ms("2026-12-05T06:00:00Z")).is_some());
        assert_eq!(s.closed(ms("2026-12-08T05:00:00Z")), None, "Tuesday early, from Monday's window");
        assert!(s.closed(ms("2026-12-09T05:00:00Z")).is_some(), "Wednesday early: Tuesday has no window");
        assert_eq!(s.next_open(ms("2026-12-09T05:00:00Z")), Some(ms("2026-12-11T22:00:00Z")));
    }

    #[test]
    fn a_freeze_holds_until_it_ends_and_then_the_next_window_decides() {
        let mut s = office_hours();
        s.freeze.push(Freeze::parse("2026-12-20/2027-01-04 Europe/Berlin").expect("freeze"));
        assert!(matches!(s.closed(ms("2026-12-21T10:00:00Z")), Some(Closed::Frozen(_))));
        assert!(matches!(s.closed(ms("2027-01-04T22:00:00Z")), Some(Closed::Frozen(_))), "the last day is whole");
        // The freeze ends at midnight Berlin, a Tuesday; office hours open at 09:00.
        assert_eq!(s.next_open(ms("2026-12-21T10:00:00Z")), Some(ms("2027-01-05T08:00:00Z")));
        let timed = Freeze::parse("2026-12-20T18:00/2026-12-21T06:30").expect("freeze");
        assert!(timed.contains(timestamp(ms("2026-12-20T18:00:00Z"))));
        assert!(!timed.contains(timestamp(ms("2026-12-21T06:30:00Z"))));
    }

    #[test]
    fn no_windows_no_freeze_is_always_open() {
        let s = Schedule::default();
        assert_eq!(s.closed(0), None);
        assert_eq!(s.next_open(1234), Some(1234));
    }

    #[test]
    fn bad_windows_and_periods_say_what_to_write() {
        for (text, says) in [
            ("Mon-Fri 9-17", "HH:MM"),
            ("Mon-Fri 09:00-17:00 Europe/Berlinn", "not a time zone"),
            ("Mo-Fr 09:00-17:00", "not a day"),
            ("Mon-Fri 09:00-09:00", "empty"),
            ("Mon-Fri", "DAYS HH:MM-HH:MM"),
            ("Mon 25:00-26:00", "not a time of day"),
        ] {
            let e = Window::parse(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        for (text, says) in [
            ("2027-01-04/2026-12-20", "ends before it begins"),
            ("2026-12-20", "FROM/TO"),
            ("2026-13-20/2027-01-04", "not a date"),
        ] {
            let e = Freeze::parse(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(Window::parse("monday-friday 00:00-24:00 UTC").is_ok());
        assert!(Window::parse("daily 09:00-17:00").is_ok());
    }
}
