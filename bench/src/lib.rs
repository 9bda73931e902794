//! threadline's benchmark: the load generator's parts (the mock upstream is the `mock-upstream` binary).

pub mod agent_loop;
pub mod cell;
pub mod measure;
pub mod report;
pub mod results;
pub mod truncation;
