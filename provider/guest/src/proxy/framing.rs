//! How the application's answers are framed, read strictly.
//!
//! The application is not trusted: an answer whose end could be read two ways (two lengths,
//! a length and chunked, a malformed chunk size) would let what follows it on a kept-alive
//! connection pass for the answer to the next request, someone else's. Such an answer is
//! refused whole (the client gets 502 and the connection is closed), and an answer that is
//! well-formed but leaves doubt about what follows it (bytes after its end, a `204` with a
//! length) is passed on but its connection is not used again.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Most header lines in one answer head, as hyper allows.
const MAX_HEADERS: usize = 100;
/// The largest answer head taken (nginx's default is 4 or 8 KiB; hyper's 400 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line (size and extensions) and longest trailer section.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the answer head could not be parsed")]
    Unparsable,
    #[error("the answer head is larger than allowed")]
    HeadTooLarge,
    #[error("the answer switches protocols, which the runtime never asked for")]
    UnaskedUpgrade,
    #[error("the answer has both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("the answer has more than one Content-Length")]
    SeveralLengths,
    #[error("the answer's Content-Length is not a plain number")]
    InvalidLength,
    #[error("the answer's Transfer-Encoding is not a single `chunked`")]
    UnsupportedTransferEncoding,
    #[error("a chunk of the answer is malformed")]
    InvalidChunk,
    #[error("the answer's chunk line or trailers are longer than allowed")]
    ChunkLineTooLong,
}

/// Where the answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body, whatever the headers say (`HEAD`, `204`, `304`) or a length of zero.
    Empty,
    Length(u64),
    Chunked,
    /// Until the application closes the connection.
    UntilClose,
}

/// One answer head, its header values sharing the bytes they were read in.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body has been read.
    pub reusable: bool,
}

/// Parses the answer head at the start of `buf`, taking it out of `buf` when complete.
/// `Ok(None)`: not all in yet. Interim (`1xx`) answers are returned like any other: the
/// caller skips them.
pub fn parse_head(buf: &mut BytesMut, to_head_request: bool) -> Result<Option<ResponseHead>, FramingError> {
    // Where each name and value lie in `buf`, so that the values can share the bytes once the
    // head is taken out of it (httparse's slices borrow `buf`). The header array is left
    // uninitialised: zeroing a hundred entries cost more than parsing a small head.
    let (len, code, minor, spans) = {
        let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed =
            httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut lines);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
            Ok(_) => return Err(FramingError::HeadTooLarge),
            Err(httparse::Error::TooManyHeaders) => return Err(FramingError::HeadTooLarge),
            Err(_) => return Err(FramingError::Unparsable),
        };
        let start = buf.as_ptr() as usize;
        let spans: Vec<(usize, usize, usize, usize)> = response
            .headers
            .iter()
            .map(|line| {
                let name = line.name.as_ptr() as usize - start;
                let value = line.value.as_ptr() as usize - start;
                (name, name + line.name.len(), value, value + line.value.len())
            })
            .collect();
        (len, response.code.unwrap_or(0), response.version.unwrap_or(0), spans)
    };
    let head: Bytes = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| FramingError::Unparsable)?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(name_start, name_end, value_start, value_end) in &spans {
        let name = HeaderName::from_bytes(&head[name_start..name_end]).map_err(|_| FramingError::Unparsable)?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_start..value_end)).map_err(|_| FramingError::Unparsable)?;
        headers.append(name, value);
    }
    let (framing, reusable) = framing(status, minor, &headers, to_head_request)?;
    Ok(Some(ResponseHead { status, headers, framing, reusable }))
}

/// Where the body of an answer ends, and whether its connection may be used again
/// (RFC 9112 6.3, refusing what it calls an error and what it leaves to the recipient).
pub fn framing(
    status: StatusCode,
    minor_version: u8,
    headers: &HeaderMap,
    to_head_request: bool,
) -> Result<(Framing, bool), FramingError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // Upgrades are refused before a request is forwarded.
        return Err(FramingError::UnaskedUpgrade);
    }
    let chunked = transfer_encoding(headers)?;
    let length = content_length(headers)?;
    if chunked && length.is_some() {
        return Err(FramingError::LengthAndChunked);
    }
    // HTTP/1.0 has no chunked coding, and keeps a connection open only when asked to: the
    // runtime never asks.
    if minor_version == 0 && chunked {
        return Err(FramingError::UnsupportedTransferEncoding);
    }
    let mut reusable = minor_version == 1 && !asks_to_close(headers);
    let framing = if status.is_informational() || to_head_request || status == StatusCode::NOT_MODIFIED {
        // A 304 may give the length of what it stands for, but not be chunked.
        reusable &= !(chunked && status == StatusCode::NOT_MODIFIED);
        Framing::Empty
    } else if status == StatusCode::NO_CONTENT {
        // A 204 has no body; one framed as having one may be followed by it.
        reusable &= !chunked && length.unwrap_or(0) == 0;
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => {
                reusable = false;
                Framing::UntilClose
            }
        }
    };
    Ok((framing, reusable))
}

/// Whether the answer is chunked; any coding but a single `chunked` is refused, as are
/// several Transfer-Encoding lines.
fn transfer_encoding(headers: &HeaderMap) -> Result<bool, FramingError> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else { return Ok(false) };
    if codings.next().is_some() || !coding.as_bytes().eq_ignore_ascii_case(b"chunked") {
        return Err(FramingError::UnsupportedTransferEncoding);
    }
    Ok(true)
}

/// The single Content-Length, digits only (no sign, no list, no repeat).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, FramingError> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(length) = lengths.next() else { return Ok(None) };
    if lengths.next().is_some() {
        return Err(FramingError::SeveralLengths);
    }
    let digits = length.as_bytes().trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::InvalidLength);
    }
    digits
        .iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .map(Some)
        .ok_or(FramingError::InvalidLength)
}

fn asks_to_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// What the chunked decoder found next in its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// More input is needed.
    Short,
    /// The last chunk and the trailers have been read: the body is over.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At the start of a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes still to come.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers {
        seen: usize,
    },
    Done,
}

/// Reads a chunked body strictly: hexadecimal sizes of at most 16 digits, lines ended by
/// CRLF (a bare LF or CR is refused), extensions and trailers read and dropped, bounded.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self { state: ChunkState::Size }
    }
}

impl ChunkedDecoder {
    /// Takes what it can from the start of `input`: framing bytes are dropped, data is
    /// returned without copying.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(input, MAX_CHUNK_LINE)? else { return Ok(Decoded::Short) };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { ChunkState::Trailers { seen: 0 } } else { ChunkState::Data(size) };
                }
                ChunkState::Data(left) => {
                    if input.is_empty() {
                        return Ok(Decoded::Short);
                    }
                    let n = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
                    let data = input.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(Decoded::Short);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(FramingError::InvalidChunk);
                    }
                    let _ = input.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers { seen } => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(line) = take_line(input, room)? else { return Ok(Decoded::Short) };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                        return Ok(Decoded::End);
                    }
                    if line.contains(&0) {
                        return Err(FramingError::InvalidChunk);
                    }
                    self.state = ChunkState::Trailers { seen: seen + line.len() + 2 };
                }
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// Takes one CRLF-ended line (without its CRLF) from the start of `input`, if it is all in.
fn take_line(input: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FramingError> {
    let Some(lf) = input.iter().take(max.saturating_add(2)).position(|&b| b == b'\n') else {
        return if input.len() > max.saturating_add(1) { Err(FramingError::ChunkLineTooLong) } else { Ok(None) };
    };
    // A bare LF, or a CR anywhere but right before it, is refused: some parsers end lines there.
    if lf == 0 || input[lf - 1] != b'\r' || input[..lf - 1].contains(&b'\r') {
        return Err(FramingError::InvalidChunk);
    }
    let mut line = input.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// `1*16HEXDIG [ BWS ";" extensions ]`: the extensions are dropped, but must be text.
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(FramingError::InvalidChunk);
    }
    let rest = &line[digits..];
    let extensions = rest.trim_ascii_start();
    if !(rest.is_empty() || extensions.first() == Some(&b';')) {
        return Err(FramingError::InvalidChunk);
    }
    if !extensions.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(FramingError::InvalidChunk);
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| (n << 4) | u64::from(hex_value(d)));
    Ok(size)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        // Only hexadecimal digits reach here.
        _ => 0,
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
