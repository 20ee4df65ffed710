//! Helpers shared by the recipes' end-to-end tests.
#![allow(dead_code)]

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to ZooKeeper that can be cut (every connection dropped, new ones refused), to
/// partition a client from ZooKeeper.
pub struct Partition {
    pub addr: String,
    cut: watch::Sender<bool>,
}

impl Partition {
    pub async fn start(target: String) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue; // dropped: refused while cut
                }
                let mut cut_rx = cut_rx.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Partition { addr, cut }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}
