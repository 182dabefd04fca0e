//! Progress bars for long sends and receives (indicatif), on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Operations shorter than this never show a bar (no flicker for a single message).
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A bar or spinner that may stay hidden; counting costs little either way.
pub struct Progress {
    /// indicatif's bar, drawing nowhere until the operation proves long.
    bar: ProgressBar,
    /// Whether this bar may ever be drawn (terminal, not `--quiet`).
    visible: bool,
    /// Set once the bar is drawn.
    shown: AtomicBool,
    /// When the operation began.
    started: Instant,
}

impl Progress {
    pub(super) fn new(visible: bool, total: Option<u64>, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = if total.is_some() {
            "{msg} {wide_bar} {human_pos}/{human_len} ({rate}, eta {eta})"
        } else {
            "{spinner} {msg} {human_pos} ({rate}, {elapsed})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            // A whole number of messages per second reads better than indicatif's decimals.
            bar.set_style(style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} msg/s", state.per_sec());
                },
            ));
        }
        bar.set_message(what.to_string());
        Progress {
            bar,
            visible,
            shown: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// One more done.
    pub fn inc(&self) {
        self.bar.inc(1);
        if self.visible
            && !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= SHOW_AFTER
        {
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    /// The bar itself, so notes can print above it.
    pub(super) fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
