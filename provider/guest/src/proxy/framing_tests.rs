use super::*;

fn head(text: &str, to_head_request: bool) -> Result<Option<ResponseHead>, FramingError> {
    parse_head(&mut BytesMut::from(text), to_head_request)
}

/// How an answer is framed and whether its connection is kept, or why it is refused.
type Expected = Result<(Framing, bool), FramingError>;

/// Answer heads and how each is framed (`Ok((framing, reusable))`) or why it is refused.
#[test]
fn answer_framing_table() {
    use Framing::*;
    use FramingError::*;
    let table: &[(&str, bool, Expected)] = &[
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, Ok((Length(5), true))),
        ("HTTP/1.1 200 OK\r\nContent-Length:  5 \r\n\r\n", false, Ok((Length(5), true))),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, Ok((Empty, true))),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Ok((Chunked, true))),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", false, Ok((Chunked, true))),
        ("HTTP/1.1 200 OK\r\n\r\n", false, Ok((UntilClose, false))),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, close\r\n\r\n",
            false,
            Ok((Length(5), false)),
        ),
        ("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false, Ok((Length(5), false))),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, Ok((Empty, true))),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, Ok((Empty, true))),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, Ok((Empty, true))),
        ("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, Ok((Empty, false))),
        ("HTTP/1.1 204 No Content\r\n\r\n", false, Ok((Empty, true))),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, Ok((Empty, true))),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false, Ok((Empty, false))),
        ("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false, Ok((Empty, false))),
        ("HTTP/1.1 100 Continue\r\n\r\n", false, Ok((Empty, true))),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", false, Err(SeveralLengths)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false, Err(SeveralLengths)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n", false, Err(InvalidLength)),
        ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", false, Err(LengthAndChunked)),
        // Refused even where neither would be read: the application is broken or lying.
        ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", true, Err(LengthAndChunked)),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, Err(UnsupportedTransferEncoding)),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, Err(UnsupportedTransferEncoding)),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            Err(UnsupportedTransferEncoding),
        ),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false, Err(UnsupportedTransferEncoding)),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", false, Err(UnsupportedTransferEncoding)),
        ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Err(UnsupportedTransferEncoding)),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false, Err(UnaskedUpgrade)),
        ("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", false, Err(Unparsable)),
        ("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", false, Err(Unparsable)),
        ("HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", false, Err(Unparsable)),
        ("HTTP/2 200 OK\r\n\r\n", false, Err(Unparsable)),
        ("HTTP/1.1 2000 OK\r\n\r\n", false, Err(Unparsable)),
        ("SMTP ready\r\n\r\n", false, Err(Unparsable)),
    ];
    for (text, to_head_request, expected) in table {
        let got = head(text, *to_head_request).map(|h| h.map(|h| (h.framing, h.reusable)));
        let expected = expected.map(Some);
        assert_eq!(got, expected, "{text:?} (to HEAD: {to_head_request})");
    }
}

#[test]
fn a_head_is_taken_whole_and_its_values_kept() {
    let mut buf = BytesMut::from(
        "HTTP/1.1 203 Odd\r\nX-Odd: Value With  Spaces\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nokNEXT",
    );
    let head = parse_head(&mut buf, false).unwrap().unwrap();
    assert_eq!(head.status, 203);
    assert_eq!(head.headers["x-odd"], "Value With  Spaces");
    assert_eq!(head.headers.get_all("set-cookie").iter().collect::<Vec<_>>(), ["a=1", "b=2"]);
    assert_eq!(&buf[..], b"okNEXT", "the body and what follows stay in the buffer");
}

#[test]
fn a_partial_head_waits_for_more_and_too_many_headers_are_refused() {
    assert!(matches!(head("HTTP/1.1 200 OK\r\nContent-Len", false), Ok(None)));
    assert!(matches!(head("HTTP/1.1 200 OK\r\n", false), Ok(None)));
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert_eq!(head(&text, false).unwrap_err(), FramingError::HeadTooLarge);
    let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "b".repeat(MAX_HEAD));
    assert_eq!(head(&big, false).unwrap_err(), FramingError::HeadTooLarge, "complete but too large");
    assert_eq!(head(&big[..MAX_HEAD + 1], false).unwrap_err(), FramingError::HeadTooLarge, "not complete yet");
}

/// Feeds `input` to a decoder in pieces of `step` bytes; the body, or the first error, and
/// whether the end was seen; `rest` is what was left after the end.
fn decode(input: &[u8], step: usize) -> (Result<Vec<u8>, FramingError>, bool, Vec<u8>) {
    let mut decoder = ChunkedDecoder::default();
    let (mut buf, mut body) = (BytesMut::new(), Vec::new());
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                Ok(Decoded::Short) => break,
                Ok(Decoded::End) => return (Ok(body), true, buf.to_vec()),
                Err(e) => return (Err(e), false, buf.to_vec()),
            }
        }
    }
    (Ok(body), false, buf.to_vec())
}

#[test]
fn chunked_bodies_table() {
    use FramingError::*;
    let ok: &[(&[u8], &[u8])] = &[
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
        (b"0005\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5 ;name=\"quoted value\"\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n", b"hello"),
        (b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r"),
        (b"0\r\n\r\n", b""),
    ];
    for (input, body) in ok {
        for step in [1, 2, 3, 7, input.len()] {
            let (got, ended, rest) = decode(input, step);
            assert_eq!(got.as_deref(), Ok(*body), "{:?} in steps of {step}", String::from_utf8_lossy(input));
            assert!(ended && rest.is_empty(), "{:?}", String::from_utf8_lossy(input));
        }
    }
    let refused: &[(&[u8], FramingError)] = &[
        (b"\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"5\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"5\r\nhello\n0\r\n\r\n", InvalidChunk),
        (b"5\r\nhelloXX0\r\n\r\n", InvalidChunk),
        (b"5\r\nhello\r\n0\r\n\n", InvalidChunk),
        (b"5\r\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"-5\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"+5\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"0x5\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"5 5\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"g\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        // 17 digits: past what a 64-bit size holds, whatever their value.
        (b"00000000000000005\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"fffffffffffffffff\r\n", InvalidChunk),
        (b"5;x=\x00\r\nhello\r\n0\r\n\r\n", InvalidChunk),
        (b"5\r\nhello\r\n0\r\nX: \x00\r\n\r\n", InvalidChunk),
    ];
    for (input, error) in refused {
        for step in [1, 4, input.len()] {
            let (got, _, _) = decode(input, step);
            assert_eq!(got, Err(*error), "{:?} in steps of {step}", String::from_utf8_lossy(input));
        }
    }
}

#[test]
fn chunked_lines_and_trailers_are_bounded() {
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE));
    assert_eq!(decode(long_extension.as_bytes(), 512).0, Err(FramingError::ChunkLineTooLong));
    let trailers = "X-Trailer: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(MAX_TRAILERS / 40);
    let long_trailers = format!("5\r\nhello\r\n0\r\n{trailers}\r\n");
    assert_eq!(decode(long_trailers.as_bytes(), 512).0, Err(FramingError::ChunkLineTooLong));
}

#[test]
fn what_follows_the_last_chunk_is_left_for_the_caller() {
    let (body, ended, rest) = decode(b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 64);
    assert_eq!((body.unwrap(), ended), (b"ok".to_vec(), true));
    assert_eq!(rest, b"HTTP/1.1 200 OK\r\n\r\n");
}

#[test]
fn a_chunk_larger_than_the_buffer_comes_in_pieces() {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::from(&b"10\r\n01234567"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"01234567"))));
    assert_eq!(decoder.decode(&mut buf), Ok(Decoded::Short));
    buf.extend_from_slice(b"89abcdef\r\n0\r\n\r\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Decoded::Data(Bytes::from_static(b"89abcdef"))));
    assert_eq!(decoder.decode(&mut buf), Ok(Decoded::End));
}
