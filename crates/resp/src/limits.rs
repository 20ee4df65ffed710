//! Size limits that bound the memory a single request or reply can make the framer hold.

/// Limits enforced by [`RequestDecoder`](crate::RequestDecoder), [`ReplyScanner`](crate::ReplyScanner) and
/// [`Frame::parse_with_limits`](crate::Frame::parse_with_limits).
///
/// The defaults are the ones Redis 7 enforces on client input (`networking.c`), so a client sees the same
/// errors through the proxy as it would talking to Redis directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted (`$<len>`). Redis: `proto-max-bulk-len`, default 512 MiB.
    pub max_bulk_len: usize,
    /// Largest argument count of a multibulk request (`*<n>`), and largest element count of a reply aggregate.
    /// Redis 7 accepts up to `INT_MAX` (Redis 6 and older: 1024*1024). The decoder never preallocates from this
    /// count, so memory stays proportional to the bytes actually received.
    pub max_multibulk_len: usize,
    /// Longest inline request line, and longest `*<n>` / `$<len>` header line, in bytes.
    /// Redis: `PROTO_INLINE_MAX_SIZE`, 64 KiB.
    pub max_inline_len: usize,
    /// Deepest nesting of aggregates (arrays, maps, sets, pushes, attributes) in a reply.
    pub max_depth: usize,
}

impl Limits {
    /// `proto-max-bulk-len` default: 512 MiB.
    pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
    /// Redis 7: `ll > INT_MAX` is "invalid multibulk length".
    pub const DEFAULT_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;
    /// Redis: `PROTO_INLINE_MAX_SIZE` (1024*64).
    pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;
    /// Nesting depth for replies. Redis itself never nests deeper than a handful of levels.
    pub const DEFAULT_MAX_DEPTH: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
            max_multibulk_len: Self::DEFAULT_MAX_MULTIBULK_LEN,
            max_inline_len: Self::DEFAULT_MAX_INLINE_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}
