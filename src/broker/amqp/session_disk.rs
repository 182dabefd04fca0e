//! Disk work a handler's reply must wait for — a durable queue's directory and first
//! segment, a definitions record and its fsync, a deleted queue's files. On a connection
//! task it runs on tokio's blocking pool while the connection waits (`after_disk`): the
//! runtime thread goes on serving everyone else, and this connection reads and handles
//! nothing more until the handler has finished with the result (`resume`), so its
//! replies keep their order. Elsewhere (unit tests, the management API's own callers)
//! the work runs in place.

use crate::broker::access::grant::Checked;
use crate::broker::amqp::session::{End, Session};
use crate::broker::error::{AmqpError, AmqpResult, code};
use crate::broker::model::topology::BindingSpec;
use crate::broker::store::background;
use amq_protocol::protocol::AMQPClass;
use tokio::sync::oneshot;

/// The rest of a handler, run on the session once its disk work is done.
pub(crate) type Resume = Box<dyn FnOnce(&mut Session) -> AmqpResult + Send>;

/// A handler waiting for its disk work.
pub(crate) struct DiskWait {
    ch: u16,
    /// Class and method ids of the method being handled (for error texts).
    ids: (u16, u16),
    done: oneshot::Receiver<Resume>,
}

impl std::fmt::Debug for DiskWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWait").field("ch", &self.ch).finish()
    }
}

impl DiskWait {
    /// Wait for the work and take the rest of the handler.
    pub(crate) async fn done(&mut self) -> Option<Resume> {
        (&mut self.done).await.ok()
    }
}

impl Session {
    /// queue.bind and exchange.bind: the topology service's checks, then the binding (off
    /// the runtime's threads when its definitions record is disk work), then `ok` (None
    /// with nowait).
    pub(crate) fn bind(&mut self, ch: u16, spec: BindingSpec, ok: Option<AMQPClass>) -> AmqpResult {
        let mut permit = Checked {
            grant: &mut self.grant,
            db: &self.broker.auth,
        };
        let plan = self.vhost.plan_bind(&mut permit, spec)?;
        let bind_ok = move |s: &mut Session, ()| {
            if let Some(ok) = ok {
                s.reply(ch, ok);
            }
            Ok(())
        };
        if self.vhost.bind_touches_disk(&plan) {
            let vhost = self.vhost.clone();
            return self.after_disk(ch, move || vhost.apply_bind(plan), bind_ok);
        }
        self.vhost.apply_bind(plan);
        bind_ok(self, ())
    }

    /// Run `work` off the runtime's threads, then `then` with its result on this
    /// session. Returns at once on a connection task (the reply comes from `then`).
    pub(crate) fn after_disk<T: Send + 'static>(
        &mut self,
        ch: u16,
        work: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce(&mut Session, T) -> AmqpResult + Send + 'static,
    ) -> AmqpResult {
        if !self.waits_for_disk {
            let result = background::blocking(work);
            return then(self, result);
        }
        let (tx, rx) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let result = work();
            let resume: Resume = Box::new(move |s: &mut Session| then(s, result));
            let _ = tx.send(resume);
        });
        self.disk_wait = Some(DiskWait {
            ch,
            ids: self.handling,
            done: rx,
        });
        Ok(())
    }

    /// Finish the handler that waited (`resume` is None when its work never finished:
    /// the runtime is shutting down). Its channel may have been closed meanwhile by the
    /// broker (a consumer timeout): then there is nothing to answer.
    pub(crate) fn resume(&mut self, wait: DiskWait, resume: Option<Resume>) -> Result<(), End> {
        let Some(resume) = resume else {
            return Err(End::Close(AmqpError::new(
                code::INTERNAL_ERROR,
                "disk work of a handler ended without a result",
            )));
        };
        if self.channels.get(&wait.ch).is_none_or(|c| c.closing) {
            return Ok(());
        }
        let result = resume(self);
        self.finish(wait.ch, wait.ids, result)
    }
}
