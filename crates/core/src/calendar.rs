//! Maintenance windows and freeze periods, in real time zones.
//!
//! A window is weekly: `Sat 22:00-Sun 04:00 Europe/London`, or on listed days: `Mon-Fri 09:00-17:00 UTC`,
//! `daily 02:00-04:00 America/New_York`. Times are wall-clock times in the zone, so a window keeps its
//! local hours across daylight-saving changes.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const MINUTES_PER_WEEK: u32 = 7 * 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{0}")]
    Window(String),
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
    #[error("{0}")]
    Date(String),
}

/// One weekly interval in minutes since Monday 00:00 local time; `end` may be below `start` when the
/// interval wraps past Sunday midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WeekSpan {
    start: u32,
    end: u32,
}

impl WeekSpan {
    fn contains(self, minute: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Minutes from `minute` until this interval ends, if `minute` is inside.
    fn remaining(self, minute: u32) -> u32 {
        (self.end + MINUTES_PER_WEEK - minute) % MINUTES_PER_WEEK
    }
}

#[derive(Debug, Clone)]
pub struct Window {
    pub text: String,
    pub tz_name: String,
    tz: TimeZone,
    spans: Vec<WeekSpan>,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

fn parse_day(word: &str) -> Option<u32> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let w = word.to_ascii_lowercase();
    (0u32..7).find(|&i| DAY_NAMES[i as usize] == w || FULL[i as usize] == w)
}

fn parse_time(word: &str) -> Result<u32, CalendarError> {
    let bad = || CalendarError::Window(format!("`{word}` is not a time of day (HH:MM)"));
    let (h, m) = word.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_days(word: &str) -> Result<Vec<u32>, CalendarError> {
    let lower = word.to_ascii_lowercase();
    if matches!(lower.as_str(), "daily" | "*" | "every" | "everyday") {
        return Ok((0..7).collect());
    }
    if lower == "weekdays" {
        return Ok((0..5).collect());
    }
    if lower == "weekends" {
        return Ok(vec![5, 6]);
    }
    let unknown = |w: &str| CalendarError::Window(format!("`{w}` is not a day (Mon, Tue, …, Sun)"));
    let mut days = Vec::new();
    for part in word.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let a = parse_day(a).ok_or_else(|| unknown(a))?;
            let b = parse_day(b).ok_or_else(|| unknown(b))?;
            let mut d = a;
            loop {
                days.push(d);
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        } else {
            days.push(parse_day(part).ok_or_else(|| unknown(part))?);
        }
    }
    Ok(days)
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, CalendarError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let shape = || {
            CalendarError::Window(format!(
                "`{text}` is not a window; write `Sat 22:00-Sun 04:00 Europe/London` or `Mon-Fri 09:00-17:00 UTC`"
            ))
        };
        let (tz_name, spans) = match words.as_slice() {
            // `Sat 22:00-Sun 04:00 TZ`
            [d1, t1_d2, t2, tz] if t1_d2.contains('-') => {
                let (t1, d2) = t1_d2.split_once('-').ok_or_else(shape)?;
                let start_day = parse_day(d1).ok_or_else(|| {
                    CalendarError::Window(format!("`{d1}` is not a day (Mon, Tue, …, Sun)"))
                })?;
                let end_day = parse_day(d2).ok_or_else(|| {
                    CalendarError::Window(format!("`{d2}` is not a day (Mon, Tue, …, Sun)"))
                })?;
                let start = (start_day * 1440 + parse_time(t1)?) % MINUTES_PER_WEEK;
                let end = (end_day * 1440 + parse_time(t2)?) % MINUTES_PER_WEEK;
                if start == end {
                    return Err(CalendarError::Window(format!("window `{text}` is empty")));
                }
                (*tz, vec![WeekSpan { start, end }])
            }
            // `Mon-Fri 09:00-17:00 TZ`
            [days, times, tz] => {
                let (t1, t2) = times.split_once('-').ok_or_else(shape)?;
                let (t1, t2) = (parse_time(t1)?, parse_time(t2)?);
                if t1 == t2 {
                    return Err(CalendarError::Window(format!("window `{text}` is empty")));
                }
                let length = if t2 > t1 { t2 - t1 } else { t2 + 1440 - t1 };
                let spans = parse_days(days)?
                    .into_iter()
                    .map(|d| {
                        let start = (d * 1440 + t1) % MINUTES_PER_WEEK;
                        WeekSpan {
                            start,
                            end: (start + length) % MINUTES_PER_WEEK,
                        }
                    })
                    .collect();
                (*tz, spans)
            }
            _ => return Err(shape()),
        };
        let tz =
            TimeZone::get(tz_name).map_err(|_| CalendarError::TimeZone(tz_name.to_string()))?;
        Ok(Window {
            text: text.to_string(),
            tz_name: tz_name.to_string(),
            tz,
            spans,
        })
    }

    fn minute_of_week(&self, at: Timestamp) -> (u32, DateTime) {
        let local = at.to_zoned(self.tz.clone()).datetime();
        let day = u32::from(local.weekday().to_monday_zero_offset().unsigned_abs());
        let minute = day * 1440
            + u32::from(local.hour().unsigned_abs()) * 60
            + u32::from(local.minute().unsigned_abs());
        (minute, local)
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        let (m, _) = self.minute_of_week(at);
        self.spans.iter().any(|s| s.contains(m))
    }

    /// When the window that contains `at` closes.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        let (m, local) = self.minute_of_week(at);
        let span = self.spans.iter().find(|s| s.contains(m))?;
        let start_of_minute = local.with().second(0).subsec_nanosecond(0).build().ok()?;
        let end = start_of_minute
            .checked_add(i64::from(span.remaining(m)).minutes())
            .ok()?;
        end.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp())
    }

    /// The first moment at or after `at` that lies inside the window.
    pub fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        if self.contains(at) {
            return Some(at);
        }
        let local_date = at.to_zoned(self.tz.clone()).date();
        let mut best: Option<Timestamp> = None;
        for offset in 0..=8i64 {
            let Ok(date) = local_date.checked_add(offset.days()) else {
                continue;
            };
            let weekday = u32::from(date.weekday().to_monday_zero_offset().unsigned_abs());
            for span in &self.spans {
                if span.start / 1440 != weekday {
                    continue;
                }
                let minute = span.start % 1440;
                let Ok(time) = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0) else {
                    continue;
                };
                let Ok(zoned) = date.to_datetime(time).to_zoned(self.tz.clone()) else {
                    continue;
                };
                let ts = zoned.timestamp();
                if ts > at && best.is_none_or(|b| ts < b) {
                    best = Some(ts);
                }
            }
        }
        best
    }
}

/// A period during which the environment must not change, unless an admin breaks glass.
#[derive(Debug, Clone, PartialEq)]
pub struct Freeze {
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    pub reason: String,
    pub from_text: String,
    pub to_text: String,
}

impl Freeze {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }
}

/// Reads a freeze boundary: a date (`2026-12-20`, the whole day), a civil date-time in `tz`, or an
/// RFC 3339 timestamp. `end` makes a bare date mean the end of that day, so `to` dates are inclusive.
pub fn parse_instant(text: &str, tz: &TimeZone, end: bool) -> Result<Timestamp, CalendarError> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil = if let Ok(date) = text.parse::<Date>() {
        let date = if end {
            date.checked_add(1.day())
                .map_err(|e| CalendarError::Date(e.to_string()))?
        } else {
            date
        };
        date.to_datetime(Time::midnight())
    } else if let Ok(dt) = text.parse::<DateTime>() {
        dt
    } else {
        return Err(CalendarError::Date(format!(
            "`{text}` is not a date; write `2026-12-20`, `2026-12-20T18:00` or an RFC 3339 timestamp"
        )));
    };
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| CalendarError::Date(e.to_string()))
}

pub fn time_zone(name: &str) -> Result<TimeZone, CalendarError> {
    TimeZone::get(name).map_err(|_| CalendarError::TimeZone(name.to_string()))
}

/// Where a moment stands against an environment's windows and freezes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalendarStatus {
    pub at: Timestamp,
    /// `true` when the environment has no windows (always open) or `at` is inside one.
    pub in_window: bool,
    pub has_windows: bool,
    /// The first moment at or after `at` inside a window, if windows are declared.
    pub next_window: Option<Timestamp>,
    /// When the current window closes, if `at` is inside one.
    pub window_closes: Option<Timestamp>,
    /// The freeze that holds at `at`, if any.
    pub freeze: Option<FreezeInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FreezeInfo {
    pub from: Timestamp,
    pub to: Timestamp,
    pub reason: String,
}

pub fn status(windows: &[&Window], freezes: &[&Freeze], at: Timestamp) -> CalendarStatus {
    let has_windows = !windows.is_empty();
    let inside: Vec<&&Window> = windows.iter().filter(|w| w.contains(at)).collect();
    let in_window = !has_windows || !inside.is_empty();
    let next_window = if has_windows {
        windows.iter().filter_map(|w| w.next_opening(at)).min()
    } else {
        None
    };
    let window_closes = inside.iter().filter_map(|w| w.closes_at(at)).max();
    let freeze = freezes.iter().find(|f| f.contains(at)).map(|f| FreezeInfo {
        from: f.from,
        to: f.to,
        reason: f.reason.clone(),
    });
    CalendarStatus {
        at,
        in_window,
        has_windows,
        next_window,
        window_closes,
        freeze,
    }
}

/// Weekday names for display.
pub fn weekday_name(w: Weekday) -> &'static str {
    DAY_NAMES[w.to_monday_zero_offset().unsigned_abs() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn weekend_window_in_london_follows_local_time() {
        let w = Window::parse("Sat 22:00-Sun 04:00 Europe/London").expect("window");
        // 2026-11-28 is a Saturday; London is on GMT then.
        assert!(w.contains(ts("2026-11-28T22:30:00Z")));
        assert!(w.contains(ts("2026-11-29T03:59:00Z")));
        assert!(!w.contains(ts("2026-11-29T04:00:00Z")));
        assert!(!w.contains(ts("2026-11-28T21:59:00Z")));
        // In summer (BST, UTC+1) the window opens at 21:00 UTC.
        assert!(w.contains(ts("2026-07-04T21:30:00Z")));
        assert!(!w.contains(ts("2026-07-04T20:30:00Z")));
    }

    #[test]
    fn next_opening_and_closing() {
        let w = Window::parse("Sat 22:00-Sun 04:00 Europe/London").expect("window");
        let thursday = ts("2026-11-26T10:00:00Z");
        assert_eq!(w.next_opening(thursday), Some(ts("2026-11-28T22:00:00Z")));
        assert_eq!(
            w.closes_at(ts("2026-11-28T23:00:00Z")),
            Some(ts("2026-11-29T04:00:00Z"))
        );
    }

    #[test]
    fn day_ranges_and_wrapping_times() {
        let w = Window::parse("Mon-Fri 22:00-02:00 UTC").expect("window");
        assert!(w.contains(ts("2026-11-27T01:00:00Z"))); // Friday 01:00, from Thursday's window
        assert!(w.contains(ts("2026-11-28T01:00:00Z"))); // Saturday 01:00, from Friday's window
        assert!(!w.contains(ts("2026-11-29T01:00:00Z"))); // Sunday 01:00
    }

    #[test]
    fn bad_windows_say_why() {
        assert_eq!(
            Window::parse("Sat 22:00-Sun 04:00 Mars/Olympus").err(),
            Some(CalendarError::TimeZone("Mars/Olympus".into()))
        );
        assert!(Window::parse("Sat 25:00-Sun 04:00 UTC").is_err());
        assert!(Window::parse("Caturday 22:00-Sun 04:00 UTC").is_err());
        assert!(Window::parse("whenever").is_err());
    }

    #[test]
    fn freeze_dates_are_inclusive() {
        let tz = TimeZone::UTC;
        let f = Freeze {
            from: parse_instant("2026-12-20", &tz, false).expect("from"),
            to: parse_instant("2027-01-03", &tz, true).expect("to"),
            reason: "Holiday".into(),
            from_text: "2026-12-20".into(),
            to_text: "2027-01-03".into(),
        };
        assert!(f.contains(ts("2027-01-03T23:59:00Z")));
        assert!(!f.contains(ts("2027-01-04T00:00:00Z")));
        assert!(!f.contains(ts("2026-12-19T23:59:00Z")));
    }
}
