//! Send throughput of the driver's datapath on the kernel model, next to a baseline measured
//! in the same run: plain `send_to` on a Linux UDP socket to the same loopback receiver.
//!
//! Prints, per payload size and request shape: datagrams/s, the ratio to the baseline, and per
//! datagram the pool, IRP and MDL allocations and the payload copies (the I/O manager's copy
//! into the system buffer, counted per IOCTL, plus the driver's copy into pool, counted from
//! the model's allocations tagged `WkuP`). Every row sends through the client's one send path,
//! `Client::send_pipelined_with`: the request-shape rows one request at a time, the pipelined
//! rows with requests of the driver's `max_count` datagrams, 1 or 8 of them in flight (on the
//! model they run alike: a single worker completes, and sends, every datagram, and a request of
//! `max_count` datagrams keeps it busy already; what depth buys on Windows, where each request
//! boundary is a round trip to user mode, is for a test VM to measure).
//!
//! `cargo bench -p wskudp-harness --bench throughput` (`WSKUDP_BENCH_DATAGRAMS` sets the
//! number of datagrams per row, default 100000). These are host figures for the model, not
//! Windows figures: they show the datapath's own cost and its allocation discipline.

#![allow(clippy::cast_precision_loss, reason = "figures for display")]

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wskudp_abi::SendSpec;
use wskudp_harness::backend::{ModelBackend, ModelConfig};
use wskudp_harness::client::{Client, Pipeline};
use wskudp_harness::pattern;
use wskudp_kmodel::CompletionMode;

/// A loopback receiver draining on its own thread.
struct Sink {
    address: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the sink");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let address = socket.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buffer = vec![0; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let _ = socket.recv(&mut buffer);
                }
            })
        };
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn rate(datagrams: u64, elapsed: Duration) -> f64 {
    datagrams as f64 / elapsed.as_secs_f64()
}

fn baseline(size: usize, datagrams: u64) -> f64 {
    let sink = Sink::start();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let payload = pattern(size);
    let start = Instant::now();
    for _ in 0..datagrams {
        socket.send_to(&payload, sink.address).expect("send_to");
    }
    rate(datagrams, start.elapsed())
}

struct Row {
    rate: f64,
    pool: f64,
    irps: f64,
    mdls: f64,
    copies: f64,
}

/// One request shape: datagrams per request (`None`: the driver's `max_count`) and requests
/// in flight.
struct Shape<'a> {
    name: &'a str,
    segments: &'a [u32],
    per_request: Option<u32>,
    inflight: usize,
    completion: CompletionMode,
}

fn model(size: usize, shape: &Shape<'_>, datagrams: u64) -> Row {
    let sink = Sink::start();
    let backend = ModelBackend::start(ModelConfig {
        machine: wskudp_kmodel::Config {
            completion: shape.completion,
            ..wskudp_kmodel::Config::default()
        },
        ..ModelConfig::default()
    })
    .expect("model loads");
    let client = Client::new(Box::new(backend));
    let backend = client.backend();
    let socket = client
        .open_socket("127.0.0.1:0".parse().expect("address"))
        .expect("open");
    let spec: SendSpec = wskudp_harness::scenarios::plain(socket.socket, sink.address, 1);
    let payload = pattern(size);
    let before = backend.stats().unwrap_or_default();
    let payload_copies_before = backend
        .allocations_by_tag()
        .get("WkuP")
        .copied()
        .unwrap_or(0);
    let start = Instant::now();
    let summary = client
        .send_pipelined_with(
            &spec,
            shape.segments,
            &payload,
            Pipeline {
                total: datagrams,
                inflight: shape.inflight,
                per_request: shape.per_request,
            },
        )
        .expect("send");
    let elapsed = start.elapsed();
    assert!(
        summary.all_sent() && summary.datagrams_failed == 0,
        "a datagram failed: {summary:?}"
    );
    let after = backend.stats().unwrap_or_default();
    let payload_copies = backend
        .allocations_by_tag()
        .get("WkuP")
        .copied()
        .unwrap_or(0)
        - payload_copies_before;
    let sent = summary.datagrams_sent as f64;
    let per = |n: u64| n as f64 / sent;
    client.close_socket(socket.socket).expect("close");
    let report = client.finish();
    assert!(
        report.is_some_and(|r| r.is_clean()),
        "model report not clean"
    );
    Row {
        rate: rate(summary.datagrams_sent, elapsed),
        pool: per(after.pool_allocations - before.pool_allocations),
        irps: per(after.irp_allocations - before.irp_allocations),
        mdls: per(after.mdl_allocations - before.mdl_allocations),
        // One system-buffer copy per SEND, plus the driver's pool copies.
        copies: (summary.requests + payload_copies) as f64 / sent,
    }
}

fn main() {
    let datagrams: u64 = std::env::var("WSKUDP_BENCH_DATAGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("wskudp send throughput on the kernel model, {datagrams} datagrams per row, loopback");
    println!(
        "{:>6} {:<34} {:>12} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "bytes", "path", "datagrams/s", "vs base", "pool/dg", "IRPs/dg", "MDLs/dg", "copy/dg"
    );
    for size in [64, 1200] {
        let base = baseline(size, datagrams);
        println!(
            "{size:>6} {:<34} {base:>12.0} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "baseline: send_to()", "1.00", "-", "-", "-", "1"
        );
        let half = u32::try_from(size / 2).unwrap_or(1);
        let halves = [half, half];
        let shape = |name, segments, per_request, inflight, completion| Shape {
            name,
            segments,
            per_request,
            inflight,
            completion,
        };
        let shapes = [
            shape(
                "SEND x1, 1 MDL, inline",
                &[],
                Some(1),
                1,
                CompletionMode::Inline,
            ),
            shape(
                "SEND x64, 1 MDL, inline",
                &[],
                Some(64),
                1,
                CompletionMode::Inline,
            ),
            shape(
                "SEND x64, 2 MDLs, inline",
                &halves,
                Some(64),
                1,
                CompletionMode::Inline,
            ),
            shape(
                "SEND x64, 1 MDL, worker thread",
                &[],
                Some(64),
                1,
                CompletionMode::worker(),
            ),
            shape(
                "SEND xmax, 1 in flight, worker",
                &[],
                None,
                1,
                CompletionMode::worker(),
            ),
            shape(
                "SEND xmax, 8 in flight, worker",
                &[],
                None,
                8,
                CompletionMode::worker(),
            ),
        ];
        for shape in &shapes {
            let row = model(size, shape, datagrams);
            println!(
                "{size:>6} {:<34} {:>12.0} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.3}",
                shape.name,
                row.rate,
                row.rate / base,
                row.pool,
                row.irps,
                row.mdls,
                row.copies
            );
        }
    }
}
