//! The few Redis commands the controller sends, each bounded by a timeout. Thin I/O: no
//! decisions here.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use zedis_topology::split_addr;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{addr}: timed out after {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{addr}: {source}")]
    Redis { addr: String, source: redis::RedisError },
    #[error("{addr}: not a host:port address")]
    BadAddress { addr: String },
}

/// A connection to one managed server, with a per-command timeout.
#[derive(Clone)]
pub struct ServerConn {
    addr: String,
    conn: MultiplexedConnection,
    timeout: Duration,
    /// The servers' `requirepass`, also given to replicas as `masterauth`.
    password: Option<String>,
}

impl ServerConn {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<ServerConn, ServerError> {
        ServerConn::connect_with(addr, timeout, None).await
    }

    /// Connects and authenticates with `password` (all managed servers share one password).
    pub async fn connect_with(
        addr: &str,
        timeout: Duration,
        password: Option<&str>,
    ) -> Result<ServerConn, ServerError> {
        let (host, port) = split_addr(addr).ok_or_else(|| ServerError::BadAddress { addr: addr.to_string() })?;
        let mut info = redis::IntoConnectionInfo::into_connection_info((host.to_string(), port))
            .map_err(|source| ServerError::Redis { addr: addr.to_string(), source })?;
        if let Some(p) = password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client =
            redis::Client::open(info).map_err(|source| ServerError::Redis { addr: addr.to_string(), source })?;
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let connect = client.get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => return Err(ServerError::Redis { addr: addr.to_string(), source }),
            Err(_) => return Err(ServerError::Timeout { addr: addr.to_string(), after: timeout }),
        };
        Ok(ServerConn { addr: addr.to_string(), conn, timeout, password: password.map(str::to_string) })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, ServerError> {
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut self.conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ServerError::Redis { addr: self.addr.clone(), source }),
            Err(_) => Err(ServerError::Timeout { addr: self.addr.clone(), after: self.timeout }),
        }
    }

    pub async fn pipeline<T: redis::FromRedisValue>(&mut self, pipe: &redis::Pipeline) -> Result<T, ServerError> {
        match tokio::time::timeout(self.timeout, pipe.query_async::<T>(&mut self.conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ServerError::Redis { addr: self.addr.clone(), source }),
            Err(_) => Err(ServerError::Timeout { addr: self.addr.clone(), after: self.timeout }),
        }
    }

    /// Any command, bounded by the connection's timeout.
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, ServerError> {
        self.run(cmd).await
    }

    /// The servers' password (for `MIGRATE ... AUTH`).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub async fn ping(&mut self) -> Result<(), ServerError> {
        self.run::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// `INFO` of the given sections, as text.
    pub async fn info(&mut self, sections: &[&str]) -> Result<String, ServerError> {
        let mut cmd = redis::cmd("INFO");
        for s in sections {
            cmd.arg(*s);
        }
        self.run::<String>(&cmd).await
    }

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` when `master` is `None`. With a password,
    /// the replica first gets it as `masterauth` so it can sync.
    pub async fn replicaof(&mut self, master: Option<&str>) -> Result<(), ServerError> {
        if let (Some(p), Some(_)) = (self.password.clone(), master) {
            self.config_set(&[("masterauth".to_string(), p)]).await?;
        }
        let mut cmd = redis::cmd("REPLICAOF");
        match master {
            None => cmd.arg("NO").arg("ONE"),
            Some(m) => {
                let (host, port) = split_addr(m).ok_or_else(|| ServerError::BadAddress { addr: m.to_string() })?;
                cmd.arg(host).arg(port)
            }
        };
        self.run::<String>(&cmd).await.map(|_| ())
    }

    pub async fn config_set(&mut self, pairs: &[(String, String)]) -> Result<(), ServerError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET");
        for (k, v) in pairs {
            cmd.arg(k).arg(v);
        }
        self.run::<String>(&cmd).await.map(|_| ())
    }

    /// Blocks clients' write commands for up to `ms` (a safety net if we die before unpausing).
    pub async fn pause_writes(&mut self, ms: u64) -> Result<(), ServerError> {
        self.run::<String>(redis::cmd("CLIENT").arg("PAUSE").arg(ms).arg("WRITE")).await.map(|_| ())
    }

    pub async fn unpause(&mut self) -> Result<(), ServerError> {
        self.run::<String>(redis::cmd("CLIENT").arg("UNPAUSE")).await.map(|_| ())
    }
}
