//! A TCP relay on a free loopback port that shows a test what clients send:
//! the one mechanism under the Redis command counter and the DynamoDB
//! request recorder.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relays every connection to `upstream` (`host:port`) both ways. What a
/// client sends is also handed to `watch`, which is given the bytes not yet
/// consumed and returns the length of the first whole unit it recognised
/// (a command, a request head), or `None` until more bytes arrive.
pub async fn start<W>(upstream: String, watch: W) -> SocketAddr
where
    W: Fn(&[u8]) -> Option<usize> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let watch = Arc::new(watch);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            tokio::spawn(relay(client, server, Arc::clone(&watch)));
        }
    });
    address
}

async fn relay<W>(client: TcpStream, server: TcpStream, watch: Arc<W>)
where
    W: Fn(&[u8]) -> Option<usize> + Send + Sync + 'static,
{
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut pending = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        while let Some(used) = watch(&pending) {
            pending.drain(..used);
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}
