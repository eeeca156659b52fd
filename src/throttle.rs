//! At most so many events per window: for what a peer can make happen as often as it likes
//! (errors answered to a client, accept failures logged), so that it costs a bounded amount.

use std::time::{Duration, Instant};

pub struct RateLimit {
    limit: u32,
    every: Duration,
    window: Instant,
    used: u32,
    /// Events refused so far.
    pub dropped: u64,
}

impl RateLimit {
    /// `limit` events in each window of `every`.
    pub fn new(limit: u32, every: Duration) -> Self {
        Self {
            limit,
            every,
            window: Instant::now(),
            used: 0,
            dropped: 0,
        }
    }

    /// Whether one more event may happen now (counted either way).
    pub fn allow(&mut self) -> bool {
        if self.window.elapsed() >= self.every {
            self.window = Instant::now();
            self.used = 0;
        }
        self.used += 1;
        let allowed = self.used <= self.limit;
        if !allowed {
            self.dropped += 1;
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_and_counts_the_rest() {
        let mut limit = RateLimit::new(2, Duration::from_secs(3600));
        assert!(limit.allow() && limit.allow());
        assert!(!limit.allow() && !limit.allow());
        assert_eq!(limit.dropped, 2);
        let mut fresh = RateLimit::new(1, Duration::ZERO);
        assert!(fresh.allow() && fresh.allow(), "a new window each time");
    }
}
