//! The client's view of its channels (open, closed by the broker, mid-content), and the
//! channel each input goes to.

use super::super::wire::Rng;
use std::collections::HashMap;

/// A channel as the fuzzer's client believes the broker sees it; absent: not open.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Chan {
    /// The broker sent channel.close and drops everything but close/close-ok.
    pub(crate) closing: bool,
    /// The broker may be in the middle of a message's content on it (we sent a lone
    /// publish or content frame): content frames there prove nothing.
    pub(crate) confused: bool,
}

/// The client's view of its channels.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) chans: HashMap<u16, Chan>,
}

/// Channels a session uses; 8 is the channel_max `open_session` negotiates.
const CHANNELS: &[u16] = &[1, 2, 3, 8];
/// Channel numbers past channel_max, and 0 (where only connection methods belong).
pub(super) const ODD_CHANNELS: &[u16] = &[0, 9, 0xFFFF];

/// A channel that needs a close-ok (`true`) or that could be opened (`false`).
pub(super) fn housekeeping(model: &Model) -> Option<(u16, bool)> {
    let closing = CHANNELS
        .iter()
        .find(|c| model.chans.get(c).is_some_and(|s| s.closing));
    match closing {
        Some(ch) => Some((*ch, true)),
        None => CHANNELS
            .iter()
            .find(|c| !model.chans.contains_key(c))
            .map(|ch| (*ch, false)),
    }
}

/// A channel for an input: mostly one the model has open, else any the session uses,
/// now and then 0 or one past channel_max.
pub(super) fn channel(rng: &mut Rng, model: &Model) -> u16 {
    if rng.one_in(200) {
        return *rng.pick(ODD_CHANNELS);
    }
    let open: Vec<u16> = CHANNELS
        .iter()
        .copied()
        .filter(|c| model.chans.get(c).is_some_and(|s| !s.closing))
        .collect();
    if !open.is_empty() && rng.below(20) > 0 {
        *rng.pick(&open)
    } else {
        *rng.pick(CHANNELS)
    }
}

/// An open channel that is not in the middle of content, if there is one.
pub(super) fn idle_channel(rng: &mut Rng, model: &Model) -> Option<u16> {
    let idle: Vec<u16> = CHANNELS
        .iter()
        .copied()
        .filter(|c| {
            model
                .chans
                .get(c)
                .is_some_and(|s| !s.closing && !s.confused)
        })
        .collect();
    (!idle.is_empty()).then(|| *rng.pick(&idle))
}
