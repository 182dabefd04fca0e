//! Progress bars for long sends and receives (indicatif), on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A bar or spinner that may be hidden; counting costs little either way.
pub struct Progress {
    /// indicatif's bar (a hidden one when not on a terminal).
    bar: ProgressBar,
}

impl Progress {
    pub(super) fn new(visible: bool, total: Option<u64>, what: &str) -> Progress {
        if !visible {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if total.is_some() {
            "{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta})"
        } else {
            "{spinner} {msg} {pos} ({per_sec})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        // Appear only for long operations: short ones finish before the first tick.
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar }
    }

    /// One more done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
