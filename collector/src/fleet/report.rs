//! `nkpath-collector fleet`.
