//! A bound on the memory of request bodies, whatever the number of uploads at once.
//!
//! An upload's body is read whole before it is decoded, and decoding keeps a copy of each
//! result's text: an upload in progress costs a few times its body. Before a body is read,
//! its size (its `Content-Length`, or the body limit when it does not say) is reserved from
//! one budget shared by every connection; when the budget cannot cover it, the upload is
//! answered 503 with `Retry-After` at once, before a byte of its body is read, and the
//! agent sends it again later. The reservation is given back when the upload is answered.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of request bodies read or decoded at once, by default: 64 MiB, four bodies at the
/// largest default size. With decoding's copies, uploads then hold about 200 MiB at most.
pub const DEFAULT_BODY_MEMORY: usize = 64 << 20;

/// How long an upload refused for want of memory is asked to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The budget is counted in KiB, so that any body size fits a semaphore's permit count.
const UNIT: usize = 1024;

/// The bytes of bodies that may be in memory at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

/// Memory reserved for one body, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl BodyBudget {
    /// A budget of `bytes`, raised to `max_body` so that a body of the largest size accepted
    /// can always be read when no other is.
    pub fn new(bytes: usize, max_body: usize) -> Self {
        let bytes = bytes.max(max_body);
        Self {
            units: Arc::new(Semaphore::new(units(bytes))),
            bytes,
        }
    }

    /// The budget, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reserves `bytes` (at most the whole budget), or `None` when other bodies hold too
    /// much of it now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let wanted = units(bytes.min(self.bytes)).max(1);
        let Ok(wanted) = u32::try_from(wanted) else {
            return None;
        };
        // The semaphore is never closed: an error means too few permits now.
        let permit = self.units.clone().try_acquire_many_owned(wanted).ok()?;
        Some(Reservation { _permit: permit })
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_admitted_until_the_budget_is_spent() {
        let budget = BodyBudget::new(4 << 20, 1 << 20);
        let held: Vec<_> = (0..4)
            .map(|_| budget.try_reserve(1 << 20).expect("fits"))
            .collect();
        assert!(budget.try_reserve(1).is_none(), "the budget is spent");
        drop(held);
        assert!(budget.try_reserve(4 << 20).is_some());
    }

    #[test]
    fn the_budget_always_admits_one_body_of_the_largest_size() {
        let budget = BodyBudget::new(1 << 20, 16 << 20);
        assert_eq!(budget.bytes(), 16 << 20);
        assert!(budget.try_reserve(16 << 20).is_some());
        // A body that does not say its size reserves the whole budget, and no more.
        assert!(budget.try_reserve(usize::MAX).is_some());
    }
}
