//! The xDS port against hostile and broken clients: each limit hit by a raw client and
//! answered with the documented status and counted; idle connections closed; accept failures
//! backed off while the admin port keeps answering; garbage on the wire hurting nobody but
//! the sender. Each abuser's own fate is read off the wire (a gRPC status, a GOAWAY and its
//! code, the server's SETTINGS and then the close, or a close before any byte), every read
//! bounded; a well-behaved client is served alongside throughout.

use std::time::Duration;

use crate::common::process::ServeProcess;
use crate::common::xds::*;
use crate::common::*;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterStats, UpstreamLocalityStats};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(port: u16) -> String {
    format!(
        "networkEndpointGroups:\n- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: {port}}}]}}\nbackendServices:\n- {{name: web, backends: [{{group: neg, balancingMode: RATE, maxRate: 100}}]}}\nurlMaps:\n- {{name: lb, defaultService: web}}\ntargetHttpProxies:\n- {{name: proxy, urlMap: lb}}\nforwardingRules:\n- {{name: fr, IPAddress: 127.0.0.1, portRange: '10080', target: proxy}}\n"
    )
}

/// The value of a metric line in `/metrics` (0 when absent).
async fn metric(switchyard: &Switchyard, line: &str) -> f64 {
    let text = get_text(&switchyard.admin_url("/metrics")).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{line} ")))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn refused(reason: &str) -> String {
    format!("switchyard_xds_refused_total{{reason=\"{reason}\"}}")
}

/// How long one read of a raw connection may wait: a server that neither writes nor closes
/// fails the test instead of hanging it.
const READ_PATIENCE: Duration = Duration::from_secs(30);

/// HTTP/2 frame types and codes these tests look for (RFC 9113).
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One HTTP/2 frame the server wrote.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    /// The server's connection preface: a SETTINGS frame that is not an ACK.
    fn is_server_settings(&self) -> bool {
        self.kind == SETTINGS && self.flags & ACK == 0 && self.stream == 0
    }

    /// (last stream id, error code, debug data) of a GOAWAY.
    fn goaway(&self) -> Option<(u32, u32, String)> {
        if self.kind != GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let word = |at: usize| u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap());
        let debug = String::from_utf8_lossy(&self.payload[8..]).to_string();
        Some((word(0) & 0x7fff_ffff, word(4), debug))
    }
}

/// Whether `bytes` start with the header of the server's SETTINGS (which it writes at once,
/// in one piece).
fn opens_with_server_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == SETTINGS && bytes[4] & ACK == 0
}

/// Reads once within [`READ_PATIENCE`]: the bytes read, or None when the server closed the
/// connection (a reset counts as closed).
async fn read_some(what: &str, connection: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(READ_PATIENCE, connection.read(&mut buffer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what}: the server neither wrote nor closed the connection in {READ_PATIENCE:?}"
            )
        });
    match read {
        Ok(0) => None,
        Ok(count) => Some(buffer[..count].to_vec()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(error) => panic!("{what}: reading failed: {error}"),
    }
}

/// Everything the server writes on `connection` until it closes it, as frames.
async fn frames_until_closed(what: &str, connection: &mut tokio::net::TcpStream) -> Vec<Frame> {
    let mut bytes = Vec::new();
    while let Some(more) = read_some(what, connection).await {
        bytes.extend_from_slice(&more);
    }
    frames_of(what, &bytes)
}

fn frames_of(what: &str, all: &[u8]) -> Vec<Frame> {
    let not_frames = || {
        panic!(
            "{what}: the server wrote something other than HTTP/2 frames: {:?}",
            String::from_utf8_lossy(all)
        )
    };
    let mut frames = Vec::new();
    let mut bytes = all;
    while !bytes.is_empty() {
        if bytes.len() < 9 {
            not_frames();
        }
        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + length {
            not_frames();
        }
        frames.push(Frame {
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff,
            payload: bytes[9..9 + length].to_vec(),
        });
        bytes = &bytes[9 + length..];
    }
    frames
}

/// Asserts the server wrote its SETTINGS and nothing else before closing: it never took
/// what the client sent for a request.
fn only_the_server_preface(what: &str, frames: &[Frame]) {
    assert!(
        frames.len() == 1 && frames[0].is_server_settings(),
        "{what}: expected the server's SETTINGS and then the close, got {frames:?}"
    );
}

/// A client that subscribes to `web`'s endpoints and keeps up: it must be served whatever
/// the others do.
async fn well_behaved(switchyard: &Switchyard) -> SotwClient {
    let mut client = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
    client.request(ENDPOINT, &["web"], "", "");
    let first = client.recv().await;
    client.ack(&first, &["web"]);
    client
}

async fn still_served(switchyard: &Switchyard, client: &mut SotwClient, port: u16) {
    switchyard.edit(&config(port)).await;
    let pushed = client.drain().await;
    assert_eq!(
        sotw_summary(&pushed),
        [(short(ENDPOINT).to_string(), vec!["web".to_string()])]
    );
    client.ack(&pushed[0], &["web"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_limit_is_answered_with_resource_exhausted_and_counted() {
    let switchyard = Switchyard::start_with(&config(8080), |options| {
        options.xds_limits.max_resource_names = 100;
        options.xds_limits.max_streams_per_connection = 3;
        options.xds_limits.max_request_bytes = 1024 * 1024;
    })
    .await;
    let address = switchyard.running.xds_addr;
    let mut good = well_behaved(&switchyard).await;

    // A request over the size limit.
    let mut big = SotwClient::open(address, Service::Ads).await;
    big.request(CLUSTER, &[&"x".repeat(2 * 1024 * 1024)], "", "");
    let status = big.closed_with().await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("--max-request-bytes"),
        "{status:?}"
    );

    // Too many names.
    let names: Vec<String> = (0..101).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut wordy = SotwClient::open(address, Service::Ads).await;
    wordy.request(ENDPOINT, &names, "", "");
    let status = wordy.closed_with().await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("101 resources"), "{status:?}");

    // A node id over 1 KiB.
    let mut vain = SotwClient::open(address, Service::Ads).await;
    vain.send(DiscoveryRequest {
        node: Some(Node {
            id: "n".repeat(2000),
            ..Default::default()
        }),
        type_url: CLUSTER.into(),
        ..Default::default()
    });
    let status = vain.closed_with().await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("node id"), "{status:?}");

    // A fourth stream on one connection.
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut client = SotwClient::on_channel(channel.clone()).await;
        client.request(CLUSTER, &[], "", "");
        client.recv().await;
        open.push(client);
    }
    // The server answers before the client sends anything.
    let status = match SotwClient::try_on_channel(channel.clone()).await {
        Err(status) => status,
        Ok(mut fourth) => fourth.closed_with().await,
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("--max-streams-per-connection"),
        "{status:?}"
    );
    drop(open);

    // More unknown types than a stream remembers: 16 answered, the rest counted.
    let mut curious = SotwClient::open(address, Service::Ads).await;
    for index in 0..20 {
        curious.request(&format!("type.googleapis.com/made.Up{index}"), &[], "", "");
    }
    for _ in 0..16 {
        assert!(curious.recv().await.resources.is_empty());
    }

    for (reason, expected) in [
        ("request_too_large", 1.0),
        ("too_many_names", 1.0),
        ("node_too_large", 1.0),
        ("streams_per_connection", 1.0),
    ] {
        assert_eq!(
            metric(&switchyard, &refused(reason)).await,
            expected,
            "{reason}"
        );
    }
    wait_for("the unknown types to be counted", || async {
        (metric(&switchyard, &refused("unknown_types")).await == 4.0).then_some(())
    })
    .await;
    still_served(&switchyard, &mut good, 9000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_peer_limit_and_idle_ones_are_closed() {
    let switchyard = Switchyard::start_with(&config(8080), |options| {
        options.xds_limits.max_connections_per_peer = 3;
        options.xds_limits.idle_timeout = Duration::from_secs(2);
        options.xds_limits.keepalive_interval = Duration::from_millis(300);
        options.xds_limits.keepalive_timeout = Duration::from_secs(1);
    })
    .await;
    let address = switchyard.running.xds_addr;
    let mut good = well_behaved(&switchyard).await;
    // Two silent connections take the peer's remaining places; a third is closed at once.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    // The one over the limit is closed before HTTP/2 starts: not even the server's SETTINGS.
    let mut over = tokio::net::TcpStream::connect(address).await.unwrap();
    let written = read_some("the connection over the peer limit", &mut over).await;
    assert_eq!(
        written, None,
        "the connection over the peer limit was served"
    );
    assert_eq!(
        metric(&switchyard, &refused("connections_per_peer")).await,
        1.0
    );
    // The silent ones were accepted (they read the server's SETTINGS) and then nothing:
    // closed when idle. The well-behaved client answers the server's pings, so it is not.
    for (index, mut connection) in silent.into_iter().enumerate() {
        let what = format!("silent connection {index}");
        only_the_server_preface(&what, &frames_until_closed(&what, &mut connection).await);
    }
    wait_for("the idle connections to be counted", || async {
        (metric(&switchyard, &refused("idle_connections")).await >= 2.0).then_some(())
    })
    .await;
    still_served(&switchyard, &mut good, 9000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_http1_floods_and_random_nonces_hurt_only_their_sender() {
    let switchyard = Switchyard::start(&config(8080)).await;
    let address = switchyard.running.xds_addr;
    let mut good = well_behaved(&switchyard).await;

    let mut garbage = tokio::net::TcpStream::connect(address).await.unwrap();
    garbage
        .write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(4096))
        .await
        .ok();
    let mut http1 = tokio::net::TcpStream::connect(address).await.unwrap();
    http1
        .write_all(b"GET /envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    // HEADERS without END_HEADERS, then empty CONTINUATION frames without end (each one is
    // valid alone; only their number is the attack).
    let mut flood = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    frames.extend_from_slice(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]);
    for _ in 0..10_000 {
        frames.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 0, 1]);
    }
    flood.write_all(&frames).await.ok();
    // A stream sending nonces that were never sent.
    let mut random = SotwClient::open(address, Service::Ads).await;
    random.request(CLUSTER, &[], "", "");
    random.recv().await;
    for nonce in ["9999", "-1", "x", ""] {
        random.request(CLUSTER, &[], nonce, "v");
    }
    assert!(random.drain().await.is_empty(), "stale nonces are ignored");
    // Bytes that are not HTTP/2, and HTTP/1.1: the server's SETTINGS went out before it read
    // them; then the connection is closed, with no answer.
    only_the_server_preface(
        "garbage",
        &frames_until_closed("garbage", &mut garbage).await,
    );
    only_the_server_preface(
        "an HTTP/1.1 request",
        &frames_until_closed("an HTTP/1.1 request", &mut http1).await,
    );
    // The flood is told to calm down, its stream never accepted, and the connection closed.
    let frames = frames_until_closed("the CONTINUATION flood", &mut flood).await;
    let goaways: Vec<_> = frames.iter().filter_map(Frame::goaway).collect();
    assert_eq!(
        goaways,
        [(0, ENHANCE_YOUR_CALM, "too_many_continuations".to_string())],
        "the CONTINUATION flood: {frames:?}"
    );
    assert!(
        frames.iter().all(|frame| frame.stream == 0),
        "the CONTINUATION flood's stream was answered: {frames:?}"
    );
    still_served(&switchyard, &mut good, 9000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_out_of_file_descriptors_backs_off_and_the_admin_port_answers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config(8080)).unwrap();
    let serve = ServeProcess::start_with_fd_limit(&file, &[], Some(64)).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(connection) = tokio::net::TcpStream::connect(serve.xds).await {
            held.push(connection);
        }
    }
    // 64 descriptors leave room for 16 xDS connections; the rest are refused.
    wait_for("connections over the budget to be refused", || async {
        let text = get_text(&serve.url("/metrics")).await?;
        text.lines()
            .any(|l| l.starts_with(&refused("connections")) && !l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    assert_eq!(
        serve.get_status_code("/ready").await,
        200,
        "the admin port answers"
    );
    // Each held connection was either served (the server's SETTINGS came first) or closed
    // without a byte: the budget's 16 the first, every other one the second.
    let firsts = futures_util::future::join_all(held.iter_mut().enumerate().map(
        |(index, connection)| async move {
            read_some(&format!("held connection {index}"), connection).await
        },
    ))
    .await;
    let served = firsts
        .iter()
        .flatten()
        .filter(|bytes| opens_with_server_settings(bytes))
        .count();
    let closed = firsts.iter().filter(|first| first.is_none()).count();
    assert_eq!(
        (served, closed),
        (16, held.len() - 16),
        "(served, closed without a byte) of {} connections",
        held.len()
    );
    drop(held);
    wait_for("the xDS port to serve again", || async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", serve.xds))
            .ok()?
            .connect()
            .await
            .ok()?;
        // Connections the server has not yet seen close may still fill the budget: a new one
        // can be cut until they are gone.
        let mut client = SotwClient::try_on_channel(channel).await.ok()?;
        client.request(CLUSTER, &[], "", "");
        client.try_recv().await
    })
    .await;
}

/// A load report of `clusters`, each with `zones` localities.
fn load_report(node_id: &str, clusters: &[String], zones: usize) -> LoadStatsRequest {
    LoadStatsRequest {
        node: Some(node(node_id)),
        cluster_stats: clusters
            .iter()
            .map(|cluster| ClusterStats {
                cluster_name: cluster.clone(),
                upstream_locality_stats: (0..zones)
                    .map(|zone| UpstreamLocalityStats {
                        locality: Some(Locality {
                            region: "r".into(),
                            zone: format!("z{zone}"),
                            ..Default::default()
                        }),
                        total_successful_requests: 1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_reports_are_bounded_per_stream_filterable_and_counted() {
    let switchyard = Switchyard::start(&config(8080)).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", switchyard.running.xds_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    // Invented clusters count nothing; a served one keeps at most 4,096 localities. (The
    // server answers once it has the first report, so the reports go first.)
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let invented: Vec<String> = (0..50_000).map(|i| format!("invented-{i}")).collect();
    for _ in 0..10 {
        sender.send(load_report("liar", &invented, 1)).unwrap();
    }
    sender
        .send(load_report("liar", &["web".to_string()], 5000))
        .unwrap();
    let mut replies = LoadReportingServiceClient::new(channel)
        .stream_load_stats(tokio_stream::wrappers::UnboundedReceiverStream::new(
            receiver,
        ))
        .await
        .unwrap()
        .into_inner();
    replies
        .message()
        .await
        .unwrap()
        .expect("the server asks for reports");
    let page = wait_for("the reports to be recorded", || async {
        let page = get_json(&switchyard.admin_url("/load_reports?node=liar&limit=10")).await?;
        (page["matched"] == 4096).then_some(page)
    })
    .await;
    assert_eq!(page["load_reports"].as_array().unwrap().len(), 10);
    assert_eq!(page["truncated"], true);
    assert!(page["load_reports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["cluster"] == "web"));
    let nobody = get_json(&switchyard.admin_url("/load_reports?node=nobody"))
        .await
        .unwrap();
    assert_eq!(nobody["matched"], 0);
    wait_for("the dropped entries to be counted", || async {
        let dropped = metric(&switchyard, &refused("load_report_entries")).await;
        (dropped == 500_000.0 + 904.0).then_some(())
    })
    .await;
    // When the stream ends its totals are kept a while, no longer open.
    drop(sender);
    drop(replies);
    wait_for("the stream to end", || async {
        let (open, ended, entries) = switchyard.running.load_reports.size();
        (open == 0 && ended == 1 && entries == 4096).then_some(())
    })
    .await;
}
