//! A connection's side of the resource alarms, as rabbit_reader throttles: while an
//! alarm is on the connection is `blocking`; once it publishes it becomes `blocked` —
//! its socket is no longer read after the current batch (TCP pushes back on the
//! publisher) and, if it advertised the `connection.blocked` capability, it is told why.
//! When every alarm clears it gets `connection.unblocked` and is read again. A connection
//! that only consumes is never blocked, so consumers keep draining the queues.

use crate::broker::ops::alarm::AlarmSet;
use crate::broker::wire::outbound::ConnShared;
use amq_protocol::protocol::{AMQPClass, connection};
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::watch;

/// A connection's flow state, as the management API lists it (`state`).
#[derive(Debug, Default)]
pub(crate) struct FlowCell(AtomicU8);

const RUNNING: u8 = 0;
const BLOCKING: u8 = 1;
const BLOCKED: u8 = 2;

impl FlowCell {
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Relaxed);
    }

    /// RabbitMQ's connection `state`: `running`, `blocking` or `blocked`.
    pub(crate) fn name(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            BLOCKING => "blocking",
            BLOCKED => "blocked",
            _ => "running",
        }
    }
}

/// One connection's throttle.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// The broker's alarm set.
    alarms: watch::Receiver<AlarmSet>,
    /// The client advertised `connection.blocked` in its capabilities.
    capable: bool,
    /// Published while an alarm was on: the socket is not read.
    blocked: bool,
    /// connection.blocked was sent, so connection.unblocked is owed.
    notified: bool,
}

impl Throttle {
    pub(crate) fn new(
        mut alarms: watch::Receiver<AlarmSet>,
        capable: bool,
        cell: &FlowCell,
    ) -> Throttle {
        let on = alarms.borrow_and_update().any();
        cell.set(if on { BLOCKING } else { RUNNING });
        Throttle {
            alarms,
            capable,
            blocked: false,
            notified: false,
        }
    }

    /// Whether the read loop may read the socket (and run its dead-peer timer: RabbitMQ
    /// pauses heartbeat monitoring of a blocked connection, whose peer cannot send).
    pub(crate) fn reading(&self) -> bool {
        !self.blocked
    }

    /// The alarms as a batch starts. An alarm reaches a connection between batches (in
    /// RabbitMQ, when the reader process gets the alarm message): a publish in a batch
    /// that started before it does not block — its confirm may already be on the wire.
    pub(crate) fn alarms_now(&self) -> AlarmSet {
        *self.alarms.borrow()
    }

    /// After a batch of frames: a publish while an alarm was on (`set`, from
    /// `alarms_now` before the batch) blocks the connection.
    pub(crate) fn after_batch(
        &mut self,
        set: AlarmSet,
        published: bool,
        conn: &ConnShared,
        cell: &FlowCell,
    ) {
        if !published || !set.any() || self.blocked {
            return;
        }
        self.blocked = true;
        cell.set(BLOCKED);
        if self.capable && !self.notified {
            self.notified = true;
            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: set.reason().into(),
                })),
            );
        }
    }

    /// Resolves when the alarm set changes (never, if the broker's monitor is gone).
    pub(crate) async fn changed(&mut self) {
        if self.alarms.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Apply the current alarm set; true when a blocked connection resumes reading.
    pub(crate) fn apply(&mut self, conn: &ConnShared, cell: &FlowCell) -> bool {
        let set = *self.alarms.borrow_and_update();
        if set.any() {
            // A new reason while blocked sends nothing more (RabbitMQ sends one blocked).
            if !self.blocked {
                cell.set(BLOCKING);
            }
            return false;
        }
        cell.set(RUNNING);
        if self.notified {
            self.notified = false;
            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
            );
        }
        std::mem::take(&mut self.blocked)
    }
}
