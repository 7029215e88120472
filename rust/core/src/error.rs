//! The one error type of the core. Each variant maps to exactly one class in `skedulr.errors`
//! (see `rust/py/src/errors.rs`), so a message written here is the message the user reads.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A name, id, key or pool name outside the documented alphabet or length.
    InvalidName(String),
    /// A task option out of range (priority, timeout, delay, payload size, retries).
    InvalidOption(String),
    /// A cron expression that cannot be parsed or can never fire.
    InvalidCron(String),
    /// A time zone name that is not in the IANA database.
    InvalidTimeZone(String),
    /// No task with this id.
    TaskNotFound(String),
    /// A task with this id already exists.
    DuplicateTask(String),
    /// The operation does not apply to the task in its current state.
    InvalidState(String),
    /// A DAG edge names a parent that does not exist.
    UnknownParent(String),
    /// DAG edges would form a cycle.
    Cycle(String),
    /// No schedule with this id.
    ScheduleNotFound(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidName(m)
            | CoreError::InvalidOption(m)
            | CoreError::InvalidCron(m)
            | CoreError::InvalidTimeZone(m)
            | CoreError::TaskNotFound(m)
            | CoreError::DuplicateTask(m)
            | CoreError::InvalidState(m)
            | CoreError::UnknownParent(m)
            | CoreError::Cycle(m)
            | CoreError::ScheduleNotFound(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
