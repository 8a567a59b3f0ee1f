//! Scan layer, raw packets: the token bucket the engines pace each host
//! with (and the fake network's targets limit their answers with).

use std::time::Duration;

/// A token bucket: `rate` per second, at most `burst`. It models a
/// target's ICMP limiter, a firewall's SYN limit, or (in the engines) what
/// a host is believed to let through.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    pub rate: f64,
    pub burst: f64,
    pub tokens: f64,
    pub last: Duration,
}

impl TokenBucket {
    /// A full bucket, last refilled at `now`.
    pub fn new(rate: f64, burst: f64, now: Duration) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Adds what `scale` × `rate` refilled since the last refill.
    pub fn refill(&mut self, now: Duration, scale: f64) {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate * scale).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there (the fake targets' limiters).
    #[cfg(test)]
    pub fn take(&mut self, now: Duration) -> bool {
        self.refill(now, 1.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the bucket (refilled at `scale` × `rate`) holds a whole token
    /// again: never "now" for a fractional token, or a waiter would spin.
    pub fn next_token(&self, now: Duration, scale: f64) -> Duration {
        if self.tokens >= 1.0 {
            now
        } else {
            let wait = (1.0 - self.tokens) / (self.rate * scale).max(1e-3);
            now + Duration::from_secs_f64(wait).max(Duration::from_micros(100))
        }
    }
}
