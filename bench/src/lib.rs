//! What the benchmarks share beyond the `graph-relay-bench` binary: the
//! durable-publish measurement and the workload's notification, which the
//! criterion benches (`bench/benches`) also use, and the summaries of
//! repeated rounds that `edge_compare` prints.

pub mod durable;
pub mod stats;
