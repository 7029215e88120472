//! The task model shared by every part of the engine: states, what a caller submits, and what a
//! caller reads back.

use crate::dag::Trigger;

/// The states of DESIGN.md §2. The numeric values index count tables; the names are the public API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    Waiting = 0,
    Scheduled = 1,
    Queued = 2,
    Running = 3,
    Retrying = 4,
    Succeeded = 5,
    Dead = 6,
    Cancelled = 7,
    Skipped = 8,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Waiting,
        Status::Scheduled,
        Status::Queued,
        Status::Running,
        Status::Retrying,
        Status::Succeeded,
        Status::Dead,
        Status::Cancelled,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Scheduled => "scheduled",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::Dead | Status::Cancelled | Status::Skipped
        )
    }

    /// The bit of this status in a status set (`StatusSet`).
    pub fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// What a caller submits. `id: None` lets the engine make one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskSpec {
    pub id: Option<String>,
    pub name: String,
    pub pool: String,
    pub payload: Vec<u8>,
    pub priority: i32,
    pub max_retries: u32,
    /// 0 means no timeout.
    pub timeout_ms: u64,
    pub key: Option<String>,
    /// Earliest start (epoch ms); None means now.
    pub run_at_ms: Option<i64>,
    pub parents: Vec<(String, Trigger)>,
}

/// A task as a caller reads it back (an owned snapshot).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub name: String,
    pub pool: String,
    pub status: Status,
    pub priority: i32,
    pub attempts: u32,
    pub max_retries: u32,
    pub lease_losses: u32,
    pub timeout_ms: u64,
    pub progress: f32,
    pub created_ms: i64,
    /// When it became (or becomes) eligible to run.
    pub ready_ms: i64,
    /// 0 when it never started / has not finished.
    pub started_ms: i64,
    pub finished_ms: i64,
    pub key: Option<String>,
    pub error: Option<String>,
    pub traceback: Option<String>,
    pub result: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub parents: Vec<(String, Trigger)>,
    pub schedule: Option<String>,
    /// Listing cursor: tasks are listed newest first by this number.
    pub seq: u64,
}

/// What a worker gets for each task it claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub slot: u32,
    pub token: u64,
    pub id: String,
    pub name: String,
    pub payload: Vec<u8>,
    pub attempt: u32,
    pub priority: i32,
    pub timeout_ms: u64,
}

/// How an attempt ended, as the worker reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    Succeeded {
        result: Option<Vec<u8>>,
    },
    /// `retry_delay_ms: None` means the error is permanent: no retry whatever the budget.
    Failed {
        error: String,
        traceback: String,
        retry_delay_ms: Option<u64>,
    },
    /// The worker gives the task back unstarted or interrupted by shutdown; no attempt is counted.
    HandBack,
}

/// Filters for listing and for bulk DLQ operations. Empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskFilter {
    /// A set of `Status::bit()`s; 0 matches every status.
    pub statuses: u16,
    pub name: Option<String>,
    pub pool: Option<String>,
    /// Case-insensitive substring of the id, name, key or error.
    pub query: Option<String>,
}
