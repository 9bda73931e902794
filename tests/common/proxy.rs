//! A TCP proxy in front of a server that a test can cut (closing every connection and refusing new ones) and
//! restore, to simulate an outage without stopping the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Counts with a notification on every change.
#[derive(Default)]
struct Gauge {
    value: AtomicUsize,
    changed: Notify,
}

impl Gauge {
    fn add(&self, delta: isize) {
        if delta >= 0 {
            self.value.fetch_add(delta as usize, Ordering::SeqCst);
        } else {
            self.value.fetch_sub(delta.unsigned_abs(), Ordering::SeqCst);
        }
        self.changed.notify_waiters();
    }

    /// Waits until the value satisfies `done`.
    async fn until(&self, done: impl Fn(usize) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(self.value.load(Ordering::SeqCst)) {
                return;
            }
            changed.await;
        }
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    refused: Arc<Gauge>,
    open: Arc<Gauge>,
}

impl Proxy {
    /// Starts forwarding to `target`, up (or down, if `up` is false) from the start.
    pub async fn start(target: SocketAddr, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, receiver) = watch::channel(up);
        let (refused, open) = (Arc::new(Gauge::default()), Arc::new(Gauge::default()));
        let (refused_count, open_count) = (refused.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*receiver.borrow() {
                    drop(client);
                    refused_count.add(1);
                    continue;
                }
                let mut down = receiver.clone();
                let open = open_count.clone();
                open.add(1);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        tokio::select! {
                            biased;
                            _ = down.wait_for(|up| !*up) => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    }
                    drop(client);
                    open.add(-1);
                });
            }
        });
        Self { addr, up: sender, refused, open }
    }

    /// Closes every open connection (returning once they are all closed) and refuses new ones.
    pub async fn cut(&self) {
        self.up.send_replace(false);
        self.open.until(|open| open == 0).await;
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Waits until at least `n` connections have been refused.
    pub async fn refused_at_least(&self, n: usize) {
        self.refused.until(|refused| refused >= n).await;
    }
}
