//! Stream framing: turns the bytes of a chunked HTTP body, cut anywhere, into messages.
//!
//! Two framings: `\r\n`-terminated JSON (a bare `\r\n` is a keep-alive), and v1.1
//! `delimited=length` (a decimal byte count line, then that many bytes). A message over the
//! size limit is skipped without being buffered; a length line that is not a number makes the
//! decoder fall back to line framing until the next delimiter, so one bad frame never derails
//! the rest of the stream.

use bytes::{Buf, Bytes, BytesMut};

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One message, without its trailing `\r\n`.
    Message(Bytes),
    KeepAlive,
    /// A message over the limit was skipped; `excerpt` is its first bytes.
    Oversized {
        len: usize,
        excerpt: Bytes,
    },
    /// A `delimited=length` header that was not a number (the line is then read as a message).
    BadLength {
        excerpt: Bytes,
    },
}

impl Frame {
    /// A whole message as a frame: a message, or oversized past `max` bytes.
    pub fn whole(bytes: Bytes, max: usize) -> Frame {
        if bytes.len() > max {
            return Frame::Oversized {
                len: bytes.len(),
                excerpt: bytes.slice(..bytes.len().min(EXCERPT)),
            };
        }
        Frame::Message(bytes)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Lines,
    Length,
}

#[derive(Debug)]
enum State {
    /// Looking for the next line (a message, or in length mode a length header).
    Line,
    /// Length mode: waiting for `remaining` bytes of a message.
    Body { len: usize },
    /// Discarding an oversized message: `remaining` bytes (length mode) or up to the next `\n`.
    Skip {
        remaining: Option<usize>,
        len: usize,
        excerpt: Bytes,
    },
}

/// An incremental decoder; feed it chunks, take frames out.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    max: usize,
    buf: BytesMut,
    state: State,
}

const EXCERPT: usize = 80;

impl Decoder {
    pub fn new(framing: Framing, max_message_bytes: usize) -> Self {
        Self {
            framing,
            max: max_message_bytes,
            buf: BytesMut::with_capacity(64 * 1024),
            state: State::Line,
        }
    }

    /// Add bytes from the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for an incomplete message (what a dropped connection loses).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forget any partial message (after a disconnect: the next connection starts clean).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.state = State::Line;
    }

    /// The next complete frame, if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let step = match self.state {
                State::Line => self.line_step(),
                State::Body { len } => self.body_step(len),
                State::Skip { .. } => self.skip_step(),
            };
            match step {
                Step::Frame(frame) => return Some(frame),
                Step::NeedMore => return None,
                Step::Again => {}
            }
        }
    }

    /// Looking for a line: a message, a keep-alive, or (length mode) a length header.
    fn line_step(&mut self) -> Step {
        let Some(nl) = memchr::memchr(b'\n', &self.buf) else {
            if self.buf.len() > self.max {
                let excerpt = Bytes::copy_from_slice(&self.buf[..EXCERPT.min(self.buf.len())]);
                let len = self.buf.len();
                self.buf.clear();
                self.state = State::Skip {
                    remaining: None,
                    len,
                    excerpt,
                };
                return Step::Again;
            }
            return Step::NeedMore;
        };
        let mut line = self.buf.split_to(nl + 1).freeze();
        line.truncate(nl);
        if line.last() == Some(&b'\r') {
            line.truncate(nl - 1);
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Step::Frame(Frame::KeepAlive);
        }
        if self.framing == Framing::Lines {
            return Step::Frame(self.message(line));
        }
        // Length mode: this line should be a byte count.
        match parse_len(&line) {
            Some(len) if len > self.max => {
                self.state = State::Skip {
                    remaining: Some(len),
                    len,
                    excerpt: Bytes::new(),
                };
                Step::Again
            }
            Some(len) => {
                self.state = State::Body { len };
                Step::Again
            }
            // Resync: not a length; X sometimes sends plain lines. Pass the line on as a
            // message so it is classified (and counted) like any other.
            None if line.first() == Some(&b'{') => Step::Frame(self.message(line)),
            None => Step::Frame(Frame::BadLength {
                excerpt: line.slice(..line.len().min(EXCERPT)),
            }),
        }
    }

    /// A whole line as a message, or as oversized past the limit.
    fn message(&self, line: Bytes) -> Frame {
        Frame::whole(line, self.max)
    }

    /// Length mode: a message's `len` bytes, once they are all here.
    fn body_step(&mut self, len: usize) -> Step {
        if self.buf.len() < len {
            return Step::NeedMore;
        }
        let mut msg = self.buf.split_to(len).freeze();
        self.state = State::Line;
        while matches!(msg.last(), Some(b'\n') | Some(b'\r')) {
            msg.truncate(msg.len() - 1);
        }
        if msg.is_empty() {
            return Step::Frame(Frame::KeepAlive);
        }
        Step::Frame(Frame::Message(msg))
    }

    /// Discarding an oversized message, without buffering it: its remaining bytes (length
    /// mode) or up to the next `\n`.
    fn skip_step(&mut self) -> Step {
        let State::Skip {
            remaining,
            len,
            excerpt,
        } = &mut self.state
        else {
            return Step::Again;
        };
        match remaining {
            Some(rem) => {
                let take = (*rem).min(self.buf.len());
                if excerpt.is_empty() && take > 0 {
                    *excerpt = Bytes::copy_from_slice(&self.buf[..take.min(EXCERPT)]);
                }
                self.buf.advance(take);
                *rem -= take;
                if *rem > 0 {
                    return Step::NeedMore;
                }
            }
            None => match memchr::memchr(b'\n', &self.buf) {
                Some(nl) => {
                    *len += nl;
                    self.buf.advance(nl + 1);
                }
                None => {
                    *len += self.buf.len();
                    self.buf.clear();
                    return Step::NeedMore;
                }
            },
        }
        let frame = Frame::Oversized {
            len: *len,
            excerpt: std::mem::take(excerpt),
        };
        self.state = State::Line;
        Step::Frame(frame)
    }
}

/// What one step of the decoder did.
enum Step {
    Frame(Frame),
    /// The buffer holds no whole frame yet.
    NeedMore,
    /// The state changed: step again.
    Again,
}

fn parse_len(line: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(line).ok()?.trim();
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(framing: Framing, max: usize, input: &[u8], piece: usize) -> Vec<Frame> {
        let mut d = Decoder::new(framing, max);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            d.feed(chunk);
            while let Some(f) = d.next_frame() {
                out.push(f);
            }
        }
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_split_anywhere_give_the_same_frames() {
        let input = "{\"a\":\"é😂\"}\r\n\r\n{\"b\":2}\r\n\n{\"c\":3}\r\n".as_bytes();
        let expected = vec![
            msg("{\"a\":\"é😂\"}"),
            Frame::KeepAlive,
            msg("{\"b\":2}"),
            Frame::KeepAlive,
            msg("{\"c\":3}"),
        ];
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(Framing::Lines, 1024, input, piece),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn length_framing_split_anywhere() {
        let m1 = "{\"x\":\"a\\r\\nb\"}\r\n";
        let m2 = "{\"y\":1}\r\n";
        let input = format!("\r\n{}\r\n{m1}{}\r\n{m2}", m1.len(), m2.len());
        let expected = vec![
            Frame::KeepAlive,
            msg("{\"x\":\"a\\r\\nb\"}"),
            msg("{\"y\":1}"),
        ];
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(Framing::Length, 1024, input.as_bytes(), piece),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn oversized_lines_are_skipped_and_the_stream_resyncs() {
        let big = format!("{{\"big\":\"{}\"}}", "x".repeat(5000));
        let input = format!("{{\"a\":1}}\r\n{big}\r\n{{\"b\":2}}\r\n");
        for piece in [1, 7, 100, 10_000] {
            let frames = decode_in_pieces(Framing::Lines, 1024, input.as_bytes(), piece);
            assert_eq!(frames.len(), 3, "piece {piece}: {frames:?}");
            assert_eq!(frames[0], msg("{\"a\":1}"));
            assert!(
                matches!(&frames[1], Frame::Oversized { len, excerpt } if *len >= 5000 && excerpt.starts_with(b"{\"big\"")),
                "{:?}",
                frames[1]
            );
            assert_eq!(frames[2], msg("{\"b\":2}"));
        }
    }

    #[test]
    fn oversized_length_frames_are_skipped_without_buffering() {
        let big = format!("{{\"big\":\"{}\"}}\r\n", "x".repeat(5000));
        let input = format!("{}\r\n{big}9\r\n{{\"b\":2}}\r\n", big.len());
        for piece in [1, 13, 4096] {
            let mut d = Decoder::new(Framing::Length, 1024);
            let mut frames = Vec::new();
            for chunk in input.as_bytes().chunks(piece) {
                d.feed(chunk);
                assert!(
                    d.pending() <= 1024 + piece + 16,
                    "buffered {} bytes",
                    d.pending()
                );
                while let Some(f) = d.next_frame() {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 2, "{frames:?}");
            assert!(matches!(&frames[0], Frame::Oversized { len, .. } if *len == big.len()));
            assert_eq!(frames[1], msg("{\"b\":2}"));
        }
    }

    #[test]
    fn bad_length_line_resyncs() {
        let input = b"abc\r\n{\"plain\":1}\r\n8\r\n{\"a\":1}\r\n";
        let frames = decode_in_pieces(Framing::Length, 1024, input, 3);
        assert!(matches!(&frames[0], Frame::BadLength { excerpt } if excerpt.as_ref() == b"abc"));
        assert_eq!(frames[1], msg("{\"plain\":1}"));
        assert_eq!(frames[2], msg("{\"a\":1}"));
    }

    #[test]
    fn reset_drops_partial_messages() {
        let mut d = Decoder::new(Framing::Lines, 1024);
        d.feed(b"{\"partial\":");
        assert_eq!(d.next_frame(), None);
        assert!(d.pending() > 0);
        d.reset();
        d.feed(b"{\"a\":1}\r\n");
        assert_eq!(d.next_frame(), Some(msg("{\"a\":1}")));
    }
}
