//! Property tests: requests in random chunkings and pipelines, replies against `redis-protocol` as an oracle,
//! and arbitrary / mutated bytes that must never panic and must not depend on how they are chunked.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use redis_protocol::resp2::types::{OwnedFrame as Owned2, Resp2Frame};
use redis_protocol::resp3::types::{OwnedFrame as Owned3, Resp3Frame, VerbatimStringFormat};
use zedis_resp::{Frame, Limits, ProtocolError, ReplyScanner, Request, RequestDecoder};

// ---------------------------------------------------------------- helpers

/// Cuts `len` bytes into consecutive pieces whose sizes cycle through `sizes`.
fn pieces(len: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while start < len {
        let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1).max(1);
        let end = (start + n).min(len);
        out.push((start, end));
        start = end;
        i += 1;
    }
    out
}

#[derive(Debug, PartialEq)]
enum End {
    /// Leftover bytes, no error.
    Pending(Vec<u8>),
    Error(ProtocolError),
}

/// Feeds `input` to a fresh decoder in the given pieces; returns the requests and how it ended.
fn decode_chunked(input: &[u8], sizes: &[usize]) -> (Vec<Request>, End) {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (s, e) in pieces(input.len(), sizes) {
        buf.extend_from_slice(&input[s..e]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(err) => return (out, End::Error(err)),
            }
        }
    }
    (out, End::Pending(buf.to_vec()))
}

fn scan_chunked(input: &[u8], sizes: &[usize]) -> Result<Option<usize>, ProtocolError> {
    let mut sc = ReplyScanner::default();
    let mut result = sc.scan(&[]);
    for (_, e) in pieces(input.len(), sizes) {
        result = sc.scan(&input[..e]);
        if !matches!(result, Ok(None)) {
            break;
        }
    }
    result
}

fn encode_multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn arg_vecs(r: &Request) -> Vec<Vec<u8>> {
    r.args().map(<[u8]>::to_vec).collect()
}

/// Quotes `arg` for an inline line with `"..."` and escapes.
fn quote(arg: &[u8]) -> Vec<u8> {
    let mut out = b"\"".to_vec();
    for &c in arg {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
    out
}

// ---------------------------------------------------------------- strategies

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..24),
        1 => prop::collection::vec(prop::sample::select(b"*$\r\n0123456789-".to_vec()), 0..12),
        1 => prop::collection::vec(any::<u8>(), 100..400),
    ]
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(arg(), 1..8)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![3 => 1usize..4, 2 => 1usize..40, 1 => 40usize..600], 1..20)
}

fn ascii_line() -> impl Strategy<Value = Bytes> {
    "[ -~]{0,16}".prop_map(Bytes::from)
}

fn any_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn double_text() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Bytes::from(f.to_string())),
        1 => prop::sample::select(vec!["inf", "-inf", "nan", "0", "-0", "1.5", "1e-7"]).prop_map(Bytes::from),
    ]
}

fn big_number() -> impl Strategy<Value = Bytes> {
    "-?[1-9][0-9]{0,40}".prop_map(Bytes::from)
}

/// Any frame our encoder writes canonically (so parse(encode(f)) == f).
fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        ascii_line().prop_map(Frame::Simple),
        ascii_line().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
        double_text().prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        big_number().prop_map(Frame::BigNumber),
        (any::<[u8; 3]>(), any_bytes()).prop_map(|(format, text)| Frame::Verbatim { format, text }),
        any_bytes().prop_map(Frame::BulkError),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Frame::Array),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Frame::Set),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Frame::Push),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Frame::Map),
            (prop::collection::vec((inner.clone(), inner.clone()), 0..3), inner)
                .prop_map(|(attrs, value)| Frame::Attribute { attrs, value: Box::new(value) }),
        ]
    })
}

/// RESP2 frames, which redis-protocol's RESP2 encoder can write.
fn frame2() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        ascii_line().prop_map(Frame::Simple),
        ascii_line().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| prop::collection::vec(inner, 0..6).prop_map(Frame::Array))
}

fn oracle_attrs() -> impl Strategy<Value = Option<Vec<(Frame, Frame)>>> {
    prop::option::weighted(
        0.15,
        prop::collection::btree_map(
            prop::collection::vec(any::<u8>(), 0..8),
            prop_oneof![any::<i64>().prop_map(Frame::Integer), ascii_line().prop_map(Frame::Simple)],
            0..3,
        )
        .prop_map(|m| m.into_iter().map(|(k, v)| (Frame::Bulk(Bytes::from(k)), v)).collect()),
    )
}

fn with_attrs(f: Frame, attrs: Option<Vec<(Frame, Frame)>>) -> Frame {
    match attrs {
        Some(attrs) => Frame::Attribute { attrs, value: Box::new(f) },
        None => f,
    }
}

/// RESP3 frames within what redis-protocol can represent: hashable unique map keys / set members, `txt`/`mkd`
/// verbatim formats, no NaN, UTF-8 simple errors, attributes only on non-null values.
fn frame3_oracle() -> impl Strategy<Value = Frame> {
    let scalar = prop_oneof![
        ascii_line().prop_map(Frame::Simple),
        ascii_line().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes().prop_map(Frame::Bulk),
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
        ]
        .prop_map(|t| Frame::Double(Bytes::from(t))),
        any::<bool>().prop_map(Frame::Boolean),
        big_number().prop_map(Frame::BigNumber),
        (prop::sample::select(vec![*b"txt", *b"mkd"]), any_bytes())
            .prop_map(|(format, text)| Frame::Verbatim { format, text }),
        any_bytes().prop_map(Frame::BulkError),
    ];
    let leaf = prop_oneof![
        6 => (scalar, oracle_attrs()).prop_map(|(f, a)| with_attrs(f, a)),
        1 => Just(Frame::Null),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let agg = prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Frame::Array),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Frame::Push),
            prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..8), inner, 0..4)
                .prop_map(|m| Frame::Map(m.into_iter().map(|(k, v)| (Frame::Bulk(Bytes::from(k)), v)).collect())),
            prop::collection::btree_set(prop::collection::vec(any::<u8>(), 0..8), 0..5)
                .prop_map(|s| Frame::Set(s.into_iter().map(|k| Frame::Bulk(Bytes::from(k))).collect())),
        ];
        (agg, oracle_attrs()).prop_map(|(f, a)| with_attrs(f, a))
    })
}

// ---------------------------------------------------------------- oracle conversions

fn to_oracle2(f: &Frame) -> Owned2 {
    match f {
        Frame::Simple(s) => Owned2::SimpleString(s.to_vec()),
        Frame::Error(e) => Owned2::Error(String::from_utf8(e.to_vec()).expect("ascii")),
        Frame::Integer(n) => Owned2::Integer(*n),
        Frame::Bulk(b) => Owned2::BulkString(b.to_vec()),
        Frame::Null => Owned2::Null,
        Frame::Array(v) => Owned2::Array(v.iter().map(to_oracle2).collect()),
        other => panic!("not RESP2: {other:?}"),
    }
}

fn to_oracle3(f: &Frame) -> Owned3 {
    match f {
        Frame::Simple(s) => Owned3::SimpleString { data: s.to_vec(), attributes: None },
        Frame::Error(e) => {
            Owned3::SimpleError { data: String::from_utf8(e.to_vec()).expect("ascii"), attributes: None }
        }
        Frame::Integer(n) => Owned3::Number { data: *n, attributes: None },
        Frame::Bulk(b) => Owned3::BlobString { data: b.to_vec(), attributes: None },
        Frame::Null => Owned3::Null,
        Frame::Array(v) => Owned3::Array { data: v.iter().map(to_oracle3).collect(), attributes: None },
        Frame::Push(v) => Owned3::Push { data: v.iter().map(to_oracle3).collect(), attributes: None },
        Frame::Set(v) => Owned3::Set { data: v.iter().map(to_oracle3).collect(), attributes: None },
        Frame::Map(p) => {
            Owned3::Map { data: p.iter().map(|(k, v)| (to_oracle3(k), to_oracle3(v))).collect(), attributes: None }
        }
        Frame::Double(t) => {
            Owned3::Double { data: std::str::from_utf8(t).expect("utf8").parse().expect("double"), attributes: None }
        }
        Frame::Boolean(b) => Owned3::Boolean { data: *b, attributes: None },
        Frame::BigNumber(t) => Owned3::BigNumber { data: t.to_vec(), attributes: None },
        Frame::Verbatim { format, text } => Owned3::VerbatimString {
            data: text.to_vec(),
            format: match format {
                b"txt" => VerbatimStringFormat::Text,
                b"mkd" => VerbatimStringFormat::Markdown,
                other => panic!("format {other:?}"),
            },
            attributes: None,
        },
        Frame::BulkError(e) => Owned3::BlobError { data: e.to_vec(), attributes: None },
        Frame::Attribute { attrs, value } => {
            let mut inner = to_oracle3(value);
            let map = attrs.iter().map(|(k, v)| (to_oracle3(k), to_oracle3(v))).collect();
            inner.add_attributes(map).expect("attributes");
            inner
        }
    }
}

fn oracle_encode3(f: &Owned3) -> Vec<u8> {
    let mut buf = vec![0u8; f.encode_len(false)];
    let n = redis_protocol::resp3::encode::complete::encode(&mut buf, f, false).expect("oracle encode");
    buf.truncate(n);
    buf
}

fn oracle_encode2(f: &Owned2) -> Vec<u8> {
    let mut buf = vec![0u8; f.encode_len(false)];
    let n = redis_protocol::resp2::encode::encode(&mut buf, f, false).expect("oracle encode");
    buf.truncate(n);
    buf
}

/// What a RESP2 client receives for `f`, decoded (the test's own model of the downgrade).
fn downgrade(f: &Frame) -> Frame {
    let sanitize = |b: &Bytes| {
        Bytes::from(b.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect::<Vec<u8>>())
    };
    match f {
        Frame::Boolean(b) => Frame::Integer(i64::from(*b)),
        Frame::Double(t) | Frame::BigNumber(t) => Frame::Bulk(t.clone()),
        Frame::Verbatim { text, .. } => Frame::Bulk(text.clone()),
        Frame::BulkError(e) => Frame::Error(sanitize(e)),
        Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Frame::Array(v.iter().map(downgrade).collect()),
        Frame::Map(p) => Frame::Array(p.iter().flat_map(|(k, v)| [downgrade(k), downgrade(v)]).collect()),
        Frame::Attribute { value, .. } => downgrade(value),
        other => other.clone(),
    }
}

/// Applies byte mutations: (position, op, byte).
fn mutate(mut data: Vec<u8>, muts: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, op, byte) in muts {
        let len = data.len();
        match op {
            0 if len > 0 => data[pos % len] = byte,
            1 => data.insert(pos % (len + 1), byte),
            2 if len > 0 => {
                data.remove(pos % len);
            }
            3 => data.truncate(pos % (len + 1)),
            _ => {}
        }
    }
    data
}

fn protocol_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => any::<u8>(),
        3 => prop::sample::select(b"*$:+-_,#!=(%~>|\r\n\r\n0123456789-?tf\"' \\x".to_vec()),
    ]
}

/// All the parsers on one input: no panic, chunking does not change the outcome, the scanner and
/// `Frame::parse` agree, and whatever they accept re-encodes validly.
fn check_everything(input: &[u8], sizes: &[usize]) -> Result<(), TestCaseError> {
    // Requests.
    let (whole_reqs, whole_end) = decode_chunked(input, &[input.len().max(1)]);
    let (reqs, end) = decode_chunked(input, sizes);
    let raws = |rs: &[Request]| rs.iter().map(|r| r.raw().clone()).collect::<Vec<_>>();
    prop_assert_eq!(raws(&reqs), raws(&whole_reqs));
    match (&end, &whole_end) {
        (End::Error(a), End::Error(b)) => prop_assert_eq!(a, b),
        (End::Pending(a), End::Pending(b)) => prop_assert_eq!(a, b),
        _ => prop_assert!(false, "outcome differs: {:?} vs {:?}", end, whole_end),
    }
    for r in &reqs {
        prop_assert!(!r.is_empty());
        // What we would forward decodes to the same arguments.
        let (again, rest) = decode_chunked(r.raw(), &[r.raw().len()]);
        prop_assert_eq!(again.len(), 1);
        prop_assert_eq!(arg_vecs(&again[0]), arg_vecs(r));
        prop_assert_eq!(rest, End::Pending(vec![]));
    }

    // Replies.
    let whole = ReplyScanner::default().scan(input);
    prop_assert_eq!(&scan_chunked(input, sizes), &whole);
    let bytes = Bytes::copy_from_slice(input);
    match (Frame::parse(&bytes), &whole) {
        (Ok(None), Ok(None)) => {}
        (Ok(Some((f, n))), Ok(Some(m))) => {
            prop_assert_eq!(n, *m);
            for resp3 in [true, false] {
                let enc = f.to_bytes(resp3);
                prop_assert_eq!(ReplyScanner::default().scan(&enc), Ok(Some(enc.len())));
            }
        }
        (Err(a), Err(b)) => prop_assert_eq!(&a, b),
        (p, s) => prop_assert!(false, "parse {:?} vs scan {:?}", p, s),
    }
    Ok(())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// (a) Multibulk requests, pipelined, in random chunks: same args, raw is exactly the sent bytes, in order.
    #[test]
    fn multibulk_pipeline_any_chunking(cmds in prop::collection::vec(command(), 1..6), sizes in chunk_sizes()) {
        let encoded: Vec<Vec<u8>> = cmds.iter().map(|c| encode_multibulk(c)).collect();
        let input = encoded.concat();
        let (reqs, end) = decode_chunked(&input, &sizes);
        prop_assert_eq!(end, End::Pending(vec![]));
        prop_assert_eq!(reqs.len(), cmds.len());
        for ((r, args), enc) in reqs.iter().zip(&cmds).zip(&encoded) {
            prop_assert_eq!(&arg_vecs(r), args);
            prop_assert_eq!(&r.raw()[..], &enc[..]);
            prop_assert!(!r.is_inline());
            let rebuilt = Request::from_args(args);
            prop_assert_eq!(r.raw(), rebuilt.raw());
            for (i, a) in args.iter().enumerate() {
                prop_assert_eq!(r.arg(i), Some(&a[..]));
                let b = r.arg_bytes(i);
                prop_assert_eq!(b.as_deref(), Some(&a[..]));
            }
        }
    }

    /// (a) Inline requests with quoted/escaped arguments mixed with multibulk ones.
    #[test]
    fn inline_and_multibulk_mixed(
        cmds in prop::collection::vec((command(), any::<bool>(), prop::sample::select(vec![" ", "\t", "  "])), 1..5),
        sizes in chunk_sizes(),
    ) {
        let mut input = Vec::new();
        for (args, inline, sep) in &cmds {
            if *inline {
                let line: Vec<Vec<u8>> = args.iter().map(|a| quote(a)).collect();
                input.extend_from_slice(&line.join(sep.as_bytes()));
                input.extend_from_slice(b"\r\n");
            } else {
                input.extend_from_slice(&encode_multibulk(args));
            }
        }
        let (reqs, end) = decode_chunked(&input, &sizes);
        prop_assert_eq!(end, End::Pending(vec![]));
        prop_assert_eq!(reqs.len(), cmds.len());
        for (r, (args, inline, _)) in reqs.iter().zip(&cmds) {
            prop_assert_eq!(&arg_vecs(r), args);
            prop_assert_eq!(r.is_inline(), *inline);
            prop_assert_eq!(&r.raw()[..], &encode_multibulk(args)[..]);
        }
    }

    /// (b) Our RESP3 encoding of any frame is found whole by the scanner in any chunking and parses back.
    #[test]
    fn frame_resp3_round_trip(f in frame(), sizes in chunk_sizes()) {
        let enc = f.to_bytes(true);
        prop_assert_eq!(scan_chunked(&enc, &sizes), Ok(Some(enc.len())));
        let mut with_tail = enc.to_vec();
        with_tail.extend_from_slice(b":1\r\n");
        prop_assert_eq!(scan_chunked(&with_tail, &sizes), Ok(Some(enc.len())));
        let (parsed, n) = Frame::parse(&Bytes::from(with_tail)).unwrap().unwrap();
        prop_assert_eq!(n, enc.len());
        prop_assert_eq!(parsed, f);
    }

    /// (b) The RESP2 downgrade of any frame is one valid RESP2 reply holding the downgraded value.
    #[test]
    fn frame_resp2_downgrade(f in frame(), sizes in chunk_sizes()) {
        let enc = f.to_bytes(false);
        prop_assert_eq!(scan_chunked(&enc, &sizes), Ok(Some(enc.len())));
        let (parsed, n) = Frame::parse(&enc).unwrap().unwrap();
        prop_assert_eq!(n, enc.len());
        // `downgrade` only produces RESP2 types, so this also shows no RESP3 type reached the wire.
        prop_assert_eq!(parsed, downgrade(&f));
    }

    /// (b) RESP2 oracle: redis-protocol's encoding is scanned/parsed by us, our encoding is byte-identical,
    /// and redis-protocol's decoder agrees with ours.
    #[test]
    fn resp2_against_oracle(f in frame2(), sizes in chunk_sizes()) {
        let theirs = to_oracle2(&f);
        let bytes = oracle_encode2(&theirs);
        prop_assert_eq!(scan_chunked(&bytes, &sizes), Ok(Some(bytes.len())));
        let (ours, n) = Frame::parse(&Bytes::from(bytes.clone())).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(&ours, &f);
        prop_assert_eq!(&f.to_bytes(false)[..], &bytes[..]);
        let (decoded, m) = redis_protocol::resp2::decode::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(m, n);
        prop_assert_eq!(decoded, to_oracle2(&ours));
    }

    /// (b) RESP3 oracle, both directions: their bytes through our scanner/parser, our bytes through theirs.
    #[test]
    fn resp3_against_oracle(f in frame3_oracle(), sizes in chunk_sizes()) {
        let theirs = to_oracle3(&f);
        let bytes = oracle_encode3(&theirs);
        prop_assert_eq!(scan_chunked(&bytes, &sizes), Ok(Some(bytes.len())));
        let (ours, n) = Frame::parse(&Bytes::from(bytes.clone())).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(&ours, &f);
        let (decoded, m) = redis_protocol::resp3::decode::complete::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(m, n);
        prop_assert_eq!(&decoded, &to_oracle3(&ours));
        // Our encoder, their decoder.
        let mine = f.to_bytes(true);
        let (decoded, m) = redis_protocol::resp3::decode::complete::decode(&mine).unwrap().unwrap();
        prop_assert_eq!(m, mine.len());
        prop_assert_eq!(&decoded, &theirs);
    }

    /// (c) Arbitrary bytes: never a panic, chunking never changes the outcome.
    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(protocol_byte(), 0..300), sizes in chunk_sizes()) {
        check_everything(&input, &sizes)?;
    }

    /// (c) Mutated valid requests.
    #[test]
    fn mutated_requests_never_panic(
        cmds in prop::collection::vec(command(), 1..4),
        muts in prop::collection::vec((any::<usize>(), 0u8..4, protocol_byte()), 1..5),
        sizes in chunk_sizes(),
    ) {
        let input = mutate(cmds.iter().map(|c| encode_multibulk(c)).collect::<Vec<_>>().concat(), &muts);
        check_everything(&input, &sizes)?;
    }

    /// (c) Mutated valid replies.
    #[test]
    fn mutated_replies_never_panic(
        f in frame(),
        resp3 in any::<bool>(),
        muts in prop::collection::vec((any::<usize>(), 0u8..4, protocol_byte()), 1..5),
        sizes in chunk_sizes(),
    ) {
        let input = mutate(f.to_bytes(resp3).to_vec(), &muts);
        check_everything(&input, &sizes)?;
    }

    /// (c) Small limits are enforced the same whatever the chunking.
    #[test]
    fn small_limits_chunk_independent(input in prop::collection::vec(protocol_byte(), 0..200), sizes in chunk_sizes()) {
        let limits = Limits { max_bulk_len: 8, max_multibulk_len: 4, max_inline_len: 16, max_depth: 3 };
        let whole = ReplyScanner::new(limits.clone()).scan(&input);
        let mut sc = ReplyScanner::new(limits.clone());
        let mut chunked = sc.scan(&[]);
        for (_, e) in pieces(input.len(), &sizes) {
            chunked = sc.scan(&input[..e]);
            if !matches!(chunked, Ok(None)) { break; }
        }
        prop_assert_eq!(&chunked, &whole);
        let parsed = Frame::parse_with_limits(&Bytes::from(input.clone()), &limits);
        prop_assert_eq!(parsed.map(|o| o.map(|(_, n)| n)), whole);

        let run = |sizes: &[usize]| {
            let mut dec = RequestDecoder::new(limits.clone());
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for (s, e) in pieces(input.len(), sizes) {
                buf.extend_from_slice(&input[s..e]);
                loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(r)) => out.push(r.raw().clone()),
                        Ok(None) => break,
                        Err(err) => return (out, Err(err)),
                    }
                }
            }
            (out, Ok(buf.to_vec()))
        };
        prop_assert_eq!(run(&sizes), run(&[input.len().max(1)]));
    }
}
