//! Shared scenario helpers: a model-backed client, loopback receivers, clean-report checks.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use wskudp_harness::backend::{Backend, FrontDoor, ModelBackend, ModelConfig};
use wskudp_harness::client::Client;
use wskudp_harness::receiver::{Arrival, Receiver};
use wskudp_harness::report::ModelReport;
#[allow(unused_imports, reason = "not every test uses it")]
pub use wskudp_harness::scenarios::plain;

use wskudp_kmodel::{CompletionMode, Config, FaultPlan, release_held_for};

/// How long a receiver waits for each expected datagram.
pub const WAIT: Duration = Duration::from_secs(3);

pub const V4: &str = "127.0.0.1:0";
pub const V6: &str = "[::1]:0";

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A client on a fresh model machine.
pub fn client(completion: CompletionMode) -> Client {
    client_with(completion, FaultPlan::None)
}

pub fn client_with(completion: CompletionMode, faults: FaultPlan) -> Client {
    client_on(FrontDoor::default(), completion, faults)
}

/// A client on a fresh model machine, through `front_door`.
pub fn client_on(front_door: FrontDoor, completion: CompletionMode, faults: FaultPlan) -> Client {
    let backend: Box<dyn Backend> =
        Box::new(ModelBackend::start(config(front_door, completion, faults)).unwrap());
    Client::new(backend)
}

/// A model configuration.
pub fn config(front_door: FrontDoor, completion: CompletionMode, faults: FaultPlan) -> ModelConfig {
    ModelConfig {
        machine: Config {
            completion,
            faults,
            ..Config::default()
        },
        front_door,
        driver_abi: None,
    }
}

/// Every completion mode the model offers: inline, worker, late and out of order, racing
/// (pending, completed before the WSK call returns) and held (completed only when released:
/// run each step of a held test through [`in_mode`], which releases them from another thread).
pub const fn modes() -> [CompletionMode; 5] {
    [
        CompletionMode::Inline,
        CompletionMode::worker(),
        CompletionMode::late_out_of_order(0x5eed),
        CompletionMode::Racing,
        CompletionMode::Held,
    ]
}

/// Runs `work` so that it can finish in `mode`: on a `Held` machine, while another thread
/// releases every held completion (see [`releasing`]); otherwise directly.
pub fn in_mode<T>(mode: CompletionMode, work: impl FnOnce() -> T) -> T {
    if mode == CompletionMode::Held {
        releasing(work)
    } else {
        work()
    }
}

/// Unloads the driver and asserts the model saw no violation and nothing leaked.
pub fn finish_clean(client: Client) -> ModelReport {
    let report = client.finish().expect("the model backend reports");
    assert!(
        report.violations.is_empty(),
        "violations: {:#?}",
        report.violations
    );
    assert!(report.leaked.is_empty(), "leaked: {:#?}", report.leaked);
    report
}

/// A receiver on `local`, or `None` if this host has no such loopback (IPv6 may be off).
pub fn receiver(local: &str) -> Option<Receiver> {
    Receiver::bind(addr(local)).ok()
}

/// Receives exactly `n` datagrams (fails the test otherwise).
pub fn receive(receiver: &Receiver, n: usize) -> Vec<Arrival> {
    let arrivals = receiver.recv_up_to(n, WAIT);
    assert_eq!(arrivals.len(), n, "expected {n} datagrams");
    // Nothing more is on the way.
    assert!(
        receiver.recv(Duration::from_millis(50)).is_err(),
        "more datagrams than expected"
    );
    arrivals
}

/// Sets a flag when dropped, even by a panic, so a helper thread watching it stops.
struct Raise<'a>(&'a AtomicBool);

impl Drop for Raise<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `work` while another thread completes every held IRP: on a `Held` machine, opening
/// and closing a socket wait for WSK completions nobody else releases. Only IRPs of machines
/// this thread boots are released (another test's machine may boot before `work` returns).
pub fn releasing<T>(work: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    let booter = std::thread::current().id();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                release_held_for(booter, usize::MAX);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let _raise = Raise(&done);
        work()
    })
}
