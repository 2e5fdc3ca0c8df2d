//! Scenarios and the scripted workflow: what each load-test workflow does, decided from the
//! history events a workflow task carries (no SDK, no replay), and where workflow ids land.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use sundial_proto::api::command::v1::Command;
use sundial_proto::api::enums::v1::EventType;
use sundial_proto::api::history::v1::HistoryEvent;

use crate::client;

/// A load shape, as Temporal's own load tools name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scenario {
    /// The workflow completes in its first workflow task.
    Noop,
    /// One activity, then complete.
    OneActivity,
    /// N sequential activities, then complete.
    Activities(u32),
    /// A timer (1 s by default), then complete.
    Timer,
    /// Each workflow completes after it has received K signals, which the client sends.
    Signals,
    /// `one-activity` with every workflow id chosen to land on one history shard.
    HotShard,
    /// `one-activity`, but all workflows are started before any worker polls.
    Backlog,
}

impl Scenario {
    /// Every scenario, with `activities-5` standing for `activities-N`.
    pub const ALL: [Scenario; 7] = [
        Scenario::Noop,
        Scenario::OneActivity,
        Scenario::Activities(5),
        Scenario::Timer,
        Scenario::Signals,
        Scenario::HotShard,
        Scenario::Backlog,
    ];

    /// Sequential activities each workflow runs.
    pub fn activities(self) -> u32 {
        match self {
            Scenario::Noop | Scenario::Timer | Scenario::Signals => 0,
            Scenario::OneActivity | Scenario::HotShard | Scenario::Backlog => 1,
            Scenario::Activities(n) => n,
        }
    }

    /// Default id placement: hot for `hot-shard`, spread otherwise.
    pub fn placement(self) -> Placement {
        match self {
            Scenario::HotShard => Placement::Hot,
            _ => Placement::Spread,
        }
    }

    /// True when every workflow is started before the workers begin to poll.
    pub fn is_backlog(self) -> bool {
        self == Scenario::Backlog
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Noop => f.write_str("noop"),
            Scenario::OneActivity => f.write_str("one-activity"),
            Scenario::Activities(n) => write!(f, "activities-{n}"),
            Scenario::Timer => f.write_str("timer"),
            Scenario::Signals => f.write_str("signals"),
            Scenario::HotShard => f.write_str("hot-shard"),
            Scenario::Backlog => f.write_str("backlog"),
        }
    }
}

impl FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "noop" => Scenario::Noop,
            "one-activity" => Scenario::OneActivity,
            "timer" => Scenario::Timer,
            "signals" => Scenario::Signals,
            "hot-shard" => Scenario::HotShard,
            "backlog" => Scenario::Backlog,
            other => match other.strip_prefix("activities-").map(str::parse::<u32>) {
                Some(Ok(n)) if (1..=1000).contains(&n) => Scenario::Activities(n),
                _ => bail!(
                    "unknown scenario {other:?}: expected noop, one-activity, activities-N \
                     (1..=1000), timer, signals, hot-shard or backlog"
                ),
            },
        })
    }
}

/// Where workflow ids land among a server's history shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Ids `PREFIX-0`, `PREFIX-1` ...: spread by the hash.
    Spread,
    /// Only ids that Sundial's shard hash maps to shard 1.
    Hot,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Placement::Spread => "spread",
            Placement::Hot => "hot",
        })
    }
}

/// Sundial's workflow → shard map: FNV-1a 32 of `namespace_id + "_" + workflow_id`, modulo
/// the shard count, plus one (mirrors `sundial_actors::shard_for`, which this crate must not
/// depend on). Other servers hash differently, so hot placement is exact for Sundial only.
pub fn sundial_shard_for(namespace_id: &str, workflow_id: &str, num_shards: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in namespace_id
        .bytes()
        .chain(std::iter::once(b'_'))
        .chain(workflow_id.bytes())
    {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % num_shards.max(1) + 1
}

/// Generates workflow ids for one run, in the chosen placement.
pub struct IdGenerator {
    prefix: String,
    next: u64,
    hot: Option<(String, u32)>,
}

impl IdGenerator {
    /// Ids `prefix-0`, `prefix-1` ... (spread).
    pub fn spread(prefix: &str) -> Self {
        IdGenerator {
            prefix: prefix.to_string(),
            next: 0,
            hot: None,
        }
    }

    /// Ids with `prefix` that Sundial puts on shard 1 of `num_shards` in `namespace_id`.
    pub fn hot(prefix: &str, namespace_id: &str, num_shards: u32) -> Self {
        IdGenerator {
            hot: Some((namespace_id.to_string(), num_shards.max(1))),
            ..Self::spread(prefix)
        }
    }

    /// The next workflow id.
    pub fn next_id(&mut self) -> String {
        loop {
            let id = format!("{}-{}", self.prefix, self.next);
            self.next += 1;
            match &self.hot {
                Some((ns, shards)) if sundial_shard_for(ns, &id, *shards) != 1 => continue,
                _ => return id,
            }
        }
    }
}

/// What every workflow of a run does, given the events it has seen.
#[derive(Clone, Debug)]
pub struct Script {
    /// Sequential activities to run first.
    pub activities: u32,
    /// A timer to wait for after the activities.
    pub timer: Option<Duration>,
    /// Signals to wait for before completing.
    pub signals: u32,
    /// Ask for eager activity dispatch (`request_eager_execution`).
    pub eager_activities: bool,
    /// Queue activities are scheduled on.
    pub task_queue: String,
}

/// A scripted workflow task's answer.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Commands to send (none means "keep waiting").
    pub commands: Vec<Command>,
    /// True when the commands close the workflow.
    pub closes: bool,
}

impl Script {
    /// The script of `scenario`, with `timer` and `signals` as configured.
    pub fn new(
        scenario: Scenario,
        task_queue: &str,
        timer: Duration,
        signals: u32,
        eager: bool,
    ) -> Self {
        Script {
            activities: scenario.activities(),
            timer: (scenario == Scenario::Timer).then_some(timer),
            signals: if scenario == Scenario::Signals {
                signals
            } else {
                0
            },
            eager_activities: eager,
            task_queue: task_queue.to_string(),
        }
    }

    /// The next step from the whole history so far: activities one by one, then the timer,
    /// then wait for the signals, then complete.
    pub fn decide(&self, events: &[HistoryEvent]) -> Decision {
        let (mut scheduled, mut finished) = (0u32, 0u32);
        let (mut timers, mut fired, mut signals) = (0u32, 0u32, 0u32);
        for event in events {
            match EventType::try_from(event.event_type) {
                Ok(EventType::ActivityTaskScheduled) => scheduled += 1,
                Ok(
                    EventType::ActivityTaskCompleted
                    | EventType::ActivityTaskFailed
                    | EventType::ActivityTaskTimedOut
                    | EventType::ActivityTaskCanceled,
                ) => finished += 1,
                Ok(EventType::TimerStarted) => timers += 1,
                Ok(EventType::TimerFired) => fired += 1,
                Ok(EventType::WorkflowExecutionSignaled) => signals += 1,
                _ => {}
            }
        }
        let wait = Decision {
            commands: Vec::new(),
            closes: false,
        };
        let step = |command| Decision {
            commands: vec![command],
            closes: false,
        };
        if scheduled > finished {
            return wait;
        }
        if scheduled < self.activities {
            let id = (scheduled + 1).to_string();
            return step(client::schedule_activity(
                &id,
                &self.task_queue,
                self.eager_activities,
            ));
        }
        if let Some(after) = self.timer {
            if timers == 0 {
                return step(client::start_timer("1", after));
            }
            if fired < timers {
                return wait;
            }
        }
        if signals < self.signals {
            return wait;
        }
        Decision {
            commands: vec![client::complete_workflow()],
            closes: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_proto::api::enums::v1::CommandType;

    fn history(types: &[EventType]) -> Vec<HistoryEvent> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| HistoryEvent {
                event_id: i as i64 + 1,
                event_type: *t as i32,
                ..Default::default()
            })
            .collect()
    }

    fn kinds(d: &Decision) -> Vec<CommandType> {
        d.commands
            .iter()
            .map(|c| CommandType::try_from(c.command_type).unwrap())
            .collect()
    }

    const FIRST: [EventType; 3] = [
        EventType::WorkflowExecutionStarted,
        EventType::WorkflowTaskScheduled,
        EventType::WorkflowTaskStarted,
    ];

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.to_string().parse::<Scenario>().unwrap(), s);
        }
        assert_eq!(
            "activities-12".parse::<Scenario>().unwrap(),
            Scenario::Activities(12)
        );
        assert!("activities-0".parse::<Scenario>().is_err());
        assert!("bogus".parse::<Scenario>().is_err());
    }

    #[test]
    fn noop_completes_in_the_first_task() {
        let s = Script::new(Scenario::Noop, "q", Duration::from_secs(1), 3, false);
        let d = s.decide(&history(&FIRST));
        assert!(d.closes);
        assert_eq!(kinds(&d), [CommandType::CompleteWorkflowExecution]);
    }

    #[test]
    fn activities_run_one_after_another() {
        let s = Script::new(Scenario::Activities(2), "q", Duration::ZERO, 0, false);
        let mut h = FIRST.to_vec();
        assert_eq!(
            kinds(&s.decide(&history(&h))),
            [CommandType::ScheduleActivityTask]
        );
        h.extend([
            EventType::WorkflowTaskCompleted,
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskStarted,
        ]);
        // An unrelated task while the activity runs: wait.
        assert!(s.decide(&history(&h)).commands.is_empty());
        h.extend([EventType::ActivityTaskCompleted]);
        assert_eq!(
            kinds(&s.decide(&history(&h))),
            [CommandType::ScheduleActivityTask]
        );
        h.extend([
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskCompleted,
        ]);
        assert!(s.decide(&history(&h)).closes);
    }

    #[test]
    fn timer_then_complete() {
        let s = Script::new(Scenario::Timer, "q", Duration::from_secs(1), 0, false);
        let mut h = FIRST.to_vec();
        assert_eq!(kinds(&s.decide(&history(&h))), [CommandType::StartTimer]);
        h.push(EventType::TimerStarted);
        assert!(s.decide(&history(&h)).commands.is_empty());
        h.push(EventType::TimerFired);
        assert!(s.decide(&history(&h)).closes);
    }

    #[test]
    fn signals_complete_after_k() {
        let s = Script::new(Scenario::Signals, "q", Duration::ZERO, 2, false);
        let mut h = FIRST.to_vec();
        h.push(EventType::WorkflowExecutionSignaled);
        assert!(s.decide(&history(&h)).commands.is_empty());
        h.push(EventType::WorkflowExecutionSignaled);
        assert!(s.decide(&history(&h)).closes);
    }

    #[test]
    fn hot_ids_land_on_shard_one() {
        let mut ids = IdGenerator::hot("wf", "ns-id", 16);
        for _ in 0..50 {
            assert_eq!(sundial_shard_for("ns-id", &ids.next_id(), 16), 1);
        }
        let mut spread = IdGenerator::spread("wf");
        assert_eq!(spread.next_id(), "wf-0");
        assert_eq!(spread.next_id(), "wf-1");
    }

    #[test]
    fn shard_hash_matches_sundial() {
        // FNV-1a 32 of "ns_wf-0" is 193153011, and so on (computed independently).
        assert_eq!(sundial_shard_for("ns", "wf-0", 16), 4);
        assert_eq!(sundial_shard_for("ns", "wf-1", 16), 1);
        assert_eq!(sundial_shard_for("ns", "wf-2", 16), 10);
        assert_eq!(sundial_shard_for("ns", "anything", 7), 5);
        assert_eq!(sundial_shard_for("ns", "anything", 1), 1);
    }
}
