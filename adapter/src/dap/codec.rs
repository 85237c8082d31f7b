//! DAP framing: `Content-Length: N\r\n\r\n` followed by N bytes of JSON.
//!
//! [`read_frame`] reads one message body from any `BufRead`; problems with
//! one message (a missing or bad header, a body over [`MAX_BODY`]) are
//! returned as [`FrameError::Bad`] after the offending bytes were consumed,
//! so the caller can report them and read the next message. An oversized
//! body is skipped in small chunks, never allocated. [`encode_frame`] is the
//! other direction.

use std::io::BufRead;

/// Largest message body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest header block accepted, in bytes.
const MAX_HEADER: usize = 8 * 1024;

#[derive(Debug)]
pub enum FrameError {
    /// The stream ended (cleanly between messages, or mid-message).
    Eof,
    /// This message was unusable and has been skipped; the stream goes on.
    Bad(String),
    /// Reading failed; the session cannot go on.
    Io(std::io::Error),
}

/// Reads one header line (up to and without its `\r\n` or `\n`), refusing
/// to buffer more than `budget` bytes.
fn header_line(r: &mut impl BufRead, budget: &mut usize) -> Result<String, FrameError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().map_err(FrameError::Io)?;
        if buf.is_empty() {
            return Err(FrameError::Eof);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        if n > *budget {
            r.consume(n);
            return Err(FrameError::Bad(String::from("header too long")));
        }
        *budget -= n;
        line.extend_from_slice(chunk);
        r.consume(n);
        if done {
            break;
        }
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads the next message body.
pub fn read_frame(r: &mut impl BufRead) -> Result<Vec<u8>, FrameError> {
    let mut budget = MAX_HEADER;
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_any = false;
    loop {
        let line = match header_line(r, &mut budget) {
            Ok(l) => l,
            Err(FrameError::Bad(m)) => {
                // Skip to the end of this header block.
                loop {
                    let mut b = MAX_HEADER;
                    match header_line(r, &mut b) {
                        Ok(l) if l.is_empty() => break,
                        Ok(_) | Err(FrameError::Bad(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                return Err(FrameError::Bad(m));
            }
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            if !saw_any {
                continue; // stray blank line between messages
            }
            break;
        }
        saw_any = true;
        let Some((name, value)) = line.split_once(':') else {
            length = Some(Err(format!("malformed header line {line:?}")));
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {:?}", value.trim())),
            );
        }
    }
    let len = match length {
        None => {
            return Err(FrameError::Bad(String::from(
                "missing Content-Length header",
            )))
        }
        Some(Err(m)) => return Err(FrameError::Bad(m)),
        Some(Ok(n)) => n,
    };
    if len > MAX_BODY {
        skip(r, len)?;
        return Err(FrameError::Bad(format!(
            "message of {len} bytes refused (limit {MAX_BODY})"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Eof,
        _ => FrameError::Io(e),
    })?;
    Ok(body)
}

/// Discards `n` bytes without holding them.
fn skip(r: &mut impl BufRead, mut n: usize) -> Result<(), FrameError> {
    while n > 0 {
        let buf = r.fill_buf().map_err(FrameError::Io)?;
        if buf.is_empty() {
            return Err(FrameError::Eof);
        }
        let k = buf.len().min(n);
        r.consume(k);
        n -= k;
    }
    Ok(())
}

/// One message with its header, ready to be written in one call.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// Hands out its input a few bytes at a time, like a slow pipe.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    fn reader(s: &[u8]) -> BufReader<Trickle> {
        BufReader::with_capacity(5, Trickle(s.to_vec(), 0))
    }

    #[test]
    fn reads_messages_split_in_small_chunks() {
        let mut r = reader(b"Content-Length: 2\r\n\r\n{}Content-Length: 3\r\nX: y\r\n\r\n[1]");
        assert_eq!(read_frame(&mut r).unwrap(), b"{}");
        assert_eq!(read_frame(&mut r).unwrap(), b"[1]");
        assert!(matches!(read_frame(&mut r), Err(FrameError::Eof)));
    }

    #[test]
    fn bad_headers_are_skipped_and_reading_goes_on() {
        let mut r = reader(b"Content-Length: x\r\n\r\nnonsense\r\n\r\nContent-Length: 2\r\n\r\n{}");
        assert!(matches!(read_frame(&mut r), Err(FrameError::Bad(_))));
        // "nonsense" is a header block without Content-Length.
        assert!(matches!(read_frame(&mut r), Err(FrameError::Bad(_))));
        assert_eq!(read_frame(&mut r).unwrap(), b"{}");
    }

    #[test]
    fn oversized_bodies_are_skipped_without_allocating_them() {
        let big = MAX_BODY + 10;
        let mut input = format!("Content-Length: {big}\r\n\r\n").into_bytes();
        input.resize(input.len() + big, b' ');
        input.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
        let mut r = BufReader::new(&input[..]);
        match read_frame(&mut r) {
            Err(FrameError::Bad(m)) => assert!(m.contains("refused"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_frame(&mut r).unwrap(), b"{}");
    }

    #[test]
    fn endless_header_is_refused() {
        let mut input = vec![b'a'; MAX_HEADER * 3];
        input.extend_from_slice(b"\r\n\r\nContent-Length: 2\r\n\r\n{}");
        let mut r = BufReader::new(&input[..]);
        assert!(matches!(read_frame(&mut r), Err(FrameError::Bad(_))));
        assert_eq!(read_frame(&mut r).unwrap(), b"{}");
    }
}
