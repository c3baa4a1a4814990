//! Docker's human durations ("3 seconds", "About a minute") and time since a timestamp; the
//! RFC 3339 formatting itself is berth-oci's.

use std::time::{Duration, SystemTime};

pub use berth_oci::time::{ZERO_TIME, now_rfc3339, parse_rfc3339, rfc3339_nanos};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i128 {
    berth_oci::time::unix_nanos(SystemTime::now())
}

/// Docker's `HumanDuration`: "Less than a second", "3 seconds", "About a minute", "2 hours", "3 weeks".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let mins = secs / 60;
    let hours = mins / 60;
    if secs < 1 {
        "Less than a second".to_owned()
    } else if secs == 1 {
        "1 second".to_owned()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".to_owned()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Time elapsed since an RFC 3339 timestamp (zero if it is in the future or unparsable).
pub fn since(ts: &str) -> Duration {
    match parse_rfc3339(ts) {
        Some(t) => {
            let d = now_nanos() - t;
            if d <= 0 {
                Duration::ZERO
            } else {
                Duration::from_nanos(d as u64)
            }
        }
        None => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3700)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }
}
