//! A tiny authoritative DNS server on UDP loopback whose answers a test sets and changes: A
//! and AAAA records by name, with one TTL. Unknown names get NXDOMAIN; a known name without a
//! record of the asked type gets an empty answer (NODATA). It counts the questions it gets.
//! Enough for resolvers (hickory, c-ares) pointed at it; nothing else of DNS.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const NXDOMAIN: u16 = 3;

/// What a name answers: its addresses (both families) and their TTL in seconds.
type Records = BTreeMap<String, (Vec<IpAddr>, u32)>;

pub struct DnsServer {
    pub address: SocketAddr,
    records: Arc<Mutex<Records>>,
    questions: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let records: Arc<Mutex<Records>> = Arc::default();
        let questions = Arc::new(AtomicU64::new(0));
        let (shared, counted) = (records.clone(), questions.clone());
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            loop {
                let Ok((length, from)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = {
                    let records = shared.lock().unwrap();
                    respond(&buffer[..length], &records)
                };
                if let Some(answer) = answer {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        DnsServer {
            address,
            records,
            questions,
            task,
        }
    }

    /// From now on `name` answers `addresses` (A and AAAA records) with `ttl` seconds.
    pub fn set(&self, name: &str, addresses: &[IpAddr], ttl: u32) {
        self.records
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), (addresses.to_vec(), ttl));
    }

    /// Questions received so far.
    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The response to the query `query`; None when it cannot be read.
fn respond(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let (name, question_end) = read_name(query, 12)?;
    let record_type =
        u16::from_be_bytes([*query.get(question_end)?, *query.get(question_end + 1)?]);
    let question = query.get(12..question_end + 4)?;
    let found = records.get(&name);
    let answers: Vec<(&IpAddr, u32)> = found
        .map(|(addresses, ttl)| {
            addresses
                .iter()
                .filter(|ip| match record_type {
                    TYPE_A => ip.is_ipv4(),
                    TYPE_AAAA => ip.is_ipv6(),
                    _ => false,
                })
                .map(|ip| (ip, *ttl))
                .collect()
        })
        .unwrap_or_default();
    let recursion_desired = u16::from_be_bytes([query[2], query[3]]) & 0x0100;
    // A response, authoritative, recursion available.
    let mut flags = 0x8480 | recursion_desired;
    if found.is_none() {
        flags |= NXDOMAIN;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    for (ip, ttl) in answers {
        // The name is the question's (a pointer to offset 12).
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (kind, data) = match ip {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}

/// The name at `start` (labels, lower case, no trailing dot) and where it ends.
fn read_name(message: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = start;
    loop {
        let length = *message.get(at)? as usize;
        at += 1;
        if length == 0 {
            break;
        }
        let label = message.get(at..at + length)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += length;
    }
    Some((labels.join("."), at))
}
