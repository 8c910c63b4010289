//! Event-time window operators.
