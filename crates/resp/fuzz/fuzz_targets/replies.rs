//! The reply scanner and `Frame::parse` never panic, agree with each other, and do not depend on chunking;
//! a parsed frame re-encodes to one valid reply.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zedis_resp::{Frame, ReplyScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole = ReplyScanner::default().scan(input);
    let mut sc = ReplyScanner::default();
    let mut pieces = sc.scan(&[]);
    let step = usize::from(chunk % 17) + 1;
    let mut end = 0;
    while end < input.len() {
        end = (end + step).min(input.len());
        pieces = sc.scan(&input[..end]);
        if !matches!(pieces, Ok(None)) {
            break;
        }
    }
    assert_eq!(whole, pieces);
    let parsed = Frame::parse(&Bytes::copy_from_slice(input));
    match (&parsed, &whole) {
        (Ok(Some((f, n))), Ok(Some(m))) => {
            assert_eq!(n, m);
            for resp3 in [true, false] {
                let enc = f.to_bytes(resp3);
                assert_eq!(ReplyScanner::default().scan(&enc), Ok(Some(enc.len())));
            }
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("parse {parsed:?} vs scan {whole:?}"),
    }
});
