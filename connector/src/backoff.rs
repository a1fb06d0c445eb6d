//! X's official reconnect policy, exactly:
//!
//! - an established connection that drops: reconnect at once (once; a connection that drops
//!   again before delivering anything is treated as a network error);
//! - TCP/IP-level errors: linear, +250 ms per attempt, up to 16 s;
//! - retryable HTTP errors (5xx and the like): exponential from 5 s, doubling, up to 320 s;
//! - 420 / 429: exponential from 60 s, doubling, and never before `x-rate-limit-reset`;
//! - 401, 403, 404, 406, 409, 413, 416 (and 400, 422): configuration errors, not retried.
//!
//! Each kind keeps its own attempt count; all reset once a connection delivers data.

use std::time::{Duration, SystemTime};

use crate::config::ReconnectConfig;

/// Why the previous connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An established stream ended (closed, truncated, reset, in-band disconnect, stall).
    Dropped { delivered: bool },
    /// No HTTP response: refused, DNS, TLS, reset before the status line, timeout.
    Network,
    /// An HTTP status worth retrying.
    Http { status: u16 },
    /// 420 or 429, with the reset time X announced.
    RateLimited { reset_at: Option<SystemTime> },
}

impl Failure {
    pub fn cause(&self) -> &'static str {
        match self {
            Failure::Dropped { .. } => "dropped",
            Failure::Network => "network",
            Failure::Http { .. } => "http",
            Failure::RateLimited { .. } => "rate_limited",
        }
    }
}

/// Whether an HTTP status ends the connector (a configuration error) rather than a retry.
pub fn is_fatal_status(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 404 | 406 | 409 | 413 | 416 | 422)
}

#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: ReconnectConfig,
    network: u32,
    http: u32,
    rate: u32,
    /// Failed attempts in a row (for `max_attempts`).
    pub consecutive: u32,
    dropped_undelivered: bool,
}

impl Backoff {
    pub fn new(cfg: ReconnectConfig) -> Self {
        Self {
            cfg,
            network: 0,
            http: 0,
            rate: 0,
            consecutive: 0,
            dropped_undelivered: false,
        }
    }

    /// A connection delivered data: the next failure starts its schedule from the beginning.
    pub fn delivered(&mut self) {
        self.network = 0;
        self.http = 0;
        self.rate = 0;
        self.consecutive = 0;
        self.dropped_undelivered = false;
    }

    /// The wait before the next attempt, given why the last one ended and the time now.
    pub fn next_delay(&mut self, failure: &Failure, now: SystemTime) -> Duration {
        self.consecutive += 1;
        match failure {
            Failure::Dropped { delivered: true } => {
                self.dropped_undelivered = false;
                Duration::ZERO
            }
            Failure::Dropped { delivered: false } if !self.dropped_undelivered => {
                // First drop of an established connection: at once.
                self.dropped_undelivered = true;
                Duration::ZERO
            }
            Failure::Dropped { delivered: false } | Failure::Network => {
                self.network += 1;
                (self.cfg.network_step * self.network).min(self.cfg.network_max)
            }
            Failure::Http { .. } => {
                let d = exponential(self.cfg.http_initial, self.http, self.cfg.http_max);
                self.http += 1;
                d
            }
            Failure::RateLimited { reset_at } => {
                let d = exponential(
                    self.cfg.rate_limit_initial,
                    self.rate,
                    self.cfg.rate_limit_max,
                );
                self.rate += 1;
                let until_reset = reset_at
                    .and_then(|r| r.duration_since(now).ok())
                    .unwrap_or(Duration::ZERO);
                d.max(until_reset)
            }
        }
    }

    pub fn max_attempts(&self) -> Option<u32> {
        self.cfg.max_attempts
    }

    /// An error when the attempt about to fail (for `reason`) is the last `max_attempts`
    /// allows.
    pub fn give_up(&self, reason: &str) -> Option<anyhow::Error> {
        let attempts = self.consecutive + 1;
        self.max_attempts()
            .is_some_and(|max| attempts >= max)
            .then(|| {
                anyhow::anyhow!(
                    "giving up after {attempts} failed attempts in a row; last: {reason}"
                )
            })
    }
}

fn exponential(initial: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[f64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    fn run(b: &mut Backoff, f: Failure, n: usize) -> Vec<Duration> {
        (0..n)
            .map(|_| b.next_delay(&f, SystemTime::UNIX_EPOCH))
            .collect()
    }

    #[test]
    fn network_errors_back_off_linearly_to_16s() {
        let mut b = Backoff::new(ReconnectConfig::default());
        let got = run(&mut b, Failure::Network, 70);
        assert_eq!(got[..4], secs(&[0.25, 0.5, 0.75, 1.0])[..]);
        assert_eq!(got[63], Duration::from_secs(16));
        assert_eq!(got[69], Duration::from_secs(16));
    }

    #[test]
    fn http_errors_back_off_exponentially_from_5s_to_320s() {
        let mut b = Backoff::new(ReconnectConfig::default());
        let got = run(&mut b, Failure::Http { status: 503 }, 9);
        assert_eq!(
            got,
            secs(&[5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0, 320.0])
        );
    }

    #[test]
    fn rate_limits_back_off_from_60s_and_respect_the_reset() {
        let mut b = Backoff::new(ReconnectConfig::default());
        let got = run(&mut b, Failure::RateLimited { reset_at: None }, 4);
        assert_eq!(got, secs(&[60.0, 120.0, 240.0, 480.0]));
        let mut b = Backoff::new(ReconnectConfig::default());
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let reset = Some(now + Duration::from_secs(300));
        assert_eq!(
            b.next_delay(&Failure::RateLimited { reset_at: reset }, now),
            Duration::from_secs(300)
        );
        assert_eq!(
            b.next_delay(&Failure::RateLimited { reset_at: reset }, now),
            Duration::from_secs(300)
        );
        assert_eq!(
            b.next_delay(&Failure::RateLimited { reset_at: reset }, now),
            Duration::from_secs(300)
        );
        assert_eq!(
            b.next_delay(&Failure::RateLimited { reset_at: reset }, now),
            Duration::from_secs(480)
        );
    }

    #[test]
    fn drops_reconnect_at_once_and_delivery_resets_everything() {
        let mut b = Backoff::new(ReconnectConfig::default());
        assert_eq!(
            b.next_delay(
                &Failure::Dropped { delivered: true },
                SystemTime::UNIX_EPOCH
            ),
            Duration::ZERO
        );
        assert_eq!(
            b.next_delay(
                &Failure::Dropped { delivered: false },
                SystemTime::UNIX_EPOCH
            ),
            Duration::ZERO
        );
        // Dropping again without delivering anything: a storm in the making, back off.
        assert_eq!(
            b.next_delay(
                &Failure::Dropped { delivered: false },
                SystemTime::UNIX_EPOCH
            ),
            Duration::from_millis(250)
        );
        run(&mut b, Failure::Http { status: 500 }, 3);
        b.delivered();
        assert_eq!(b.consecutive, 0);
        assert_eq!(
            b.next_delay(&Failure::Http { status: 500 }, SystemTime::UNIX_EPOCH),
            Duration::from_secs(5)
        );
        assert_eq!(
            b.next_delay(&Failure::Network, SystemTime::UNIX_EPOCH),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn fatal_statuses() {
        for s in [401, 403, 404, 406, 409, 413, 416] {
            assert!(is_fatal_status(s), "{s}");
        }
        for s in [420, 429, 500, 502, 503, 504] {
            assert!(!is_fatal_status(s), "{s}");
        }
    }
}
