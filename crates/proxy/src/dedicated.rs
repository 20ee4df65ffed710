//! A connection to one server owned by one client for a while: blocking commands and
//! transactions cannot share the multiplexed pipelines (a blocked BLPOP would stall everyone;
//! WATCH/MULTI state lives on the connection).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zedis_resp::ReplyScanner;

use crate::backend::{BackendError, BackendOptions};

pub struct Dedicated {
    addr: String,
    stream: TcpStream,
    buf: BytesMut,
    scanner: ReplyScanner,
}

impl Dedicated {
    pub async fn connect(addr: &str, options: &BackendOptions, resp3: bool) -> Result<Dedicated, BackendError> {
        let stream = crate::backend::connect(addr, options, resp3).await?;
        let scanner = ReplyScanner::new(options.limits.clone());
        Ok(Dedicated { addr: addr.to_string(), stream, buf: BytesMut::with_capacity(4096), scanner })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream.write_all(bytes).await.map_err(|_| BackendError::Lost(self.addr.clone()))
    }

    /// Reads the next complete reply.
    ///
    /// # Cancellation safety
    /// Not safe: dropping it mid-reply leaves the connection unusable (drop the connection too).
    pub async fn read_reply(&mut self) -> Result<Bytes, BackendError> {
        loop {
            match self.scanner.scan(&self.buf) {
                Ok(Some(n)) => return Ok(self.buf.split_to(n).freeze()),
                Ok(None) => {}
                Err(e) => return Err(BackendError::Protocol(self.addr.clone(), e.to_string())),
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(BackendError::Lost(self.addr.clone())),
                Ok(_) => {}
            }
        }
    }

    pub async fn roundtrip(&mut self, bytes: &[u8]) -> Result<Bytes, BackendError> {
        self.send(bytes).await?;
        self.read_reply().await
    }
}
