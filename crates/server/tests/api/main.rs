//! The registry API over real HTTP: each case starts the server on a free
//! port over a fresh registry and talks to it with reqwest, on SQLite and,
//! when `IOTFLOW_TEST_POSTGRES_URL` is set, on PostgreSQL (a database per
//! case, so cases run in parallel).

mod auth;
mod bulk;
mod common;
mod credentials;
mod errors;
mod flow;
mod groups;
mod listing;
mod openapi;
