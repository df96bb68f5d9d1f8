//! See the [store](super) overview.
