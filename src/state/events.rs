//! The event log behind `GET /v1/events` (docs/events.md): every published event gets the next
//! sequence number and is rendered once as a Server-Sent Events frame; the most recent frames
//! stay in a bounded buffer so that a client that reconnects with `Last-Event-ID` gets what it
//! missed. It is owned by the one events thread (`workers::events`), so it needs no lock.
//!
//! Ids are `<epoch>-<seq>`: `epoch` is random per process, so an id from before a restart is
//! recognised as such. A resume whose missed events are no longer all in the buffer (evicted,
//! or lost with the previous process) gets an `events.lost` frame first, then whatever of the
//! user's events the buffer still holds after its id. The buffer is global, bounded by a count
//! and a byte budget; per user it remembers only the highest sequence number evicted, which is
//! all it takes to tell a complete resume from one with a gap.

use crate::db::effects::Event;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One rendered event: `id:`, `event:` and `data:` lines and the blank line that ends it.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    pub user_id: i64,
    /// The event name (`task.updated`, ...), for filtering by scope.
    pub kind: &'static str,
    pub bytes: Vec<u8>,
}

/// What a stream that (re)connects must be sent before live events.
#[derive(Debug, Default)]
pub struct Resume {
    /// An `events.lost` frame, when some of the user's events after the client's id are gone.
    pub lost: Option<Vec<u8>>,
    /// The user's buffered frames after the client's id, oldest first.
    pub replay: Vec<Arc<Frame>>,
    /// The sequence number the stream is now complete up to: live frames at or below it were
    /// already sent (or predate the stream) and are skipped.
    pub upto: u64,
}

/// The bounded buffer of recent frames.
pub struct EventLog {
    epoch: String,
    next: u64,
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    /// Per user, the highest sequence number evicted from the buffer.
    evicted: HashMap<i64, u64>,
}

/// `{"type": …, "data": …}`: the seed's WebSocket message, sent as an SSE frame's data.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a Value,
}

impl EventLog {
    /// An empty log keeping at most `max_frames` frames and `max_bytes` bytes of them (the
    /// newest frame is always kept). `epoch` prefixes every id (random per process).
    pub fn new(epoch: String, max_frames: usize, max_bytes: usize) -> EventLog {
        EventLog {
            epoch,
            next: 1,
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
            evicted: HashMap::new(),
        }
    }

    /// The id of sequence number `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// The last sequence number given out (0 before the first event).
    pub fn head(&self) -> u64 {
        self.next - 1
    }

    /// Frames and bytes held now.
    pub fn len(&self) -> (usize, usize) {
        (self.frames.len(), self.bytes)
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Renders `e` with the next sequence number, keeps it, evicts the oldest frames past the
    /// bounds and returns it.
    pub fn push(&mut self, e: &Event) -> Arc<Frame> {
        let seq = self.next;
        self.next += 1;
        let kind = e.kind.as_str();
        let frame = Arc::new(Frame {
            seq,
            user_id: e.user_id,
            kind,
            bytes: self.render(seq, kind, &e.data),
        });
        self.bytes += frame.bytes.len();
        self.frames.push_back(frame.clone());
        while self.frames.len() > 1
            && (self.frames.len() > self.max_frames || self.bytes > self.max_bytes)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.bytes.len();
                self.evicted.insert(old.user_id, old.seq);
            }
        }
        frame
    }

    /// One SSE frame. The JSON has no raw newline (serde_json escapes them), so one `data:`
    /// line holds it.
    fn render(&self, seq: u64, kind: &str, data: &Value) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + kind.len() * 2);
        out.extend_from_slice(format!("id: {}\nevent: {kind}\ndata: ", self.id(seq)).as_bytes());
        if serde_json::to_writer(&mut out, &Message { kind, data }).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
        out
    }

    /// What a stream of `user_id` that last saw `last_event_id` (none: a fresh stream, which
    /// starts with the next event) must be sent first.
    pub fn resume(&self, user_id: i64, last_event_id: Option<&str>) -> Resume {
        let head = self.head();
        let Some(given) = last_event_id.map(str::trim).filter(|s| !s.is_empty()) else {
            return Resume {
                upto: head,
                ..Resume::default()
            };
        };
        let evicted = self.evicted.get(&user_id).copied().unwrap_or(0);
        let parsed = given
            .split_once('-')
            .filter(|(epoch, _)| *epoch == self.epoch)
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .filter(|seq| *seq <= head);
        let (after, lost) = match parsed {
            Some(seq) if seq >= evicted => (seq, None),
            Some(seq) => (seq, Some("buffer")),
            // An id of another process (a restart), or not one of ours: whatever the client
            // saw last, what came since is not all here.
            None => (0, Some("restart")),
        };
        let replay: Vec<Arc<Frame>> = self
            .frames
            .iter()
            .filter(|f| f.user_id == user_id && f.seq > after)
            .cloned()
            .collect();
        let lost = lost.map(|reason| {
            // Its id is the last of the user's events that is gone: a client that reconnects
            // from it resumes without a second `events.lost`.
            let data = json!({"last_event_id": given, "reason": reason});
            self.render(evicted.min(head), "events.lost", &data)
        });
        Resume {
            lost,
            replay,
            upto: head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::effects::EventKind;

    fn ev(user_id: i64, n: i64) -> Event {
        Event {
            user_id,
            kind: EventKind::TaskUpdated,
            data: json!({ "n": n }),
        }
    }

    fn seqs(r: &Resume) -> Vec<u64> {
        r.replay.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn frames_are_sse_with_the_seed_message() {
        let mut log = EventLog::new("ab".into(), 8, 1 << 20);
        let f = log.push(&ev(1, 7));
        let text = String::from_utf8(f.bytes.clone()).expect("utf-8");
        assert_eq!(
            text,
            "id: ab-1\nevent: task.updated\ndata: {\"type\":\"task.updated\",\"data\":{\"n\":7}}\n\n"
        );
    }

    #[test]
    fn resume_replays_only_the_users_events_after_the_id() {
        let mut log = EventLog::new("e".into(), 100, 1 << 20);
        for i in 0..6 {
            log.push(&ev(1 + i % 2, i));
        }
        // user 1 has 1, 3, 5; user 2 has 2, 4, 6
        let r = log.resume(1, Some("e-1"));
        assert_eq!((seqs(&r), r.lost.is_none(), r.upto), (vec![3, 5], true, 6));
        assert!(
            log.resume(2, None).replay.is_empty(),
            "fresh streams start now"
        );
        assert_eq!(log.resume(2, None).upto, 6);
    }

    #[test]
    fn a_gap_is_announced_once() {
        let mut log = EventLog::new("e".into(), 3, 1 << 20);
        for i in 0..6 {
            log.push(&ev(1, i));
        }
        // 1, 2, 3 were evicted.
        let r = log.resume(1, Some("e-1"));
        let lost = String::from_utf8(r.lost.clone().expect("a gap")).expect("utf-8");
        assert!(lost.starts_with("id: e-3\nevent: events.lost\n"), "{lost}");
        assert!(lost.contains("\"reason\":\"buffer\""), "{lost}");
        assert_eq!(seqs(&r), vec![4, 5, 6]);
        // Resuming from the lost frame's id (or later) is complete.
        assert!(log.resume(1, Some("e-3")).lost.is_none());
        // Another user lost nothing.
        assert!(log.resume(2, Some("e-1")).lost.is_none());
    }

    #[test]
    fn ids_of_another_process_or_garbage_are_a_gap() {
        let mut log = EventLog::new("now".into(), 10, 1 << 20);
        log.push(&ev(1, 0));
        for id in ["before-1", "garbage", "now-99"] {
            let r = log.resume(1, Some(id));
            assert!(r.lost.is_some(), "{id}");
            assert_eq!(seqs(&r), vec![1], "{id}: everything buffered is replayed");
        }
    }

    #[test]
    fn the_byte_budget_bounds_the_buffer() {
        let mut log = EventLog::new("e".into(), 1000, 300);
        for i in 0..20 {
            log.push(&ev(1, i));
        }
        let (n, bytes) = log.len();
        assert!(bytes <= 300 && n >= 1, "{n} frames, {bytes} bytes");
        assert_eq!(log.head(), 20);
    }
}
