//! The `wskudpctl` binary itself, on the model backend: what a user types, checked by what
//! arrives at a real loopback receiver and by the JSON it prints (its run record included).

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wskudp_harness::receiver::{Arrival, Receiver};

/// Runs `wskudpctl --backend model <args>`; its exit code and its stdout parsed as JSON.
fn wskudpctl(args: &[&str]) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_wskudpctl"))
        .args(["--backend", "model"])
        .args(args)
        .output()
        .expect("wskudpctl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), json)
}

/// A receiver on 127.0.0.1 and its address as `--to` takes it.
fn loopback_receiver() -> (Receiver, String) {
    let rx = Receiver::bind("127.0.0.1:0".parse().expect("address")).expect("receiver");
    let to = rx.local_addr().expect("bound").to_string();
    (rx, to)
}

/// Every datagram that arrives at `rx` within a short idle time, up to `most`.
fn arrivals(rx: &Receiver, most: usize) -> Vec<Arrival> {
    let mut got = Vec::new();
    while got.len() < most {
        match rx.recv(Duration::from_millis(500)) {
            Ok(arrival) => got.push(arrival),
            Err(_) => break,
        }
    }
    got
}

/// The record every JSON output carries: the host, and the driver with its provider probe.
fn assert_run_record(json: &Value, front_door: &str) {
    assert_eq!(json["host"]["os"], std::env::consts::OS, "{json}");
    let driver = &json["driver_record"];
    assert_eq!(driver["front_door"], front_door, "{json}");
    assert_eq!(driver["abi_version"], 2, "{json}");
    assert_eq!(driver["provider_wsk_version"], "1.0", "{json}");
    assert!(driver["socket_features"].is_array(), "{json}");
    assert!(
        json["model"]["violations"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{json}"
    );
}

#[test]
fn info_names_the_front_door_it_went_through() {
    for door in ["kmdf", "wdm", "none"] {
        let (code, json) = wskudpctl(&["--front-door", door, "info", "--json"]);
        assert_eq!(code, 0, "{door}: {json}");
        assert_eq!(json["front_door"], door);
        assert_run_record(&json, door);
    }
}

#[test]
fn every_json_output_carries_the_run_record() {
    let (code, json) = wskudpctl(&["stats", "--json"]);
    assert_eq!(code, 0, "{json}");
    assert_run_record(&json, "kmdf");
    // The record sits beside the driver-wide counters, not over them (verifier.ps1 reads them).
    assert_eq!(json["driver"]["requests_in_flight"], 0, "{json}");
    assert_eq!(json["driver"]["datagrams_in_flight"], 0, "{json}");
    // info: the capabilities the first socket's probe found (TOS, ECN, USO on the default build).
    let (code, json) = wskudpctl(&["info", "--json"]);
    assert_eq!(code, 0, "{json}");
    for probed in ["tos", "ecn", "uso"] {
        assert!(
            json["capabilities"]
                .as_array()
                .is_some_and(|c| c.iter().any(|name| name == probed)),
            "{probed}: {json}"
        );
    }
    // A request the driver refuses: the error and the record, exit code 2.
    let (code, json) = wskudpctl(&["send", "--to", "127.0.0.1:9", "--size", "70000", "--json"]);
    assert_eq!(code, 2, "{json}");
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{json}"
    );
    assert_run_record(&json, "kmdf");
}

#[test]
fn dual_stack_send_from_the_command_line() {
    // The example: `send --bind [::]:0 --to 127.0.0.1:P --src 127.0.0.7`.
    let (rx, to) = loopback_receiver();
    let (code, json) = wskudpctl(&[
        "send",
        "--bind",
        "[::]:0",
        "--to",
        &to,
        "--src",
        "127.0.0.7",
        "--size",
        "32",
        "--json",
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["datagrams_sent"], 1, "{json}");
    let got = arrivals(&rx, 2);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].source.ip(), IpAddr::from([127, 0, 0, 7]));
    assert_eq!(got[0].payload.len(), 32);
}

#[test]
fn interface_by_name_and_by_index() {
    let Some(index) = wskudp_harness::loopback_index() else {
        eprintln!("SKIP: no loopback interface index on this host");
        return;
    };
    let (rx, to) = loopback_receiver();
    let index = index.to_string();
    for chosen in [["--iface", "lo"], ["--ifindex", index.as_str()]] {
        let (code, json) = wskudpctl(&[
            "send",
            "--to",
            &to,
            "--src",
            "127.0.0.1",
            chosen[0],
            chosen[1],
            "--unicast-if",
            &index,
            "--ttl",
            "9",
            "--size",
            "8",
            "--json",
        ]);
        assert_eq!(code, 0, "{chosen:?}: {json}");
        let got = arrivals(&rx, 2);
        assert_eq!(got.len(), 1, "{chosen:?}: {got:?}");
        assert_eq!(got[0].hop_limit, Some(9), "{chosen:?}");
    }
    let (code, json) = wskudpctl(&[
        "send",
        "--to",
        &to,
        "--src",
        "127.0.0.1",
        "--iface",
        "no-such-nic",
        "--size",
        "8",
        "--json",
    ]);
    assert_eq!(code, 2, "{json}");
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("no such interface")),
        "{json}"
    );
}

#[test]
fn many_datagrams_in_pipelined_requests_all_arrive() {
    // 2500 datagrams: three SEND requests of at most 1024, two outstanding at once.
    let (rx, to) = loopback_receiver();
    let (code, json) = wskudpctl(&[
        "send",
        "--to",
        &to,
        "--size",
        "16",
        "--count",
        "2500",
        "--inflight",
        "2",
        "--stats",
        "--json",
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["datagrams_sent"], 2500, "{json}");
    assert_eq!(json["requests"], 3, "{json}");
    assert!(
        json["peak_inflight"]
            .as_u64()
            .is_some_and(|p| (1..=2).contains(&p)),
        "{json}"
    );
    let socket = &json["stats"]["socket"];
    assert_eq!(socket["datagrams_sent"], 2500, "{json}");
    assert_eq!(socket["bytes_sent"], 2500 * 16, "{json}");
    assert_eq!(socket["datagrams_in_flight"], 0, "{json}");
    assert_eq!(socket["pool_blocks"], 0, "{json}");
    assert_eq!(socket["failures"], serde_json::json!([]), "{json}");
    assert_eq!(arrivals(&rx, 2501).len(), 2500);
}

#[test]
fn tos_in_hex_or_decimal_reaches_the_wire() {
    let (rx, to) = loopback_receiver();
    for tos in ["0xb8", "184"] {
        let (code, json) = wskudpctl(&["send", "--to", &to, "--tos", tos, "--size", "4", "--json"]);
        assert_eq!(code, 0, "{tos}: {json}");
        let got = arrivals(&rx, 2);
        assert_eq!(got.len(), 1, "{tos}: {got:?}");
        assert_eq!(got[0].tos, Some(0xb8), "{tos}");
    }
}

#[test]
fn bad_command_lines_say_what_is_wrong() {
    for (args, says) in [
        (
            &["send", "--to", "127.0.0.1:9", "--size", "1", "--count", "0"][..],
            "at least 1",
        ),
        (
            &[
                "send",
                "--to",
                "127.0.0.1:9",
                "--size",
                "1",
                "--inflight",
                "65",
            ][..],
            "1 to 64",
        ),
        (
            &["send", "--to", "127.0.0.1:9", "--size", "1", "--ecn", "3"][..],
            "ecn",
        ),
        (
            &[
                "send",
                "--to",
                "127.0.0.1:9",
                "--size",
                "1",
                "--tos",
                "0x1ff",
            ][..],
            "not a byte",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wskudpctl"))
            .args(["--backend", "model"])
            .args(args)
            .output()
            .expect("wskudpctl runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
