//! Example job binaries.
