//! The one polling loop every wait of the driver is built on.
//!
//! [`retry`] calls a probe until it reports success, fails hard, or the time
//! runs out. The probe gets the time left, so a probe that runs a guest
//! command can give that command no more than the remaining budget. Polling
//! starts fast (20 ms) and backs off exponentially up to the given interval:
//! a condition that is already true costs one probe, one that becomes true
//! soon is noticed soon, and a long wait does not flood the guest.
//!
//! On timeout the error carries the probe's last observation, so the message
//! says not only what was awaited but what was seen instead.

use std::time::{Duration, Instant};

use crate::error::Error;

/// The first polling delay.
const FIRST_DELAY: Duration = Duration::from_millis(20);

/// What one probe found.
#[derive(Debug)]
pub enum Poll<T> {
    /// The condition holds; stop with this value.
    Ready(T),
    /// Not yet; the description of what was seen ends up in the timeout
    /// message if the time runs out.
    Pending(Option<String>),
}

/// Calls `probe` until it returns [`Poll::Ready`] or an error, sleeping
/// between attempts (20 ms, doubling up to `interval`). The probe receives the
/// time left before `timeout`; it is always called at least once. When the
/// time runs out, returns [`Error::Timeout`] naming `what` and the last
/// observation.
pub fn retry<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut(Duration) -> Result<Poll<T>, Error>,
) -> Result<T, Error> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut delay = FIRST_DELAY.min(interval);
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match probe(left)? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(seen) => last = seen.or(last),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                limit: timeout,
                last,
            });
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_at_once_probes_once() {
        let mut calls = 0;
        let value = retry("x", Duration::from_secs(1), Duration::from_secs(1), |_| {
            calls += 1;
            Ok(Poll::Ready(7))
        })
        .unwrap();
        assert_eq!((value, calls), (7, 1));
    }

    #[test]
    fn becomes_ready_later() {
        let mut calls = 0;
        let value = retry(
            "x",
            Duration::from_secs(5),
            Duration::from_millis(40),
            |_| {
                calls += 1;
                Ok(if calls == 4 {
                    Poll::Ready(calls)
                } else {
                    Poll::Pending(None)
                })
            },
        )
        .unwrap();
        assert_eq!(value, 4);
    }

    #[test]
    fn timeout_names_what_and_last_observation() {
        let err = retry::<()>(
            "the flag file",
            Duration::from_millis(100),
            Duration::from_millis(20),
            |_| Ok(Poll::Pending(Some("exit code 1".to_owned()))),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("waiting for the flag file"), "{text}");
        assert!(text.contains("exit code 1"), "{text}");
        assert!(matches!(err, Error::Timeout { .. }));
    }

    #[test]
    fn hard_error_stops_at_once() {
        let mut calls = 0;
        let err = retry::<()>(
            "x",
            Duration::from_secs(5),
            Duration::from_millis(20),
            |_| {
                calls += 1;
                Err(Error::Protocol("broken".to_owned()))
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Protocol(_)));
        assert_eq!(calls, 1);
    }

    #[test]
    fn zero_timeout_still_probes_once() {
        let mut calls = 0;
        let _ = retry::<()>("x", Duration::ZERO, Duration::from_millis(20), |left| {
            calls += 1;
            assert_eq!(left, Duration::ZERO);
            Ok(Poll::Pending(None))
        });
        assert_eq!(calls, 1);
    }
}
