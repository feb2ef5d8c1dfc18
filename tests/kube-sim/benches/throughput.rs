//! kube-sim throughput bench (placeholder until the measuring loop lands).
fn main() {}
