//! skedulr-core: the scheduling algorithms of skedulr, free of Python, clocks and I/O.
//!
//! Every function that depends on time takes `now` (Unix epoch milliseconds) as an argument, so tests
//! drive time and the Python layer decides where time comes from.

pub mod backoff;
pub mod cron;
pub mod dag;
pub mod engine;
pub mod error;
pub mod hash;
pub mod leases;
pub mod ready_queue;
pub mod schedules;
pub mod task;
pub mod validate;

pub use error::{CoreError, CoreResult};
