//! Driver Verifier's low-resources simulation, made systematic: every fallible kernel call the
//! driver makes fails once, in turn, and every failure must come back as a clean status with
//! nothing leaked and no contract broken.

mod common;

use common::{V4, addr, plain, receiver};
use wskudp_abi::status::{STATUS_DEVICE_NOT_READY, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS};
use wskudp_abi::{Ecn, SendSpec};
use wskudp_harness::backend::{BackendError, FrontDoor, ModelBackend, ModelConfig};
use wskudp_harness::client::{Client, ClientError};
use wskudp_harness::pattern;
use wskudp_harness::report::ModelReport;
use wskudp_kmodel::FaultPlan;

/// A status a simulated resource failure may legitimately surface as.
const fn expected_failure(status: i32) -> bool {
    status == STATUS_INSUFFICIENT_RESOURCES || status == STATUS_DEVICE_NOT_READY
}

fn check(result: Result<(), ClientError>, step: &str) {
    match result {
        Ok(()) => {}
        Err(
            ClientError::Status(status) | ClientError::Backend(BackendError::OpenFailed(status)),
        ) => {
            assert!(
                expected_failure(status),
                "{step}: unexpected {}",
                wskudp_harness::status_text(status)
            );
        }
        Err(other) => panic!("{step}: {other}"),
    }
}

/// Load, query, open, describe, send (3 MDLs, every option, 4 copies), close, unload.
/// Returns the report; panics if any step fails in a way a resource failure cannot explain.
fn scenario(config: ModelConfig) -> ModelReport {
    let backend = match ModelBackend::start_or_report(config) {
        Ok(backend) => backend,
        Err((status, report)) => {
            assert!(expected_failure(status), "load failed with {status:#x}");
            return *report;
        }
    };
    let client = Client::new(Box::new(backend));
    let rx = receiver(V4).unwrap();
    check(client.info().map(|_| ()), "QUERY_INFO");
    match client.open_socket(addr(V4)) {
        Ok(socket) => {
            let spec = SendSpec {
                source: Some("127.0.0.3".parse().unwrap()),
                tos: Some(0x10),
                ecn: Some(Ecn::Ect0),
                uso_segment_size: Some(300),
                ..plain(socket.socket, rx.local_addr().unwrap(), 4)
            };
            let payload = pattern(900);
            check(
                client
                    .describe_send(&spec, &[100, 400, 400], &payload)
                    .map(|_| ()),
                "DESCRIBE_SEND",
            );
            match client.send(&spec, &[100, 400, 400], &payload) {
                Ok(response) => {
                    assert_eq!(response.datagrams_sent + response.datagrams_failed, 4);
                    assert_eq!(
                        response.bytes_sent,
                        u64::from(response.datagrams_sent) * 900
                    );
                    assert!(response.status == STATUS_SUCCESS || expected_failure(response.status));
                    assert_eq!(
                        response.status == STATUS_SUCCESS,
                        response.datagrams_failed == 0
                    );
                    // Whatever the driver says it sent arrived (3 USO segments each).
                    let arrived = rx.recv_up_to(3 * response.datagrams_sent as usize, common::WAIT);
                    assert_eq!(arrived.len(), 3 * response.datagrams_sent as usize);
                }
                Err(error) => check(Err(error), "SEND"),
            }
            check(client.close_socket(socket.socket), "CLOSE_SOCKET");
        }
        Err(error) => check(Err(error), "OPEN_SOCKET"),
    }
    client.finish().unwrap()
}

fn every_single_fault_point_fails_cleanly(front_door: FrontDoor) {
    for completion in common::modes() {
        let mut n = 1;
        loop {
            let report = common::in_mode(completion, || {
                scenario(common::config(
                    front_door,
                    completion,
                    FaultPlan::FailNth(n),
                ))
            });
            assert!(
                report.is_clean(),
                "fault point {n} ({front_door:?}, {completion:?}): {report:#?}"
            );
            if report.stats.faults_injected == 0 {
                // Point n does not exist: every point before it was failed once.
                assert!(n > 20, "the scenario has only {} fault points", n - 1);
                break;
            }
            n += 1;
            assert!(n < 500, "fault points do not end");
        }
    }
}

#[test]
fn every_single_fault_point_fails_cleanly_through_the_kmdf_front_door() {
    every_single_fault_point_fails_cleanly(FrontDoor::Kmdf);
}

#[test]
fn every_single_fault_point_fails_cleanly_through_the_wdm_front_door() {
    every_single_fault_point_fails_cleanly(FrontDoor::Wdm);
}

#[test]
fn every_single_fault_point_fails_cleanly_on_core_directly() {
    every_single_fault_point_fails_cleanly(FrontDoor::None);
}

#[test]
fn random_faults_fail_cleanly_through_every_front_door() {
    for front_door in FrontDoor::ALL {
        for (seed, completion) in (1..=25).zip(common::modes().into_iter().cycle()) {
            let report = common::in_mode(completion, || {
                scenario(common::config(
                    front_door,
                    completion,
                    FaultPlan::Random { seed, one_in: 6 },
                ))
            });
            assert!(
                report.is_clean(),
                "seed {seed} ({front_door:?}): {report:#?}"
            );
        }
    }
}
