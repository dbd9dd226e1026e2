//! A TCP proxy a test can cut, to partition one process from a server (Redis) while the others
//! still reach it: cut, the proxy stops forwarding in both directions and holds every connection
//! open without a word (as a network that drops packets does; nothing is closed, so nothing
//! tells the client at once); healed, the held connections are closed and new ones forwarded.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                tokio::spawn(forward(inbound, target, cut_rx.clone()));
            }
        });
        Proxy { addr, cut, task }
    }

    /// `redis://` to the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    // A connection made during a cut hangs until the cut heals, then is closed.
    if *cut.borrow_and_update() {
        let _ = cut.wait_for(|c| !*c).await;
        let _ = inbound.shutdown().await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
    let cutting = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        _ = cut.wait_for(|c| *c) => true,
    };
    if cutting {
        // Held, silent, until healed.
        let _ = cut.wait_for(|c| !*c).await;
    }
}
