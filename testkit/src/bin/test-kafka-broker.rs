//! `test-kafka-broker [--port P] [--stay]`: run the harness's Kafka broker in the foreground,
//! print `bootstrap=127.0.0.1:PORT` once it is ready, and stop it on SIGTERM/SIGINT or, unless
//! `--stay`, when stdin closes. Used by the Python tests (free port) and by `./pipeline.sh`
//! (port 9092, `--stay`).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok());
    let stay = args.iter().any(|a| a == "--stay");
    let broker = match (port, testkit::kafka::libs_dir()) {
        (Some(p), Some(libs)) => {
            testkit::kafka::KafkaBroker::start_on(libs, p, testkit::free_port(), Vec::new())
                .unwrap_or_else(|e| panic!("cannot start Kafka on port {p}: {e:#}"))
        }
        _ => match testkit::kafka::KafkaBroker::start_or_skip("test-kafka-broker") {
            Some(b) => b,
            None => std::process::exit(2),
        },
    };
    println!("bootstrap={}", broker.bootstrap());
    let _ = std::io::stdout().flush();
    // SAFETY: the handler only stores to an atomic flag.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    if !stay {
        std::thread::spawn(|| {
            let mut buf = [0u8; 64];
            while let Ok(n) = std::io::stdin().read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            STOP.store(true, Ordering::SeqCst);
        });
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(broker);
}
