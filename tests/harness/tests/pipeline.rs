//! Pipelining: several `SEND` requests outstanding at once, through every front door and
//! completion mode of the model, and the pipeline's accounting against a scripted backend
//! whose every completion the test chooses.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    V4, WAIT, addr, client_on, finish_clean, in_mode, modes, plain, receive, receiver, releasing,
};
use wskudp_abi::status::{
    STATUS_HOST_UNREACHABLE, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
};
use wskudp_abi::{InfoResponse, Ioctl, SendRequest, SendResponse};
use wskudp_harness::backend::{
    Backend, BackendError, FrontDoor, InFlight, IoctlOutcome, ModelBackend, ModelReport, PendingIo,
};
use wskudp_harness::client::{
    Client, ClientError, MAX_INFLIGHT, PendingSend, Pipeline, PipelineSummary, StatusCount,
};
use wskudp_harness::pattern;
use wskudp_harness::receiver::Receiver;
use wskudp_kmodel::{CompletionMode, FaultPlan, held_datagrams, release_held};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Waits up to 10 s until `condition` holds; whether it did. (Held-mode tests assert only
/// once everything is released: a panic with completions held would hang the unload.)
fn wait_until(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Releases held completions until `thread` has finished (or 10 s have passed).
fn release_until_finished<T>(thread: &std::thread::ScopedJoinHandle<'_, T>) {
    wait_until(|| {
        release_held(usize::MAX);
        thread.is_finished()
    });
}

/// A summary's `(requests, requests_refused, datagrams_sent, datagrams_failed,
/// datagrams_unsent)`.
const fn outcome(summary: &PipelineSummary) -> (u64, u64, u64, u64, u64) {
    (
        summary.requests,
        summary.requests_refused,
        summary.datagrams_sent,
        summary.datagrams_failed,
        summary.datagrams_unsent,
    )
}

fn max_count(client: &Client) -> u64 {
    u64::from(releasing(|| client.info()).unwrap().max_count)
}

/// A client through `front_door` whose provider holds every completion, a receiver, and a
/// socket open (the completions it waited for released).
fn held_client(front_door: FrontDoor) -> (Client, Receiver, u32) {
    let client = client_on(front_door, CompletionMode::Held, FaultPlan::None);
    let rx = receiver(V4).unwrap();
    let socket = releasing(|| client.open_socket(addr(V4))).unwrap().socket;
    (client, rx, socket)
}

/// Closes `socket` and unloads cleanly, releasing held completions meanwhile.
fn finish_held(client: Client, socket: u32) {
    releasing(|| client.close_socket(socket)).unwrap();
    releasing(|| finish_clean(client));
}

/// Many datagrams in requests of the driver's `max_count`, a few in flight, through every
/// front door and completion mode: every datagram arrives intact, every response adds up, and
/// the model's report is clean.
#[test]
fn pipelined_sends_arrive_through_every_front_door_in_every_completion_mode() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || {
                let client = client_on(front_door, mode, FaultPlan::None);
                let rx = receiver(V4).unwrap();
                let to = rx.local_addr().unwrap();
                let socket = client.open_socket(addr(V4)).unwrap();
                let max = max_count(&client);
                // Two full requests and a short one.
                let total = 2 * max + 100;
                let expected = usize::try_from(total).unwrap();
                let payload = pattern(100);
                let (summary, arrivals) = std::thread::scope(|scope| {
                    let draining = scope.spawn(|| rx.recv_up_to(expected, WAIT));
                    let summary = client
                        .send_pipelined(&plain(socket.socket, to, 1), &[10, 90], &payload, total, 2)
                        .unwrap();
                    (summary, draining.join().unwrap())
                });
                let context = format!("{front_door:?}, {mode:?}: {summary:?}");
                assert_eq!(summary.requests, 3, "{context}");
                assert_eq!(summary.peak_inflight, 2, "{context}");
                assert_eq!(summary.datagrams_sent, total, "{context}");
                assert_eq!(summary.bytes_sent, total * 100, "{context}");
                assert_eq!(
                    (
                        summary.datagrams_failed,
                        summary.datagrams_unsent,
                        summary.requests_refused
                    ),
                    (0, 0, 0),
                    "{context}"
                );
                assert!(summary.statuses.is_empty() && summary.first_error.is_none());
                assert_eq!(arrivals.len(), expected, "{context}");
                assert!(arrivals.iter().all(|a| a.payload == payload), "{context}");
                assert!(rx.recv(Duration::from_millis(50)).is_err(), "{context}");
                client.close_socket(socket.socket).unwrap();
                let report = finish_clean(client);
                assert_eq!(report.stats.datagrams_sent, total, "{context}");
                assert_eq!(report.stats.bytes_sent, total * 100, "{context}");
            });
        }
    }
}

/// Three `SEND`s submitted without waiting are all in the provider at once: every datagram
/// of the three requests is held, none completed, until the test releases them.
#[test]
fn several_sends_are_outstanding_at_once() {
    for front_door in FrontDoor::ALL {
        let (client, rx, socket) = held_client(front_door);
        let spec = plain(socket, rx.local_addr().unwrap(), 10);
        let payload = pattern(32);
        let (held, responses) = std::thread::scope(|scope| {
            let submitting = scope.spawn(|| {
                (0..3)
                    .map(|_| client.submit_send(&spec, &[], &payload))
                    .collect::<Vec<_>>()
            });
            wait_until(|| held_datagrams() >= 30);
            let held = held_datagrams();
            // Release everything (a submit that waited would be unblocked too).
            release_until_finished(&submitting);
            let responses: Vec<_> = submitting
                .join()
                .unwrap()
                .into_iter()
                .map(|request| request.and_then(PendingSend::wait))
                .collect();
            (held, responses)
        });
        assert_eq!(
            held, 30,
            "{front_door:?}: all three requests' datagrams (10 each) must be outstanding at once"
        );
        for response in responses {
            assert_eq!(
                response.unwrap(),
                SendResponse {
                    status: STATUS_SUCCESS,
                    datagrams_sent: 10,
                    datagrams_failed: 0,
                    datagrams_not_sent: 0,
                    bytes_sent: 320,
                },
                "{front_door:?}"
            );
        }
        assert!(receive(&rx, 30).iter().all(|a| a.payload == payload));
        finish_held(client, socket);
    }
}

/// `send_pipelined` itself keeps `inflight` requests outstanding: with completions held, the
/// provider holds more datagrams than two requests keep in flight, and exactly three
/// requests' worth (each request keeps its driver's send window in flight); released,
/// everything is sent.
#[test]
fn the_pipeline_keeps_its_depth_of_requests_outstanding() {
    for front_door in FrontDoor::ALL {
        let (client, rx, socket) = held_client(front_door);
        let to = rx.local_addr().unwrap();
        let max = max_count(&client);
        let total = 3 * max + 5;
        let payload = pattern(16);
        // Asked before sending: releasing while the pipeline runs would release its sends too.
        let window = u64::from(releasing(|| client.info()).unwrap().send_window);
        let three = usize::try_from(3 * max.min(window)).unwrap_or(usize::MAX);
        let (held, summary, arrivals) = std::thread::scope(|scope| {
            let draining = scope.spawn(|| rx.recv_up_to(usize::try_from(total).unwrap(), WAIT));
            let sending = scope
                .spawn(|| client.send_pipelined(&plain(socket, to, 1), &[], &payload, total, 3));
            wait_until(|| held_datagrams() >= three);
            // The pipeline now waits for the oldest; a fourth request cannot have gone out.
            std::thread::sleep(Duration::from_millis(20));
            let held = held_datagrams();
            release_until_finished(&sending);
            let summary = sending.join().unwrap();
            (held, summary, draining.join().unwrap())
        });
        assert_eq!(
            held, three,
            "{front_door:?}: three requests' datagrams must be outstanding at once"
        );
        let summary = summary.unwrap();
        assert_eq!(summary.peak_inflight, 3, "{front_door:?}");
        assert_eq!(summary.requests, 4, "{front_door:?}");
        assert!(
            summary.all_sent() && summary.datagrams_failed == 0,
            "{summary:?}"
        );
        assert_eq!(arrivals.len(), usize::try_from(total).unwrap());
        finish_held(client, socket);
    }
}

/// A stale socket: nothing can be sent at all, so the pipeline is an error (the first
/// refusal), not a summary of refusals; and it stopped issuing requests.
#[test]
fn nothing_sendable_is_an_error() {
    for front_door in FrontDoor::ALL {
        let client = client_on(front_door, CompletionMode::Inline, FaultPlan::None);
        let socket = client.open_socket(addr(V4)).unwrap();
        client.close_socket(socket.socket).unwrap();
        let result = client.send_pipelined(
            &plain(socket.socket, addr("127.0.0.1:9"), 1),
            &[],
            b"x",
            1_000_000,
            4,
        );
        assert!(
            matches!(result, Err(ClientError::Status(STATUS_INVALID_HANDLE))),
            "{front_door:?}: {result:?}"
        );
        let report = finish_clean(client);
        assert_eq!(report.stats.datagrams_sent, 0);
    }
}

/// The pipelined send [`calibrate`] measures: 3 requests of 8 datagrams, 2 in flight.
fn send_three_of_eight<B: Backend + ?Sized>(
    client: &Client<B>,
    socket: u32,
    rx: &Receiver,
) -> PipelineSummary {
    client
        .send_pipelined_with(
            &plain(socket, rx.local_addr().unwrap(), 1),
            &[],
            b"calibrate",
            Pipeline {
                total: 24,
                inflight: 2,
                per_request: Some(8),
                zero_copy: false,
            },
        )
        .unwrap()
}

/// Fault point numbers before one pipelined send of 3 requests of 8 datagrams, after opening a
/// socket: (points before the send, points of its `QUERY_INFO`).
fn calibrate(front_door: FrontDoor) -> (u64, u64) {
    let backend = ModelBackend::start(common::config(
        front_door,
        CompletionMode::Inline,
        FaultPlan::None,
    ))
    .unwrap();
    let client = Client::new(Box::new(backend));
    let points = || client.backend().stats().unwrap().fault_points;
    let rx = receiver(V4).unwrap();
    let socket = client.open_socket(addr(V4)).unwrap();
    let before = points();
    client.info().unwrap();
    let query = points() - before;
    assert!(send_three_of_eight(&client, socket.socket, &rx).all_sent());
    client.close_socket(socket.socket).unwrap();
    let report = client.finish().unwrap();
    assert!(report.is_clean(), "{report}");
    (before, query)
}

/// A request refused for want of resources (the simulated allocation failure hits the first
/// request's first fault point: the front door's request object, or, with the driver's pools
/// still cold, its request context) is counted, and the pipeline goes on with the next ones.
/// (Once the pools are warm a request allocates nothing: only a cold one can be refused so.)
#[test]
fn a_request_refused_for_resources_is_counted_and_the_pipeline_goes_on() {
    for front_door in FrontDoor::ALL {
        let (before, query) = calibrate(front_door);
        let faults = FaultPlan::FailNth(before + query + 1);
        let backend =
            ModelBackend::start(common::config(front_door, CompletionMode::Inline, faults))
                .unwrap();
        let client = Client::new(Box::new(backend));
        let rx = receiver(V4).unwrap();
        let socket = client.open_socket(addr(V4)).unwrap();
        let summary = send_three_of_eight(&client, socket.socket, &rx);
        assert_eq!(
            outcome(&summary),
            (3, 1, 16, 8, 0),
            "{front_door:?}: {summary:?}"
        );
        assert_eq!(
            summary.statuses,
            [StatusCount {
                status: STATUS_INSUFFICIENT_RESOURCES,
                requests: 1,
                datagrams: 8
            }]
        );
        assert_eq!(summary.first_error, Some(STATUS_INSUFFICIENT_RESOURCES));
        assert!(receive(&rx, 16).iter().all(|a| a.payload == b"calibrate"));
        client.close_socket(socket.socket).unwrap();
        let report: ModelReport = client.finish().unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
        assert_eq!(report.stats.faults_injected, 1);
    }
}

// The pipeline's accounting, against a backend whose every completion the test scripts.

/// How the n-th `SEND` (0-based) of `count` datagrams completes.
type Script = fn(usize, u32) -> Completion;

enum Completion {
    /// Accepted, with this response.
    Response(SendResponse),
    /// Refused as a whole with this status.
    Refused(i32),
    /// The backend loses it (e.g. it timed out).
    Lost,
    /// Completes only once cancelled (with `STATUS_CANCELLED`).
    UntilCancelled,
}

fn all_sent(_: usize, count: u32) -> Completion {
    Completion::Response(SendResponse {
        status: STATUS_SUCCESS,
        datagrams_sent: count,
        datagrams_failed: 0,
        datagrams_not_sent: 0,
        bytes_sent: u64::from(count) * 10,
    })
}

/// The second `SEND` refused with `STATUS`, every other one all sent.
fn second_refused<const STATUS: i32>(index: usize, count: u32) -> Completion {
    if index == 1 {
        Completion::Refused(STATUS)
    } else {
        all_sent(index, count)
    }
}

/// A driver stand-in answering `QUERY_INFO` with `max_count` and each `SEND` per `script`.
struct Scripted {
    max_count: u32,
    script: Script,
    counts: Mutex<Vec<u32>>,
    outstanding: AtomicUsize,
    peak: AtomicUsize,
    cancels: AtomicUsize,
}

impl Scripted {
    fn new(max_count: u32, script: Script) -> Self {
        Self {
            max_count,
            script,
            counts: Mutex::new(Vec::new()),
            outstanding: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            cancels: AtomicUsize::new(0),
        }
    }

    fn counts(&self) -> Vec<u32> {
        self.counts.lock().unwrap().clone()
    }
}

struct ScriptedRequest<'a> {
    backend: &'a Scripted,
    completion: Completion,
    cancelled: AtomicBool,
}

impl PendingIo for ScriptedRequest<'_> {
    fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>> {
        let result = match &self.completion {
            Completion::Response(response) => Ok(IoctlOutcome {
                status: STATUS_SUCCESS,
                output: response.as_bytes().to_vec(),
            }),
            Completion::Refused(status) => Ok(IoctlOutcome {
                status: *status,
                output: Vec::new(),
            }),
            Completion::Lost => Err(BackendError::Timeout),
            Completion::UntilCancelled => {
                if !self.cancelled.load(Ordering::Relaxed) {
                    std::thread::sleep(timeout.min(Duration::from_millis(5)));
                    return None;
                }
                Ok(IoctlOutcome {
                    status: wskudp_abi::status::STATUS_CANCELLED,
                    output: Vec::new(),
                })
            }
        };
        self.backend.outstanding.fetch_sub(1, Ordering::Relaxed);
        Some(result)
    }

    fn cancel(&self) {
        self.backend.cancels.fetch_add(1, Ordering::Relaxed);
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

fn scripted_send(
    backend: &Scripted,
    total: u64,
    inflight: usize,
) -> Result<PipelineSummary, ClientError> {
    let client = Client::new(Box::new(ScriptedRef(backend)));
    client.send_pipelined(
        &plain(1, addr("127.0.0.1:9"), 1),
        &[],
        b"0123456789",
        total,
        inflight,
    )
}

/// Borrows a [`Scripted`] as a backend, so the test can read its counters afterwards.
struct ScriptedRef<'a>(&'a Scripted);

impl Backend for ScriptedRef<'_> {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn front_door(&self) -> &'static str {
        "none"
    }

    fn submit(
        &self,
        code: u32,
        input: &[u8],
        _output_len: usize,
    ) -> Result<InFlight<'_>, BackendError> {
        let backend = self.0;
        if code == Ioctl::QueryInfo.code() {
            let mut info = InfoResponse::new_zeroed();
            info.max_count = backend.max_count;
            info.abi_version = wskudp_abi::ABI_VERSION;
            info.abi_oldest = wskudp_abi::ABI_OLDEST;
            return Ok(InFlight::completed(IoctlOutcome {
                status: STATUS_SUCCESS,
                output: info.as_bytes().to_vec(),
            }));
        }
        assert_eq!(code, Ioctl::Send.code(), "only QUERY_INFO and SEND");
        let (request, _) = SendRequest::ref_from_prefix(input).unwrap();
        let count = request.count;
        let index = {
            let mut counts = backend.counts.lock().unwrap();
            counts.push(count);
            counts.len() - 1
        };
        let outstanding = backend.outstanding.fetch_add(1, Ordering::Relaxed) + 1;
        backend.peak.fetch_max(outstanding, Ordering::Relaxed);
        Ok(InFlight::pending(Box::new(ScriptedRequest {
            backend,
            completion: (backend.script)(index, count),
            cancelled: AtomicBool::new(false),
        })))
    }

    fn finish(self: Box<Self>) -> Option<ModelReport> {
        None
    }
}

#[test]
fn requests_are_cut_at_max_count_and_kept_inflight_deep() {
    let backend = Scripted::new(10, all_sent);
    let summary = scripted_send(&backend, 25, 2).unwrap();
    assert_eq!(backend.counts(), [10, 10, 5]);
    assert_eq!(backend.peak.load(Ordering::Relaxed), 2);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
    assert_eq!(
        summary,
        PipelineSummary {
            total: 25,
            per_request: 10,
            inflight: 2,
            peak_inflight: 2,
            requests: 3,
            requests_refused: 0,
            datagrams_sent: 25,
            datagrams_failed: 0,
            datagrams_not_sent: 0,
            datagrams_unsent: 0,
            bytes_sent: 250,
            statuses: Vec::new(),
            first_error: None,
        }
    );
    // Fewer datagrams than one request holds: one request.
    let backend = Scripted::new(10, all_sent);
    assert_eq!(scripted_send(&backend, 3, 8).unwrap().requests, 1);
    assert_eq!(backend.counts(), [3]);
}

#[test]
fn failed_datagrams_are_counted_by_status() {
    fn half_unreachable(index: usize, count: u32) -> Completion {
        if index.is_multiple_of(2) {
            Completion::Response(SendResponse {
                status: STATUS_HOST_UNREACHABLE,
                datagrams_sent: count - 3,
                datagrams_failed: 3,
                datagrams_not_sent: 0,
                bytes_sent: u64::from(count - 3) * 10,
            })
        } else {
            all_sent(index, count)
        }
    }
    let backend = Scripted::new(10, half_unreachable);
    let summary = scripted_send(&backend, 100, 4).unwrap();
    assert_eq!(summary.requests, 10);
    assert_eq!((summary.datagrams_sent, summary.datagrams_failed), (85, 15));
    assert_eq!(summary.bytes_sent, 850);
    assert_eq!(
        summary.statuses,
        [StatusCount {
            status: STATUS_HOST_UNREACHABLE,
            requests: 5,
            datagrams: 15
        }]
    );
    assert_eq!(summary.first_error, Some(STATUS_HOST_UNREACHABLE));
    assert!(!summary.all_sent());
}

#[test]
fn a_refusal_stops_the_pipeline_and_what_is_outstanding_is_still_counted() {
    let backend = Scripted::new(10, second_refused::<STATUS_INVALID_HANDLE>);
    let summary = scripted_send(&backend, 100, 3).unwrap();
    // Requests 0-2 went out, 0 completed so 3 went out, 1 was refused: nothing more.
    assert_eq!(backend.counts(), [10, 10, 10, 10]);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
    assert_eq!(outcome(&summary), (4, 1, 30, 10, 60));
    assert_eq!(
        summary.statuses,
        [StatusCount {
            status: STATUS_INVALID_HANDLE,
            requests: 1,
            datagrams: 10
        }]
    );
}

#[test]
fn a_shortage_refusal_does_not_stop_the_pipeline() {
    let backend = Scripted::new(10, second_refused::<STATUS_INSUFFICIENT_RESOURCES>);
    let summary = scripted_send(&backend, 100, 3).unwrap();
    assert_eq!(backend.counts().len(), 10);
    assert_eq!(
        (
            summary.requests_refused,
            summary.datagrams_sent,
            summary.datagrams_failed
        ),
        (1, 90, 10)
    );
}

#[test]
fn every_request_refused_is_an_error() {
    let backend = Scripted::new(10, |_, _| Completion::Refused(STATUS_INVALID_HANDLE));
    let result = scripted_send(&backend, 1000, 3);
    assert!(
        matches!(result, Err(ClientError::Status(STATUS_INVALID_HANDLE))),
        "{result:?}"
    );
    // The first refusal stopped it: only the first `inflight` requests went out.
    assert_eq!(backend.counts().len(), 3);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
}

#[test]
fn a_lost_request_is_an_error_after_the_outstanding_ones_are_cancelled_and_waited_for() {
    fn second_lost(index: usize, count: u32) -> Completion {
        match index {
            1 => Completion::Lost,
            0 => all_sent(index, count),
            _ => Completion::UntilCancelled,
        }
    }
    let backend = Scripted::new(10, second_lost);
    let result = scripted_send(&backend, 100, 3);
    assert!(
        matches!(result, Err(ClientError::Backend(BackendError::Timeout))),
        "{result:?}"
    );
    // 0, 1, 2 out; 0 done so 3 out; 1 lost: 2 and 3 cancelled, then waited for.
    assert_eq!(backend.counts().len(), 4);
    assert_eq!(backend.cancels.load(Ordering::Relaxed), 2);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
}

#[test]
fn impossible_pipelines_are_refused_before_any_request() {
    let backend = Scripted::new(10, all_sent);
    for (total, inflight) in [(0, 1), (1, 0), (1, MAX_INFLIGHT + 1)] {
        let result = scripted_send(&backend, total, inflight);
        assert!(
            matches!(&result, Err(ClientError::Usage(message)) if !message.is_empty()),
            "{total} datagrams, {inflight} in flight: {result:?}"
        );
    }
    let client = Client::new(Box::new(ScriptedRef(&backend)));
    let result = client.send_pipelined_with(
        &plain(1, addr("127.0.0.1:9"), 1),
        &[],
        b"x",
        Pipeline {
            total: 5,
            inflight: 1,
            per_request: Some(0),
            zero_copy: false,
        },
    );
    assert!(matches!(result, Err(ClientError::Usage(_))), "{result:?}");
    assert!(backend.counts().is_empty());
}

#[test]
fn a_request_dropped_unwaited_is_cancelled_and_waited_for() {
    let backend = Scripted::new(10, |_, _| Completion::UntilCancelled);
    let client = Client::new(Box::new(ScriptedRef(&backend)));
    let pending = client
        .submit_send(&plain(1, addr("127.0.0.1:9"), 3), &[], b"x")
        .unwrap();
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 1);
    drop(pending);
    assert_eq!(backend.cancels.load(Ordering::Relaxed), 1);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
}

#[test]
fn a_request_that_overstays_its_timeout_is_cancelled_then_waited_for() {
    let backend = Scripted::new(10, |_, _| Completion::UntilCancelled);
    let scripted = ScriptedRef(&backend);
    let request = scripted
        .submit(
            Ioctl::Send.code(),
            &send_bytes(2),
            size_of::<SendResponse>(),
        )
        .unwrap();
    let result = request.wait(Duration::from_millis(20));
    assert!(matches!(result, Err(BackendError::Timeout)), "{result:?}");
    assert_eq!(backend.cancels.load(Ordering::Relaxed), 1);
    assert_eq!(backend.outstanding.load(Ordering::Relaxed), 0);
}

fn send_bytes(count: u32) -> Vec<u8> {
    let mut bytes = vec![0; wskudp_abi::send_request_len(0, 1).unwrap()];
    wskudp_abi::encode_send(&plain(1, addr("127.0.0.1:9"), count), &[], b"x", &mut bytes).unwrap();
    bytes
}
