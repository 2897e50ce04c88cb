//! Send throughput of the driver's datapath on the kernel model, next to baselines measured in
//! the same run to the same loopback receiver with the same control messages (`IP_PKTINFO`
//! with the source address on every datagram): a plain `sendmsg` loop and a `sendmmsg` loop
//! of 16.
//!
//! Rows, per payload size (64 and 1472 bytes):
//! - `BENCH sendto` / `BENCH sendmessages x16`: the driver sends and times the datagrams
//!   itself (one `BENCH` request), on the KMDF front door, provider completing inline and then
//!   on a worker thread;
//! - `SEND pipelined`: what `wskudpctl send --count` does: `SEND` requests of the driver's
//!   `max_count` datagrams, 8 in flight (the payload copied into the driver once per request);
//! - `SEND_DIRECT pipelined`: the same with zero-copy `SEND_DIRECT` requests (the payload sent
//!   from the caller's pages), what `wskudpctl bench --api zerocopy` does.
//!
//! Per row: datagrams/s and the ratios to both baselines; per datagram, the payload copies the
//! driver made, the pool, IRP and MDL allocations and the `IoSetCompletionRoutineEx` contexts the model counted at the kernel-call
//! boundary (after a warm-up run on the same socket); the model's and Linux's share of the
//! sender's CPU; and the longest completion routine the model timed.
//!
//! `cargo bench -p wskudp-harness --bench throughput` (`WSKUDP_BENCH_DATAGRAMS` sets the
//! datagrams per row, default 200000). These are host figures for the model, not Windows
//! figures: they show the datapath's own cost and its allocation discipline; on Windows,
//! `wskudpctl bench --baseline` on a test VM gives the real ones.

#![allow(clippy::cast_precision_loss, reason = "figures for display")]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use wskudp_abi::{BenchApi, BenchShape, SendSpec};
use wskudp_harness::backend::{Backend, FrontDoor, MachineCounters, ModelBackend, ModelConfig};
use wskudp_harness::bench::{Cpu, Marking, Sink, rate, sendmmsg_loop, sendmsg_loop};
use wskudp_harness::client::{Client, Pipeline};
use wskudp_harness::pattern;
use wskudp_kmodel::CompletionMode;

const BATCH: u32 = 16;
const DEPTH: u32 = 8;

/// A row's figures.
struct Row {
    pps: f64,
    copies: u64,
    machine: MachineCounters,
    datagrams: u64,
    cpu: Cpu,
}

fn source() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn spec(socket: u32, to: SocketAddr) -> SendSpec {
    SendSpec {
        socket,
        remote: Some(to),
        source: Some(source()),
        tos: None,
        ecn: None,
        uso_segment_size: None,
        source_ifindex: None,
        count: 1,
    }
}

/// What one row sends through.
#[derive(Clone, Copy)]
enum Path {
    Bench(BenchApi),
    SendPipelined,
    SendDirectPipelined,
}

impl Path {
    /// Payload copies the driver makes for `datagrams` datagrams in requests of `per_request`:
    /// `BENCH` writes its payload once, `SEND` copies it in once per request, `SEND_DIRECT`
    /// never.
    const fn copies(self, datagrams: u64, per_request: u64) -> u64 {
        match self {
            Self::Bench(_) => 1,
            Self::SendPipelined => datagrams.div_ceil(per_request),
            Self::SendDirectPipelined => 0,
        }
    }
}

fn model_row(size: u32, path: Path, completion: CompletionMode, datagrams: u64) -> Row {
    let sink = Sink::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("receiver");
    let backend = ModelBackend::start(ModelConfig {
        machine: wskudp_kmodel::Config {
            completion,
            ..wskudp_kmodel::Config::default()
        },
        ..ModelConfig::through(FrontDoor::Kmdf)
    })
    .expect("model loads");
    let client = Client::new(Box::new(backend));
    let socket = client
        .open_socket(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("open")
        .socket;
    let spec = spec(socket, sink.address());
    let payload = pattern(size as usize);
    let run = |count: u64| -> u64 {
        match path {
            Path::Bench(api) => {
                let batch = if api == BenchApi::SendTo { 1 } else { BATCH };
                let shape = BenchShape {
                    api,
                    size,
                    depth: DEPTH,
                    batch,
                    count,
                    rate: 0,
                };
                let response = client
                    .submit_bench(&spec, &shape)
                    .and_then(|pending| pending.wait(Duration::from_mins(10)))
                    .expect("bench");
                assert_eq!(response.datagrams_sent, count, "{response:?}");
                response.datagrams_sent
            }
            Path::SendPipelined | Path::SendDirectPipelined => {
                let pipeline = Pipeline {
                    zero_copy: matches!(path, Path::SendDirectPipelined),
                    ..Pipeline::new(count, 8)
                };
                let summary = client
                    .send_pipelined_with(&spec, &[], &payload, pipeline)
                    .expect("send");
                assert!(summary.all_sent(), "{summary:?}");
                summary.datagrams_sent
            }
        }
    };
    // Warm-up: the socket's pool grows to what the row needs.
    run(u64::from(DEPTH * BATCH * 4));
    let before = client.backend().machine_counters().expect("model");
    let cpu_before = Cpu::process();
    let sink_before = sink.cpu();
    let start = Instant::now();
    let sent = run(datagrams);
    let seconds = start.elapsed().as_secs_f64();
    let sink_cpu = sink.cpu().since(sink_before);
    let cpu = Cpu::process().since(cpu_before);
    let machine = client
        .backend()
        .machine_counters()
        .expect("model")
        .since(&before);
    let per_request = u64::from(client.info().expect("info").max_count);
    client.close_socket(socket).expect("close");
    let report = client.finish().expect("model report");
    assert!(report.is_clean(), "model report not clean: {report}");
    Row {
        pps: rate(sent, seconds),
        copies: path.copies(sent, per_request),
        machine,
        datagrams: sent,
        cpu: Cpu {
            user: (cpu.user - sink_cpu.user).max(0.0),
            system: (cpu.system - sink_cpu.system).max(0.0),
        },
    }
}

fn main() {
    let datagrams: u64 = std::env::var("WSKUDP_BENCH_DATAGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!(
        "wskudp send throughput on the kernel model (KMDF front door), {datagrams} datagrams per row, loopback, IP_PKTINFO on every datagram"
    );
    println!(
        "{:>5} {:<34} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9}",
        "bytes",
        "path",
        "dgrams/s",
        "/sendmsg",
        "/mmsg16",
        "copy/dg",
        "alloc/dg",
        "ctx/dg",
        "model%",
        "linux%",
        "max run"
    );
    for size in [64_u32, 1472] {
        let sink = Sink::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("receiver");
        let payload = pattern(size as usize);
        let marking = Marking {
            source: Some(source()),
            ..Marking::default()
        };
        let one_by_one = sendmsg_loop(sink.address(), &payload, datagrams, marking, &[]);
        let batched = sendmmsg_loop(sink.address(), &payload, datagrams, marking, BATCH as usize)
            .expect("sendmmsg");
        drop(sink);
        let (base, base_mmsg) = (one_by_one.pps(), batched.pps());
        println!(
            "{size:>5} {:<34} {base:>11.0} {:>8} {:>8}",
            "baseline: sendmsg", "1.00", ""
        );
        println!(
            "{size:>5} {:<34} {base_mmsg:>11.0} {:>8.2} {:>8}",
            "baseline: sendmmsg x16",
            base_mmsg / base,
            "1.00"
        );
        let rows = [
            (
                "BENCH sendto, inline",
                Path::Bench(BenchApi::SendTo),
                CompletionMode::Inline,
            ),
            (
                "BENCH sendmessages x16, inline",
                Path::Bench(BenchApi::SendMessages),
                CompletionMode::Inline,
            ),
            (
                "BENCH sendto, worker",
                Path::Bench(BenchApi::SendTo),
                CompletionMode::worker(),
            ),
            (
                "BENCH sendmessages x16, worker",
                Path::Bench(BenchApi::SendMessages),
                CompletionMode::worker(),
            ),
            (
                "SEND pipelined x8, inline",
                Path::SendPipelined,
                CompletionMode::Inline,
            ),
            (
                "SEND_DIRECT pipelined x8, inline",
                Path::SendDirectPipelined,
                CompletionMode::Inline,
            ),
        ];
        for (name, path, completion) in rows {
            let row = model_row(size, path, completion, datagrams);
            let per = |n: u64| n as f64 / row.datagrams.max(1) as f64;
            let total = row.cpu.total().max(f64::MIN_POSITIVE);
            println!(
                "{size:>5} {name:<34} {:>11.0} {:>8.2} {:>8.2} {:>8.4} {:>8.4} {:>8.4} {:>6.1}% {:>6.1}% {:>7.1}us",
                row.pps,
                row.pps / base,
                row.pps / base_mmsg,
                per(row.copies),
                per(row.machine.allocations()),
                per(row.machine.completion_contexts),
                row.machine.model_ns as f64 / 1e9 / total * 100.0,
                row.cpu.system / total * 100.0,
                row.machine.longest_completion_ns as f64 / 1e3,
            );
        }
    }
}
