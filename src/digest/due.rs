//! Who is due: a daily subscriber once per local day at or after `digest.send_hour` in their own
//! time zone, a weekly one on `digest.weekly_day` at that hour. Pure functions of the clock. (An
//! instant subscriber has no slot: `plan::instant_due`, and the trigger in `instant.rs`.)

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};

use crate::subscribers::Cadence;

pub fn parse_weekday(s: &str) -> Result<Weekday, String> {
    s.trim()
        .parse::<Weekday>()
        .map_err(|_| format!("'{s}' is not a day of the week (mon, tue, …, sun)"))
}

/// `hour:00` on `date` in `zone`, as an instant. A time skipped by a daylight-saving change moves to
/// the first moment after the gap; a repeated one takes the earlier.
fn local_hour(zone: chrono_tz::Tz, date: NaiveDate, hour: u32) -> DateTime<Utc> {
    for minutes in (0..=180).step_by(15) {
        let naive = date.and_hms_opt(hour, 0, 0).unwrap_or_default() + Duration::minutes(minutes);
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(early, _) => return early.with_timezone(&Utc),
            LocalResult::None => continue,
        }
    }
    Utc.from_utc_datetime(&date.and_hms_opt(hour, 0, 0).unwrap_or_default())
}

/// The most recent send slot at or before `now` for a subscriber with this cadence and zone.
pub fn current_slot(
    cadence: Cadence,
    zone: chrono_tz::Tz,
    send_hour: u32,
    weekly_day: Weekday,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    for back in 0..=8 {
        let date = today - Duration::days(back);
        if cadence == Cadence::Weekly && date.weekday() != weekly_day {
            continue;
        }
        let slot = local_hour(zone, date, send_hour);
        if slot <= now {
            return slot;
        }
    }
    local_hour(zone, today - Duration::days(7), send_hour)
}

/// Due when the current slot has not been handled yet.
pub fn is_due(last_slot: Option<DateTime<Utc>>, slot: DateTime<Utc>) -> bool {
    last_slot.is_none_or(|last| last < slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn daily_slots_are_in_the_subscribers_own_zone() {
        let tokyo = chrono_tz::Asia::Tokyo;
        let ny = chrono_tz::America::New_York;
        let now = at("2027-01-10T00:30:00Z"); // 09:30 in Tokyo, 19:30 the day before in New York
        assert_eq!(
            current_slot(Cadence::Daily, tokyo, 8, Weekday::Mon, now),
            at("2027-01-09T23:00:00Z")
        );
        assert_eq!(
            current_slot(Cadence::Daily, ny, 8, Weekday::Mon, now),
            at("2027-01-09T13:00:00Z")
        );
    }

    #[test]
    fn once_per_day_however_many_ticks() {
        let paris = chrono_tz::Europe::Paris;
        let slot = |t| current_slot(Cadence::Daily, paris, 8, Weekday::Mon, at(t));
        let first = slot("2027-01-10T07:05:00Z");
        assert!(is_due(None, first));
        assert!(
            !is_due(Some(first), slot("2027-01-10T09:00:00Z")),
            "same day: not again"
        );
        assert!(
            !is_due(Some(first), slot("2027-01-11T06:59:00Z")),
            "before 08:00 local"
        );
        assert!(is_due(Some(first), slot("2027-01-11T07:00:00Z")));
    }

    #[test]
    fn weekly_is_due_on_its_day_and_caught_up_after_downtime() {
        let utc = chrono_tz::UTC;
        let s = current_slot(
            Cadence::Weekly,
            utc,
            8,
            Weekday::Mon,
            at("2027-01-13T12:00:00Z"),
        );
        assert_eq!(
            s,
            at("2027-01-11T08:00:00Z"),
            "Wednesday: last Monday's slot"
        );
        assert!(
            is_due(Some(at("2027-01-04T08:00:00Z")), s),
            "a missed Monday is caught up once"
        );
    }

    #[test]
    fn daylight_saving_moves_the_instant_not_the_local_hour() {
        let paris = chrono_tz::Europe::Paris;
        // DST starts 2027-03-28 at 02:00 local: 08:00 is 07:00 UTC before, 06:00 UTC after.
        assert_eq!(
            current_slot(
                Cadence::Daily,
                paris,
                8,
                Weekday::Mon,
                at("2027-03-27T12:00:00Z")
            ),
            at("2027-03-27T07:00:00Z")
        );
        assert_eq!(
            current_slot(
                Cadence::Daily,
                paris,
                8,
                Weekday::Mon,
                at("2027-03-28T12:00:00Z")
            ),
            at("2027-03-28T06:00:00Z")
        );
        // A send hour inside the skipped hour moves to just after the gap.
        assert_eq!(
            current_slot(
                Cadence::Daily,
                paris,
                2,
                Weekday::Mon,
                at("2027-03-28T12:00:00Z")
            ),
            at("2027-03-28T01:00:00Z")
        );
    }
}
