//! Registry and authentication tests. Every case runs against SQLite, and
//! against PostgreSQL when `IOTFLOW_TEST_POSTGRES_URL` is set (each case in a
//! database of its own, so cases run in parallel), and against DynamoDB when
//! `IOTFLOW_TEST_DYNAMODB_URL` names an endpoint such as moto's (each case in
//! a table of its own, deleted afterwards).

mod auth;
mod changes;
mod common;
mod dynamodb;
mod registry;
