//! The application's output: its stdout and stderr are a pipe that init reads and copies to
//! the console, so the application never writes to a channel the host parses, and cannot
//! flood the console log. What passes is capped by a token bucket (a burst, then a steady
//! rate, in console bytes); what does not is counted and the count said on the console.
//! Bytes other than printable ASCII, newline and tab are written as `\xNN`, so no terminal
//! escape sequence and no NUL reaches the log.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The console's steady share for the application, in bytes per second (a 115200-baud
/// serial line carries about 11 KiB/s).
pub const RATE: u64 = 8 * 1024;
/// What may pass at once after a quiet period.
pub const BURST: u64 = 64 * 1024;
const CHUNK: usize = 4096;

/// The token bucket, with time passed in so tests need not sleep.
#[derive(Debug)]
pub struct Limiter {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
    dropped: u64,
}

impl Limiter {
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self { rate, burst, tokens: burst, last: now, dropped: 0 }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let earned = (elapsed.as_millis() as u64).saturating_mul(self.rate) / 1000;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            self.last = now;
        }
    }

    /// What to write to the console for `chunk` read at `now`: a note of what was dropped
    /// before, if there is room again, then as much of the escaped chunk as the bucket allows.
    pub fn admit(&mut self, chunk: &[u8], now: Instant) -> Vec<u8> {
        self.refill(now);
        let mut out = Vec::new();
        if self.dropped > 0 {
            let note = dropped_note(self.dropped);
            if self.tokens >= note.len() as u64 {
                self.tokens -= note.len() as u64;
                out.extend_from_slice(note.as_bytes());
                self.dropped = 0;
            }
        }
        for &byte in chunk {
            let mut escaped = [0u8; 4];
            let escaped = escape(byte, &mut escaped);
            if self.dropped == 0 && self.tokens >= escaped.len() as u64 {
                self.tokens -= escaped.len() as u64;
                out.extend_from_slice(escaped);
            } else {
                // Once dropping, drop until the note can be written: what is kept is never
                // mistaken for being contiguous.
                self.dropped += 1;
            }
        }
        out
    }

    /// The note for what was dropped and not yet said, when the output ends.
    pub fn finish(&mut self) -> Option<String> {
        (self.dropped > 0).then(|| dropped_note(std::mem::take(&mut self.dropped)))
    }
}

fn dropped_note(dropped: u64) -> String {
    format!("\n[sdsec: {dropped} bytes of application output dropped: more than {RATE} bytes/s]\n")
}

fn escape(byte: u8, buf: &mut [u8; 4]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'\n' | b'\t' | 0x20..=0x7e if byte != b'\\' => {
            buf[0] = byte;
            &buf[..1]
        }
        // A backslash is doubled, so that `\x1b` in the log is always an escaped byte.
        b'\\' => {
            buf[..2].copy_from_slice(b"\\\\");
            &buf[..2]
        }
        _ => {
            *buf = [b'\\', b'x', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            &buf[..]
        }
    }
}

/// Copies `from` to `to` until `from` ends, on a thread of its own.
pub fn spawn(from: impl Read + Send + 'static, to: impl Write + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("app-output".into())
        .spawn(move || copy(from, to, Limiter::new(RATE, BURST, Instant::now())))?;
    Ok(())
}

fn copy(mut from: impl Read, mut to: impl Write, mut limiter: Limiter) {
    let mut chunk = [0u8; CHUNK];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let out = limiter.admit(&chunk[..n], Instant::now());
                let _ = to.write_all(&out).and_then(|()| to.flush());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                break;
            }
        }
    }
    if let Some(note) = limiter.finish() {
        let _ = to.write_all(note.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_but_printable_ascii() {
        let mut limiter = Limiter::new(RATE, BURST, Instant::now());
        let out = limiter.admit(b"ok\t{\"event\"}\n\x1b[2J\r\0\\x\xff", Instant::now());
        assert_eq!(out, b"ok\t{\"event\"}\n\\x1b[2J\\x0d\\x00\\\\x\\xff");
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate_and_the_loss_is_said() {
        let start = Instant::now();
        let mut limiter = Limiter::new(1000, 4000, start);
        let flood = vec![b'a'; 10_000];
        assert_eq!(limiter.admit(&flood, start).len(), 4000);
        // Nothing more passes until there is room for the note, and then it comes first.
        assert!(limiter.admit(&flood, start + Duration::from_millis(10)).is_empty());
        let later = limiter.admit(b"next\n", start + Duration::from_secs(2));
        let text = String::from_utf8(later).unwrap();
        assert!(text.starts_with("\n[sdsec: 16000 bytes of application output dropped"), "{text}");
        assert!(text.ends_with("]\nnext\n"), "{text}");
        // A long quiet period earns the burst, never more.
        assert_eq!(limiter.admit(&flood, start + Duration::from_secs(3600)).len(), 4000);
        assert!(limiter.finish().is_some_and(|note| note.contains("6000 bytes")));
    }

    #[test]
    fn the_copy_ends_with_the_pipe_and_reports_what_it_dropped() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = Sink(std::sync::Arc::clone(&sink));
        let copier = std::thread::spawn(move || copy(reader, out, Limiter::new(10, 100, Instant::now())));
        writer.write_all(&[b'z'; 1000]).unwrap();
        drop(writer);
        copier.join().unwrap();
        let text = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with(&"z".repeat(100)), "{text}");
        assert!(text.contains("900 bytes of application output dropped"), "{text}");
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
