//! Test support for the emulated Internet.
