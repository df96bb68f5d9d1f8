//! nkpath-collector.
fn main() {}
