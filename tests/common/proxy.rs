//! A TCP proxy in front of a server that a test can cut (closing every connection and refusing new ones) and
//! restore, to simulate an outage without stopping the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    refused: Arc<(AtomicUsize, Notify)>,
}

impl Proxy {
    /// Starts forwarding to `target`, up (or down, if `up` is false) from the start.
    pub async fn start(target: SocketAddr, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, receiver) = watch::channel(up);
        let refused = Arc::new((AtomicUsize::new(0), Notify::new()));
        let counter = refused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*receiver.borrow() {
                    drop(client);
                    counter.0.fetch_add(1, Ordering::SeqCst);
                    counter.1.notify_waiters();
                    continue;
                }
                let mut down = receiver.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up: sender, refused }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Waits until at least `n` connections have been refused.
    pub async fn refused_at_least(&self, n: usize) {
        loop {
            let notified = self.refused.1.notified();
            if self.refused.0.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }
}
