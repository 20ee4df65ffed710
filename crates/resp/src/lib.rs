//! RESP2/RESP3 framing for the zedis proxy, over [`bytes`].
//!
//! This crate is the proxy's hot path and knows nothing of sockets or ZooKeeper. It is offset-based: requests
//! keep the exact bytes the client sent ([`Request::raw`]) so the proxy can forward them untouched, and replies
//! are delimited by [`ReplyScanner`] without being decoded; [`Frame`] decodes a reply only where the proxy must
//! look inside one.
//!
//! * [`RequestDecoder`]: client requests, multibulk and inline, with the rules and error texts of Redis 7.
//! * [`ReplyScanner`]: where a backend reply (RESP2 or RESP3) ends.
//! * [`Frame`]: a decoded reply, with a RESP2 downgrade on encode.
//! * [`write_error`] and friends: replies the proxy writes itself.
//!
//! No input makes these panic; memory is bounded by [`Limits`]; a large frame arriving in small pieces is
//! scanned once.

mod decoder;
mod error;
mod frame;
mod inline;
mod limits;
mod request;
mod scanner;
mod util;
mod write;

pub use decoder::RequestDecoder;
pub use error::ProtocolError;
pub use frame::Frame;
pub use limits::Limits;
pub use request::{Request, UpperName};
pub use scanner::ReplyScanner;
pub use write::{
    write_array_header, write_bulk, write_error, write_header, write_integer, write_null, write_ok, write_simple,
};
