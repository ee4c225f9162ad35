//! What the benchmarks share beyond the `graph-relay-bench` binary: the
//! durable-publish measurement and the workload's notification, which the
//! criterion benches (`bench/benches`) also use.

pub mod durable;
