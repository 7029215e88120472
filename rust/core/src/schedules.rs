//! Recurring schedules (cron and fixed interval), stored with the tasks so they survive for as long as
//! the storage does, and fired by whichever worker sees them due first: one task per tick.

use std::collections::{BTreeSet, HashMap};

use chrono_tz::Tz;

use crate::cron::CronSchedule;
use crate::task::TaskSpec;

#[derive(Clone, Debug, PartialEq)]
pub enum Every {
    Cron { schedule: CronSchedule, tz: Tz },
    Interval { every_ms: i64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleSpec {
    pub id: String,
    pub every: Every,
    /// The task each tick submits (no id, key or parents).
    pub template: TaskSpec,
    /// Skip a tick while the previous tick's task has not ended, so runs never pile up.
    pub skip_if_running: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleView {
    pub id: String,
    pub spec: ScheduleSpec,
    pub next_fire_ms: Option<i64>,
    pub last_fire_ms: Option<i64>,
    pub last_task: Option<String>,
    pub fired: u64,
    pub skipped: u64,
}

#[derive(Debug)]
struct Schedule {
    spec: ScheduleSpec,
    next_fire_ms: Option<i64>,
    last_fire_ms: Option<i64>,
    last_task: Option<String>,
    fired: u64,
    skipped: u64,
    removed: bool,
}

/// Schedules addressed by a stable index (tasks remember which schedule made them).
#[derive(Debug, Default)]
pub struct ScheduleTable {
    schedules: Vec<Schedule>,
    by_id: HashMap<String, u32>,
    by_next: BTreeSet<(i64, u32)>,
}

impl ScheduleTable {
    /// Stores `spec`, replacing a schedule with the same id. Returns its first fire time.
    pub fn insert(&mut self, spec: ScheduleSpec, now: i64) -> i64 {
        let next = first_fire(&spec.every, now);
        let id = spec.id.clone();
        let schedule = Schedule {
            spec,
            next_fire_ms: next,
            last_fire_ms: None,
            last_task: None,
            fired: 0,
            skipped: 0,
            removed: false,
        };
        let index = match self.by_id.get(&id) {
            Some(&i) => {
                self.unindex(i);
                self.schedules[i as usize] = schedule;
                i
            }
            None => {
                self.schedules.push(schedule);
                let i = (self.schedules.len() - 1) as u32;
                self.by_id.insert(id, i);
                i
            }
        };
        if let Some(at) = next {
            self.by_next.insert((at, index));
        }
        next.unwrap_or(i64::MAX)
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let Some(&i) = self.by_id.get(id) else {
            return false;
        };
        if self.schedules[i as usize].removed {
            return false;
        }
        self.unindex(i);
        self.schedules[i as usize].removed = true;
        true
    }

    fn unindex(&mut self, index: u32) {
        if let Some(at) = self.schedules[index as usize].next_fire_ms {
            self.by_next.remove(&(at, index));
        }
    }

    pub fn id_of(&self, index: u32) -> &str {
        &self.schedules[index as usize].spec.id
    }

    pub fn next_due(&self) -> Option<i64> {
        self.by_next.first().map(|(at, _)| *at)
    }

    /// Indexes of the schedules due at `now`.
    pub fn due(&self, now: i64) -> Vec<u32> {
        self.by_next
            .range(..(now.saturating_add(1), 0))
            .map(|(_, i)| *i)
            .collect()
    }

    pub fn last_task(&self, index: u32) -> Option<&str> {
        self.schedules[index as usize].last_task.as_deref()
    }

    pub fn skips_if_running(&self, index: u32) -> bool {
        self.schedules[index as usize].spec.skip_if_running
    }

    pub fn template(&self, index: u32) -> &TaskSpec {
        &self.schedules[index as usize].spec.template
    }

    pub fn record_fire(&mut self, index: u32, task_id: &str, now: i64) {
        let s = &mut self.schedules[index as usize];
        s.fired += 1;
        s.last_task = Some(task_id.to_string());
        s.last_fire_ms = Some(now);
        self.advance(index, now);
    }

    pub fn record_skip(&mut self, index: u32, now: i64) {
        self.schedules[index as usize].skipped += 1;
        self.advance(index, now);
    }

    /// Moves the schedule to its first tick after `now`; missed ticks collapse into the one just fired.
    fn advance(&mut self, index: u32, now: i64) {
        self.unindex(index);
        let s = &mut self.schedules[index as usize];
        s.next_fire_ms = match (&s.spec.every, s.next_fire_ms) {
            (Every::Interval { every_ms }, Some(prev)) => {
                let missed = (now - prev).max(0) / every_ms;
                Some(prev + (missed + 1) * every_ms)
            }
            (every, _) => first_fire(every, now),
        };
        if let Some(at) = s.next_fire_ms {
            self.by_next.insert((at, index));
        }
    }

    pub fn views(&self) -> Vec<ScheduleView> {
        self.schedules
            .iter()
            .filter(|s| !s.removed)
            .map(|s| ScheduleView {
                id: s.spec.id.clone(),
                spec: s.spec.clone(),
                next_fire_ms: s.next_fire_ms,
                last_fire_ms: s.last_fire_ms,
                last_task: s.last_task.clone(),
                fired: s.fired,
                skipped: s.skipped,
            })
            .collect()
    }
}

fn first_fire(every: &Every, now: i64) -> Option<i64> {
    match every {
        Every::Cron { schedule, tz } => schedule.next_after(now, *tz),
        Every::Interval { every_ms } => Some(now.saturating_add(*every_ms)),
    }
}
