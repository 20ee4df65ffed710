//! Queues on Redis Streams: push, consumer groups, pop with a visibility timeout (stuck
//! messages are reclaimed), ack, retries up to a maximum delivery count with a dead-letter
//! stream, and stats; plus a pub/sub topic wrapper that is at-most-once by design.
