//! End-to-end tests of the streaming connectors against real servers:
//! readings produced to a broker go through the fleet pipeline into its
//! committed outputs, exactly once, across a stop and restart of the job in
//! the middle. A single-partition run must give exactly the output of the
//! same readings read from a file; multi-partition runs on 2 workers must
//! conserve every count. Each test skips (and passes) when the variable
//! naming its server is unset; `.ci/run` starts the servers and sets them.

mod common;
mod kafka;
mod kinesis;
mod mqtt;
