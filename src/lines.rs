//! Bounded line reading for untrusted text files, shared by the target
//! layer (`@file` lists) and the import layer (JSONL, masscan JSON), and
//! which characters of untrusted text are never shown as they are, and
//! how untrusted bytes are escaped to printable ASCII ([`escape_bytes`]).
//!
//! `BufRead::lines` grows its buffer until it finds a newline, so a file
//! without one (`@/dev/zero`, a binary blob) takes all memory before the
//! first error. This reader stops at [`MAX_LINE`] bytes and says which line
//! was too long; memory stays bounded by one line whatever the input.

use std::io::{self, BufRead};

/// The longest line accepted: far above any real target spec, JSONL
/// observation or masscan record, far below what hurts.
pub const MAX_LINE: usize = 1 << 20;

/// C0, DEL and C1 controls, and the Unicode bidirectional formatting
/// characters (ALM, LRM, RLM, LRE…RLO, LRI…PDI: U+202E reverses what a
/// terminal shows), which untrusted text must not carry to a screen.
pub fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line} is longer than {max} bytes (is this a text file?)")]
    TooLong { line: usize, max: usize },
    #[error("line {line} is not valid UTF-8 text")]
    NotUtf8 { line: usize },
}

/// One line read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub text: &'a str,
    /// 1-based line number.
    pub no: usize,
    /// False when the file ended in the middle of this line (a cut file,
    /// or one written without a final newline).
    pub terminated: bool,
}

/// Reads lines of at most `max` bytes, one at a time.
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    line: usize,
    buf: Vec<u8>,
    terminated: bool,
}

impl<R: BufRead> BoundedLines<R> {
    pub fn new(reader: R, max: usize) -> Self {
        BoundedLines {
            reader,
            max,
            line: 0,
            buf: Vec::new(),
            terminated: true,
        }
    }

    /// The next line without its `\n` (or `\r\n`); `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        self.buf.clear();
        let mut any = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                self.terminated = false;
                break;
            }
            any = true;
            let (take, found) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if self.buf.len() + take > self.max {
                return Err(LineError::TooLong {
                    line: self.line + 1,
                    max: self.max,
                });
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.reader.consume(take + usize::from(found));
            if found {
                self.terminated = true;
                break;
            }
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let (no, terminated) = (self.line, self.terminated);
        std::str::from_utf8(&self.buf)
            .map(|text| {
                Some(Line {
                    text,
                    no,
                    terminated,
                })
            })
            .map_err(|_| LineError::NotUtf8 { line: no })
    }
}

/// Text from a file made inert and bounded: control characters (ANSI
/// escapes, CR) become U+FFFD, and more than `max` bytes are cut on a
/// character boundary, ending in `…`.
pub fn inert(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for c in s.chars() {
        let c = if unsafe_to_show(c) { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// Escapes bytes to printable ASCII: `\\`, `\r`, `\n`, `\t` and `\xNN` for
/// everything outside 0x20–0x7e. Stops before the output would exceed
/// `max_chars`, never in the middle of an escape.
pub fn escape_bytes(b: &[u8], max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(b.len() * 2));
    for &c in b {
        let piece: std::borrow::Cow<'static, str> = match c {
            b'\\' => "\\\\".into(),
            b'\r' => "\\r".into(),
            b'\n' => "\\n".into(),
            b'\t' => "\\t".into(),
            0x20..=0x7e => (c as char).to_string().into(),
            _ => format!("\\x{c:02x}").into(),
        };
        if out.len() + piece.len() > max_chars {
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_knows_an_unterminated_end() {
        let mut r = BoundedLines::new(&b"a\r\n\nbc"[..], 8);
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.text, l.no, l.terminated), ("a", 1, true));
        assert_eq!(r.next_line().unwrap().unwrap().text, "");
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.text, l.no, l.terminated), ("bc", 3, false));
        assert!(r.next_line().unwrap().is_none());
    }

    #[test]
    fn a_long_line_fails_without_reading_it_all() {
        // An endless source of zeros, like /dev/zero: must stop at the cap.
        let zeros = io::BufReader::with_capacity(4096, io::repeat(0));
        let mut r = BoundedLines::new(zeros, 1 << 16);
        let e = r.next_line().unwrap_err();
        assert!(matches!(e, LineError::TooLong { line: 1, .. }), "{e}");
        let mut r = BoundedLines::new(&b"ok\n\xff\xfe\n"[..], 64);
        r.next_line().unwrap();
        assert!(matches!(
            r.next_line().unwrap_err(),
            LineError::NotUtf8 { line: 2 }
        ));
    }
}
