//! Reconnecting, for the commands that run until stopped (`worker`, `receive` without an
//! end, `tail`, `rpc-serve`, `send` reading a stream).
//!
//! A lost connection (every error that maps to exit 69) is followed by attempts with
//! capped exponential backoff and jitter — the first within 100 ms, then doubling up to
//! about 5 s — across every broker URL, starting after the one just lost. One stderr
//! line per attempt says why the last one failed. The command itself re-declares,
//! re-binds and re-consumes: [`Link::recover`] only hands it a new session.
//!
//! Semantics (README "Reconnecting"): at-least-once. Deliveries unacked at the loss come
//! again (redelivered); a private queue misses what flowed during the gap.

use super::Ctx;
use super::signals::{interrupted, stop_signal};
use crate::client::Session;
use crate::exit::{self, coded};
use std::time::Duration;
use tokio::time::Instant;

/// The first retry comes within this (spread by jitter, so a cluster's clients do not
/// all knock at once).
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The backoff stops growing here.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether and how long to try again after a lost connection (global flags).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// `--no-reconnect`: a lost connection ends the command with 69 at once.
    pub(crate) disabled: bool,
    /// `--reconnect-timeout`: give up (69) when not reconnected within this.
    pub(crate) timeout: Option<Duration>,
}

/// A session that can be replaced after a loss.
pub(crate) struct Link<'a> {
    ctx: &'a Ctx,
    session: Session,
    /// Index of the URL in use (the next attempt starts after it).
    at: usize,
    /// Whether this command reconnects at all (`receive --count` does not).
    enabled: bool,
    /// Reconnections so far.
    pub(crate) reconnects: u64,
}

impl<'a> Link<'a> {
    /// Connect for the first time: this one fails at once (a script should not wait for
    /// a broker that was never there).
    pub(crate) async fn open(ctx: &'a Ctx, reconnects: bool) -> anyhow::Result<Link<'a>> {
        let (session, at) = Session::connect_from(&ctx.connect, 0).await?;
        Ok(Link {
            ctx,
            session,
            at,
            enabled: reconnects && !ctx.reconnect.disabled,
            reconnects: 0,
        })
    }

    /// A link over a session the command opened itself (to check something first).
    pub(crate) fn from_session(ctx: &'a Ctx, session: Session, reconnects: bool) -> Link<'a> {
        Link {
            ctx,
            session,
            at: 0,
            enabled: reconnects && !ctx.reconnect.disabled,
            reconnects: 0,
        }
    }

    /// The session in use.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// After `err`: when it is a lost connection and reconnecting is on, connect again
    /// (until `--reconnect-timeout`, or Ctrl-C) and return so the caller sets up again;
    /// anything else is handed back.
    pub(crate) async fn recover(&mut self, err: anyhow::Error) -> anyhow::Result<()> {
        if exit::code(&err) != exit::UNAVAILABLE || !self.enabled {
            return Err(err);
        }
        let out = &self.ctx.out;
        let lost_at = Instant::now();
        out.warn(&format!(
            "connection to {} lost: {err:#}; reconnecting",
            self.session.target()
        ));
        let deadline = self.ctx.reconnect.timeout.map(|t| lost_at + t);
        let mut cause = format!("{err:#}");
        for attempt in 1u32.. {
            let wait = backoff(attempt);
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                return Err(self.give_up(lost_at, &cause));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop_signal() => return Err(interrupted()),
            }
            let next = self.at + 1;
            let tried = tokio::select! {
                r = Session::connect_from(&self.ctx.connect, next) => r,
                () = stop_signal() => return Err(interrupted()),
                () = sleep_until(deadline) => return Err(self.give_up(lost_at, &cause)),
            };
            match tried {
                Ok((session, at)) => {
                    out.warn(&format!(
                        "reconnected to {} after {:.1} s (attempt {attempt})",
                        session.target(),
                        lost_at.elapsed().as_secs_f64()
                    ));
                    self.session = session;
                    self.at = at;
                    self.reconnects += 1;
                    return Ok(());
                }
                // A refused login or certificate will not get better by waiting.
                Err(e) if exit::code(&e) != exit::UNAVAILABLE => return Err(e),
                Err(e) => {
                    cause = format!("{e:#}");
                    out.warn(&format!(
                        "reconnect attempt {attempt} failed: {cause}; next in {:.1} s",
                        backoff(attempt + 1).as_secs_f64()
                    ));
                }
            }
        }
        unreachable!("the attempts loop only ends by returning")
    }

    fn give_up(&self, lost_at: Instant, cause: &str) -> anyhow::Error {
        coded(
            exit::UNAVAILABLE,
            format!(
                "gave up reconnecting after {:.1} s (--reconnect-timeout): {cause}",
                lost_at.elapsed().as_secs_f64()
            ),
        )
    }

    /// A warning line on stderr.
    pub(crate) fn warn(&self, text: &str) {
        self.ctx.out.warn(text);
    }

    /// Close politely.
    pub(crate) async fn close(self) {
        self.session.close().await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The wait before attempt `n` (from 1): 100 ms doubling to 5 s, each scaled by a
/// jitter in [0.5, 1].
fn backoff(n: u32) -> Duration {
    let base = FIRST_DELAY
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    base.mul_f64(0.5 + jitter() / 2.0)
}

/// A number in [0, 1) that differs between processes and calls; no need for a real RNG.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_under_100ms_and_caps_near_5s() {
        for _ in 0..100 {
            assert!(backoff(1) <= FIRST_DELAY);
            assert!(backoff(1) >= FIRST_DELAY / 2);
            assert!(backoff(30) <= MAX_DELAY);
            assert!(backoff(30) >= MAX_DELAY / 2);
        }
        assert!(backoff(3) > backoff(1));
    }
}
