//! A TCP proxy to Redis that records the name of every command its clients
//! send: how a test counts round trips from outside the client.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to Redis that records the name of every command clients send.
pub struct CountingProxy {
    pub url: String,
    commands: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub async fn start(upstream: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let commands = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&commands);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(relay(client, server, Arc::clone(&recorded)));
            }
        });
        CountingProxy { url, commands }
    }

    /// The commands sent since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.commands.lock().unwrap())
    }
}

/// Copies both ways, parsing what the client sends (RESP arrays of bulk
/// strings, all redis-rs writes) to record each command's name.
async fn relay(client: TcpStream, server: TcpStream, commands: Arc<Mutex<Vec<String>>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let replies = tokio::spawn(async move {
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
        while let Some((name, used)) = parse_command(&pending) {
            commands.lock().unwrap().push(name);
            pending.drain(..used);
        }
        if server_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    replies.abort();
}

/// The name of the first complete command in `bytes` and its length.
fn parse_command(bytes: &[u8]) -> Option<(String, usize)> {
    fn line(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = bytes[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&bytes[at..end], end + 2))
    }
    let (header, mut at) = line(bytes, 0)?;
    assert_eq!(header[0], b'*', "redis-rs sends arrays");
    let count: usize = std::str::from_utf8(&header[1..]).ok()?.parse().ok()?;
    let mut name = None;
    for _ in 0..count {
        let (size, start) = line(bytes, at)?;
        let size: usize = std::str::from_utf8(&size[1..]).ok()?.parse().ok()?;
        let end = start + size;
        (bytes.len() >= end + 2).then_some(())?;
        name.get_or_insert_with(|| String::from_utf8_lossy(&bytes[start..end]).to_uppercase());
        at = end + 2;
    }
    Some((name?, at))
}
