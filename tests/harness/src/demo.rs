//! `wskudp demo`: a few datagrams through the driver to local receivers, and what arrived.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use wskudp_abi::{Ecn, SendSpec};

use crate::client::{Client, ClientError};
use crate::receiver::Receiver;

/// How long a receiver waits for each expected datagram.
const WAIT: Duration = Duration::from_secs(2);

/// One demo send.
struct Case {
    name: &'static str,
    v6: bool,
    payload: Vec<u8>,
    segments: Vec<u32>,
    source: Option<IpAddr>,
    tos: Option<u8>,
    ecn: Option<Ecn>,
    uso: Option<u32>,
}

impl Case {
    /// Datagrams expected on the wire: one, or one per USO segment.
    fn expected(&self) -> Vec<Vec<u8>> {
        self.uso.map_or_else(
            || vec![self.payload.clone()],
            |size| {
                self.payload
                    .chunks(size as usize)
                    .map(<[u8]>::to_vec)
                    .collect()
            },
        )
    }

    /// The TOS byte / traffic class expected on the wire (ECN sets its two low bits).
    fn expected_tos(&self) -> Option<u8> {
        match (self.tos, self.ecn) {
            (None, None) => None,
            (tos, ecn) => {
                let tos = tos.unwrap_or(0);
                Some(ecn.map_or(tos, |ecn| (tos & !3) | ecn as u8))
            }
        }
    }
}

fn cases() -> Vec<Case> {
    let text = b"hello from the kernel, split across three MDLs".to_vec();
    vec![
        Case {
            name: "IPv4, 3-MDL chain, source 127.0.0.2",
            v6: false,
            segments: vec![6, 19, u32::try_from(text.len()).unwrap_or(0) - 25],
            payload: text,
            source: Some(IpAddr::from([127, 0, 0, 2])),
            tos: None,
            ecn: None,
            uso: None,
        },
        Case {
            name: "IPv4, TOS 0xB8 (EF) + ECN ECT(1), one IP_TOS byte",
            v6: false,
            payload: crate::pattern(1200),
            segments: vec![200, 600, 400],
            source: None,
            tos: Some(0xB8),
            ecn: Some(Ecn::Ect1),
            uso: None,
        },
        Case {
            name: "IPv4, USO: 1200 bytes as 3 x 400",
            v6: false,
            payload: crate::pattern(1200),
            segments: vec![],
            source: None,
            tos: None,
            ecn: None,
            uso: Some(400),
        },
        Case {
            name: "IPv6, 2-MDL chain, source ::1, traffic class 0x28 + ECT(0)",
            v6: true,
            payload: crate::pattern(512),
            segments: vec![12, 500],
            source: Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            tos: Some(0x28),
            ecn: Some(Ecn::Ect0),
            uso: None,
        },
    ]
}

/// What one case did.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The case.
    pub case: String,
    /// Payload bytes sent per datagram request.
    pub sent_bytes: usize,
    /// MDL lengths.
    pub mdl_chain: Vec<u32>,
    /// Requested source address.
    pub requested_source: Option<IpAddr>,
    /// The driver's status for the send.
    pub status: String,
    /// Datagrams that arrived.
    pub arrived: usize,
    /// Their sizes.
    pub arrived_bytes: Vec<usize>,
    /// Where they came from.
    pub arrived_from: Option<SocketAddr>,
    /// TOS / traffic class they carried (Unix receivers).
    pub arrived_tos: Option<u8>,
    /// Whether everything matched: bytes, source, TOS.
    pub ok: bool,
}

/// Runs every case through `client`: the demo's table and whether all matched.
///
/// # Errors
/// A receiver or socket could not be set up, or the driver refused a request.
pub fn run(client: &Client) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for case in cases() {
        let local: SocketAddr = if case.v6 { "[::1]:0" } else { "127.0.0.1:0" }
            .parse()
            .map_err(|e| format!("{e}"))?;
        let receiver = match Receiver::bind(local) {
            Ok(receiver) => receiver,
            Err(error) if case.v6 => {
                rows.push(skipped(&case, &format!("no IPv6 loopback: {error}")));
                continue;
            }
            Err(error) => return Err(format!("receiver on {local}: {error}")),
        };
        let to = receiver.local_addr().map_err(|e| e.to_string())?;
        let socket = client
            .open_socket(local)
            .map_err(|e| format!("OPEN_SOCKET {local}: {e}"))?;
        let spec = SendSpec {
            source: case.source,
            tos: case.tos,
            ecn: case.ecn,
            uso_segment_size: case.uso,
            ..crate::scenarios::plain(socket.socket, to, 1)
        };
        let sent = client.send(&spec, &case.segments, &case.payload);
        let expected = case.expected();
        let arrivals = receiver.recv_up_to(expected.len(), WAIT);
        client
            .close_socket(socket.socket)
            .map_err(|e: ClientError| format!("CLOSE_SOCKET: {e}"))?;
        let status = match &sent {
            Ok(response) => crate::status_text(response.status),
            Err(error) => error.to_string(),
        };
        let expected_source = case.source.unwrap_or_else(|| local.ip());
        let ok = sent.is_ok_and(|r| r.status == 0)
            && arrivals.iter().map(|a| &a.payload).eq(expected.iter())
            && arrivals.iter().all(|a| a.source.ip() == expected_source)
            && (cfg!(not(unix))
                || arrivals
                    .iter()
                    .all(|a| a.tos.unwrap_or(0) == case.expected_tos().unwrap_or(0)));
        rows.push(Row {
            case: case.name.to_owned(),
            sent_bytes: case.payload.len(),
            mdl_chain: if case.segments.is_empty() {
                vec![u32::try_from(case.payload.len()).unwrap_or(0)]
            } else {
                case.segments.clone()
            },
            requested_source: case.source,
            status,
            arrived: arrivals.len(),
            arrived_bytes: arrivals.iter().map(|a| a.payload.len()).collect(),
            arrived_from: arrivals.first().map(|a| a.source),
            arrived_tos: arrivals.first().and_then(|a| a.tos),
            ok,
        });
    }
    Ok(rows)
}

fn skipped(case: &Case, why: &str) -> Row {
    Row {
        case: case.name.to_owned(),
        sent_bytes: case.payload.len(),
        mdl_chain: case.segments.clone(),
        requested_source: case.source,
        status: format!("skipped: {why}"),
        arrived: 0,
        arrived_bytes: Vec::new(),
        arrived_from: None,
        arrived_tos: None,
        ok: true,
    }
}
