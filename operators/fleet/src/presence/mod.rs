//! Last seen, online and offline, in event time.

pub(crate) mod config;
pub(crate) mod event;
pub(crate) mod operator;
pub(crate) mod state;
#[cfg(test)]
mod state_tests;
pub(crate) mod tally;
