//! A TCP proxy on loopback that injects one fault real networks have: the requests reach the
//! server, its answers are lost. It forwards both ways; [`TcpProxy::lose_answers_for`] holds
//! every answer back for a while, then cuts every connection, so the client learns nothing of
//! what the server did with what it sent.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    holding: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// Listen on a free loopback port and forward every connection to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            holding: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut open = s.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, None));
                let shared = s.clone();
                std::thread::spawn(move || pump(s2, c2, Some(shared)));
            }
        });
        Self { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Hold back every answer of the server for `d`, then cut every open connection (the held
    /// answers are lost). New connections pass normally afterwards.
    pub fn lose_answers_for(&self, d: Duration) {
        self.shared.holding.store(true, Ordering::SeqCst);
        std::thread::sleep(d);
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.shared.holding.store(false, Ordering::SeqCst);
    }
}

/// Copy `from` to `to`; answers (`holder` set) wait while the proxy holds them.
fn pump(mut from: TcpStream, mut to: TcpStream, holder: Option<Arc<Shared>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(h) = &holder {
            while h.holding.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
