//! The request decoder never panics, and feeding the input in pieces gives what feeding it whole gives.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zedis_resp::{Request, RequestDecoder};

fn run(input: &[u8], chunk: usize) -> (Vec<Request>, Result<(), zedis_resp::ProtocolError>) {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(e) => return (out, Err(e)),
            }
        }
    }
    (out, Ok(()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole = run(input, input.len());
    let pieces = run(input, usize::from(chunk % 17) + 1);
    assert_eq!(whole, pieces);
});
