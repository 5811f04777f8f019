//! A TCP relay that adds a fixed delay each way: a stand-in for a wide-area link on a kernel
//! without the netem queueing discipline.
//!
//! For every accepted connection the relay opens one to the target and runs four threads: for each
//! direction a reader that stamps each chunk it reads with "now + delay" and queues it, and a writer
//! that sleeps until a chunk's time and writes it on. So every byte arrives `delay` later than it
//! would have, while bandwidth is not limited by the delay (chunks in flight overlap, as on a real
//! link). An end of stream is passed on after the chunks before it, as a half close. Both sockets
//! have TCP_NODELAY, so the relay adds no Nagle wait of its own.
//!
//! The delay can be changed while the relay runs ([`Relay::delay`]): each chunk takes the delay of
//! the moment it is read, so a link can be slowed and healed under load (a chunk read after the
//! delay fell still waits for the chunks before it: bytes on a link stay in order).

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest chunk read at once.
const CHUNK: usize = 64 << 10;

/// Time allowed to connect to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The delay of a relay, shared by its connections and changed from outside.
#[derive(Debug, Clone, Default)]
pub struct Delay(Arc<AtomicU64>);

impl Delay {
    /// A delay of `d`.
    pub fn new(d: Duration) -> Delay {
        let delay = Delay::default();
        delay.set(d);
        delay
    }

    /// The delay now.
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    /// Sets the delay of every chunk read from now on.
    pub fn set(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, Ordering::Relaxed);
    }
}

/// A running relay. Dropping it does not stop it; call [`Relay::stop`].
pub struct Relay {
    addr: SocketAddr,
    delay: Delay,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Relays every connection accepted on `listener` to `to`, delaying each chunk by `delay` in
    /// each direction.
    pub fn start(listener: TcpListener, to: &str, delay: Duration) -> std::io::Result<Relay> {
        let target = to.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{to} has no address"),
            )
        })?;
        let addr = listener.local_addr()?;
        let delay = Delay::new(delay);
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (delay2, stop2, accepted2) = (delay.clone(), stop.clone(), accepted.clone());
        let accept = std::thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || accept_loop(listener, target, &delay2, &stop2, &accepted2))?;
        Ok(Relay {
            addr,
            delay,
            stop,
            accepted,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its delay, to read or change while it runs.
    pub fn delay(&self) -> &Delay {
        &self.delay
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops accepting (open connections run on until either side closes).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        let _ = self.accept.join();
    }

    /// Serves until the process is killed.
    pub fn wait(self) {
        let _ = self.accept.join();
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    delay: &Delay,
    stop: &AtomicBool,
    accepted: &AtomicU64,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match conn {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, or an aborted connection: keep accepting.
                eprintln!("relay: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let delay = delay.clone();
        let spawned = std::thread::Builder::new()
            .name("relay-conn".into())
            .spawn(move || {
                if let Err(e) = relay_connection(client, target, delay) {
                    eprintln!("relay: connection to {target}: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("relay: cannot start a thread: {e}");
        }
    }
}

/// Connects to the target and starts both directions.
fn relay_connection(client: TcpStream, target: SocketAddr, delay: Delay) -> std::io::Result<()> {
    let server = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    pipe(
        client.try_clone()?,
        server.try_clone()?,
        delay.clone(),
        "up",
    )?;
    pipe(server, client, delay, "down")?;
    Ok(())
}

/// One direction: a reader from `from` and a writer to `to`, joined by a queue of timed chunks
/// (`None` marks the end of the stream).
fn pipe(from: TcpStream, to: TcpStream, delay: Delay, name: &str) -> std::io::Result<()> {
    let (chunk_tx, chunk_rx) = unbounded::<(Instant, Option<Vec<u8>>)>();
    let reader_side = from.try_clone()?;
    std::thread::Builder::new()
        .name(format!("relay-{name}-read"))
        .spawn(move || read_chunks(from, &delay, &chunk_tx))?;
    std::thread::Builder::new()
        .name(format!("relay-{name}-write"))
        .spawn(move || write_chunks(to, reader_side, &chunk_rx))?;
    Ok(())
}

fn read_chunks(mut from: TcpStream, delay: &Delay, chunk_tx: &Sender<(Instant, Option<Vec<u8>>)>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = chunk_tx.send((Instant::now() + delay.get(), None));
                return;
            }
            Ok(n) => {
                if chunk_tx
                    .send((Instant::now() + delay.get(), Some(buf[..n].to_vec())))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn write_chunks(
    mut to: TcpStream,
    from: TcpStream,
    chunk_rx: &Receiver<(Instant, Option<Vec<u8>>)>,
) {
    while let Ok((due, chunk)) = chunk_rx.recv() {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        match chunk {
            Some(bytes) => {
                if to.write_all(&bytes).is_err() {
                    // The receiver is gone: stop reading from the sender too.
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
            None => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A server that echoes each line it reads.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    conn.set_nodelay(true).unwrap();
                    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                    let mut writer = conn;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if writer.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        addr
    }

    fn relay_to(addr: SocketAddr, delay_ms: u64) -> Relay {
        Relay::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            &addr.to_string(),
            Duration::from_millis(delay_ms),
        )
        .unwrap()
    }

    /// A connection to `relay` with TCP_NODELAY: its reading side, buffered, and its writing side.
    fn connect(relay: &Relay) -> (std::io::BufReader<TcpStream>, TcpStream) {
        let conn = TcpStream::connect(relay.addr()).unwrap();
        conn.set_nodelay(true).unwrap();
        (std::io::BufReader::new(conn.try_clone().unwrap()), conn)
    }

    #[test]
    fn bytes_are_forwarded_both_ways_with_the_delay() {
        let relay = relay_to(echo_server(), 60);
        let (mut reader, mut writer) = connect(&relay);
        for round in 0..3 {
            let started = Instant::now();
            let text = format!("hello {round} {}\n", "x".repeat(round * 1000));
            writer.write_all(text.as_bytes()).unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let took = started.elapsed();
            assert_eq!(line, text);
            // 60 ms there and 60 ms back; loosely bounded above.
            assert!(took >= Duration::from_millis(120), "{took:?}");
            assert!(took < Duration::from_secs(3), "{took:?}");
        }
        assert_eq!(relay.accepted(), 1);
        relay.stop();
    }

    #[test]
    fn chunks_in_flight_overlap() {
        // 20 lines written 10 ms apart through a 100 ms delay: a relay that held each chunk in turn
        // would need 2 s each way; a delay line needs about 0.2 s + 2 x 0.1 s.
        let relay = relay_to(echo_server(), 100);
        let (mut reader, mut writer) = connect(&relay);
        let started = Instant::now();
        let sender = std::thread::spawn(move || {
            for i in 0..20 {
                writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            writer
        });
        for i in 0..20 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, format!("line {i}\n"));
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        drop(sender.join().unwrap());
        relay.stop();
    }

    #[test]
    fn the_delay_changes_while_a_connection_is_open() {
        let relay = relay_to(echo_server(), 0);
        let (mut reader, mut writer) = connect(&relay);
        let round_trip = |reader: &mut std::io::BufReader<TcpStream>, writer: &mut TcpStream| {
            let started = Instant::now();
            writer.write_all(b"ping\n").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "ping\n");
            started.elapsed()
        };
        assert!(round_trip(&mut reader, &mut writer) < Duration::from_millis(100));
        relay.delay().set(Duration::from_millis(150));
        assert_eq!(relay.delay().get(), Duration::from_millis(150));
        let slow = round_trip(&mut reader, &mut writer);
        assert!(slow >= Duration::from_millis(300), "{slow:?}");
        relay.delay().set(Duration::ZERO);
        let healed = round_trip(&mut reader, &mut writer);
        assert!(healed < Duration::from_millis(300), "{healed:?}");
        relay.stop();
    }

    #[test]
    fn a_close_is_passed_on() {
        let relay = relay_to(echo_server(), 10);
        let mut conn = TcpStream::connect(relay.addr()).unwrap();
        conn.write_all(b"bye\n").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut all = String::new();
        conn.read_to_string(&mut all).unwrap();
        assert_eq!(all, "bye\n");
        relay.stop();
    }

    #[test]
    fn an_unreachable_target_closes_the_client() {
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let relay = relay_to(dead, 0);
        let mut conn = TcpStream::connect(relay.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).unwrap_or(0), 0);
        relay.stop();
    }
}
