//! The hot path is allocation-light: decoding pipelined small commands allocates nothing per command
//! (argument spans live inline in the `Request`, `raw` is a zero-copy split of the read buffer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use zedis_resp::{ReplyScanner, RequestDecoder};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// One test only in this binary, so the global counter is not shared with another thread.
#[test]
fn pipelined_small_commands_do_not_allocate_per_command() {
    const N: usize = 1000;
    let one = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let mut buf = BytesMut::with_capacity(one.len() * N);
    for _ in 0..N {
        buf.extend_from_slice(one);
    }
    let mut dec = RequestDecoder::default();
    let mut reqs = Vec::with_capacity(N);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    while let Some(r) = dec.decode(&mut buf).expect("valid") {
        reqs.push(r);
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;

    assert_eq!(reqs.len(), N);
    assert!(reqs.iter().all(|r| r.name() == b"SET" && r.arg(2) == Some(&b"value"[..])));
    // `BytesMut` turns into a shared buffer on the first split (one allocation); nothing after that.
    assert!(during <= 2, "{during} allocations for {N} commands");

    // Scanning replies allocates nothing for flat replies.
    let replies = b"+OK\r\n$5\r\nvalue\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n".repeat(100);
    let mut sc = ReplyScanner::default();
    let mut pos = 0;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    while let Some(n) = sc.scan(&replies[pos..]).expect("valid") {
        pos += n;
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(pos, replies.len());
    // The aggregate stack is allocated once and reused.
    assert!(during <= 1, "{during} allocations while scanning");
}
