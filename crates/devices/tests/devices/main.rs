//! Registry and authentication tests. Every case runs against SQLite, and
//! against PostgreSQL when `IOTFLOW_TEST_POSTGRES_URL` is set (each case in a
//! database of its own, so cases run in parallel).

mod auth;
mod changes;
mod common;
mod registry;
