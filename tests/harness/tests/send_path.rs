//! The scenario suite (`wskudp_harness::scenarios`) on the model, in every completion mode,
//! each scenario on a fresh machine whose report must be clean; plus the send path's
//! allocation budget, which only the model can count.

mod common;

use common::{V4, addr, client, client_on, finish_clean, in_mode, modes, plain, receive, receiver};
use wskudp_harness::backend::FrontDoor;
use wskudp_harness::pattern;
use wskudp_harness::scenarios;
use wskudp_kmodel::{CompletionMode, FaultPlan};

/// Set (tests/run-all.sh, in its private network namespace) where every scenario can run:
/// a skip is then a failure.
const NO_SKIPS: &str = "WSKUDP_NO_SKIPS";

/// Records a scenario's failure, or its skip: printed, or a failure under `WSKUDP_NO_SKIPS`.
fn note(outcome: Result<Option<String>, String>, label: &str, failures: &mut Vec<String>) {
    match outcome {
        Ok(None) => {}
        Ok(Some(skipped)) if std::env::var_os(NO_SKIPS).is_some() => {
            failures.push(format!("{label}: skipped under {NO_SKIPS}: {skipped}"));
        }
        Ok(Some(skipped)) => eprintln!("skipped {label}: {skipped}"),
        Err(failure) => failures.push(format!("{label}: {failure}")),
    }
}

fn every_scenario_passes(front_door: FrontDoor) {
    let mut failures = Vec::new();
    for mode in modes() {
        for scenario in scenarios::all_through(front_door.name()) {
            in_mode(mode, || {
                let client = client_on(front_door, mode, FaultPlan::None);
                let label = format!("{} ({front_door:?}, {mode:?})", scenario.name);
                note((scenario.run)(&client), &label, &mut failures);
                let report = client.finish().expect("the model reports");
                if !report.is_clean() {
                    failures.push(format!(
                        "{} ({front_door:?}, {mode:?}): model report {report}",
                        scenario.name
                    ));
                }
            });
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_scenario_passes_through_the_kmdf_front_door_in_every_completion_mode() {
    every_scenario_passes(FrontDoor::Kmdf);
}

#[test]
fn every_scenario_passes_through_the_wdm_front_door_in_every_completion_mode() {
    every_scenario_passes(FrontDoor::Wdm);
}

#[test]
fn every_scenario_passes_on_core_directly_in_every_completion_mode() {
    every_scenario_passes(FrontDoor::None);
}

/// The allocation budget of the send path, exactly, as the model counts it at the kernel-call
/// boundary: a socket's first request allocates its request context (one pool block) and the
/// partial MDLs of its payload buffer (one per segment), which stay with the buffer; every
/// later request allocates nothing, whatever its count. The socket's send contexts (each with
/// its IRP) and small payload buffers were built when it opened. What remains per WSK call is
/// the I/O manager's `IoSetCompletionRoutineEx` context: one per call of up to 16 datagrams.
#[test]
fn a_warm_socket_sends_without_allocating() {
    let rx = receiver(V4).unwrap();
    let client = client(modes()[0]);
    let socket = client.open_socket(addr(V4)).unwrap();
    let counters = || client.backend().machine_counters().unwrap();
    let send = |count: u32| {
        let response = client
            .send(
                &plain(socket.socket, rx.local_addr().unwrap(), count),
                &[10, 20, 30],
                &pattern(60),
            )
            .unwrap();
        assert_eq!(response.datagrams_sent, count);
        receive(&rx, count as usize);
    };
    let before = counters();
    send(64);
    let first = counters().since(&before);
    assert_eq!(
        (
            first.pool_allocations,
            first.irp_allocations,
            first.mdl_allocations
        ),
        (1, 0, 3),
        "a first request: its context, and one partial MDL per segment"
    );
    let before = counters();
    for _ in 0..4 {
        send(1000);
    }
    let warm = counters().since(&before);
    assert_eq!(
        warm.allocations(),
        0,
        "4000 datagrams on a warm socket: no pool, IRP or MDL allocation"
    );
    assert_eq!(
        warm.completion_contexts,
        4 * 1000_u64.div_ceil(16),
        "one completion context per WskSendMessages call of 16 datagrams"
    );
    client.close_socket(socket.socket).unwrap();
    finish_clean(client);
}

/// The scenario suite against every Windows build the provider imitates, through every front
/// door: each scenario adapts to what the socket reports it supports (USO, the TOS byte on
/// send, ECN), so every fallback is exercised. Inline completions: the provider's rules do not
/// depend on when it completes, which the default profile's runs above cover.
#[test]
fn every_scenario_passes_against_every_provider_profile() {
    let mut failures = Vec::new();
    for profile in wskudp_kmodel::Profile::ALL {
        for front_door in FrontDoor::ALL {
            for mode in [CompletionMode::Inline] {
                for scenario in scenarios::all_through(front_door.name()) {
                    let mut config = common::config(front_door, mode, FaultPlan::None);
                    config.machine.profile = profile;
                    let backend: Box<dyn wskudp_harness::backend::Backend> =
                        Box::new(wskudp_harness::backend::ModelBackend::start(config).unwrap());
                    let client = wskudp_harness::client::Client::new(backend);
                    let label = format!(
                        "{} ({}, {front_door:?}, {mode:?})",
                        scenario.name,
                        profile.name()
                    );
                    note((scenario.run)(&client), &label, &mut failures);
                    let report = client.finish().expect("the model reports");
                    if !report.is_clean() {
                        failures.push(format!("{label}: model report {report}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Where no test interface is set, the checks only one can make are reported skipped, never
/// passed (IPv4 and IPv6 don't-fragment failures, IPv6 multicast delivery); with one
/// (tests/in-netns.sh) they are made and nothing is skipped.
#[test]
fn checks_only_a_test_interface_can_make_are_skipped_without_one() {
    let has_interface = wskudp_harness::test_interface().is_some();
    for (name, without) in [
        ("largest datagram per family", "don't-fragment"),
        ("multicast:", "IPv6 multicast delivery"),
    ] {
        let scenario = scenarios::all()
            .iter()
            .find(|scenario| scenario.name.starts_with(name))
            .expect("the scenario");
        let client = client(modes()[0]);
        let outcome = (scenario.run)(&client);
        finish_clean(client);
        if has_interface {
            assert_eq!(outcome, Ok(None), "{name}");
        } else {
            let reason = outcome.expect("no failure").unwrap_or_default();
            assert!(reason.contains(without), "{name}: {reason}");
        }
    }
}
