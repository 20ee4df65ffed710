//! A minimal blocking RESP client for setup and readiness checks (the measured traffic is
//! redis-benchmark's).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for checks and error messages.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Integer(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => "(nil)".to_string(),
            Reply::Array(Some(items)) => items.iter().map(Reply::text).collect::<Vec<_>>().join(" "),
        }
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Conn> {
        let sock: SocketAddr =
            addr.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Conn { reader: BufReader::new(stream), writer, out: Vec::new() })
    }

    /// Queues a command; [`Conn::flush`] sends everything queued.
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            let a = a.as_ref();
            self.out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply.
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.queue(args);
        self.flush()?;
        self.read_reply()
    }

    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err(bad(format!("truncated reply line {:?}", String::from_utf8_lossy(&line))));
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let number = |s: &str| s.parse::<i64>().map_err(|_| bad(format!("bad length {s:?}")));
        match line[0] {
            b'+' => Ok(Reply::Simple(body)),
            b'-' => Ok(Reply::Error(body)),
            b':' => Ok(Reply::Integer(number(&body)?)),
            b'$' => {
                let n = number(&body)?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut data = vec![0; n as usize + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(n as usize);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let n = number(&body)?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.read_reply()?);
                }
                Ok(Reply::Array(Some(items)))
            }
            other => Err(bad(format!("unexpected reply type {:?}", other as char))),
        }
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
