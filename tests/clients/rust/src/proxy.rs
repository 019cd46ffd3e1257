//! A TCP forwarder in front of the node whose connections can be cut at once, as a network
//! failure would: the client sees its WebSocket (and pooled HTTP connections) drop without a
//! close frame, and later connections go through again. It keeps what the node sent on each
//! connection, so the order of the node's WebSocket messages can be checked on the wire.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::Res;

type Shared<T> = Arc<Mutex<Vec<T>>>;

pub struct Proxy {
    pub addr: String,
    conns: Shared<JoinHandle<()>>,
    received: Shared<Shared<u8>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Res<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let conns: Shared<JoinHandle<()>> = Arc::default();
        let received: Shared<Shared<u8>> = Arc::default();
        let (list, recs, target) = (conns.clone(), received.clone(), target.to_owned());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = target.clone();
                let rec: Shared<u8> = Arc::default();
                recs.lock().unwrap().push(rec.clone());
                let task = tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_node, mut to_node) = outbound.into_split();
                    let up = tokio::io::copy(&mut from_client, &mut to_node);
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_node.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            rec.lock().unwrap().extend_from_slice(&buf[..n]);
                            to_client.write_all(&buf[..n]).await?;
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Ok(Proxy {
            addr,
            conns,
            received,
        })
    }

    /// Drops every connection open through the proxy.
    pub fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// What the node sent on each connection so far, in the order the connections were made.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }
}

/// Byte offset of the first `needle` in `hay`.
pub fn find(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w == needle.as_bytes())
}
