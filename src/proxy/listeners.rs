//! Keeps the sockets of the applied listeners: binds the ones new to a config, drains the ones
//! it dropped (no new connections; requests in flight finish, idle HTTP connections close),
//! and rebinds one whose addresses changed. A listener whose routes have not arrived yet is not bound (warming).
//! What runs on a listener's connections is re-read from the config for each connection: the
//! filter chain is chosen (after the ClientHello when TLS may matter, proxy/tls.rs), then
//! its HTTP connection manager or TCP proxy serves the connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::ProxyConfig;
use super::downstream;
use super::http::Upstreams;
use super::original_dst;
use super::resources::listener::ListenerKind;
use super::tcp;
use super::tls::{self, Accepted};

struct Running {
    addresses: Vec<SocketAddr>,
    stop: CancellationToken,
}

/// Follows the config until `shutdown`. With `share_ports`, sockets are bound with
/// SO_REUSEPORT, so that every worker (proxy/workers.rs) has its own on the same address.
pub async fn run(
    mut config: watch::Receiver<Arc<ProxyConfig>>,
    shutdown: CancellationToken,
    share_ports: bool,
) {
    let upstreams = Upstreams::new();
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    loop {
        let snapshot = config.borrow_and_update().clone();
        let context = (&config, &upstreams, &shutdown, share_ports);
        reconcile(&snapshot, &mut running, context).await;
        // A listener still waiting for its routes is looked at again when its initial fetch
        // timeout is up.
        let deadline = snapshot.next_warming_deadline();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = config.changed() => if changed.is_err() { break },
            _ = sleep_until(deadline) => {}
        }
    }
    for listener in running.values() {
        listener.stop.cancel();
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What a worker's listeners share: its config channel, its pools, its shutdown, and
/// whether its sockets share their ports with other workers'.
type Context<'a> = (
    &'a watch::Receiver<Arc<ProxyConfig>>,
    &'a Upstreams,
    &'a CancellationToken,
    bool,
);

async fn reconcile(
    snapshot: &ProxyConfig,
    running: &mut BTreeMap<String, Running>,
    (config, upstreams, shutdown, share_ports): Context<'_>,
) {
    running.retain(|name, listener| {
        let keep = snapshot
            .listeners
            .get(name)
            .is_some_and(|l| l.addresses == listener.addresses);
        if !keep {
            tracing::info!(listener = %name, "listener stops accepting");
            listener.stop.cancel();
        }
        keep
    });
    for (name, listener) in &snapshot.listeners {
        if running.contains_key(name)
            || !snapshot.listener_warm(name, listener, std::time::Instant::now())
        {
            continue;
        }
        let stop = shutdown.child_token();
        let mut bound = Vec::new();
        for address in &listener.addresses {
            match bind(*address, listener.freebind, share_ports) {
                Ok(socket) => bound.push(socket),
                Err(error) => tracing::warn!(listener = %name, %address, %error, "cannot bind"),
            }
        }
        for socket in bound {
            tokio::spawn(accept(
                socket,
                name.clone(),
                config.clone(),
                upstreams.clone(),
                stop.clone(),
            ));
        }
        tracing::info!(listener = %name, addresses = ?listener.addresses, "listening");
        running.insert(
            name.clone(),
            Running {
                addresses: listener.addresses.clone(),
                stop,
            },
        );
    }
}

fn bind(address: SocketAddr, freebind: bool, share_port: bool) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    if share_port {
        socket.set_reuseport(true)?;
    }
    if freebind {
        set_freebind(&socket);
    }
    socket.bind(address)?;
    socket.listen(1024)
}

#[cfg(target_os = "linux")]
fn set_freebind(socket: &tokio::net::TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int option.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_FREEBIND,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_freebind(_socket: &tokio::net::TcpSocket) {}

async fn accept(
    socket: TcpListener,
    name: String,
    config: watch::Receiver<Arc<ProxyConfig>>,
    upstreams: Upstreams,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(listener = %name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let snapshot = config.borrow().clone();
        let Some(listener) = snapshot.listeners.get(&name).cloned() else {
            return;
        };
        // The address the client reached, which a PROXY protocol header names.
        let local = stream.local_addr().unwrap_or(peer);
        // Where a redirected client was going: asked of the kernel only when some cluster
        // goes there.
        let original = match snapshot.original_dst_clusters {
            true => original_dst::redirected_destination(&stream),
            false => None,
        };
        let (name, config, upstreams, stop) = (
            name.clone(),
            config.clone(),
            upstreams.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            // Boxed: the handshake's state is freed once it is done, not kept in the task.
            let accepting = Box::pin(tls::accept(stream, &name, &listener, &snapshot));
            let Some((chain, accepted)) = accepting.await else {
                return;
            };
            match &listener.chains[chain].kind {
                ListenerKind::Http(manager) => {
                    let manager = manager.clone();
                    // Each path boxed: an idle plain connection's task holds only what the
                    // plain path needs, not the TLS path's state as well.
                    match accepted {
                        Accepted::Plain(stream) => {
                            Box::pin(downstream::serve_connection(
                                stream,
                                (peer, original),
                                manager,
                                config,
                                upstreams,
                                stop,
                            ))
                            .await
                        }
                        Accepted::Tls(stream) => {
                            Box::pin(downstream::serve_tls_connection(
                                stream,
                                (peer, original),
                                manager,
                                config,
                                upstreams,
                                stop,
                            ))
                            .await
                        }
                    }
                }
                ListenerKind::Tcp(forward) => {
                    let forward = Arc::new(forward.clone());
                    // Boxed too: the TCP proxy's state (both streams, either TLS) would
                    // otherwise be room in every connection's task, HTTP ones included:
                    // 9 KB of a 10 KB idle HTTP connection before this was boxed.
                    match accepted {
                        Accepted::Plain(stream) => {
                            let addresses = (peer, local, original);
                            Box::pin(tcp::serve_connection(stream, addresses, forward, config))
                                .await
                        }
                        Accepted::Tls(stream) => {
                            let addresses = (peer, local, original);
                            Box::pin(tcp::serve_connection(*stream, addresses, forward, config))
                                .await
                        }
                    }
                }
            }
        });
    }
}
