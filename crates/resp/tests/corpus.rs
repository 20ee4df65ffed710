//! Replays the fuzz corpus in `tests/corpus/` as ordinary tests.
//!
//! Every file goes through every parser (request decoder, reply scanner, `Frame::parse`) byte by byte and
//! whole: nothing may panic and both feedings must agree. Files are named `<req|reply>-<class>-<what>.bin`,
//! where class is `ok` (the whole file is complete requests/replies), `incomplete` (a valid prefix) or `err`;
//! the class is asserted for the parser the file targets. `EXPECTED` optionally pins the exact error text.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use zedis_resp::{Frame, ProtocolError, ReplyScanner, RequestDecoder};

#[derive(Clone, Debug, PartialEq)]
enum Class {
    Ok,
    Incomplete,
    Err(ProtocolError),
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Requests, fed in `chunk`-byte pieces.
fn requests(input: &[u8], chunk: usize) -> (usize, Class) {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut count = 0;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => count += 1,
                Ok(None) => break,
                Err(e) => return (count, Class::Err(e)),
            }
        }
    }
    (count, if buf.is_empty() { Class::Ok } else { Class::Incomplete })
}

/// Replies back to back, revealed `chunk` bytes at a time.
fn replies(input: &[u8], chunk: usize) -> (usize, Class) {
    let mut sc = ReplyScanner::default();
    let mut start = 0;
    let mut end = 0;
    let mut count = 0;
    loop {
        match sc.scan(&input[start..end]) {
            Ok(Some(n)) => {
                count += 1;
                start += n;
                end = end.max(start);
            }
            Ok(None) if end == input.len() => {
                return (count, if start == input.len() { Class::Ok } else { Class::Incomplete });
            }
            Ok(None) => end = (end + chunk.max(1)).min(input.len()),
            Err(e) => return (count, Class::Err(e)),
        }
    }
}

/// Replies back to back through `Frame::parse` (must agree with the scanner).
fn frames(input: &[u8]) -> (usize, Class) {
    let mut buf = Bytes::copy_from_slice(input);
    let mut count = 0;
    loop {
        match Frame::parse(&buf) {
            Ok(Some((_, n))) => {
                count += 1;
                let _ = buf.split_to(n);
            }
            Ok(None) => return (count, if buf.is_empty() { Class::Ok } else { Class::Incomplete }),
            Err(e) => return (count, Class::Err(e)),
        }
    }
}

#[test]
fn corpus_replays() {
    let dir = corpus_dir();
    let expected: HashMap<String, String> = std::fs::read_to_string(dir.join("EXPECTED"))
        .expect("EXPECTED")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "corpus too small: {}", names.len());
    for name in &names {
        let input = std::fs::read(dir.join(name)).expect("read");
        let req = requests(&input, input.len());
        assert_eq!(requests(&input, 1), req, "{name}: request decoding depends on chunking");
        let rep = replies(&input, input.len());
        assert_eq!(replies(&input, 1), rep, "{name}: reply scanning depends on chunking");
        assert_eq!(frames(&input), rep, "{name}: Frame::parse disagrees with ReplyScanner");

        let mut parts = name.trim_end_matches(".bin").splitn(3, '-');
        let (target, class) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let got = match target {
            "req" => &req.1,
            "reply" => &rep.1,
            other => panic!("{name}: unknown target {other:?}"),
        };
        match (class, got) {
            ("ok", Class::Ok) | ("incomplete", Class::Incomplete) => {}
            ("err", Class::Err(e)) => {
                if let Some(text) = expected.get(name) {
                    assert_eq!(&e.to_string(), text, "{name}");
                }
            }
            _ => panic!("{name}: expected {class}, got {got:?}"),
        }
    }
    for name in expected.keys() {
        assert!(names.contains(name), "EXPECTED names a missing file {name}");
    }
}
