//! Test support: oracles and golden-case runner.
