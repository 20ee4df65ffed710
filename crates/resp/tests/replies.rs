//! Table tests of `ReplyScanner` and `Frame`: every type, the RESP2 downgrade, and the errors.

use bytes::{Bytes, BytesMut};
use zedis_resp::{Frame, Limits, ProtocolError, ReplyScanner};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Scans `input` whole and byte by byte; both must agree. Returns the outcome.
fn scan(input: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    let whole = ReplyScanner::new(limits.clone()).scan(input);
    let mut sc = ReplyScanner::new(limits.clone());
    let mut bytewise = Ok(None);
    for end in 0..=input.len() {
        bytewise = sc.scan(&input[..end]);
        if !matches!(bytewise, Ok(None)) {
            break;
        }
    }
    assert_eq!(whole, bytewise, "{:?}", input.escape_ascii().to_string());
    whole
}

fn parse(input: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    Frame::parse(&Bytes::copy_from_slice(input))
}

fn valid_cases() -> Vec<(&'static [u8], Frame)> {
    vec![
        (b"+OK\r\n", Frame::ok()),
        (b"+\r\n", Frame::Simple(b(""))),
        (b"+a\rb\r\n", Frame::Simple(b("a\rb"))),
        (b"-ERR unknown command\r\n", Frame::error("ERR unknown command")),
        (b":0\r\n", Frame::Integer(0)),
        (b":-9223372036854775808\r\n", Frame::Integer(i64::MIN)),
        (b"$3\r\nabc\r\n", Frame::bulk(b("abc"))),
        (b"$0\r\n\r\n", Frame::bulk(b(""))),
        (b"$4\r\na\r\nb\r\n", Frame::bulk(b("a\r\nb"))),
        (b"$-1\r\n", Frame::Null),
        (b"*-1\r\n", Frame::Null),
        (b"*0\r\n", Frame::Array(vec![])),
        (b"*2\r\n:1\r\n$1\r\nx\r\n", Frame::Array(vec![Frame::Integer(1), Frame::bulk(b("x"))])),
        (b"*2\r\n*1\r\n+a\r\n*0\r\n", Frame::Array(vec![Frame::Array(vec![Frame::simple("a")]), Frame::Array(vec![])])),
        (b"_\r\n", Frame::Null),
        (b",1.5\r\n", Frame::Double(b("1.5"))),
        (b",inf\r\n", Frame::Double(b("inf"))),
        (b",-inf\r\n", Frame::Double(b("-inf"))),
        (b",nan\r\n", Frame::Double(b("nan"))),
        (b",1e-7\r\n", Frame::Double(b("1e-7"))),
        (b"#t\r\n", Frame::Boolean(true)),
        (b"#f\r\n", Frame::Boolean(false)),
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            Frame::BigNumber(b("3492890328409238509324850943850943825024385")),
        ),
        (b"(-1\r\n", Frame::BigNumber(b("-1"))),
        (b"=15\r\ntxt:Some string\r\n", Frame::Verbatim { format: *b"txt", text: b("Some string") }),
        (b"=4\r\nmkd:\r\n", Frame::Verbatim { format: *b"mkd", text: b("") }),
        (b"!21\r\nSYNTAX invalid syntax\r\n", Frame::BulkError(b("SYNTAX invalid syntax"))),
        (b"!-1\r\n", Frame::Null),
        (
            b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            Frame::Map(vec![(Frame::simple("first"), Frame::Integer(1)), (Frame::simple("second"), Frame::Integer(2))]),
        ),
        (b"%0\r\n", Frame::Map(vec![])),
        (b"~2\r\n+a\r\n+a\r\n", Frame::Set(vec![Frame::simple("a"), Frame::simple("a")])),
        (b">2\r\n+message\r\n$2\r\nhi\r\n", Frame::Push(vec![Frame::simple("message"), Frame::bulk(b("hi"))])),
        (
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n",
            Frame::Attribute {
                attrs: vec![(
                    Frame::simple("key-popularity"),
                    Frame::Map(vec![(Frame::bulk(b("a")), Frame::Double(b("0.19")))]),
                )],
                value: Box::new(Frame::Array(vec![Frame::Integer(2)])),
            },
        ),
        (
            b"*2\r\n|1\r\n+ttl\r\n:3600\r\n+v\r\n:7\r\n",
            Frame::Array(vec![
                Frame::Attribute {
                    attrs: vec![(Frame::simple("ttl"), Frame::Integer(3600))],
                    value: Box::new(Frame::simple("v")),
                },
                Frame::Integer(7),
            ]),
        ),
        (b"|0\r\n:1\r\n", Frame::Attribute { attrs: vec![], value: Box::new(Frame::Integer(1)) }),
    ]
}

#[test]
fn every_type_scans_and_parses() {
    for (input, want) in valid_cases() {
        let label = input.escape_ascii().to_string();
        assert_eq!(scan(input, &Limits::default()), Ok(Some(input.len())), "{label}");
        let (frame, n) = parse(input).unwrap().unwrap();
        assert_eq!(frame, want, "{label}");
        assert_eq!(n, input.len(), "{label}");
        // Trailing bytes are not part of the reply.
        let mut more = input.to_vec();
        more.extend_from_slice(b"+NEXT\r\n");
        assert_eq!(scan(&more, &Limits::default()), Ok(Some(input.len())), "{label}");
        assert_eq!(parse(&more).unwrap().unwrap(), (want.clone(), input.len()), "{label}");
        // Every strict prefix is incomplete.
        for cut in 0..input.len() {
            assert_eq!(ReplyScanner::default().scan(&input[..cut]), Ok(None), "{label} cut {cut}");
            assert_eq!(parse(&input[..cut]), Ok(None), "{label} cut {cut}");
        }
    }
}

#[test]
fn resp3_encode_round_trips() {
    for (input, want) in valid_cases() {
        let again = want.to_bytes(true);
        if input == b"+a\rb\r\n" {
            // Line payloads are sanitised on encode: \r and \n become spaces.
            assert_eq!(&again[..], b"+a b\r\n");
            continue;
        }
        assert_eq!(parse(&again).unwrap().unwrap().0, want, "{:?}", input.escape_ascii().to_string());
        // Canonical inputs re-encode byte for byte (RESP2 nulls become `_`).
        if !matches!(input, b"$-1\r\n" | b"*-1\r\n" | b"!-1\r\n" | b"+a\rb\r\n") {
            assert_eq!(&again[..], input);
        }
    }
}

#[test]
fn resp2_downgrade() {
    let cases: Vec<(Frame, &[u8])> = vec![
        (Frame::Null, b"$-1\r\n"),
        (Frame::Boolean(true), b":1\r\n"),
        (Frame::Boolean(false), b":0\r\n"),
        (Frame::Double(b("3.14")), b"$4\r\n3.14\r\n"),
        (Frame::BigNumber(b("12345678901234567890")), b"$20\r\n12345678901234567890\r\n"),
        (Frame::Verbatim { format: *b"txt", text: b("hello") }, b"$5\r\nhello\r\n"),
        (Frame::BulkError(b("ERR oops")), b"-ERR oops\r\n"),
        (Frame::BulkError(b("ERR two\r\nlines")), b"-ERR two  lines\r\n"),
        (Frame::Map(vec![(Frame::simple("a"), Frame::Integer(1))]), b"*2\r\n+a\r\n:1\r\n"),
        (Frame::Set(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n"),
        (Frame::Push(vec![Frame::simple("x")]), b"*1\r\n+x\r\n"),
        (
            Frame::Attribute { attrs: vec![(Frame::simple("a"), Frame::Null)], value: Box::new(Frame::Integer(5)) },
            b":5\r\n",
        ),
        (Frame::Array(vec![Frame::Null, Frame::Boolean(true)]), b"*2\r\n$-1\r\n:1\r\n"),
        (Frame::error("ERR bad\nthing"), b"-ERR bad thing\r\n"),
        (Frame::ok(), b"+OK\r\n"),
    ];
    for (frame, want) in cases {
        let mut out = BytesMut::new();
        frame.encode(&mut out, false);
        assert_eq!(&out[..], want, "{frame:?}");
        // Whatever the downgrade produced is one valid reply.
        assert_eq!(scan(&out, &Limits::default()), Ok(Some(out.len())));
    }
}

#[test]
fn reply_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"x\r\n".to_vec(), "Protocol error: invalid reply type byte 'x'"),
        (b"\x00".to_vec(), "Protocol error: invalid reply type byte '\\x00'"),
        (b"*1\r\n?\r\n".to_vec(), "Protocol error: invalid reply type byte '?'"),
        (b":abc\r\n".to_vec(), "Protocol error: bad integer value"),
        (b":\r\n".to_vec(), "Protocol error: bad integer value"),
        (b":9223372036854775808\r\n".to_vec(), "Protocol error: bad integer value"),
        (b",abc\r\n".to_vec(), "Protocol error: bad double value"),
        (b",\r\n".to_vec(), "Protocol error: bad double value"),
        (b"#x\r\n".to_vec(), "Protocol error: bad bool value"),
        (b"#\r\n".to_vec(), "Protocol error: bad bool value"),
        (b"_x\r\n".to_vec(), "Protocol error: bad nil value"),
        (b"(12a\r\n".to_vec(), "Protocol error: bad big number value"),
        (b"(\r\n".to_vec(), "Protocol error: bad big number value"),
        (b"=3\r\nabc\r\n".to_vec(), "Protocol error: bad verbatim string"),
        (b"=5\r\ntxt;x\r\n".to_vec(), "Protocol error: bad verbatim string"),
        (b"$-2\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"$?\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"$536870913\r\n".to_vec(), "Protocol error: invalid bulk length"),
        (b"$3\r\nabcde".to_vec(), "Protocol error: expected CRLF after bulk data"),
        (b"*-2\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        (b"*?\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        (b"|-1\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        (b"%4611686018427387904\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        (b"*2147483648\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        (b"*1\rx\r\n".to_vec(), "Protocol error: multi-bulk length out of range"),
        ("*1\r\n".repeat(129).into_bytes(), "Protocol error: nesting deeper than 128"),
        ("|1\r\n".repeat(129).into_bytes(), "Protocol error: nesting deeper than 128"),
        (format!(":{}", "1".repeat(70_000)).into_bytes(), "Protocol error: too big reply line"),
    ];
    for (input, text) in &cases {
        let label = input.escape_ascii().to_string();
        let err = scan(input, &Limits::default()).expect_err(&label);
        assert_eq!(err.to_string(), *text, "{label}");
        assert_eq!(parse(input).expect_err(&label), err, "{label}");
    }
}

#[test]
fn depth_limit_is_inclusive() {
    let deep = |n: usize| {
        let mut v = "*1\r\n".repeat(n).into_bytes();
        v.extend_from_slice(b":1\r\n");
        v
    };
    let limits = Limits { max_depth: 5, ..Limits::default() };
    assert_eq!(scan(&deep(5), &limits), Ok(Some(deep(5).len())));
    assert_eq!(scan(&deep(6), &limits), Err(ProtocolError::TooDeep(5)));
    let (f, _) = Frame::parse_with_limits(&Bytes::from(deep(5)), &limits).unwrap().unwrap();
    assert_eq!(f.to_bytes(true), Bytes::from(deep(5)));
    // Empty aggregates do not nest.
    let mut flat = "*1\r\n".repeat(5).into_bytes();
    flat.extend_from_slice(b"*0\r\n");
    assert_eq!(scan(&flat, &limits), Ok(Some(flat.len())));
    // 1000 levels with the default limit: an error, not a stack overflow.
    assert_eq!(parse(&deep(1000)), Err(ProtocolError::TooDeep(128)));
}

#[test]
fn push_is_its_own_reply() {
    let input = b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n";
    let n = scan(input, &Limits::default()).unwrap().unwrap();
    assert_eq!(&input[..n], b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n");
    assert_eq!(scan(&input[n..], &Limits::default()), Ok(Some(5)));
}

#[test]
fn scanner_resumes_and_resets() {
    let mut sc = ReplyScanner::default();
    let mut buf = b"*3\r\n$5\r\nhel".to_vec();
    assert_eq!(sc.scan(&buf), Ok(None));
    assert!(sc.is_pending());
    assert_eq!(sc.needed_len(), Some(15));
    buf.extend_from_slice(b"lo\r\n:1\r\n");
    assert_eq!(sc.scan(&buf), Ok(None));
    assert_eq!(sc.needed_len(), None);
    buf.extend_from_slice(b"_\r\n+next\r\n");
    assert_eq!(sc.scan(&buf), Ok(Some(buf.len() - 7)));
    assert!(!sc.is_pending());
    let rest = &buf[buf.len() - 7..];
    assert_eq!(sc.scan(rest), Ok(Some(7)));
    // After an error the scanner starts over.
    assert!(sc.scan(b"*1\r\n:x\r\n").is_err());
    assert!(!sc.is_pending());
    assert_eq!(sc.scan(b":1\r\n"), Ok(Some(4)));
    // reset() drops a partial reply.
    assert_eq!(sc.scan(b"*2\r\n:1\r\n"), Ok(None));
    sc.reset();
    assert_eq!(sc.scan(b":2\r\n"), Ok(Some(4)));
}

#[test]
fn long_simple_line_in_small_pieces_is_linear() {
    let start = std::time::Instant::now();
    let mut input = b"+".to_vec();
    input.extend(std::iter::repeat_n(b'a', 4 << 20));
    input.extend_from_slice(b"\r\n");
    let mut sc = ReplyScanner::default();
    let mut result = Ok(None);
    for end in (0..=input.len()).step_by(512).chain([input.len()]) {
        result = sc.scan(&input[..end]);
        if !matches!(result, Ok(None)) {
            break;
        }
    }
    assert_eq!(result, Ok(Some(input.len())));
    let big = Frame::bulk(vec![b'z'; 8 << 20]).to_bytes(false);
    let mut sc = ReplyScanner::default();
    for end in (0..big.len()).step_by(1024) {
        assert_eq!(sc.scan(&big[..end]), Ok(None));
    }
    assert_eq!(sc.scan(&big), Ok(Some(big.len())));
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
}

#[test]
fn frame_helpers() {
    let f = Frame::Array(vec![Frame::bulk(b("0")), Frame::Array(vec![Frame::bulk(b("k1"))])]);
    let items = f.as_array().unwrap();
    assert_eq!(items[0].to_integer(), Some(0));
    assert_eq!(items[0].as_bytes().map(|b| &b[..]), Some(&b"0"[..]));
    assert_eq!(Frame::Integer(7).as_integer(), Some(7));
    assert!(Frame::error("ERR x").is_error());
    assert!(Frame::BulkError(b("ERR y")).is_error());
    assert_eq!(Frame::error("ERR x").error_message(), Some(&b"ERR x"[..]));
    assert!(Frame::Null.is_null());
    let attr = Frame::Attribute { attrs: vec![], value: Box::new(Frame::Integer(3)) };
    assert_eq!(attr.without_attributes(), &Frame::Integer(3));
    assert_eq!(attr.as_integer(), Some(3));
    assert_eq!(f.clone().into_array().map(|v| v.len()), Some(2));
    // Zero copy: payloads are slices of the parsed buffer.
    let buf = Bytes::from_static(b"*1\r\n$5\r\nhello\r\n");
    let (frame, _) = Frame::parse(&buf).unwrap().unwrap();
    let hello = frame.as_array().unwrap()[0].as_bytes().unwrap().clone();
    assert_eq!(hello.as_ptr(), buf[8..].as_ptr());
}
