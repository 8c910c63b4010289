//! iotflow core.
#![deny(missing_docs)]
mod error;
pub mod sink;
pub use error::{Error, Fault, Result};
