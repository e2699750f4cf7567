//! `Backlog`: the output a detached web session is sent while its page is away
//! (a reload, a dropped network), kept up to a byte bound so the page can show
//! it when it resumes.
//!
//! Plain data, no actor and no clock: the `PortalSessionHandler` pushes into it
//! and takes it out on a resume. It never holds more than its bound, whatever
//! the game sends, so a page that never comes back costs at most that.

use std::collections::VecDeque;

use crate::protocols::link::Output;

/// What a resumed page is given: the kept output, oldest first, and whether
/// older output had to make room for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    pub outputs: Vec<Output>,
    /// Some output did not fit the bound and is gone; the page is told so.
    pub dropped: bool,
}

/// The newest output of one detached session, at most `limit` bytes of it.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// Each output with the bytes it counts for.
    items: VecDeque<(Output, usize)>,
    bytes: usize,
    limit: usize,
    dropped: bool,
}

impl Backlog {
    /// An empty backlog that keeps at most `limit` bytes (0 keeps nothing).
    pub fn new(limit: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            limit,
            dropped: false,
        }
    }

    /// Keeps `output`, dropping the oldest outputs until it fits. An output
    /// larger than the whole bound is dropped itself.
    pub fn push(&mut self, output: Output) {
        let cost = cost(&output);
        if cost > self.limit {
            self.dropped = true;
            return;
        }
        while self.bytes + cost > self.limit {
            let Some((_, old)) = self.items.pop_front() else {
                break;
            };
            self.bytes -= old;
            self.dropped = true;
        }
        self.bytes += cost;
        self.items.push_back((output, cost));
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties the backlog and answers what it held.
    pub fn take(&mut self) -> Replay {
        self.bytes = 0;
        Replay {
            outputs: self.items.drain(..).map(|(output, _)| output).collect(),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

/// The bytes an output counts for: its text, or an out-of-band message's name
/// and JSON. Never 0, so no number of empty outputs is unbounded.
fn cost(output: &Output) -> usize {
    let bytes = match output {
        Output::Text(text) | Output::Prompt(text) => text.len(),
        Output::Echo(_) => 0,
        Output::Oob(msg) => {
            let args = serde_json::to_vec(&msg.args).map_or(0, |v| v.len());
            let kwargs = serde_json::to_vec(&msg.kwargs).map_or(0, |v| v.len());
            msg.name.len() + args + kwargs
        }
    };
    bytes.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::link::OobMessage;

    fn text(s: &str) -> Output {
        Output::Text(s.to_owned())
    }

    #[test]
    fn everything_within_the_bound_comes_back_in_order() {
        let mut backlog = Backlog::new(100);
        backlog.push(text("one"));
        backlog.push(Output::Prompt("> ".into()));
        backlog.push(text("two"));
        assert_eq!(backlog.bytes(), 8);
        assert_eq!(
            backlog.take(),
            Replay {
                outputs: vec![text("one"), Output::Prompt("> ".into()), text("two")],
                dropped: false,
            }
        );
        assert_eq!(backlog.bytes(), 0);
        assert_eq!(backlog.take(), Replay::default());
    }

    #[test]
    fn the_oldest_output_makes_room_and_the_loss_is_reported() {
        let mut backlog = Backlog::new(10);
        for word in ["aaaa", "bbbb", "cccc"] {
            backlog.push(text(word));
        }
        assert_eq!(backlog.bytes(), 8);
        let replay = backlog.take();
        assert_eq!(replay.outputs, vec![text("bbbb"), text("cccc")]);
        assert!(replay.dropped);
        // Reported once: the next replay starts clean.
        backlog.push(text("dddd"));
        assert!(!backlog.take().dropped);
    }

    #[test]
    fn an_output_larger_than_the_bound_is_dropped_and_the_rest_kept() {
        let mut backlog = Backlog::new(10);
        backlog.push(text("keep"));
        backlog.push(text(&"x".repeat(11)));
        let replay = backlog.take();
        assert_eq!(replay.outputs, vec![text("keep")]);
        assert!(replay.dropped);
    }

    #[test]
    fn a_zero_bound_keeps_nothing_and_empty_outputs_still_count() {
        let mut off = Backlog::new(0);
        off.push(text(""));
        assert_eq!(off.take().outputs, Vec::<Output>::new());

        let mut backlog = Backlog::new(3);
        for _ in 0..1000 {
            backlog.push(Output::Echo(true));
        }
        assert_eq!(backlog.take().outputs.len(), 3);
    }

    #[test]
    fn an_out_of_band_message_counts_its_name_and_json() {
        let msg = OobMessage {
            name: "logged_in".into(),
            args: vec![serde_json::json!("x")],
            kwargs: serde_json::Map::new(),
        };
        // "logged_in" + ["x"] + {}
        assert_eq!(cost(&Output::Oob(msg)), 9 + 5 + 2);
    }
}
