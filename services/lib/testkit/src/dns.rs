//! A fake DNS server for the egress tests: UDP on `127.0.0.1:0`, real wire format
//! (hickory-proto message types), answers from a per-name map, TTL 0.
//!
//! - [`FakeDns::set`]: a name's A/AAAA answers (every query gets all of them);
//! - [`FakeDns::set_rebinding`]: consecutive queries for a name get the next address of
//!   the list, per record type (A: the IPv4 entries, AAAA: the IPv6 ones), cycling, so a
//!   test can make the answer change between two lookups;
//! - unknown names get NXDOMAIN; a known name without records of the asked type gets an
//!   empty answer; [`FakeDns::queries`] lists what was asked.
//!
//! The server stops when the [`FakeDns`] is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::TestkitError;

/// The record type of a query (re-exported so tests need not depend on hickory).
pub use hickory_proto::rr::RecordType;

/// One query the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    /// The name, lower-case, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, ...
    pub record_type: RecordType,
}

#[derive(Debug)]
enum Entry {
    Fixed(Vec<IpAddr>),
    Rebinding {
        cycle: Vec<IpAddr>,
        next_a: usize,
        next_aaaa: usize,
    },
}

#[derive(Debug, Default)]
struct State {
    names: HashMap<String, Entry>,
    queries: Vec<DnsQuery>,
}

/// A running fake DNS server.
#[derive(Debug)]
pub struct FakeDns {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl FakeDns {
    /// Starts a server on `127.0.0.1:0`.
    pub async fn start() -> Result<Self, TestkitError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let addr = socket
            .local_addr()
            .map_err(|source| TestkitError::Bind { addr, source })?;
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(serve(socket, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// Where to send queries.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `name` answers with all of `ips` (A for IPv4, AAAA for IPv6).
    pub fn set(&self, name: &str, ips: impl IntoIterator<Item = IpAddr>) {
        self.lock()
            .names
            .insert(normalize(name), Entry::Fixed(ips.into_iter().collect()));
    }

    /// Each query for `name` answers with the next address of `cycle` of the asked
    /// family, starting again at the first after the last.
    pub fn set_rebinding(&self, name: &str, cycle: impl IntoIterator<Item = IpAddr>) {
        self.lock().names.insert(
            normalize(name),
            Entry::Rebinding {
                cycle: cycle.into_iter().collect(),
                next_a: 0,
                next_aaaa: 0,
            },
        );
    }

    /// Every query so far, in order.
    pub fn queries(&self) -> Vec<DnsQuery> {
        self.lock().queries.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn serve(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let response = answer(&request, &state);
        if let Ok(bytes) = response.to_vec() {
            // A lost reply is what UDP does; the resolver retries.
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn answer(request: &Message, state: &Mutex<State>) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_queries(request.queries().iter().cloned());
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let mut code = ResponseCode::NoError;
    for query in request.queries() {
        let name = normalize(&query.name().to_ascii());
        let record_type = query.query_type();
        state.queries.push(DnsQuery {
            name: name.clone(),
            record_type,
        });
        let Some(entry) = state.names.get_mut(&name) else {
            code = ResponseCode::NXDomain;
            continue;
        };
        let wanted = |ip: &IpAddr| match record_type {
            RecordType::A => ip.is_ipv4(),
            RecordType::AAAA => ip.is_ipv6(),
            _ => false,
        };
        let ips: Vec<IpAddr> = match entry {
            Entry::Fixed(ips) => ips.iter().copied().filter(wanted).collect(),
            Entry::Rebinding {
                cycle,
                next_a,
                next_aaaa,
            } => {
                let family: Vec<IpAddr> = cycle.iter().copied().filter(wanted).collect();
                let next = if record_type == RecordType::A {
                    next_a
                } else {
                    next_aaaa
                };
                let pick = family.get(*next % family.len().max(1)).copied();
                *next += 1;
                pick.into_iter().collect()
            }
        };
        for ip in ips {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            response.add_answer(Record::from_rdata(query.name().clone(), 0, rdata));
        }
    }
    response.set_response_code(code);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    async fn ask(dns: &FakeDns, name: &str, record_type: RecordType) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut request = Message::new();
        request
            .set_id(7)
            .add_query(Query::query(Name::from_str(name).unwrap(), record_type));
        socket
            .send_to(&request.to_vec().unwrap(), dns.addr())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let (len, _) = socket.recv_from(&mut buf).await.unwrap();
        Message::from_vec(&buf[..len]).unwrap()
    }

    fn ips(m: &Message) -> Vec<IpAddr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_fixed_and_rebinding_names() {
        let dns = FakeDns::start().await.unwrap();
        dns.set(
            "Both.Test.",
            ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        );
        dns.set_rebinding(
            "flip.test",
            ["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()],
        );
        let a = ask(&dns, "both.test.", RecordType::A).await;
        assert_eq!(a.id(), 7);
        assert_eq!(ips(&a), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(ips(&a)[0], IpAddr::from([127, 0, 0, 1]));
        assert_eq!(a.answers()[0].ttl(), 0);
        let aaaa = ask(&dns, "both.test.", RecordType::AAAA).await;
        assert_eq!(ips(&aaaa), ["::1".parse::<IpAddr>().unwrap()]);
        let first = ask(&dns, "flip.test.", RecordType::A).await;
        let second = ask(&dns, "flip.test.", RecordType::A).await;
        let third = ask(&dns, "flip.test.", RecordType::A).await;
        assert_eq!(ips(&first), [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(ips(&second), [IpAddr::from([10, 0, 0, 1])]);
        assert_eq!(ips(&third), [IpAddr::from([127, 0, 0, 1])]);
        assert!(ips(&ask(&dns, "flip.test.", RecordType::AAAA).await).is_empty());
        let missing = ask(&dns, "nope.test.", RecordType::A).await;
        assert_eq!(missing.response_code(), ResponseCode::NXDomain);
        assert_eq!(dns.queries().len(), 7);
        assert_eq!(
            dns.queries()[0],
            DnsQuery {
                name: "both.test".into(),
                record_type: RecordType::A
            }
        );
    }
}
