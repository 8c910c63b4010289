//! Device-fleet simulator: the fleet-v1 generator.
