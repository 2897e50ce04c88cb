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
use std::time::{Duration, Instant};

use serde_json::json;
use wskudp_abi::{BenchApi, BenchResponse, BenchShape, SendSpec};
use wskudp_harness::backend::MachineCounters;
use wskudp_harness::bench::{Cpu, LoopFigures, Marking, Sink, rate, sendmmsg_loop, sendmsg_loop};
use wskudp_harness::client::{Client, MAX_INFLIGHT, Pipeline};
use wskudp_harness::{pattern, status_hex, status_text};

use super::{BenchApiArg, BenchArgs, Outcome, open_for};

/// Datagrams per `sendmmsg` call of the baseline, and `--batch`'s default.
const DEFAULT_BATCH: u32 = 16;

/// What a timed run measured.
struct Measured {
    /// `BENCH`'s own figures; for `zerocopy`, the same fields from the `SEND_DIRECT` requests'
    /// outcomes and the wall clock (what only the driver knows is left out: see `in_kernel`).
    response: BenchResponse,
    /// The API's name in the report.
    api: &'static str,
    /// Timed by the driver (`BENCH`): its WSK calls, longest completion and allocations are
    /// known; else (`zerocopy`) timed in user mode, requests and transitions included.
    in_kernel: bool,
    /// Payload copies the driver made: `BENCH` writes its generated payload once per run, a
    /// `SEND_DIRECT` none.
    copies: u64,
    cpu: Cpu,
    machine: Option<MachineCounters>,
    received: Option<u64>,
}

pub(super) fn run(client: &Client, args: &BenchArgs) -> Result<Outcome, String> {
    let (api, batch) = match args.api {
        BenchApiArg::Sendto => {
            if args.batch.is_some_and(|b| b != 1) {
                return Err(
                    "--batch applies to --api sendmessages (sendto sends one datagram per call)"
                        .into(),
                );
            }
            (Some(BenchApi::SendTo), 1)
        }
        BenchApiArg::Sendmessages => (
            Some(BenchApi::SendMessages),
            args.batch.unwrap_or(DEFAULT_BATCH),
        ),
        BenchApiArg::Zerocopy => {
            if args.batch.is_some() || args.rate.is_some() {
                return Err("--batch and --rate apply to the in-kernel bench (--api sendto or sendmessages); zerocopy sends SEND_DIRECT requests, in WskSendMessages batches of the driver's own size".into());
            }
            if args.inflight as usize > MAX_INFLIGHT {
                return Err(format!(
                    "--inflight {}: zerocopy keeps 1 to {MAX_INFLIGHT} requests in flight",
                    args.inflight
                ));
            }
            (None, DEFAULT_BATCH)
        }
    };
    let sink_address = args
        .to
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let sink = Sink::start(sink_address).ok();
    let to = match (&sink, args.to) {
        (Some(sink), _) => sink.address(),
        (None, Some(to)) => to,
        (None, None) => return Err(format!("could not start a receiver on {sink_address}")),
    };
    let opened = open_for(client, &args.address, to)?;
    let result = match api {
        Some(api) => measure(client, &opened.spec, args, api, batch, sink.as_ref()),
        None => measure_zero_copy(client, &opened.spec, args, sink.as_ref()),
    };
    // The baseline's control messages on Windows are the driver's own `ControlInfo` bytes.
    let driver_control = if args.baseline && result.is_ok() {
        client
            .describe_send(
                &SendSpec {
                    count: 1,
                    ..opened.spec
                },
                &[],
                &pattern(args.size as usize),
            )
            .map(|described| {
                described
                    .control
                    .get(..described.control_len as usize)
                    .unwrap_or_default()
                    .to_vec()
            })
            .map_err(|e| format!("DESCRIBE_SEND for the baseline's control messages: {e}"))
    } else {
        Ok(Vec::new())
    };
    let closed = client.close_socket(opened.socket);
    let measured = result?;
    let driver_control = driver_control?;
    let baseline = args.baseline.then(|| {
        baseline(
            to,
            &opened.spec,
            args,
            batch,
            sink.as_ref(),
            &driver_control,
        )
    });
    let mut outcome = report(args, &measured, baseline.as_ref(), &opened.local, to);
    if let Err(error) = closed {
        outcome.ok = false;
        let _ = writeln!(outcome.text, "closing the socket failed: {error}");
    }
    Ok(outcome)
}

/// What the sender's process, the model and the receiver did during one timed run.
struct Metered<T> {
    value: T,
    cpu: Cpu,
    machine: Option<MachineCounters>,
    received: Option<u64>,
}

/// Runs `timed` (which returns what it sent and how many datagrams) with a progress line on a
/// terminal, and meters it: the sender's CPU without the receiver thread's, the model's
/// counters, and what arrived (`warmed`: the warm-up's datagrams, drained first).
fn metered<T>(
    client: &Client,
    spec: &SendSpec,
    args: &BenchArgs,
    sink: Option<&Sink>,
    warmed: u64,
    timed: impl FnOnce() -> Result<(T, u64), String>,
) -> Result<Metered<T>, String> {
    let received_before = sink.map(|sink| sink.settle(warmed, Duration::from_millis(300)));
    let machine_before = client.backend().machine_counters();
    let cpu_before = Cpu::process();
    let sink_cpu_before = sink.map(Sink::cpu).unwrap_or_default();
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| progress(client, spec.socket, args.count, &done));
        }
        let outcome = timed();
        done.store(true, Ordering::Relaxed);
        outcome
    });
    let (value, sent) = outcome?;
    let sink_cpu = sink
        .map(Sink::cpu)
        .unwrap_or_default()
        .since(sink_cpu_before);
    let cpu = Cpu::process().since(cpu_before);
    Ok(Metered {
        value,
        cpu: Cpu {
            user: (cpu.user - sink_cpu.user).max(0.0),
            system: (cpu.system - sink_cpu.system).max(0.0),
        },
        machine: client
            .backend()
            .machine_counters()
            .zip(machine_before)
            .map(|(after, before)| after.since(&before)),
        received: sink
            .zip(received_before)
            .map(|(sink, before)| sink.settle(before + sent, Duration::from_millis(300)) - before),
    })
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
        rate: args.rate.unwrap_or(0),
    };
    // Unpaced: the warm-up only grows the socket's pool.
    let warm = BenchShape {
        count: u64::from(args.inflight * batch * 4).min(args.count),
        rate: 0,
        ..shape
    };
    let warmed = client
        .submit_bench(spec, &warm)
        .and_then(|pending| pending.wait(timeout_for(warm.count)))
        .map_err(|e| format!("warm-up: {e}"))?;
    let run = metered(client, spec, args, sink, warmed.datagrams_sent, || {
        let response = client
            .submit_bench(spec, &shape)
            .and_then(|pending| pending.wait(timeout_for(args.count)))
            .map_err(|e| e.to_string())?;
        let sent = response.datagrams_sent;
        Ok((response, sent))
    })?;
    Ok(Measured {
        api: BenchApi::from_u32(run.value.api).map_or("unknown", BenchApi::name),
        response: run.value,
        in_kernel: true,
        copies: 1,
        cpu: run.cpu,
        machine: run.machine,
        received: run.received,
    })
}

/// `--api zerocopy`: `SEND_DIRECT` requests, `--inflight` of them outstanding, timed in user
/// mode from the first submission to the last completion (user/kernel transitions included:
/// one request per `max_count` datagrams). A warm-up of the same shape goes first.
#[allow(clippy::cast_possible_truncation, reason = "a duration in nanoseconds")]
fn measure_zero_copy(
    client: &Client,
    spec: &SendSpec,
    args: &BenchArgs,
    sink: Option<&Sink>,
) -> Result<Measured, String> {
    let payload = pattern(args.size as usize);
    let inflight = args.inflight as usize;
    let pipeline = |total| Pipeline {
        zero_copy: true,
        ..Pipeline::new(total, inflight)
    };
    let warm = u64::from(args.inflight * DEFAULT_BATCH * 4).min(args.count);
    let warmed = client
        .send_pipelined_with(spec, &[], &payload, pipeline(warm))
        .map_err(|e| format!("warm-up: {e}"))?;
    let run = metered(client, spec, args, sink, warmed.datagrams_sent, || {
        let started = Instant::now();
        let summary = client
            .send_pipelined_with(spec, &[], &payload, pipeline(args.count))
            .map_err(|e| e.to_string())?;
        let sent = summary.datagrams_sent;
        Ok(((summary, started.elapsed()), sent))
    })?;
    let (summary, elapsed) = run.value;
    let response = BenchResponse {
        status: summary.first_error.unwrap_or(0),
        datagrams: summary.total,
        datagrams_sent: summary.datagrams_sent,
        datagrams_failed: summary.datagrams_failed,
        datagrams_not_sent: summary.datagrams_not_sent + summary.datagrams_unsent,
        bytes_sent: summary.bytes_sent,
        ticks: elapsed.as_nanos() as u64,
        frequency: 1_000_000_000,
        ..BenchResponse::default()
    };
    Ok(Measured {
        response,
        api: "zerocopy",
        in_kernel: false,
        copies: 0,
        cpu: run.cpu,
        machine: run.machine,
        received: run.received,
    })
}

/// How long a bench of `count` datagrams may take before it is cancelled: generous (a slow
/// machine sends 50 000 a second).
const fn timeout_for(count: u64) -> Duration {
    Duration::from_secs(30 + count / 50_000)
}

/// The baselines' figures.
struct Baseline {
    sendmsg: LoopFigures,
    sendmmsg: Option<LoopFigures>,
    batch: u32,
}

fn baseline(
    to: SocketAddr,
    spec: &SendSpec,
    args: &BenchArgs,
    batch: u32,
    sink: Option<&Sink>,
    driver_control: &[u8],
) -> Baseline {
    let payload = pattern(args.size as usize);
    // The same control messages the driver sends: the source, the TOS byte with ECN folded in,
    // the USO segment size.
    let tos = match (spec.tos, spec.ecn) {
        (None, None) => None,
        (tos, ecn) => {
            let tos = tos.unwrap_or(0);
            Some(ecn.map_or(tos, |ecn| (tos & !3) | ecn as u8))
        }
    };
    let marking = Marking {
        source: spec.source,
        tos: tos.filter(|t| *t != 0),
        segment: spec
            .uso_segment_size
            .filter(|size| *size < args.size)
            .and_then(|size| u16::try_from(size).ok()),
    };
    // Each loop's datagrams are drained before the next loop starts.
    let drained = |figures: LoopFigures| {
        if let Some(sink) = sink {
            let _ = sink.settle(
                sink.received() + figures.datagrams,
                Duration::from_millis(300),
            );
        }
        figures
    };
    let one_by_one = drained(sendmsg_loop(
        to,
        &payload,
        args.count,
        marking,
        driver_control,
    ));
    let per_call = batch.max(DEFAULT_BATCH) as usize;
    let batched = sendmmsg_loop(to, &payload, args.count, marking, per_call).map(drained);
    Baseline {
        sendmsg: one_by_one,
        sendmmsg: batched,
        batch: u32::try_from(per_call).unwrap_or(DEFAULT_BATCH),
    }
}

/// The figures of a timed run, derived once for the JSON and the text.
struct Figures {
    api: &'static str,
    sent: u64,
    seconds: f64,
    pps: f64,
    model_share: Option<f64>,
    core_share: Option<f64>,
    linux_share: Option<f64>,
    driver_longest_us: Option<f64>,
    dropped: Option<u64>,
    vs_sendmsg: Option<f64>,
    vs_sendmmsg: Option<f64>,
}

#[allow(clippy::cast_precision_loss, reason = "figures for display")]
impl Figures {
    fn of(measured: &Measured, baseline: Option<&Baseline>) -> Self {
        let response = &measured.response;
        let per_tick = |ticks: u64| {
            if response.frequency == 0 {
                0.0
            } else {
                ticks as f64 / response.frequency as f64
            }
        };
        let seconds = per_tick(response.ticks);
        let sent = response.datagrams_sent;
        let pps = rate(sent, seconds);
        let cpu_total = measured.cpu.total();
        let model_share = measured.machine.and_then(|m| {
            (cpu_total > 0.0).then(|| (m.model_ns as f64 / 1e9 / cpu_total).min(1.0))
        });
        let linux_share = (cpu_total > 0.0).then(|| measured.cpu.system / cpu_total);
        Self {
            api: measured.api,
            sent,
            seconds,
            pps,
            model_share,
            core_share: model_share
                .zip(linux_share)
                .map(|(model, linux)| (1.0 - model - linux).max(0.0)),
            linux_share,
            driver_longest_us: measured
                .in_kernel
                .then(|| per_tick(response.longest_completion_ticks) * 1e6),
            dropped: measured.received.map(|r| sent.saturating_sub(r)),
            vs_sendmsg: baseline.map(|b| ratio(pps, b.sendmsg.pps())),
            vs_sendmmsg: baseline.and_then(|b| b.sendmmsg.as_ref().map(|m| ratio(pps, m.pps()))),
        }
    }

    /// Per datagram sent.
    fn per(&self, n: u64) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            n as f64 / self.sent as f64
        }
    }
}

fn report(
    args: &BenchArgs,
    measured: &Measured,
    baseline: Option<&Baseline>,
    local: &str,
    to: SocketAddr,
) -> Outcome {
    let figures = Figures::of(measured, baseline);
    let response = &measured.response;
    Outcome {
        json: json_of(args, measured, &figures, baseline, local, to),
        text: text_of(args, measured, &figures, baseline),
        ok: response.status >= 0 && response.datagrams_sent == response.datagrams,
    }
}

#[allow(clippy::cast_precision_loss, reason = "figures for display")]
fn json_of(
    args: &BenchArgs,
    measured: &Measured,
    figures: &Figures,
    baseline: Option<&Baseline>,
    local: &str,
    to: SocketAddr,
) -> serde_json::Value {
    let response = &measured.response;
    let baseline_json = baseline.map(|b| {
        let batched = b.sendmmsg.as_ref();
        json!({
            "sendmsg_pps": b.sendmsg.pps(),
            "sendmsg_error": b.sendmsg.error,
            "sendmsg_cpu_per_datagram_ns": per_cpu(&b.sendmsg),
            "sendmmsg_pps": batched.map(LoopFigures::pps),
            "sendmmsg_batch": b.batch,
            "sendmmsg_error": batched.and_then(|m| m.error.clone()),
            "sendmmsg_cpu_per_datagram_ns": batched.map(per_cpu),
        })
    });
    json!({
        "request": {
            "to": to.to_string(),
            "size": args.size,
            "count": args.count,
            "inflight": args.inflight,
            "api": match args.api {
                BenchApiArg::Sendto => "sendto",
                BenchApiArg::Sendmessages => "sendmessages",
                BenchApiArg::Zerocopy => "zerocopy",
            },
            "batch": args.batch,
            "rate": args.rate,
        },
        "status": status_hex(response.status),
        "status_name": wskudp_abi::status::status_name(response.status),
        "api": figures.api,
        "local": local,
        "datagrams": figures.sent,
        "datagrams_failed": response.datagrams_failed,
        "datagrams_not_sent": response.datagrams_not_sent,
        "bytes_sent": response.bytes_sent,
        "wsk_calls": measured.in_kernel.then_some(response.wsk_calls),
        "timed_by": if measured.in_kernel { "driver" } else { "user mode" },
        "seconds": figures.seconds,
        "pps": figures.pps,
        "allocs_per_datagram": measured.machine.map(|m| figures.per(m.allocations())),
        "completion_contexts_per_datagram": measured.machine.map(|m| figures.per(m.completion_contexts)),
        "driver_allocs_per_datagram": measured.in_kernel.then(|| figures.per(response.allocations)),
        "copies_per_datagram": figures.per(measured.copies),
        "cpu_user_seconds": measured.cpu.user,
        "cpu_system_seconds": measured.cpu.system,
        "model_share": figures.model_share,
        "core_share": figures.core_share,
        "linux_share": figures.linux_share,
        "max_dispatch_run_us": measured.machine.map(|m| m.longest_completion_ns as f64 / 1e3),
        "driver_max_completion_us": figures.driver_longest_us,
        "received": measured.received,
        "dropped": figures.dropped,
        "baseline": baseline_json,
        "baseline_pps": baseline.map(|b| b.sendmsg.pps()),
        "ratio": figures.vs_sendmsg,
        "ratio_sendmmsg": figures.vs_sendmmsg,
    })
}

#[allow(clippy::cast_precision_loss, reason = "figures for display")]
fn text_of(
    args: &BenchArgs,
    measured: &Measured,
    figures: &Figures,
    baseline: Option<&Baseline>,
) -> String {
    let response = &measured.response;
    let how = if measured.in_kernel {
        format!(
            "{} WSK call(s), up to {} in flight, timed by the driver",
            response.wsk_calls, args.inflight
        )
    } else {
        format!(
            "SEND_DIRECT requests, up to {} in flight, timed in user mode",
            args.inflight
        )
    };
    let mut text = format!(
        "{} of {} datagram(s) of {} bytes with {} ({how}) in {:.3} s: {:.0} datagrams/s; {}\n",
        figures.sent,
        response.datagrams,
        args.size,
        figures.api,
        figures.seconds,
        figures.pps,
        status_text(response.status),
    );
    if let Some(machine) = measured.machine {
        let _ = writeln!(
            text,
            "  per datagram: {:.4} allocations (pool, IRP, MDL), {:.4} completion contexts, {:.4} payload copies; longest completion routine {:.1} us",
            figures.per(machine.allocations()),
            figures.per(machine.completion_contexts),
            figures.per(measured.copies),
            machine.longest_completion_ns as f64 / 1e3,
        );
    }
    if let (Some(model), Some(core), Some(linux)) =
        (figures.model_share, figures.core_share, figures.linux_share)
    {
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
    match (measured.received, figures.dropped) {
        (Some(received), Some(dropped)) => {
            let _ = writeln!(text, "  receiver: {received} arrived, {dropped} dropped");
        }
        _ => {
            let _ = writeln!(
                text,
                "  receiver: none (not an address of this host): drops not counted"
            );
        }
    }
    if let Some(b) = baseline {
        let stopped = |error: &Option<String>| {
            error
                .as_ref()
                .map_or_else(String::new, |e| format!(", stopped: {e}"))
        };
        let _ = writeln!(
            text,
            "  baseline sendmsg: {:.0} datagrams/s (driver {:.2}x){}",
            b.sendmsg.pps(),
            figures.vs_sendmsg.unwrap_or(0.0),
            stopped(&b.sendmsg.error)
        );
        if let Some(m) = &b.sendmmsg {
            let _ = writeln!(
                text,
                "  baseline sendmmsg x{}: {:.0} datagrams/s (driver {:.2}x){}",
                b.batch,
                m.pps(),
                figures.vs_sendmmsg.unwrap_or(0.0),
                stopped(&m.error)
            );
        }
    }
    text
}

/// CPU nanoseconds per datagram of a baseline loop.
#[allow(clippy::cast_precision_loss, reason = "figures for display")]
fn per_cpu(figures: &LoopFigures) -> f64 {
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
