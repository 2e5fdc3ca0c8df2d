//! The shared ledger of one run: which workflows are in flight since when, and what was
//! observed (closes, latencies, schedule-to-start delays, history events, errors by code).
//! Starters, signallers and pollers all write here; the driver reads it at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit};

/// What a workflow in flight holds: when its start was sent, and its concurrency permit.
struct InFlight {
    started_at: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Everything measured in a run (latencies and delays in microseconds).
#[derive(Default, Debug)]
pub struct Observations {
    /// Start → close of each workflow that closed.
    pub latencies_us: Vec<u64>,
    /// Task scheduled → poll response received, over workflow and activity tasks.
    pub schedule_to_start_us: Vec<u64>,
    /// History events of the workflows that closed (their length at close).
    pub history_events: u64,
    /// Failed RPCs: gRPC code name → count.
    pub errors: BTreeMap<String, u64>,
    /// Failed RPCs: `"Rpc: Code"` → (count, first message), for diagnosis.
    pub error_details: BTreeMap<String, (u64, String)>,
    /// Workflows closed in each second since [`Tracker::epoch`].
    pub closes_per_second: Vec<u64>,
    /// When the last workflow closed.
    pub last_close: Option<Instant>,
}

/// The ledger; share it behind an `Arc`.
pub struct Tracker {
    epoch: Instant,
    in_flight: Mutex<HashMap<String, InFlight>>,
    observations: Mutex<Observations>,
    started: AtomicU64,
    closed: AtomicU64,
    failed_rpcs: AtomicU64,
    idle: Notify,
    stopping: AtomicBool,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    /// An empty ledger whose clock starts now.
    pub fn new() -> Self {
        Tracker {
            epoch: Instant::now(),
            in_flight: Mutex::default(),
            observations: Mutex::default(),
            started: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            failed_rpcs: AtomicU64::new(0),
            idle: Notify::new(),
            stopping: AtomicBool::new(false),
        }
    }

    /// When the run began.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Records that a start for `workflow_id` is about to be sent. Call it BEFORE the RPC: a
    /// fast worker may complete the workflow before the start response arrives.
    pub fn starting(&self, workflow_id: &str, permit: Option<OwnedSemaphorePermit>) {
        let entry = InFlight {
            started_at: Instant::now(),
            _permit: permit,
        };
        lock(&self.in_flight).insert(workflow_id.to_string(), entry);
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// The start of `workflow_id` failed: it is no longer in flight (its permit is freed).
    pub fn start_failed(&self, workflow_id: &str) {
        if lock(&self.in_flight).remove(workflow_id).is_some() {
            self.started.fetch_sub(1, Ordering::Relaxed);
        }
        self.notify_if_idle();
    }

    /// Releases the concurrency permit of `workflow_id` without closing it (backlog mode
    /// bounds start RPCs, not workflows).
    pub fn release_permit(&self, workflow_id: &str) {
        if let Some(entry) = lock(&self.in_flight).get_mut(workflow_id) {
            entry._permit = None;
        }
    }

    /// `workflow_id` closed with `history_events` events; records its latency.
    pub fn closed(&self, workflow_id: &str, history_events: u64) {
        let Some(entry) = lock(&self.in_flight).remove(workflow_id) else {
            return; // not ours, or already counted
        };
        let now = Instant::now();
        let latency = now.saturating_duration_since(entry.started_at);
        let second = now.saturating_duration_since(self.epoch).as_secs() as usize;
        {
            let mut obs = lock(&self.observations);
            obs.latencies_us.push(micros(latency));
            obs.history_events += history_events;
            if obs.closes_per_second.len() <= second {
                obs.closes_per_second.resize(second + 1, 0);
            }
            obs.closes_per_second[second] += 1;
            obs.last_close = Some(now);
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.notify_if_idle();
    }

    /// A task scheduled at `scheduled` (server clock) reached a poller at `received`.
    pub fn schedule_to_start(&self, scheduled: Option<&prost_wkt_types::Timestamp>) {
        let Some(ts) = scheduled else { return };
        let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.seconds), u32::try_from(ts.nanos)) else {
            return;
        };
        let scheduled = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        // A scheduled time after now is clock skew between threads: count it as zero.
        let delay = SystemTime::now()
            .duration_since(scheduled)
            .unwrap_or_default();
        lock(&self.observations)
            .schedule_to_start_us
            .push(micros(delay));
    }

    /// An RPC failed with `status`.
    pub fn error(&self, rpc: &str, status: &tonic::Status) {
        let code = format!("{:?}", status.code());
        self.failed_rpcs.fetch_add(1, Ordering::Relaxed);
        let mut obs = lock(&self.observations);
        *obs.errors.entry(code.clone()).or_default() += 1;
        obs.error_details
            .entry(format!("{rpc}: {code}"))
            .or_insert_with(|| (0, status.message().chars().take(200).collect()))
            .0 += 1;
    }

    /// Workflows whose start was sent and did not fail.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Workflows seen to close.
    pub fn completed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    /// RPCs that failed so far.
    pub fn failed_rpcs(&self) -> u64 {
        self.failed_rpcs.load(Ordering::Relaxed)
    }

    /// Workflows started and not yet closed.
    pub fn in_flight(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Waits until nothing is in flight, or `deadline`. True when idle.
    pub async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    /// Asks pollers and signallers to stop at their next turn.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// True once [`Tracker::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Takes what was observed, leaving the ledger empty.
    pub fn take_observations(&self) -> Observations {
        std::mem::take(&mut *lock(&self.observations))
    }

    fn notify_if_idle(&self) {
        if self.in_flight() == 0 {
            self.idle.notify_waiters();
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_closes_once() {
        let t = Tracker::new();
        t.starting("a", None);
        t.starting("b", None);
        t.closed("a", 5);
        t.closed("a", 5);
        t.start_failed("b");
        assert_eq!((t.started(), t.completed(), t.in_flight()), (1, 1, 0));
        let obs = t.take_observations();
        assert_eq!(obs.history_events, 5);
        assert_eq!(obs.latencies_us.len(), 1);
    }

    #[test]
    fn errors_by_code() {
        let t = Tracker::new();
        t.error("Start", &tonic::Status::unavailable("x"));
        t.error("Start", &tonic::Status::unavailable("y"));
        t.error("Poll", &tonic::Status::internal("z"));
        let obs = t.take_observations();
        assert_eq!(obs.errors["Unavailable"], 2);
        assert_eq!(
            obs.error_details["Start: Unavailable"],
            (2, "x".to_string())
        );
        assert_eq!(t.failed_rpcs(), 3);
    }
}
