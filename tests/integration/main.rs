//! iotflow integration tests: one binary, one module per concern.

mod checkpoint;
mod conservation;
mod golden;
mod partitions;
mod props;
mod reference;
mod regression;
mod tumbling_oracle;
mod zscore_oracle;
