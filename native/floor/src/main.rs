//! The latency floor of this machine, for `bench/latency.py`: what two Unix-socket hops cost
//! with nothing else in the way. std only.
//!
//!     latency-floor [--rate 10000] [--seconds 4]
//!
//! Three processes, as in the pipeline: a writer sends 90-byte messages (a Quote message's size)
//! at `--rate` evenly spaced, to a relay-like forwarder that writes whatever it reads on to a
//! reader; each blocks in its socket calls. The writer stamps each message's bytes 16..24 with
//! the wall clock (ns) just before `write()`, as a collector stamps `timestamp_ns`; the reader
//! takes the difference on arrival. Printed as one JSON line: the `write()` call's duration and
//! the writer-to-reader time, P50 / P99 / P99.9 in µs, the first 10% (set-up) left out.

use std::env;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MESSAGE: usize = 90;

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// P50, P99, P99.9 of `ns` in µs, after leaving out the first 10%.
fn percentiles(ns: &mut Vec<u64>) -> [f64; 3] {
    ns.drain(..ns.len() / 10);
    ns.sort_unstable();
    [0.5, 0.99, 0.999].map(|q| {
        let i = ((ns.len() as f64 - 1.0) * q).round() as usize;
        ns.get(i).map_or(f64::NAN, |&v| v as f64 / 1000.0)
    })
}

fn wait_for(path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} never appeared", path.display()),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn reader(socket: &Path) -> io::Result<()> {
    let listener = UnixListener::bind(socket)?;
    let (mut stream, _) = listener.accept()?;
    let mut message = [0u8; MESSAGE];
    let mut arrivals = Vec::new();
    while stream.read_exact(&mut message).is_ok() {
        let sent = u64::from_le_bytes(message[16..24].try_into().unwrap_or_default());
        arrivals.push(now_ns().saturating_sub(sent));
    }
    let [p50, p99, p999] = percentiles(&mut arrivals);
    println!("{p50} {p99} {p999}");
    Ok(())
}

fn forwarder(listen: &Path, to: &Path) -> io::Result<()> {
    let listener = UnixListener::bind(listen)?;
    wait_for(to)?;
    let mut out = UnixStream::connect(to)?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

fn writer(rate: f64, seconds: f64) -> io::Result<String> {
    let dir = env::temp_dir().join(format!("latency-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (hop1, hop2) = (dir.join("forwarder.sock"), dir.join("reader.sock"));
    let me = env::current_exe()?;
    let mut reader =
        Command::new(&me).args(["--role", "reader", "--socket"]).arg(&hop2).stdout(Stdio::piped()).spawn()?;
    let mut forwarder = Command::new(&me)
        .args(["--role", "forwarder", "--socket"])
        .arg(&hop1)
        .arg("--to")
        .arg(&hop2)
        .spawn()?;
    wait_for(&hop1)?;
    let mut stream = UnixStream::connect(&hop1)?;
    let count = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut message = [0u8; MESSAGE];
    message[..4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    let mut writes = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        message[16..24].copy_from_slice(&now_ns().to_le_bytes());
        let before = Instant::now();
        stream.write_all(&message)?;
        writes.push(before.elapsed().as_nanos() as u64);
    }
    let sent_for = start.elapsed().as_secs_f64();
    drop(stream);
    forwarder.wait()?;
    let mut two_hop = String::new();
    reader.stdout.take().map(|mut out| out.read_to_string(&mut two_hop)).transpose()?;
    reader.wait()?;
    std::fs::remove_dir_all(&dir)?;
    let hop: Vec<f64> = two_hop.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let [w50, w99, w999] = percentiles(&mut writes);
    let [h50, h99, h999] = [0, 1, 2].map(|i| hop.get(i).copied().unwrap_or(f64::NAN));
    Ok(format!(
        "{{\"messages\": {count}, \"msgs_per_s\": {:.0}, \"write_p50_us\": {w50}, \"write_p99_us\": {w99}, \
         \"write_p999_us\": {w999}, \"two_hop_p50_us\": {h50}, \"two_hop_p99_us\": {h99}, \"two_hop_p999_us\": {h999}}}",
        count as f64 / sent_for
    ))
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let path = |name: &str| arg(&args, name).map(PathBuf::from).unwrap_or_default();
    let number = |name: &str, default: f64| arg(&args, name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let result = match arg(&args, "--role").as_deref() {
        Some("reader") => reader(&path("--socket")),
        Some("forwarder") => forwarder(&path("--socket"), &path("--to")),
        _ => writer(number("--rate", 10_000.0), number("--seconds", 4.0)).map(|line| println!("{line}")),
    };
    if let Err(e) = result {
        eprintln!("latency-floor: {e}");
        std::process::exit(1);
    }
}
