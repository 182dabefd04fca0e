//! `connection.blocked`: the broker stops reading a publishing connection while one of
//! its alarms (memory, disk) is on. Silence would look like a hang, so each change is
//! one stderr line with the broker's reason; `--blocked-timeout` turns a long block into
//! exit 75 (EX_TEMPFAIL: try again later).

use super::signals::abort;
use crate::client::{EventHook, LinkEvent};
use crate::exit;
use crate::output::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The hook every connection of this process reports to.
pub(crate) fn hook(out: Arc<Output>, limit: Option<Duration>) -> EventHook {
    // Bumped on every change: a timer armed by an earlier block sees it moved on.
    let generation = Arc::new(AtomicU64::new(0));
    EventHook(Arc::new(move |target: &str, event: LinkEvent| {
        let now = generation.fetch_add(1, Ordering::SeqCst) + 1;
        match event {
            LinkEvent::Blocked(reason) => {
                let until = match limit {
                    Some(l) => format!("giving up after {:.0} s", l.as_secs_f64()),
                    None => "waiting; --blocked-timeout SECS gives up".to_string(),
                };
                out.warn(&format!(
                    "the broker at {target} blocked this connection: {reason} (publishes wait until it unblocks; {until})"
                ));
                if let Some(limit) = limit {
                    let generation = generation.clone();
                    let target = target.to_string();
                    tokio::spawn(async move {
                        tokio::time::sleep(limit).await;
                        if generation.load(Ordering::SeqCst) == now {
                            abort(
                                exit::TEMPFAIL,
                                format!(
                                    "the broker at {target} kept this connection blocked for {:.0} s ({reason}); free memory or disk space on the broker and try again",
                                    limit.as_secs_f64()
                                ),
                            );
                        }
                    });
                }
            }
            LinkEvent::Unblocked => {
                out.warn(&format!("the broker at {target} unblocked this connection"));
            }
        }
    }))
}
