//! RFC 3339 timestamps in UTC, as OCI image configs, Docker's API and runc's state files write
//! them, without a calendar dependency. Pure arithmetic on instants handed in: no clock is read
//! here except by [`now_rfc3339`], a convenience over [`SystemTime::now`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Docker's "zero" time, shown for a container that never started or never finished.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// days-to-civil algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn date_time(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (y, mo, d, sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Nanoseconds since the epoch as RFC 3339 with nine fraction digits:
/// `2026-11-28T09:30:00.123456789Z` (Docker's `Created`, `StartedAt`).
pub fn rfc3339_nanos(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d, h, mi, s) = date_time(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:09}Z")
}

/// Seconds since the epoch as RFC 3339 without a fraction: `2026-11-28T09:30:00Z` (token
/// `issued_at`, runc's `created`).
pub fn rfc3339_secs(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = date_time(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Nanoseconds since the epoch of an instant (negative before 1970).
pub fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// An instant as RFC 3339 with nanoseconds.
pub fn rfc3339(t: SystemTime) -> String {
    rfc3339_nanos(unix_nanos(t))
}

/// The current time as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Parses an RFC 3339 timestamp into nanoseconds since the epoch: a `Z` or `±HH:MM` offset, an
/// optional fraction of up to nine digits. `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let (date, time) = s.split_once(['T', 't'])?;
    let (time, offset_secs) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (t, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        if oh.len() != 2 || om.len() != 2 {
            return None;
        }
        let oh: i64 = oh.parse().ok()?;
        let om: i64 = om.parse().ok()?;
        if oh > 23 || om > 59 {
            return None;
        }
        (t, sign * (oh * 3600 + om * 60))
    };
    let mut dp = date.splitn(3, '-');
    let y: i64 = digits(dp.next()?, 4)?;
    let m = digits(dp.next()?, 2)? as u32;
    let d = digits(dp.next()?, 2)? as u32;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.splitn(3, ':');
    let h = digits(tp.next()?, 2)?;
    let mi = digits(tp.next()?, 2)?;
    let se = digits(tp.next()?, 2)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut nanos: i128 = 0;
    if !frac.is_empty() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32);
    }
    let secs = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// A field of exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 5);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000000005Z");
        assert_eq!(rfc3339_secs(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(
            rfc3339_nanos(1_795_858_200_123_456_789),
            "2026-11-28T09:30:00.123456789Z"
        );
        assert_eq!(rfc3339_secs(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_secs(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59Z"),
            Some(951_868_799_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59.5Z"),
            Some(951_868_799_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T01:59:59+02:00"),
            Some(951_868_799_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T20:59:59-03:00"),
            Some(951_868_799_000_000_000)
        );
        for bad in [
            "nonsense",
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T24:00:00Z",
            "2000-02-29T23:59:59.1234567890Z",
            "2000-02-29T23:59:59+2:00",
            "20000-02-29T23:59:59Z",
            "2000-02-29T23:59:59",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn nanos_round_trip(n in -62_135_596_800_000_000_000i128..253_402_300_799_999_999_999i128) {
            prop_assert_eq!(parse_rfc3339(&rfc3339_nanos(n)), Some(n));
        }

        #[test]
        fn secs_round_trip(s in -62_135_596_800i64..253_402_300_799i64) {
            prop_assert_eq!(parse_rfc3339(&rfc3339_secs(s)), Some(i128::from(s) * 1_000_000_000));
        }
    }
}
