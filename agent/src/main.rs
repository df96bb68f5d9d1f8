//! nkpath-agent: Paris traceroutes from a volunteer's vantage point.
fn main() {}
