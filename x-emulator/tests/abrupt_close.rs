//! An abrupt close cuts a message, not what came before it: every tweet the log says was
//! sent reaches the client, though the server still held bytes for it (a client that had
//! not read them yet) when the plan said to close.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use x_emulator::{ConnectionPlan, Corpus, Emulator, EmulatorConfig, End};

/// Whole messages before the cut: ~430 KB, far more than the small socket buffers on both
/// sides take, less than the server buffers beyond them (its body channel and HTTP write
/// buffer, ~900 KB), so the session reaches the cut while the client reads nothing.
const BEFORE_THE_CUT: usize = 500;

#[test]
fn a_client_that_reads_late_gets_every_tweet_sent_before_the_cut() {
    let mut cfg = EmulatorConfig::new(Corpus::generated(1_700_000_000_000));
    cfg.send_buffer = Some(4096);
    cfg.random_chunks = false;
    cfg.plans = vec![ConnectionPlan {
        after: Some(BEFORE_THE_CUT as u64),
        end: Some(End::CloseMidMessage),
        ..Default::default()
    }];
    let emu = Emulator::start_background(cfg).unwrap();
    let conn = connect_without_reading(&emu);
    // The session sends its messages and reaches the cut; the client reads nothing yet.
    let started = Instant::now();
    while emu
        .log()
        .first()
        .is_none_or(|c| c.sent.len() < BEFORE_THE_CUT)
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let body = read_chunked_until_cut(BufReader::with_capacity(1 << 16, conn));
    let received: Vec<String> = body
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter_map(|v| v["data"]["id"].as_str().map(str::to_string))
        .collect();
    let log = emu.log();
    assert_eq!(
        log[0].sent.len(),
        BEFORE_THE_CUT,
        "the plan's whole messages"
    );
    assert_eq!(log[0].end.as_deref(), Some("closed mid-message"));
    assert_eq!(
        received.len(),
        BEFORE_THE_CUT,
        "{} bytes read; every tweet logged as sent arrives",
        body.len()
    );
    assert_eq!(received, log[0].sent, "in order");
}

/// A v2 sample connection whose client has a small receive buffer and reads nothing yet.
fn connect_without_reading(emu: &Emulator) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&emu.addr.into()).unwrap();
    let mut conn: TcpStream = socket.into();
    write!(
        conn,
        "GET /2/tweets/sample/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer emulator-bearer-token\r\n\r\n",
        emu.addr
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn
}

/// The body of a chunked response up to where the connection broke.
fn read_chunked_until_cut(mut r: BufReader<TcpStream>) -> Vec<u8> {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("response head");
        if line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return body,
            Ok(_) => {}
        }
        let Ok(size) = usize::from_str_radix(line.trim_end(), 16) else {
            return body;
        };
        let mut chunk = vec![0; size + 2];
        let mut got = 0;
        while got < chunk.len() {
            match r.read(&mut chunk[got..]) {
                Ok(0) | Err(_) => {
                    body.extend_from_slice(&chunk[..got.min(size)]);
                    return body;
                }
                Ok(n) => got += n,
            }
        }
        body.extend_from_slice(&chunk[..size]);
    }
}
