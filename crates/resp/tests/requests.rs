//! Table tests of `RequestDecoder` and `Request`: every rule and every protocol error text.

use bytes::BytesMut;
use zedis_resp::{Limits, ProtocolError, Request, RequestDecoder};

type Args = Vec<Vec<u8>>;
/// Requests decoded, then the leftover bytes or the error (with the buffer at that moment).
type Outcome = (Vec<Request>, Result<Vec<u8>, (ProtocolError, Vec<u8>)>);

/// Feeds `input` in chunks of `chunk` bytes (0 = all at once); returns the requests, and then either the error
/// (with the buffer at that moment) or the leftover bytes.
fn run(input: &[u8], chunk: usize, limits: Limits) -> Outcome {
    let mut dec = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let chunk = if chunk == 0 { input.len().max(1) } else { chunk };
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(e) => return (out, Err((e, buf.to_vec()))),
            }
        }
    }
    (out, Ok(buf.to_vec()))
}

fn args(r: &Request) -> Args {
    r.args().map(<[u8]>::to_vec).collect()
}

fn v(items: &[&str]) -> Args {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Runs whole and byte by byte; both must agree.
fn decode_both(input: &[u8]) -> Outcome {
    let whole = run(input, 0, Limits::default());
    let bytewise = run(input, 1, Limits::default());
    assert_eq!(whole.0, bytewise.0, "requests differ by chunking for {:?}", input.escape_ascii().to_string());
    assert_eq!(
        whole.1.as_ref().map_err(|e| &e.0),
        bytewise.1.as_ref().map_err(|e| &e.0),
        "outcome differs by chunking for {:?}",
        input.escape_ascii().to_string()
    );
    whole
}

#[test]
fn multibulk_set() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let (reqs, rest) = decode_both(input);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(args(r), v(&["SET", "key", "value"]));
    assert_eq!(&r.raw()[..], input);
    assert!(!r.is_inline());
    assert_eq!(r.len(), 3);
    assert_eq!(r.name(), b"SET");
    assert_eq!(r.name_upper(), "SET");
    assert_eq!(rest.unwrap(), b"");
    // Zero copy: argument slices point into raw.
    let a = r.arg_bytes(1).unwrap();
    let raw = r.raw();
    assert!(a.as_ptr() >= raw.as_ptr() && a.as_ptr() as usize + a.len() <= raw.as_ptr() as usize + raw.len());
}

#[test]
fn multibulk_binary_and_empty_args() {
    let input = b"*3\r\n$0\r\n\r\n$4\r\n\r\n\x00\xff\r\n$2\r\n$x\r\n";
    let (reqs, rest) = decode_both(input);
    assert_eq!(args(&reqs[0]), vec![b"".to_vec(), b"\r\n\x00\xff".to_vec(), b"$x".to_vec()]);
    assert_eq!(rest.unwrap(), b"");
}

#[test]
fn pipelined_requests_in_order() {
    let mut input = Vec::new();
    for i in 0..50 {
        input.extend_from_slice(Request::from_args(["INCR", &format!("k{i}")]).raw());
        input.extend_from_slice(format!("GET k{i}\r\n").as_bytes());
    }
    input.extend_from_slice(b"*1\r\n$4\r\nPI");
    let (reqs, rest) = decode_both(&input);
    assert_eq!(reqs.len(), 100);
    for i in 0..50 {
        assert_eq!(args(&reqs[2 * i]), v(&["INCR", &format!("k{i}")]));
        assert_eq!(args(&reqs[2 * i + 1]), v(&["GET", &format!("k{i}")]));
        assert!(reqs[2 * i + 1].is_inline());
    }
    assert_eq!(rest.unwrap(), b"*1\r\n$4\r\nPI");
}

#[test]
fn empty_multibulk_is_skipped() {
    // Redis: "if (ll <= 0) return C_OK" — any count <= 0 is no command.
    let (reqs, rest) = decode_both(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n*0\r\n");
    assert_eq!(reqs.len(), 1);
    assert_eq!(args(&reqs[0]), v(&["PING"]));
    assert_eq!(rest.unwrap(), b"");
}

#[test]
fn inline_commands() {
    let cases: &[(&[u8], Vec<Args>)] = &[
        (b"PING\r\n", vec![v(&["PING"])]),
        (b"PING\n", vec![v(&["PING"])]),
        (b"  set  a   b  \r\n", vec![v(&["set", "a", "b"])]),
        (b"SET k \"a b\\n\\x41\"\r\n", vec![v(&["SET", "k", "a b\nA"])]),
        (b"SET k 'it\\'s'\n", vec![v(&["SET", "k", "it's"])]),
        (b"SET k \"\"\n", vec![v(&["SET", "k", ""])]),
        // Empty lines (and whitespace-only lines) are no command.
        (b"\r\n\n   \r\n\t\nPING\n", vec![v(&["PING"])]),
        (b"A\nB\r\nC\n", vec![v(&["A"]), v(&["B"]), v(&["C"])]),
        // A lone \r inside the line separates arguments.
        (b"GET a\rb\n", vec![v(&["GET", "a", "b"])]),
        // NUL ends the line for splitting, as in sdssplitargs.
        (b"GET a\x00b c\n", vec![v(&["GET", "a"])]),
        (b"\x00junk\nPING\n", vec![v(&["PING"])]),
        // A line that looks like a bulk header is just an inline command.
        (b"$3\r\n", vec![v(&["$3"])]),
    ];
    for (input, want) in cases {
        let (reqs, rest) = decode_both(input);
        let got: Vec<_> = reqs.iter().map(args).collect();
        assert_eq!(&got, want, "{:?}", input.escape_ascii().to_string());
        assert!(reqs.iter().all(Request::is_inline));
        for r in &reqs {
            // raw is the multibulk re-encoding.
            assert_eq!(r.raw(), Request::from_args(r.args()).raw());
        }
        assert_eq!(rest.unwrap(), b"");
    }
}

#[test]
fn inline_incomplete_keeps_bytes() {
    let (reqs, rest) = decode_both(b"GET ke");
    assert!(reqs.is_empty());
    assert_eq!(rest.unwrap(), b"GET ke");
}

/// Every protocol error, with the exact text Redis replies (after "-ERR ").
#[test]
fn protocol_errors() {
    let long_digits = "1".repeat(70_000);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"*abc\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*+1\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*01\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"* 1\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*1 \r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*2147483648\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*99999999999999999999999\r\n".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*1\rX".to_vec(), "Protocol error: invalid multibulk length"),
        (b"*1\r\n$-1\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$01\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$536870913\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$9223372036854775808\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\n$3\rXabc\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"*1\r\nx\r\n".to_vec(), "Protocol error: expected '$', got 'x'"),
        (b"*2\r\n$1\r\na\r\n:1\r\n".to_vec(), "Protocol error: expected '$', got ':'"),
        (b"*1\r\n\r\n".to_vec(), "Protocol error: expected '$', got ' '"),
        (format!("*{long_digits}").into_bytes(), "Protocol error: too big mbulk count string"),
        (format!("*1\r\n${long_digits}").into_bytes(), "Protocol error: too big bulk count string"),
        (format!("GET {long_digits}").into_bytes(), "Protocol error: too big inline request"),
        (format!("GET {long_digits}\r\n").into_bytes(), "Protocol error: too big inline request"),
        (b"GET \"a\r\n".to_vec(), "Protocol error: unbalanced quotes in request"),
        (b"GET 'a\r\n".to_vec(), "Protocol error: unbalanced quotes in request"),
        (b"GET \"a\"b\r\n".to_vec(), "Protocol error: unbalanced quotes in request"),
        (b"*1\r\n$3\r\nabcXY".to_vec(), "Protocol error: expected CRLF after bulk data"),
        (b"*1\r\n$3\r\nabc\n\r".to_vec(), "Protocol error: expected CRLF after bulk data"),
    ];
    for (input, text) in &cases {
        let (reqs, res) = decode_both(input);
        assert!(reqs.is_empty());
        let (err, buf) = res.expect_err(text);
        assert_eq!(err.to_string(), *text, "{:?}", input.escape_ascii().to_string());
        assert!(err.is_request_error());
        // Nothing of the offending request was consumed.
        assert_eq!(&buf, input);
    }
}

#[test]
fn error_leaves_buffer_at_offending_request_and_repeats() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*0\r\n*1\r\n$-3\r\n"[..]);
    let r = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(r.name(), b"PING");
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(e, ProtocolError::InvalidBulkLength);
    // The complete no-op `*0` was consumed; the bad request is whole.
    assert_eq!(&buf[..], b"*1\r\n$-3\r\n");
    assert!(!dec.is_pending());
    assert_eq!(dec.decode(&mut buf).unwrap_err(), ProtocolError::InvalidBulkLength);
    assert_eq!(&buf[..], b"*1\r\n$-3\r\n");
}

#[test]
fn error_reply_bytes() {
    let mut out = BytesMut::new();
    ProtocolError::ExpectedBulk(b'x').write_reply(&mut out);
    assert_eq!(&out[..], b"-ERR Protocol error: expected '$', got 'x'\r\n");
    out.clear();
    ProtocolError::ExpectedBulk(b'\n').write_reply(&mut out);
    assert_eq!(&out[..], b"-ERR Protocol error: expected '$', got ' '\r\n");
}

#[test]
fn limits_at_the_edge() {
    let limits = Limits { max_bulk_len: 5, max_multibulk_len: 2, max_inline_len: 10, max_depth: 4 };
    let ok: &[&[u8]] = &[b"*2\r\n$5\r\n12345\r\n$0\r\n\r\n", b"0123456789\n", b"012345678\r\n"];
    for input in ok {
        let (reqs, rest) = run(input, 1, limits.clone());
        assert_eq!(reqs.len(), 1, "{:?}", input.escape_ascii().to_string());
        assert_eq!(rest.unwrap(), b"");
    }
    let bad: &[(&[u8], ProtocolError)] = &[
        (b"*3\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1\r\n$6\r\n", ProtocolError::InvalidBulkLength),
        (b"0123456789A\n", ProtocolError::TooBigInline),
        (b"0123456789\r\n", ProtocolError::TooBigInline),
        (b"0123456789AB", ProtocolError::TooBigInline),
        (b"*000000000001\r\n", ProtocolError::TooBigMultibulkCount),
        (b"*00000000\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1\r\n$00000000001\r\n", ProtocolError::TooBigBulkCount),
    ];
    for (input, want) in bad {
        for chunk in [0, 1, 3] {
            let (_, res) = run(input, chunk, limits.clone());
            assert_eq!(&res.unwrap_err().0, want, "{:?} chunk {chunk}", input.escape_ascii().to_string());
        }
    }
    // Up to the limit without a newline is just incomplete.
    let (_, res) = run(b"0123456789", 1, limits.clone());
    assert_eq!(res.unwrap(), b"0123456789");
}

#[test]
fn default_limits_are_redis_7() {
    let l = Limits::default();
    assert_eq!(l.max_bulk_len, 512 * 1024 * 1024);
    assert_eq!(l.max_multibulk_len, 2_147_483_647);
    assert_eq!(l.max_inline_len, 64 * 1024);
    assert_eq!(l.max_depth, 128);
    // The largest allowed declarations are accepted (and wait for data).
    let (reqs, rest) = run(b"*2147483647\r\n$536870912\r\n", 0, l);
    assert!(reqs.is_empty());
    assert!(rest.is_ok());
}

#[test]
fn needed_reports_pending_bulk() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n$10\r\nabc"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.needed(), Some(9)); // 7 payload bytes + CRLF
    buf.extend_from_slice(b"defgh");
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.needed(), Some(4));
    buf.extend_from_slice(b"ij\r\n$1\r\n");
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.needed(), Some(3));
    buf.extend_from_slice(b"x\r\n");
    let r = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(args(&r), v(&["abcdefghij", "x"]));
    assert_eq!(dec.needed(), None);
    assert!(buf.is_empty());
    // Not in a bulk: None.
    let mut buf = BytesMut::from(&b"*2\r\n$1"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.needed(), None);
    assert!(dec.is_pending());
}

#[test]
fn every_prefix_is_incomplete() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    for cut in 0..input.len() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&input[..cut]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None, "cut {cut}");
        assert_eq!(&buf[..], &input[..cut]);
        buf.extend_from_slice(&input[cut..]);
        let r = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&r.raw()[..], input);
    }
}

/// A big bulk and a many-argument command arriving in small pieces: each call only looks at new bytes, so this
/// finishes quickly even in a debug build (a rescanning decoder would take minutes).
#[test]
fn big_frames_in_small_pieces_are_linear() {
    let start = std::time::Instant::now();
    let payload = vec![b'x'; 8 << 20];
    let big = Request::from_args([&b"SET"[..], b"k", &payload]);
    let (reqs, rest) = run(big.raw(), 1024, Limits::default());
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].arg(2).map(<[u8]>::len), Some(8 << 20));
    assert_eq!(rest.unwrap(), b"");

    let many = Request::from_args((0..200_000).map(|i| format!("k{i}")));
    let (reqs, rest) = run(many.raw(), 7, Limits::default());
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].len(), 200_000);
    assert_eq!(reqs[0].arg(199_999), Some(&b"k199999"[..]));
    assert_eq!(rest.unwrap(), b"");

    // An inline line just under the limit, byte by byte.
    let line = format!("ECHO {}\n", "y".repeat(60_000));
    let (reqs, _) = run(line.as_bytes(), 1, Limits::default());
    assert_eq!(reqs[0].arg(1).map(<[u8]>::len), Some(60_000));
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
}
