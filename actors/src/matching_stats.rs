//! What a task-queue partition reports about itself (DescribeTaskQueue, backlog gauges): the
//! exact backlog, the age of its oldest task, and add/dispatch rates over the last 30 seconds.

/// Seconds the rates average over (Temporal's window).
pub const RATE_WINDOW_SECS: i64 = 30;

/// A partition's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStats {
    /// Tasks in the backlog (not handed out).
    pub backlog_count: usize,
    /// When the oldest backlog task was enqueued (unix millis); `None` when the backlog is
    /// empty.
    pub oldest_enqueued_ms: Option<i64>,
    /// Tasks added per second (sync matches included).
    pub tasks_add_rate: f32,
    /// Tasks handed to pollers per second.
    pub tasks_dispatch_rate: f32,
    /// Pollers waiting now.
    pub pollers_waiting: usize,
    /// Recent pollers: identity and last poll time (unix millis), most recent first.
    pub recent_pollers: Vec<(String, i64)>,
}

/// Events per second over the last [`RATE_WINDOW_SECS`], in one-second buckets.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    buckets: Vec<(i64, u32)>,
}

impl RateWindow {
    /// Counts one event at `now_ms`.
    pub fn record(&mut self, now_ms: i64) {
        let sec = now_ms.div_euclid(1000);
        if self.buckets.is_empty() {
            self.buckets = vec![(i64::MIN, 0); RATE_WINDOW_SECS as usize];
        }
        let slot = &mut self.buckets[sec.rem_euclid(RATE_WINDOW_SECS) as usize];
        if slot.0 != sec {
            *slot = (sec, 0);
        }
        slot.1 += 1;
    }

    /// Events per second over the window ending at `now_ms`.
    pub fn rate(&self, now_ms: i64) -> f32 {
        let sec = now_ms.div_euclid(1000);
        let total: u32 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s > sec - RATE_WINDOW_SECS && *s <= sec)
            .map(|(_, n)| n)
            .sum();
        total as f32 / RATE_WINDOW_SECS as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_the_last_thirty_seconds_only() {
        let mut w = RateWindow::default();
        assert_eq!(w.rate(0), 0.0);
        for i in 0..30 {
            w.record(1_000_000 + i * 1000);
            w.record(1_000_000 + i * 1000 + 500);
        }
        assert_eq!(w.rate(1_029_999), 2.0);
        // Ten seconds later the first ten seconds have left the window.
        assert!((w.rate(1_039_999) - 40.0 / 30.0).abs() < 1e-6);
        assert_eq!(w.rate(2_000_000), 0.0);
    }
}
