//! `wskudpctl bench`: the driver's in-kernel `BENCH`, with `--baseline` the plain user-mode
//! path in the same run, and the figures as text or JSON.
//!
//! JSON fields: `datagrams`, `seconds`, `pps` (the driver's own timing); `allocs_per_datagram`
//! (pool blocks, IRPs and MDLs the kernel model saw allocated during the timed run, after a
//! warm-up run on the same socket; the driver's own count is `driver_allocs_per_datagram`);
//! `copies_per_datagram` (payload copies between the caller's data and the wire, Linux's own
//! excluded: `BENCH` writes its generated payload once per run); `model_share`, `core_share`,
//! `linux_share` (the sender's CPU split: the model's own code, the rest of user time, and
//! kernel time); `max_dispatch_run_us` (the longest completion routine, as the model measured
//! it); `received` and `dropped` (the receiver's count); and the model report as `send` has it.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use wskudp_abi::{BenchApi, BenchResponse, BenchShape, SendSpec};
use wskudp_harness::backend::MachineCounters;
use wskudp_harness::bench::{Cpu, Marking, Sink, rate, sendmmsg_loop, sendmsg_loop};
use wskudp_harness::client::Client;
use wskudp_harness::{pattern, status_hex, status_text};

use super::{BenchApiArg, BenchArgs, Outcome, open_for};

/// Datagrams per `sendmmsg` call of the baseline, and `--batch`'s default.
const DEFAULT_BATCH: u32 = 16;

/// What a timed run measured.
struct Measured {
    response: BenchResponse,
    cpu: Cpu,
    machine: Option<MachineCounters>,
    received: Option<u64>,
}

pub(super) fn run(client: &Client, args: &BenchArgs) -> Result<Outcome, String> {
    let (api, batch) = match args.api {
        BenchApiArg::Sendto => {
            if args.batch.is_some_and(|b| b != 1) {
                return Err("--batch applies to --api sendmessages (sendto sends one datagram per call)".into());
            }
            (BenchApi::SendTo, 1)
        }
        BenchApiArg::Sendmessages => (BenchApi::SendMessages, args.batch.unwrap_or(DEFAULT_BATCH)),
    };
    let sink_address = args.to.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let sink = Sink::start(sink_address).ok();
    let to = match (&sink, args.to) {
        (Some(sink), _) => sink.address(),
        (None, Some(to)) => to,
        (None, None) => return Err(format!("could not start a receiver on {sink_address}")),
    };
    let opened = open_for(client, &args.address, to)?;
    let result = measure(client, &opened.spec, args, api, batch, sink.as_ref());
    let closed = client.close_socket(opened.socket);
    let measured = result?;
    let baseline = args
        .baseline
        .then(|| baseline(to, &opened.spec, args, batch, sink.as_ref()));
    let mut outcome = report(args, &measured, baseline.as_ref(), &opened.local, to);
    if let Err(error) = closed {
        outcome.ok = false;
        let _ = writeln!(outcome.text, "closing the socket failed: {error}");
    }
    Ok(outcome)
}

/// A warm-up run (the socket's pool grows to the bench's depth), then the timed run.
fn measure(
    client: &Client,
    spec: &SendSpec,
    args: &BenchArgs,
    api: BenchApi,
    batch: u32,
    sink: Option<&Sink>,
) -> Result<Measured, String> {
    let shape = BenchShape {
        api,
        size: args.size,
        depth: args.inflight,
        batch,
        count: args.count,
        rate: 0,
    };
    let warm = BenchShape {
        count: u64::from(args.inflight * batch * 4).min(args.count),
        ..shape
    };
    let warmed = client
        .submit_bench(spec, &warm)
        .and_then(|pending| pending.wait(timeout_for(warm.count)))
        .map_err(|e| format!("warm-up: {e}"))?;
    let received_before = sink.map(|sink| sink.settle(warmed.datagrams_sent, Duration::from_millis(300)));
    let machine_before = client.backend().machine_counters();
    let cpu_before = Cpu::process();
    let sink_cpu_before = sink.map(Sink::cpu).unwrap_or_default();
    let pending = client
        .submit_bench(spec, &shape)
        .map_err(|e| e.to_string())?;
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let done = AtomicBool::new(false);
    let response = std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| progress(client, spec.socket, args.count, &done));
        }
        let response = pending.wait(timeout_for(args.count));
        done.store(true, Ordering::Relaxed);
        response
    });
    let response = response.map_err(|e| e.to_string())?;
    let sink_cpu = sink.map(Sink::cpu).unwrap_or_default().since(sink_cpu_before);
    let cpu = Cpu::process().since(cpu_before);
    let cpu = Cpu {
        user: (cpu.user - sink_cpu.user).max(0.0),
        system: (cpu.system - sink_cpu.system).max(0.0),
    };
    let machine = client
        .backend()
        .machine_counters()
        .zip(machine_before)
        .map(|(after, before)| after.since(&before));
    let received = sink.zip(received_before).map(|(sink, before)| {
        sink.settle(before + response.datagrams_sent, Duration::from_millis(300)) - before
    });
    Ok(Measured {
        response,
        cpu,
        machine,
        received,
    })
}

/// How long a bench of `count` datagrams may take before it is cancelled: generous (a slow
/// machine sends 50 000 a second).
fn timeout_for(count: u64) -> Duration {
    Duration::from_secs(30 + count / 50_000)
}

/// The baselines' figures.
struct Baseline {
    sendmsg: wskudp_harness::bench::LoopFigures,
    sendmmsg: Option<wskudp_harness::bench::LoopFigures>,
    batch: u32,
}

fn baseline(to: SocketAddr, spec: &SendSpec, args: &BenchArgs, batch: u32, sink: Option<&Sink>) -> Baseline {
    let payload = pattern(args.size as usize);
    // The same control messages the driver sends: the source, the TOS byte with ECN folded in,
    // the USO segment size.
    let tos = match (spec.tos, spec.ecn) {
        (None, None) => None,
        (tos, ecn) => Some(ecn.map_or(tos.unwrap_or(0), |ecn| (tos.unwrap_or(0) & !3) | ecn as u8)),
    };
    let marking = Marking {
        source: spec.source,
        tos: tos.filter(|t| *t != 0),
        segment: spec
            .uso_segment_size
            .filter(|size| *size < args.size)
            .and_then(|size| u16::try_from(size).ok()),
    };
    let settle = |sent: u64| {
        if let Some(sink) = sink {
            let before = sink.received();
            let _ = sink.settle(before + sent, Duration::from_millis(300));
        }
    };
    let sendmsg = sendmsg_loop(to, &payload, args.count, marking);
    settle(0);
    let mmsg_batch = batch.max(DEFAULT_BATCH) as usize;
    let sendmmsg = sendmmsg_loop(to, &payload, args.count, marking, mmsg_batch);
    settle(0);
    Baseline {
        sendmsg,
        sendmmsg,
        batch: u32::try_from(mmsg_batch).unwrap_or(DEFAULT_BATCH),
    }
}

#[allow(clippy::cast_precision_loss, reason = "figures for display")]
fn report(
    args: &BenchArgs,
    measured: &Measured,
    baseline: Option<&Baseline>,
    local: &str,
    to: SocketAddr,
) -> Outcome {
    let response = &measured.response;
    let seconds = if response.frequency == 0 {
        0.0
    } else {
        response.ticks as f64 / response.frequency as f64
    };
    let sent = response.datagrams_sent;
    let per_datagram = |n: u64| if sent == 0 { 0.0 } else { n as f64 / sent as f64 };
    let pps = rate(sent, seconds);
    let api = BenchApi::from_u32(response.api).map_or("unknown", BenchApi::name);
    let cpu_total = measured.cpu.total();
    let model_share = measured.machine.and_then(|m| {
        (cpu_total > 0.0).then(|| (m.model_ns as f64 / 1e9 / cpu_total).min(1.0))
    });
    let linux_share = (cpu_total > 0.0).then(|| measured.cpu.system / cpu_total);
    let core_share = model_share
        .zip(linux_share)
        .map(|(model, linux)| (1.0 - model - linux).max(0.0));
    let driver_longest_us = if response.frequency == 0 {
        0.0
    } else {
        response.longest_completion_ticks as f64 * 1e6 / response.frequency as f64
    };
    let dropped = measured.received.map(|r| sent.saturating_sub(r));
    let baseline_json = baseline.map(|b| {
        let mmsg = b.sendmmsg.as_ref();
        json!({
            "sendmsg_pps": b.sendmsg.pps(),
            "sendmsg_error": b.sendmsg.error,
            "sendmmsg_pps": mmsg.map(wskudp_harness::bench::LoopFigures::pps),
            "sendmmsg_batch": b.batch,
            "sendmmsg_error": mmsg.and_then(|m| m.error.clone()),
            "sendmsg_cpu_per_datagram_ns": per_cpu(&b.sendmsg),
            "sendmmsg_cpu_per_datagram_ns": mmsg.map(per_cpu),
        })
    });
    let ratio_msg = baseline.map(|b| ratio(pps, b.sendmsg.pps()));
    let ratio_mmsg = baseline.and_then(|b| b.sendmmsg.as_ref().map(|m| ratio(pps, m.pps())));
    let json = json!({
        "request": {
            "to": to.to_string(),
            "size": args.size,
            "count": args.count,
            "inflight": args.inflight,
            "api": match args.api { BenchApiArg::Sendto => "sendto", BenchApiArg::Sendmessages => "sendmessages" },
            "batch": args.batch,
        },
        "status": status_hex(response.status),
        "status_name": wskudp_abi::status::status_name(response.status),
        "api": api,
        "local": local,
        "datagrams": sent,
        "datagrams_failed": response.datagrams_failed,
        "datagrams_not_sent": response.datagrams_not_sent,
        "bytes_sent": response.bytes_sent,
        "wsk_calls": response.wsk_calls,
        "seconds": seconds,
        "pps": pps,
        "allocs_per_datagram": measured.machine.map(|m| per_datagram(m.allocations())),
        "completion_contexts_per_datagram": measured.machine.map(|m| per_datagram(m.completion_contexts)),
        "driver_allocs_per_datagram": per_datagram(response.allocations),
        "copies_per_datagram": per_datagram(1),
        "cpu_user_seconds": measured.cpu.user,
        "cpu_system_seconds": measured.cpu.system,
        "model_share": model_share,
        "core_share": core_share,
        "linux_share": linux_share,
        "max_dispatch_run_us": measured.machine.map(|m| m.longest_completion_ns as f64 / 1e3),
        "driver_max_completion_us": driver_longest_us,
        "received": measured.received,
        "dropped": dropped,
        "baseline": baseline_json,
        "baseline_pps": baseline.map(|b| b.sendmsg.pps()),
        "ratio": ratio_msg,
        "ratio_sendmmsg": ratio_mmsg,
    });
    let mut text = format!(
        "{} of {} datagram(s) of {} bytes with {api} ({} WSK call(s), up to {} in flight) in {seconds:.3} s: {pps:.0} datagrams/s; {}\n",
        sent,
        response.datagrams,
        args.size,
        response.wsk_calls,
        args.inflight,
        status_text(response.status),
    );
    if let Some(machine) = measured.machine {
        let _ = writeln!(
            text,
            "  per datagram: {:.4} allocations (pool, IRP, MDL), {:.4} completion contexts; longest completion routine {:.1} us",
            per_datagram(machine.allocations()),
            per_datagram(machine.completion_contexts),
            machine.longest_completion_ns as f64 / 1e3,
        );
    }
    if let (Some(model), Some(core), Some(linux)) = (model_share, core_share, linux_share) {
        let _ = writeln!(
            text,
            "  CPU: model {:.0}%, driver and harness {:.0}%, Linux {:.0}% ({:.2} s user, {:.2} s system)",
            model * 100.0,
            core * 100.0,
            linux * 100.0,
            measured.cpu.user,
            measured.cpu.system
        );
    }
    match (measured.received, dropped) {
        (Some(received), Some(dropped)) => {
            let _ = writeln!(text, "  receiver: {received} arrived, {dropped} dropped");
        }
        _ => {
            let _ = writeln!(text, "  receiver: none (not an address of this host): drops not counted");
        }
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            text,
            "  baseline sendmsg: {:.0} datagrams/s (driver {:.2}x){}",
            b.sendmsg.pps(),
            ratio_msg.unwrap_or(0.0),
            b.sendmsg.error.as_ref().map_or_else(String::new, |e| format!(", stopped: {e}"))
        );
        if let Some(m) = &b.sendmmsg {
            let _ = writeln!(
                text,
                "  baseline sendmmsg x{}: {:.0} datagrams/s (driver {:.2}x){}",
                b.batch,
                m.pps(),
                ratio_mmsg.unwrap_or(0.0),
                m.error.as_ref().map_or_else(String::new, |e| format!(", stopped: {e}"))
            );
        }
    }
    Outcome {
        json,
        text,
        ok: response.status >= 0 && response.datagrams_sent == response.datagrams,
    }
}

/// CPU nanoseconds per datagram of a baseline loop.
#[allow(clippy::cast_precision_loss, reason = "figures for display")]
fn per_cpu(figures: &wskudp_harness::bench::LoopFigures) -> f64 {
    if figures.datagrams == 0 {
        0.0
    } else {
        figures.cpu.total() * 1e9 / figures.datagrams as f64
    }
}

fn ratio(pps: f64, base: f64) -> f64 {
    if base > 0.0 { pps / base } else { 0.0 }
}

/// A progress line on stderr while a bench runs, from the socket's counters (`QUERY_STATS`),
/// until `done`; cleared at the end.
#[allow(clippy::cast_precision_loss, reason = "a percentage for display")]
fn progress(client: &Client, socket: u32, total: u64, done: &AtomicBool) {
    let before = client
        .stats()
        .ok()
        .and_then(|stats| stats.socket(socket).map(|s| s.counters.datagrams_sent))
        .unwrap_or(0);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(stats) = client.stats() else {
            break;
        };
        let sent = stats
            .socket(socket)
            .map_or(0, |s| s.counters.datagrams_sent.saturating_sub(before));
        let percent = sent as f64 * 100.0 / total.max(1) as f64;
        eprint!("\r  sent {sent} of {total} ({percent:.0}%)   ");
    }
    eprint!("\r{:60}\r", "");
}
