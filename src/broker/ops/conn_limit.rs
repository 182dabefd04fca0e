//! The node-wide connection limit (RabbitMQ's `connection_max`). RabbitMQ checks it at
//! connection.open, against connections that completed the handshake, and refuses with
//! 530 NOT_ALLOWED; connections still negotiating do not count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Open connections and the limit on them.
#[derive(Debug)]
pub(crate) struct ConnSlots {
    /// Connections holding a slot (past connection.open, not yet torn down).
    open: Arc<AtomicUsize>,
    /// `None`: unlimited.
    max: Option<usize>,
}

/// One open connection's place under the limit; given back when dropped, however the
/// connection ends.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    open: Arc<AtomicUsize>,
}

impl ConnSlots {
    pub(crate) fn new(max: Option<usize>) -> ConnSlots {
        ConnSlots {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or `Err(limit)` when `limit` connections are already open. A
    /// compare-and-swap, so concurrent handshakes cannot overshoot the limit together.
    pub(crate) fn try_acquire(&self) -> Result<ConnSlot, usize> {
        let max = self.max.unwrap_or(usize::MAX);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| ConnSlot {
                open: self.open.clone(),
            })
            .map_err(|_| max)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_given_back_on_drop() {
        let slots = ConnSlots::new(Some(2));
        let a = slots.try_acquire().unwrap();
        let _b = slots.try_acquire().unwrap();
        assert_eq!(slots.try_acquire().unwrap_err(), 2);
        drop(a);
        assert!(slots.try_acquire().is_ok());
        let unlimited = ConnSlots::new(None);
        let held: Vec<_> = (0..1000)
            .map(|_| unlimited.try_acquire().unwrap())
            .collect();
        assert_eq!(held.len(), 1000);
    }
}
