//! `wskudpctl`: drive the wskudp kernel UDP sender — the real driver on Windows, or the driver's
//! datapath running in-process on the kernel model (`--backend model`, the default elsewhere).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use wskudp_abi::{
    Ecn, FailureCount, InfoResponse, Ioctl, OpenSocketRequest, SendCounters, SendSpec,
    SocketOption, capability, feature,
};
use wskudp_harness::backend::{self, FrontDoor, Kind};
use wskudp_harness::client::{Client, MAX_INFLIGHT, PipelineSummary};
use wskudp_harness::record::HostRecord;
use wskudp_harness::report::ModelReport;
use wskudp_harness::{demo, pattern, scenarios, status_hex, status_text};

mod bench_cmd;

#[derive(Parser)]
#[command(name = "wskudpctl", version, about, propagate_version = true)]
struct Cli {
    /// Where requests go: `device` (the driver, Windows) or `model` (in-process, any Unix host).
    /// Defaults to `device` on Windows and `model` elsewhere.
    #[arg(long, value_enum, global = true)]
    backend: Option<BackendArg>,
    /// The model backend's way into the driver: `kmdf` (the shipping front door, over the WDF
    /// model), `wdm`, or `none` (core's dispatcher directly).
    #[arg(long, value_enum, global = true, default_value = "kmdf")]
    front_door: FrontDoorArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Model,
    Device,
}

#[derive(Clone, Copy, ValueEnum)]
enum FrontDoorArg {
    Kmdf,
    Wdm,
    None,
}

impl From<FrontDoorArg> for FrontDoor {
    fn from(arg: FrontDoorArg) -> Self {
        match arg {
            FrontDoorArg::Kmdf => Self::Kmdf,
            FrontDoorArg::Wdm => Self::Wdm,
            FrontDoorArg::None => Self::None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// ABI and driver versions, the WSK provider's version, capabilities, limits, IOCTL codes.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Driver-wide counters since the driver loaded: datagrams and bytes sent, failures by
    /// status, requests and WSK IRPs in flight now and at most, pool in use (`QUERY_STATS`).
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a datagram (or `--count` copies, in as many requests as it takes) from the kernel.
    Send(SendArgs),
    /// Measure the driver's send path: the driver sends and times `--count` datagrams itself
    /// (`BENCH`); with `--baseline`, next to the plain user-mode path in the same run.
    Bench(BenchArgs),
    /// Send raw bytes to the driver's dispatcher and print the status (for bad-input testing).
    Ioctl {
        /// IOCTL code, e.g. 0x12A00C.
        #[arg(long, value_parser = parse_code)]
        code: u32,
        /// Input buffer as hex (may be empty).
        #[arg(long, default_value = "")]
        in_hex: String,
        /// Output buffer size in bytes.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
        out_len: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start local receivers, send a few datagrams (MDL chains, IPv4 and IPv6, source address,
    /// TOS/ECN, USO) and show what was sent next to what arrived.
    Demo {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the scenario suite against the backend (e.g. the real driver on a test VM).
    Scenarios {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Let a scenario that could not check something here (no IPv6, a receiver that does
        /// not report TOS) be skipped without failing the run.
        #[arg(long)]
        allow_skips: bool,
    },
    /// Receive datagrams and show what arrived (source, destination, interface, TOS): run on a
    /// second host so `send` crosses a real NIC, which loopback never does. Needs no driver.
    Recv {
        /// Address to listen on, e.g. `0.0.0.0:9000` or `[::]:9000`.
        #[arg(long)]
        bind: SocketAddr,
        /// Stop after this many datagrams.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Stop after this many seconds without a datagram.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// `--json` was given.
    const fn wants_json(&self) -> bool {
        match self {
            Self::Info { json }
            | Self::Stats { json }
            | Self::Ioctl { json, .. }
            | Self::Demo { json }
            | Self::Scenarios { json, .. }
            | Self::Recv { json, .. } => *json,
            Self::Send(args) => args.json,
            Self::Bench(args) => args.json,
        }
    }
}

/// Options set on the socket (`SET_OPTION`) before sending.
#[derive(clap::Args)]
struct SocketArgs {
    /// Pin the socket to an interface index (`IP_UNICAST_IF` / `IPV6_UNICAST_IF`).
    #[arg(long)]
    unicast_if: Option<u32>,
    /// Hop limit of the socket's unicast datagrams (`IP_TTL` / `IPV6_UNICAST_HOPS`), 1-255.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    ttl: Option<u8>,
    /// Allow sending to a broadcast address (`SO_BROADCAST`).
    #[arg(long)]
    broadcast: bool,
    /// Interface index multicast leaves by (`IP_MULTICAST_IF` / `IPV6_MULTICAST_IF`).
    #[arg(long)]
    multicast_if: Option<u32>,
    /// Hop limit of multicast datagrams (`IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`).
    #[arg(long)]
    multicast_ttl: Option<u8>,
    /// Deliver multicast to this host too (`IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`): on or
    /// off.
    #[arg(long)]
    multicast_loop: Option<bool>,
    /// Fail rather than fragment (`IP_DONTFRAGMENT` / `IPV6_DONTFRAG`).
    #[arg(long)]
    dont_fragment: bool,
    /// Fix the destination on the socket (`SIO_WSK_SET_SENDTO_ADDRESS`) and send without one
    /// per datagram.
    #[arg(long)]
    fixed_destination: bool,
}

/// Where a send goes from and how each datagram is marked: what `send` and `bench` share.
#[derive(clap::Args)]
struct AddressArgs {
    /// Local address to bind the driver's socket to (default: any address of the
    /// destination's family, port chosen by the stack). An IPv6 address with an IPv4
    /// destination opens a dual-stack socket (`IPV6_V6ONLY` off): IPv4 goes out v4-mapped.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Source address to send from (`IP_PKTINFO` / `IPV6_PKTINFO`).
    #[arg(long)]
    src: Option<IpAddr>,
    /// Interface index to send from, in `IP_PKTINFO` / `IPV6_PKTINFO` beside --src (Windows
    /// takes the pair together).
    #[arg(long, conflicts_with = "iface", requires = "src")]
    ifindex: Option<u32>,
    /// Interface name to send from (its index, as --ifindex).
    #[arg(long, requires = "src")]
    iface: Option<String>,
    /// Socket options.
    #[command(flatten)]
    socket: SocketArgs,
    /// TOS byte / IPv6 traffic class (`IP_TOS` / `IPV6_TCLASS`), 0-255, decimal or 0x hex
    /// (e.g. 0xb8: DSCP 46).
    #[arg(long, value_parser = parse_byte)]
    tos: Option<u8>,
    /// ECN codepoint (`IP_ECN` / `IPV6_ECN`, or folded into the TOS byte): 0 not-ECT, 1 ECT(1),
    /// 2 ECT(0). CE (3) cannot be sent: Windows refuses it on send (`WSAEINVAL`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    ecn: Option<u8>,
    /// USO segment size (`UDP_SEND_MSG_SIZE`): the payload leaves as datagrams of this size.
    #[arg(long)]
    uso: Option<u32>,
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("payload").required(true).args(["payload_hex", "size"])))]
struct SendArgs {
    /// Destination, e.g. `127.0.0.1:9000` or `[::1]:9000`.
    #[arg(long)]
    to: SocketAddr,
    /// Source, marking and socket options.
    #[command(flatten)]
    address: AddressArgs,
    /// How the payload is split into MDLs, e.g. 100,200,700 (must add up to the payload size;
    /// default: one MDL).
    #[arg(long, value_delimiter = ',')]
    segments: Vec<u32>,
    /// Payload as hex.
    #[arg(long)]
    payload_hex: Option<String>,
    /// Payload of this many pattern bytes.
    #[arg(long)]
    size: Option<usize>,
    /// Datagrams to send, any number from 1: they go in SEND requests of at most the driver's
    /// `max_count` datagrams each (see `info`).
    #[arg(long, default_value_t = 1, value_parser = parse_count)]
    count: u64,
    /// SEND requests kept outstanding at once, 1-64. Default 8: when a request completes the
    /// driver already holds the next ones, so it does not idle while the response comes back
    /// and the next request is issued; and at most 8 × `max_count` datagrams sit in kernel
    /// memory.
    #[arg(long, default_value_t = 8, value_parser = parse_inflight)]
    inflight: usize,
    /// Print the exact bytes the driver would pass to `WskSendTo` instead of sending.
    #[arg(long)]
    dry_run: bool,
    /// After sending, show the driver's counters for the socket and driver-wide
    /// (`QUERY_STATS`).
    #[arg(long, conflicts_with = "dry_run")]
    stats: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The WSK function `bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BenchApiArg {
    /// `WskSendTo`, one datagram per call.
    Sendto,
    /// `WskSendMessages`, `--batch` datagrams per call.
    Sendmessages,
    /// `SEND_DIRECT` requests (`METHOD_IN_DIRECT`: the payload sent from the caller's own
    /// pages, no copy), timed in user mode.
    Zerocopy,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Destination. Default: a receiver this command starts on loopback; given, a receiver is
    /// started on it when it is an address of this host, else none (drops are not counted).
    #[arg(long)]
    to: Option<SocketAddr>,
    /// Source, marking and socket options, as for `send`.
    #[command(flatten)]
    address: AddressArgs,
    /// Payload bytes per datagram.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=i64::from(wskudp_abi::MAX_PAYLOAD)))]
    size: u32,
    /// Datagrams to send.
    #[arg(long, default_value_t = 1_000_000, value_parser = parse_count)]
    count: u64,
    /// WSK calls the driver keeps in flight (zerocopy: `SEND_DIRECT` requests).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=i64::from(wskudp_abi::MAX_BENCH_DEPTH)))]
    inflight: u32,
    /// The WSK function.
    #[arg(long, value_enum, default_value = "sendmessages")]
    api: BenchApiArg,
    /// Datagrams per `WskSendMessages` call (1 with sendto).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(wskudp_abi::MAX_BENCH_BATCH)))]
    batch: Option<u32>,
    /// Datagrams per second the driver paces to, with its own high-resolution timer (user-mode
    /// timers on Windows are too coarse): each WSK call leaves when its first datagram is due.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Also time the platform's plain user-mode path in the same run: `sendmsg` and
    /// `sendmmsg` on Linux, with the same control messages, to the same receiver.
    #[arg(long)]
    baseline: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("the datagram count must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(e) => Err(format!("not a number of datagrams: {e}")),
    }
}

fn parse_inflight(text: &str) -> Result<usize, String> {
    let depth: usize = text
        .parse()
        .map_err(|e| format!("not a number of requests: {e}"))?;
    if (1..=MAX_INFLIGHT).contains(&depth) {
        Ok(depth)
    } else {
        Err(format!(
            "{depth} requests in flight: it must be 1 to {MAX_INFLIGHT}"
        ))
    }
}

fn parse_byte(text: &str) -> Result<u8, String> {
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .map_or_else(|| text.parse(), |hex| u8::from_str_radix(hex, 16))
        .map_err(|e| format!("not a byte (0-255, or 0x00-0xff): {e}"))
}

fn parse_code(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u32::from_str_radix(digits, 16).map_err(|e| format!("not a hexadecimal 32-bit code: {e}"))
}

/// What a command produced: its JSON, its text, and whether it succeeded.
struct Outcome {
    json: Value,
    text: String,
    ok: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A receiver host has no driver: no backend to open.
    if let Command::Recv {
        bind,
        count,
        idle_secs,
        json,
    } = &cli.command
    {
        return receive(*bind, *count, *idle_secs, *json);
    }
    let kind = match cli.backend {
        Some(BackendArg::Model) => Kind::Model,
        Some(BackendArg::Device) => Kind::Device,
        None => Kind::default_for_host(),
    };
    let client = match backend::open(kind, cli.front_door.into()) {
        Ok(backend) => Client::new(backend),
        Err(error) => {
            let host = HostRecord::collect();
            return failed(
                cli.command.wants_json(),
                &error.to_string(),
                &host,
                &Value::Null,
                None,
            );
        }
    };
    let json_wanted = cli.command.wants_json();
    // Which machine and driver this ran on, so runs on different Windows builds compare. Taken
    // first: its probe socket makes the driver probe its provider, which `info` then reports.
    let host = HostRecord::collect();
    let driver = driver_record(&client);
    let result = match &cli.command {
        Command::Info { .. } => info(&client, &driver),
        Command::Stats { .. } => stats(&client, None),
        Command::Send(args) => send(&client, args),
        Command::Bench(args) => bench_cmd::run(&client, args),
        Command::Ioctl {
            code,
            in_hex,
            out_len,
            ..
        } => raw_ioctl(&client, *code, in_hex, *out_len),
        Command::Demo { .. } => run_demo(&client),
        Command::Scenarios { allow_skips, .. } => Ok(run_scenarios(&client, *allow_skips)),
        Command::Recv { .. } => unreachable!("handled before the backend is opened"),
    };
    let report = client.finish();
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(message) => return failed(json_wanted, &message, &host, &driver, report.as_ref()),
    };
    if let Value::Object(map) = &mut outcome.json {
        map.insert("host".into(), host.to_json());
        map.insert("driver_record".into(), driver);
    }
    if matches!(cli.command, Command::Info { .. }) {
        outcome.text.push_str(&host.text());
        outcome.text.push('\n');
    }
    if let Some(report) = &report {
        outcome.ok &= report.is_clean();
        if let Value::Object(map) = &mut outcome.json {
            map.insert(
                "model".into(),
                serde_json::to_value(report).unwrap_or_default(),
            );
        }
        outcome.text.push_str(&report_text(report));
    }
    // A request the driver never completed after its cancel: its buffers were left to the
    // driver on purpose, and the run failed whatever else it showed.
    let abandoned = backend::abandoned_requests();
    if abandoned > 0 {
        eprintln!(
            "error: {abandoned} cancelled request(s) never completed; their buffers were left to the driver"
        );
        outcome.ok = false;
    }
    if json_wanted {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome.json).unwrap_or_default()
        );
    } else {
        print!("{}", outcome.text);
    }
    if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `wskudpctl recv`: what arrived, one line or JSON object per datagram; non-zero if fewer
/// than `count` arrived.
fn receive(bind: SocketAddr, count: usize, idle_secs: u64, json: bool) -> ExitCode {
    let receiver = match wskudp_harness::receiver::Receiver::bind(bind) {
        Ok(receiver) => receiver,
        Err(error) => {
            let host = HostRecord::collect();
            return failed(
                json,
                &format!("binding {bind}: {error}"),
                &host,
                &Value::Null,
                None,
            );
        }
    };
    let arrivals = receiver.recv_up_to(count, std::time::Duration::from_secs(idle_secs));
    let host = HostRecord::collect();
    if json {
        let list: Vec<Value> = arrivals
            .iter()
            .map(|a| {
                json!({
                    "bytes": a.payload.len(),
                    "source": a.source.to_string(),
                    "destination": a.destination.map(|d| d.to_string()),
                    "interface": a.interface,
                    "tos": a.tos,
                    "hop_limit": a.hop_limit,
                })
            })
            .collect();
        let out = json!({ "bind": bind.to_string(), "arrived": list, "wanted": count, "host": host.to_json() });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for a in &arrivals {
            let show = |v: Option<String>| v.unwrap_or_else(|| "not reported".to_owned());
            println!(
                "{} bytes from {} to {} on interface {}, TOS {}, hop limit {}",
                a.payload.len(),
                a.source,
                show(a.destination.map(|d| d.to_string())),
                show(a.interface.map(|i| i.to_string())),
                show(a.tos.map(|t| format!("{t:#04x}"))),
                show(a.hop_limit.map(|h| h.to_string())),
            );
        }
        println!("{} of {count} datagram(s); {}", arrivals.len(), host.text());
    }
    if arrivals.len() == count {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A command that could not run: the error on stderr and, with `--json`, as JSON with the
/// run's record; exit code 2.
fn failed(
    json_wanted: bool,
    message: &str,
    host: &HostRecord,
    driver: &Value,
    report: Option<&ModelReport>,
) -> ExitCode {
    eprintln!("error: {message}");
    if json_wanted {
        let mut json = json!({ "error": message, "host": host.to_json(), "driver_record": driver });
        if let (Some(report), Value::Object(map)) = (report, &mut json) {
            map.insert(
                "model".into(),
                serde_json::to_value(report).unwrap_or_default(),
            );
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else if let Some(report) = report.filter(|r| !r.is_clean()) {
        eprintln!("{}", report_text(report));
    }
    ExitCode::from(2)
}

fn report_text(report: &ModelReport) -> String {
    format!(
        "model: {report}
"
    )
}

/// `info`; `record` is the run's driver record, whose probe socket already made the driver
/// probe its provider (`QUERY_INFO`'s TOS, ECN and USO capabilities come from that probe).
fn info(client: &Client, record: &Value) -> Result<Outcome, String> {
    let socket_features = record["socket_features"].clone();
    let info: InfoResponse = client.info().map_err(|e| e.to_string())?;
    let [major, minor, patch, _] = info.driver_version;
    let capabilities = names_of(info.capabilities, &capability::NAMES);
    let ioctls: serde_json::Map<String, Value> = Ioctl::ALL
        .iter()
        .map(|ioctl| {
            (
                ioctl.name().to_owned(),
                Value::from(format!("{:#010X}", ioctl.code()).replacen("0X", "0x", 1)),
            )
        })
        .collect();
    let wsk = wsk_version(info.provider_wsk_version);
    let json = json!({
        "backend": client.backend_name(),
        "front_door": client.front_door(),
        "abi_version": info.abi_version,
        "abi_oldest": info.abi_oldest,
        "driver_version": format!("{major}.{minor}.{patch}"),
        "provider_status": status_hex(info.provider_status),
        "provider_wsk_version": wsk,
        "capabilities": capabilities,
        "limits": {
            "max_sockets": info.max_sockets,
            "max_segments": info.max_segments,
            "max_payload": info.max_payload,
            "max_count": info.max_count,
            "control_capacity": info.control_capacity,
            "send_window": info.send_window,
            "max_sends_per_socket": info.max_sends_per_socket,
            "max_sends_per_handle": info.max_sends_per_handle,
        },
        "open_sockets": info.open_sockets,
        "ioctls": ioctls,
        "socket_features": socket_features,
    });
    let mut text = format!(
        "backend {} (front door {})\nABI version {}, driver {major}.{minor}.{patch}\nWSK provider {} (capture {})\ncapabilities: {}\nlimits: {} sockets, {} MDLs/datagram, {} bytes/datagram, {} datagrams/request\n",
        client.backend_name(),
        client.front_door(),
        info.abi_version,
        wsk,
        status_text(info.provider_status),
        capabilities.join(", "),
        info.max_sockets,
        info.max_segments,
        info.max_payload,
        info.max_count,
    );
    if let Value::Array(features) = &json["socket_features"] {
        let names: Vec<&str> = features.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(text, "a socket here supports: {}", names.join(", "));
    }
    for ioctl in Ioctl::ALL {
        let _ = writeln!(
            text,
            "IOCTL_WSKUDP_{:<14} {:#010x}",
            ioctl.name(),
            ioctl.code()
        );
    }
    Ok(Outcome {
        json,
        text,
        ok: true,
    })
}

/// What the driver says of itself and of its WSK provider, and what a socket's provider probe
/// finds: `"driver_record"` beside `"host"` in every JSON output (`null` where it cannot be
/// asked). Not `"driver"`: `stats` puts the driver-wide counters there.
fn driver_record(client: &Client) -> Value {
    let Ok(info) = client.info() else {
        return Value::Null;
    };
    let [major, minor, patch, _] = info.driver_version;
    json!({
        "backend": client.backend_name(),
        "front_door": client.front_door(),
        "driver_version": format!("{major}.{minor}.{patch}"),
        "abi_version": info.abi_version,
        "provider_status": status_hex(info.provider_status),
        "provider_wsk_version": wsk_version(info.provider_wsk_version),
        "socket_features": probe_features(client),
    })
}

/// `major.minor` of a `WSK_MAKE_VERSION` value.
fn wsk_version(version: u16) -> String {
    format!("{}.{}", version >> 8, version & 0xFF)
}

/// What a socket of this driver supports, as its provider probe found it (opens and closes an
/// IPv4 socket; `null` where the driver speaks only ABI 1 or no socket opens).
fn probe_features(client: &Client) -> Value {
    let Ok(socket) = client.open_socket(SocketAddr::from(([0, 0, 0, 0], 0))) else {
        return Value::Null;
    };
    let _ = client.close_socket(socket.socket);
    if client.abi_version().unwrap_or(1) < 2 {
        return Value::Null;
    }
    json!(names_of(socket.features, &feature::NAMES))
}

/// The names of the bits set in `bits`, from a `(bit, name)` table.
fn names_of(bits: u32, table: &[(u32, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Counters as JSON and as one text line.
fn counters(counters: &SendCounters) -> (Value, String) {
    let json = json!({
        "datagrams_sent": counters.datagrams_sent,
        "datagrams_failed": counters.datagrams_failed,
        "datagrams_not_sent": counters.datagrams_not_sent,
        "bytes_sent": counters.bytes_sent,
        "requests_in_flight": counters.requests_in_flight,
        "requests_in_flight_max": counters.requests_in_flight_max,
        "datagrams_in_flight": counters.datagrams_in_flight,
        "datagrams_in_flight_max": counters.datagrams_in_flight_max,
    });
    let text = format!(
        "{} sent ({} bytes), {} failed, {} not sent; in flight: {} request(s) (at most {}), {} WSK IRP(s) (at most {})",
        counters.datagrams_sent,
        counters.bytes_sent,
        counters.datagrams_failed,
        counters.datagrams_not_sent,
        counters.requests_in_flight,
        counters.requests_in_flight_max,
        counters.datagrams_in_flight,
        counters.datagrams_in_flight_max,
    );
    (json, text)
}

/// Failures by status as JSON and as text lines (`indent` before each), "other" included.
fn failures<'a>(
    table: impl Iterator<Item = &'a FailureCount>,
    other: u64,
    indent: &str,
) -> (Vec<Value>, String) {
    let mut text = String::new();
    let json = table
        .map(|failure| {
            let _ = writeln!(
                text,
                "{indent}failed with {}: {}",
                status_text(failure.status),
                failure.count
            );
            json!({
                "status": status_hex(failure.status),
                "status_name": wskudp_abi::status::status_name(failure.status),
                "datagrams": failure.count,
            })
        })
        .collect();
    if other > 0 {
        let _ = writeln!(text, "{indent}failed with other statuses: {other}");
    }
    (json, text)
}

/// `QUERY_STATS`: driver-wide, and `socket`'s own record if given (it belongs to this handle):
/// counters, failures by status, pool its requests hold.
fn stats(client: &Client, socket: Option<u32>) -> Result<Outcome, String> {
    let stats = client.stats().map_err(|e| e.to_string())?;
    let (driver_json, driver_text) = counters(&stats.driver);
    let (failures_json, failures_text) = failures(stats.failures(), stats.failures_other, "  ");
    let mut text = format!(
        "driver: {driver_text}\npool in use: {} block(s), {} bytes; {} socket(s) open\n{failures_text}",
        stats.pool_blocks, stats.pool_bytes, stats.open_sockets
    );
    let mut json = json!({
        "driver": driver_json,
        "failures": failures_json,
        "failures_other": stats.failures_other,
        "pool_blocks": stats.pool_blocks,
        "pool_bytes": stats.pool_bytes,
        "open_sockets": stats.open_sockets,
    });
    if let Some(wanted) = socket {
        let entry = stats
            .socket(wanted)
            .ok_or_else(|| format!("socket {wanted:#x} is not in this handle's statistics"))?;
        let (mut socket_json, socket_text) = counters(&entry.counters);
        let (failures_json, failures_text) =
            failures(entry.failures(), entry.failures_other, "    ");
        let _ = write!(
            text,
            "socket {wanted:#x}: {socket_text}\n  pool in use: {} block(s), {} bytes\n{failures_text}",
            entry.pool_blocks, entry.pool_bytes
        );
        if let Value::Object(map) = &mut socket_json {
            map.insert("failures".into(), failures_json.into());
            map.insert("failures_other".into(), entry.failures_other.into());
            map.insert("pool_blocks".into(), entry.pool_blocks.into());
            map.insert("pool_bytes".into(), entry.pool_bytes.into());
        }
        if let Value::Object(map) = &mut json {
            map.insert("socket".into(), socket_json);
        }
    }
    Ok(Outcome {
        json,
        text,
        ok: true,
    })
}

/// The socket options `send`'s flags ask for, in the order they are set.
fn socket_options(args: &SocketArgs, to: SocketAddr) -> Vec<SocketOption> {
    let mut options = Vec::new();
    options.extend(args.ttl.map(SocketOption::HopLimit));
    if args.broadcast {
        options.push(SocketOption::Broadcast(true));
    }
    options.extend(args.multicast_if.map(SocketOption::MulticastInterface));
    options.extend(args.multicast_ttl.map(SocketOption::MulticastHopLimit));
    options.extend(args.multicast_loop.map(SocketOption::MulticastLoop));
    options.extend(args.unicast_if.map(SocketOption::UnicastInterface));
    if args.dont_fragment {
        options.push(SocketOption::DontFragment(true));
    }
    if args.fixed_destination {
        options.push(SocketOption::Destination(to));
    }
    options
}

/// The index of the interface called `name`.
fn interface_index(name: &str) -> Result<u32, String> {
    wskudp_harness::interface_index(name)
        .ok_or_else(|| format!("--iface {name}: no such interface on this host"))
}

/// A socket opened and set up for sending to `to`, and the spec its sends use.
struct Opened {
    socket: u32,
    local: String,
    features: Vec<&'static str>,
    spec: SendSpec,
}

/// Opens a socket bound as `address` asks (any address of `to`'s family by default; dual
/// stack for an IPv6 bind and an IPv4 destination), sets its options, and builds the spec of
/// sends to `to` with `address`'s marking.
fn open_for(client: &Client, address: &AddressArgs, to: SocketAddr) -> Result<Opened, String> {
    let bind = address.bind.unwrap_or_else(|| match to {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    });
    if bind.is_ipv4() && to.is_ipv6() {
        return Err(format!(
            "--bind {bind} is IPv4 and --to {to} IPv6: an IPv4 socket cannot reach it (bind an IPv6 address for a dual-stack socket)"
        ));
    }
    let dual_stack = bind.is_ipv6() && to.is_ipv4();
    let flags = if dual_stack {
        OpenSocketRequest::FLAG_DUAL_STACK
    } else {
        0
    };
    let source_ifindex = match (&address.iface, address.ifindex) {
        (Some(name), _) => Some(interface_index(name)?),
        (None, index) => index,
    };
    let opened = client
        .open_socket_with(bind, flags)
        .map_err(|e| format!("opening a socket bound to {bind}: {e}"))?;
    for option in &socket_options(&address.socket, to) {
        if let Err(error) = client.set_option(opened.socket, *option) {
            let _ = client.close_socket(opened.socket);
            return Err(format!("setting {option:?}: {error}"));
        }
    }
    let spec = SendSpec {
        socket: opened.socket,
        remote: (!address.socket.fixed_destination).then_some(to),
        source: address.src,
        tos: address.tos,
        ecn: address.ecn.and_then(Ecn::from_bits),
        uso_segment_size: address.uso,
        source_ifindex,
        // One datagram's worth for DESCRIBE_SEND; a real send sets each request's count.
        count: 1,
    };
    Ok(Opened {
        socket: opened.socket,
        local: opened
            .local
            .socket_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        features: names_of(opened.features, &feature::NAMES),
        spec,
    })
}

fn send(client: &Client, args: &SendArgs) -> Result<Outcome, String> {
    let payload = match (&args.payload_hex, args.size) {
        (Some(hex), _) => hex::decode(hex.trim()).map_err(|e| format!("--payload-hex: {e}"))?,
        (None, Some(size)) => pattern(size),
        (None, None) => return Err("give --payload-hex or --size".into()),
    };
    let opened = open_for(client, &args.address, args.to)?;
    let spec = opened.spec;
    let result = if args.dry_run {
        describe(client, &spec, &args.segments, &payload)
    } else {
        send_for_real(client, &spec, args, &payload, &opened.local)
    };
    let mut result = result;
    if let (true, Ok(outcome)) = (args.stats, &mut result) {
        match stats(client, Some(opened.socket)) {
            Ok(shown) => {
                outcome.text.push_str(&shown.text);
                if let Value::Object(map) = &mut outcome.json {
                    map.insert("stats".into(), shown.json);
                }
            }
            Err(error) => {
                outcome.ok = false;
                let _ = writeln!(outcome.text, "statistics: {error}");
            }
        }
    }
    let closed = client.close_socket(opened.socket);
    let mut outcome = result?;
    if let Value::Object(map) = &mut outcome.json {
        map.insert("socket_features".into(), json!(opened.features));
    }
    let _ = writeln!(
        outcome.text,
        "  socket supports: {}",
        opened.features.join(", ")
    );
    if let Err(error) = closed {
        outcome.ok = false;
        let _ = writeln!(outcome.text, "closing the socket failed: {error}");
    }
    Ok(outcome)
}

fn describe(
    client: &Client,
    spec: &SendSpec,
    segments: &[u32],
    payload: &[u8],
) -> Result<Outcome, String> {
    let described = client
        .describe_send(spec, segments, payload)
        .map_err(|e| e.to_string())?;
    let json = json!({
        "control_hex": hex::encode(described.control_bytes()),
        "control_len": described.control_len,
        "remote_hex": hex::encode(described.remote_bytes()),
        "remote_len": described.remote_len,
        "mdl_chain": described.mdl_lengths(),
        "payload_len": described.payload_len,
    });
    let text = format!(
        "WskSendTo would get:\n  WSK_BUF: {} bytes in MDLs {:?}\n  RemoteAddress ({} bytes): {}\n  ControlInfoLength {}: {}\n",
        described.payload_len,
        described.mdl_lengths(),
        described.remote_len,
        hex::encode(described.remote_bytes()),
        described.control_len,
        hex::encode(described.control_bytes()),
    );
    Ok(Outcome {
        json,
        text,
        ok: true,
    })
}

fn send_for_real(
    client: &Client,
    spec: &SendSpec,
    args: &SendArgs,
    payload: &[u8],
    local: &str,
) -> Result<Outcome, String> {
    let summary = client
        .send_pipelined(spec, &args.segments, payload, args.count, args.inflight)
        .map_err(|e| e.to_string())?;
    let status = summary.first_error.unwrap_or(0);
    let statuses: Vec<Value> = summary
        .statuses
        .iter()
        .map(|s| {
            json!({
                "status": status_hex(s.status),
                "status_name": wskudp_abi::status::status_name(s.status),
                "requests": s.requests,
                "datagrams": s.datagrams,
            })
        })
        .collect();
    let json = json!({
        "status": status_hex(status),
        "status_name": wskudp_abi::status::status_name(status),
        "datagrams_requested": summary.total,
        "datagrams_sent": summary.datagrams_sent,
        "datagrams_failed": summary.datagrams_failed,
        "datagrams_not_sent": summary.datagrams_not_sent,
        "datagrams_unsent": summary.datagrams_unsent,
        "bytes_sent": summary.bytes_sent,
        "requests": summary.requests,
        "requests_refused": summary.requests_refused,
        "per_request": summary.per_request,
        "inflight": summary.inflight,
        "peak_inflight": summary.peak_inflight,
        "statuses": statuses,
        "local": local,
    });
    Ok(Outcome {
        json,
        text: send_text(&summary, spec, local),
        ok: summary.all_sent(),
    })
}

fn send_text(summary: &PipelineSummary, spec: &SendSpec, local: &str) -> String {
    let mut text = format!(
        "sent {} of {} datagram(s), {} bytes, from {local} to {}: {}
",
        summary.datagrams_sent,
        summary.total,
        summary.bytes_sent,
        spec.remote
            .map_or_else(|| "the socket's destination".to_owned(), |r| r.to_string()),
        status_text(summary.first_error.unwrap_or(0)),
    );
    let _ = writeln!(
        text,
        "  {} SEND request(s) of up to {} datagram(s), up to {} in flight (at most {} were)",
        summary.requests, summary.per_request, summary.inflight, summary.peak_inflight
    );
    if summary.datagrams_failed > 0
        || summary.datagrams_not_sent > 0
        || summary.datagrams_unsent > 0
    {
        let _ = writeln!(
            text,
            "  {} failed, {} not sent (cancelled or socket closed), {} never requested; {} request(s) refused",
            summary.datagrams_failed,
            summary.datagrams_not_sent,
            summary.datagrams_unsent,
            summary.requests_refused
        );
    }
    for status in &summary.statuses {
        let _ = writeln!(
            text,
            "  {}: {} request(s), {} datagram(s) failed or not sent",
            status_text(status.status),
            status.requests,
            status.datagrams
        );
    }
    text
}

fn raw_ioctl(client: &Client, code: u32, in_hex: &str, out_len: u32) -> Result<Outcome, String> {
    let input = hex::decode(in_hex.trim()).map_err(|e| format!("--in-hex: {e}"))?;
    let (status, output) = client
        .raw(code, &input, out_len as usize)
        .map_err(|e| e.to_string())?;
    let json = json!({
        "status": status_hex(status),
        "status_name": wskudp_abi::status::status_name(status),
        "output_hex": hex::encode(&output),
    });
    let text = format!(
        "{}\noutput ({} bytes): {}\n",
        status_text(status),
        output.len(),
        hex::encode(&output)
    );
    Ok(Outcome {
        json,
        text,
        ok: true,
    })
}

/// A skipped scenario proved nothing, so it fails the run unless `allow_skips`.
fn run_scenarios(client: &Client, allow_skips: bool) -> Outcome {
    let outcomes = scenarios::run_all(client);
    let ok = outcomes
        .iter()
        .all(|o| o.result == "pass" || (allow_skips && o.result == "skip"));
    let mut text = String::new();
    for outcome in &outcomes {
        let _ = writeln!(
            text,
            "{:<4} {}{}",
            outcome.result,
            outcome.name,
            outcome
                .detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    Outcome {
        json: json!({ "scenarios": outcomes }),
        text,
        ok,
    }
}

fn run_demo(client: &Client) -> Result<Outcome, String> {
    let rows = demo::run(client)?;
    let ok = rows.iter().all(|row| row.ok);
    let mut text = String::new();
    for row in &rows {
        let _ = writeln!(
            text,
            "{} {}",
            if row.ok { "ok  " } else { "FAIL" },
            row.case
        );
        let _ = writeln!(
            text,
            "     sent    {} bytes in MDLs {:?}{} -> {}",
            row.sent_bytes,
            row.mdl_chain,
            row.requested_source
                .map(|s| format!(", source {s}"))
                .unwrap_or_default(),
            row.status
        );
        let _ = writeln!(
            text,
            "     arrived {} datagram(s) {:?} from {}{}",
            row.arrived,
            row.arrived_bytes,
            row.arrived_from
                .map_or_else(|| "-".into(), |a| a.to_string()),
            row.arrived_tos
                .map(|t| format!(", TOS {t:#04x}"))
                .unwrap_or_default()
        );
    }
    Ok(Outcome {
        json: json!({ "cases": rows }),
        text,
        ok,
    })
}
