//! The transport of the xDS client: one ADS stream at a time (state of the world or delta)
//! to the management server, fed from the [`ClientState`] and feeding it. When the stream
//! fails, the accepted resources stay applied and the client reconnects with exponential
//! back-off (jittered, 0.25 s to 30 s); a delta reconnect announces the versions it holds.
//!
//! Must not: decide anything about resources (the state machine and the consumer do).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::state::{Checker, ClientState, Outcome, Protocol, Rejection, Request};

/// Where and how to reach the management server.
#[derive(Clone, Debug)]
pub struct ServerAddress {
    /// `http://host:port` or `https://host:port`.
    pub uri: String,
    pub tls: Option<ClientTlsConfig>,
}

/// What the client reports to: the accepted resources whenever they change, and the
/// stream's ups and downs.
pub trait Consumer: Checker + Send + Sync + 'static {
    fn apply(&self, state: &ClientState);
    fn connected(&self, up: bool);
    fn rejected(&self, rejection: &Rejection<Self::Refusal>);
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] tonic::transport::Error),
    /// The server refused or ended the stream.
    #[error(transparent)]
    Status(#[from] tonic::Status),
}

/// The first wait before reconnecting; it doubles per failed stream up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the client until `shutdown`.
pub async fn run<C: Consumer>(
    server: ServerAddress,
    protocol: Protocol,
    node: Node,
    consumer: Arc<C>,
    shutdown: CancellationToken,
) {
    let mut state = ClientState::new(protocol, node);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let streamed = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = stream_once(&server, &mut state, consumer.as_ref()) => result,
        };
        consumer.connected(false);
        match streamed {
            Ok(true) => backoff = FIRST_BACKOFF,
            Ok(false) => {}
            Err(error) => tracing::warn!(server = %server.uri, %error, "xDS stream ended"),
        }
        let wait = jittered(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Between half and all of `backoff`, so a fleet that lost its server does not come back in
/// one wave.
pub fn jittered(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    backoff.mul_f64(fraction)
}

/// A channel to the management server (the sidecar's load reports open theirs the same way).
pub async fn connect(server: &ServerAddress) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(server.uri.clone())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(tls) = &server.tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    endpoint.connect().await
}

/// One stream, until it fails. Ok(true) when the server answered at least once.
async fn stream_once<C: Consumer>(
    server: &ServerAddress,
    state: &mut ClientState,
    consumer: &C,
) -> Result<bool, StreamError> {
    let channel = connect(server).await?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let opening = state.on_connect();
    let mut answered = false;
    match state.protocol() {
        Protocol::StateOfTheWorld => {
            let (sender, receiver) = mpsc::unbounded_channel();
            send_all(&sender, opening, |r| match r {
                Request::Sotw(r) => Some(r),
                Request::Delta(_) => None,
            });
            let mut inbound = client
                .stream_aggregated_resources(UnboundedReceiverStream::new(receiver))
                .await?
                .into_inner();
            consumer.connected(true);
            while let Some(response) = inbound.message().await? {
                answered = true;
                let outcome = state.on_sotw(&response, consumer);
                settle(outcome, state, consumer, |requests| {
                    send_all(&sender, requests, |r| match r {
                        Request::Sotw(r) => Some(r),
                        Request::Delta(_) => None,
                    })
                });
            }
        }
        Protocol::Delta => {
            let (sender, receiver) = mpsc::unbounded_channel();
            send_all(&sender, opening, |r| match r {
                Request::Delta(r) => Some(r),
                Request::Sotw(_) => None,
            });
            let mut inbound = client
                .delta_aggregated_resources(UnboundedReceiverStream::new(receiver))
                .await?
                .into_inner();
            consumer.connected(true);
            while let Some(response) = inbound.message().await? {
                answered = true;
                let outcome = state.on_delta(&response, consumer);
                settle(outcome, state, consumer, |requests| {
                    send_all(&sender, requests, |r| match r {
                        Request::Delta(r) => Some(r),
                        Request::Sotw(_) => None,
                    })
                });
            }
        }
    }
    Ok(answered)
}

/// Applies what a response changed, reports a rejection, and sends the answers.
fn settle<C: Consumer>(
    outcome: Outcome<C::Refusal>,
    state: &ClientState,
    consumer: &C,
    send: impl FnOnce(Vec<Request>),
) {
    if let Some(rejection) = &outcome.rejected {
        tracing::warn!(error = %rejection, "rejected (NACKed) an xDS response");
        consumer.rejected(rejection);
    }
    if outcome.changed {
        consumer.apply(state);
    }
    send(outcome.requests);
}

fn send_all<T>(
    sender: &mpsc::UnboundedSender<T>,
    requests: Vec<Request>,
    pick: impl Fn(Request) -> Option<T>,
) {
    for request in requests.into_iter().filter_map(pick) {
        let _ = sender.send(request);
    }
}
