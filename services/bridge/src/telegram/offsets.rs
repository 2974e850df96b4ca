//! The getUpdates offset, advanced only over acknowledged updates (no I/O).
//!
//! Telegram confirms every update below the `offset` of the next `getUpdates` call. The
//! adapter therefore keeps, per polled batch, each update id with the [`AckWatch`] of its
//! message, in update order, and advances the offset over the acknowledged prefix only.
//! When a message's handle is dropped unacknowledged (the gateway link failed, the lease
//! ended) the rest of the batch is discarded and the next poll starts again from the first
//! unacknowledged update, so Telegram re-delivers it. Skipped updates (no text, not a
//! message) get an already-acked watch so they never block the offset.

use std::collections::VecDeque;

use crate::adapter::{AckState, AckWatch, InboundItem};

/// Poll state of one Telegram account.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// The `offset` for the next getUpdates call (0: whatever Telegram has).
    offset: i64,
    /// Updates handed out or skipped but not yet confirmed, in update order.
    outstanding: VecDeque<(i64, AckWatch)>,
    /// Messages polled but not yet handed out.
    ready: VecDeque<InboundItem>,
}

/// What [`OffsetTracker::settle`] found at the head of the outstanding updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Nothing outstanding: time to poll.
    Empty,
    /// The oldest outstanding message awaits its ack.
    Waiting,
    /// A message was not acknowledged; the batch was discarded.
    Rewound,
}

impl OffsetTracker {
    /// The offset to poll with.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Records a polled update: `Some(item)` to hand out, `None` for a skipped one.
    pub fn push(&mut self, update_id: i64, item: Option<(InboundItem, AckWatch)>) {
        if update_id < self.offset || self.outstanding.iter().any(|(id, _)| *id >= update_id) {
            // Already confirmed or already outstanding: Telegram never sends these in order,
            // but a buggy or replayed answer must not move the offset backwards.
            return;
        }
        match item {
            Some((item, watch)) => {
                self.outstanding.push_back((update_id, watch));
                self.ready.push_back(item);
            }
            None => self.outstanding.push_back((update_id, AckWatch::acked())),
        }
    }

    /// The next message to hand out, if one is ready.
    pub fn pop_ready(&mut self) -> Option<InboundItem> {
        self.ready.pop_front()
    }

    /// Advances the offset over the acknowledged prefix, discarding the batch when the
    /// head was dropped unacknowledged.
    pub fn settle(&mut self) -> Head {
        while let Some((id, watch)) = self.outstanding.front_mut() {
            match watch.state() {
                AckState::Acked => {
                    self.offset = *id + 1;
                    self.outstanding.pop_front();
                }
                AckState::Pending => return Head::Waiting,
                AckState::Dropped => {
                    self.rewind();
                    return Head::Rewound;
                }
            }
        }
        Head::Empty
    }

    /// The watch of the oldest outstanding update, to wait on.
    pub fn head_watch(&mut self) -> Option<&mut AckWatch> {
        self.outstanding.front_mut().map(|(_, watch)| watch)
    }

    /// How many messages are outstanding (handed out or ready, not confirmed).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Forgets everything after the confirmed offset; the next poll re-reads it.
    pub fn rewind(&mut self) {
        self.outstanding.clear();
        self.ready.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::AckHandle;
    use pincer_proto::v1::InboundMessage;

    fn item() -> (InboundItem, AckWatch) {
        let (ack, watch) = AckHandle::new();
        let item = InboundItem {
            message: InboundMessage::default(),
            ack,
        };
        (item, watch)
    }

    #[test]
    fn offset_advances_only_over_the_acked_prefix() {
        let mut t = OffsetTracker::default();
        t.push(10, Some(item()));
        t.push(11, None);
        t.push(12, Some(item()));
        let first = t.pop_ready().unwrap();
        let second = t.pop_ready().unwrap();
        assert!(t.pop_ready().is_none());
        assert_eq!(t.settle(), Head::Waiting);
        assert_eq!(t.offset(), 0);
        second.ack.ack();
        assert_eq!(t.settle(), Head::Waiting, "12 acked but 10 is not");
        assert_eq!(t.offset(), 0);
        first.ack.ack();
        assert_eq!(t.settle(), Head::Empty);
        assert_eq!(t.offset(), 13);
    }

    #[test]
    fn a_dropped_handle_rewinds_to_it() {
        let mut t = OffsetTracker::default();
        t.push(5, Some(item()));
        t.push(6, Some(item()));
        t.push(7, Some(item()));
        let a = t.pop_ready().unwrap();
        let b = t.pop_ready().unwrap();
        a.ack.ack();
        drop(b);
        assert_eq!(t.settle(), Head::Rewound);
        assert_eq!(t.offset(), 6);
        assert!(t.pop_ready().is_none(), "the rest of the batch is re-read");
        assert_eq!(t.settle(), Head::Empty);
    }

    #[test]
    fn skipped_updates_confirm_themselves_and_old_ids_are_ignored() {
        let mut t = OffsetTracker::default();
        t.push(3, None);
        t.push(4, None);
        assert_eq!(t.settle(), Head::Empty);
        assert_eq!(t.offset(), 5);
        t.push(4, Some(item()));
        assert!(t.pop_ready().is_none());
        assert_eq!(t.outstanding(), 0);
    }
}
