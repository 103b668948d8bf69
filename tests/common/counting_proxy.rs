//! A TCP proxy to Redis that records the name of every command its clients
//! send: how a test counts round trips from outside the client.

use std::sync::{Arc, Mutex};

use super::tcp_relay;

/// A TCP proxy to Redis that records the name of every command clients send.
pub struct CountingProxy {
    pub url: String,
    commands: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub async fn start(upstream: String) -> CountingProxy {
        let commands = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&commands);
        // What redis-rs writes: RESP arrays of bulk strings.
        let address = tcp_relay::start(upstream, move |pending| {
            let (name, used) = parse_command(pending)?;
            recorded.lock().unwrap().push(name);
            Some(used)
        })
        .await;
        CountingProxy {
            url: format!("redis://{address}"),
            commands,
        }
    }

    /// The commands sent since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.commands.lock().unwrap())
    }
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
