//! The unbuffered TLS stream against a real rustls client over loopback TCP: records split
//! across reads, a body larger than any buffer, close_notify both ways, alerts, resumption,
//! key updates, and what a connection keeps once it has answered.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{
    AlertDescription, ClientConfig, ClientConnection, Error as TlsError, HandshakeKind,
    ServerConfig, SupportedProtocolVersion,
};
use tokio_rustls::TlsConnector;

use super::UnbufferedTlsStream;

const BOTH: &[&SupportedProtocolVersion] = &[&TLS12, &TLS13];

fn server_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let certs = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/certs/www.example.test.pem"
    );
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/certs/www.example.test.key"
    );
    let chain = CertificateDer::pem_file_iter(certs)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

fn client_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    Arc::new(crate::unverified_tls::client_config_with_versions(
        Vec::new(),
        versions,
    ))
}

/// How the server's side of one connection ended, and the bytes its stream held each time it
/// had answered and flushed.
type Served = JoinHandle<(std::io::Result<()>, Vec<usize>)>;

/// Serves one connection on loopback over the unbuffered stream, echoing what it reads and
/// answering a close_notify with its own.
async fn echo_once(config: Arc<ServerConfig>) -> (u16, Served) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut held = Vec::new();
        let ended = echo(tcp, config, &mut held).await;
        (ended, held)
    });
    (port, served)
}

async fn echo(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    held: &mut Vec<usize>,
) -> std::io::Result<()> {
    let mut stream = UnbufferedTlsStream::handshake(tcp, config, Vec::new(), None).await?;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let count = stream.read(&mut buffer).await?;
        if count == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buffer[..count]).await?;
        stream.flush().await?;
        held.push(stream.buffered_capacity());
    }
}

async fn connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("www.example.test").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Bytes that are not all alike, so a reordering or a lost piece shows.
fn patterned(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i * 7 % 253) as u8).collect()
}

/// Reads from `tcp` through `connection` until `length` plaintext bytes arrived.
async fn read_plaintext(
    tcp: &mut TcpStream,
    connection: &mut ClientConnection,
    length: usize,
) -> Vec<u8> {
    let mut plaintext = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while plaintext.len() < length {
        let count = tcp.read(&mut chunk).await.unwrap();
        assert!(
            count > 0,
            "the server closed after {} bytes",
            plaintext.len()
        );
        let mut arrived = &chunk[..count];
        while !arrived.is_empty() {
            connection.read_tls(&mut arrived).unwrap();
            connection.process_new_packets().unwrap();
        }
        // Ends with WouldBlock once what was decrypted is taken; the bytes are appended.
        let _ = connection.reader().read_to_end(&mut plaintext);
    }
    plaintext
}

#[tokio::test]
async fn a_record_split_across_reads_is_read_whole() {
    let (port, served) = echo_once(server_config(BOTH)).await;
    let (mut tcp, mut connection) = connect(port, client_config(BOTH))
        .await
        .unwrap()
        .into_inner();
    let message = patterned(3000);
    connection.writer().write_all(&message).unwrap();
    let mut records = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut records).unwrap();
    }
    // The record header in pieces of 3 bytes, then the rest in pieces of 97, each sent alone
    // (no delay on the socket, a pause between): the server reads a record in dozens of reads.
    let (header, rest) = records.split_at(12);
    for piece in header.chunks(3).chain(rest.chunks(97)) {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let echoed = read_plaintext(&mut tcp, &mut connection, message.len()).await;
    assert!(echoed == message, "the echo differs from what was sent");
    connection.send_close_notify();
    let mut close = Vec::new();
    connection.write_tls(&mut close).unwrap();
    tcp.write_all(&close).await.unwrap();
    let (ended, _) = served.await.unwrap();
    ended.expect("the server read the close_notify as the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_any_buffer_goes_both_ways_intact() {
    let (port, served) = echo_once(server_config(BOTH)).await;
    let stream = connect(port, client_config(BOTH)).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(stream);
    // 3 MiB: hundreds of records, more than one write encrypts and than a socket takes.
    let body = patterned(3 * 1024 * 1024);
    let sent = body.clone();
    let sending = tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    reader
        .read_to_end(&mut echoed)
        .await
        .expect("the echo ends with the server's close_notify");
    sending.await.unwrap();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body, "the echo differs from what was sent");
    let (ended, _) = served.await.unwrap();
    ended.unwrap();
}

#[tokio::test]
async fn close_notify_ends_the_stream_both_ways_and_a_bare_fin_does_not() {
    // The client's close_notify reads as the end; the server answers with its own, which
    // the client reads as the end (tokio-rustls says UnexpectedEof without it).
    let (port, served) = echo_once(server_config(BOTH)).await;
    let mut stream = connect(port, client_config(BOTH)).await.unwrap();
    stream.write_all(b"bye").await.unwrap();
    let mut echoed = [0u8; 3];
    stream.read_exact(&mut echoed).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .expect("the server's close_notify before its FIN");
    assert!(rest.is_empty());
    let (ended, _) = served.await.unwrap();
    ended.expect("the client's close_notify read as the end");

    // A client gone without close_notify: the server reads UnexpectedEof, as tokio-rustls
    // reports it.
    let (port, served) = echo_once(server_config(BOTH)).await;
    let stream = connect(port, client_config(BOTH)).await.unwrap();
    let (mut tcp, _) = stream.into_inner();
    tcp.shutdown().await.unwrap();
    let (ended, _) = served.await.unwrap();
    let error = ended.expect_err("a truncated stream is not a clean end");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_connection_that_has_answered_holds_no_buffer() {
    let (port, served) = echo_once(server_config(BOTH)).await;
    let mut stream = connect(port, client_config(BOTH)).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    stream.read_exact(&mut echoed).await.unwrap();
    stream.shutdown().await.unwrap();
    let (ended, held) = served.await.unwrap();
    ended.unwrap();
    assert_eq!(held, vec![0], "bytes held once the answer was flushed");
}

#[tokio::test]
async fn a_refused_client_gets_an_alert() {
    let (port, served) = echo_once(server_config(&[&TLS13])).await;
    let error = connect(port, client_config(&[&TLS12]))
        .await
        .expect_err("a TLS 1.2 client of a TLS 1.3 server");
    let alert = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
        .cloned();
    assert_eq!(
        alert,
        Some(TlsError::AlertReceived(AlertDescription::ProtocolVersion))
    );
    let (ended, _) = served.await.unwrap();
    assert!(ended.is_err());
}

#[tokio::test]
async fn sessions_resume_over_tls_1_2_and_1_3() {
    for version in [&TLS12, &TLS13] {
        let server = server_config(BOTH);
        let client = client_config(&[version]);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let (port, served) = echo_once(server.clone()).await;
            let mut stream = connect(port, client.clone()).await.unwrap();
            // An exchange first: a TLS 1.3 ticket comes after the handshake.
            stream.write_all(b"ping").await.unwrap();
            let mut echoed = [0u8; 4];
            stream.read_exact(&mut echoed).await.unwrap();
            kinds.push(stream.get_ref().1.handshake_kind());
            stream.shutdown().await.unwrap();
            served.await.unwrap().0.unwrap();
        }
        assert_eq!(
            kinds,
            [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn a_key_update_from_the_client_is_followed() {
    let (port, served) = echo_once(server_config(&[&TLS13])).await;
    let mut stream = connect(port, client_config(&[&TLS13])).await.unwrap();
    let mut echoed = [0u8; 3];
    stream.write_all(b"one").await.unwrap();
    stream.read_exact(&mut echoed).await.unwrap();
    stream.get_mut().1.refresh_traffic_keys().unwrap();
    stream.write_all(b"two").await.unwrap();
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"two");
    stream.shutdown().await.unwrap();
    served.await.unwrap().0.unwrap();
}
