//! `switchyard status`: one line per connected xDS client — node id, kind, protocol, and per
//! type whether it is SYNCED, STALE, NACKED or NOT_SENT — the way `istioctl proxy-status`
//! shows a mesh. Reads the admin endpoint's `/clients`; formatting is a pure function.
//! Errors are anyhow's: this is the CLI's edge (only main calls it, to print them).

use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde_json::Value;

/// Fetches `/clients` from the admin endpoint at `admin`.
pub async fn fetch_clients(admin: SocketAddr) -> anyhow::Result<Value> {
    fetch_json(admin, "/clients").await
}

/// Fetches `path` (JSON) from the admin endpoint at `admin`.
pub async fn fetch_json(admin: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .with_context(|| format!("connecting to the admin endpoint {admin}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{admin}{path} answered {}",
        response.status()
    );
    let body = response.into_body().collect().await?.to_bytes();
    serde_json::from_slice(&body).with_context(|| format!("reading {path}"))
}

const TYPES: [(&str, &str); 5] = [
    ("Cluster", "CDS"),
    ("ClusterLoadAssignment", "EDS"),
    ("Listener", "LDS"),
    ("RouteConfiguration", "RDS"),
    ("Secret", "SDS"),
];

/// The table `switchyard status` prints for a `/clients` answer.
pub fn table(clients: &Value) -> String {
    let mut rows: Vec<Vec<String>> = vec![["NODE", "KIND", "PROTOCOL", "SERVICE"]
        .into_iter()
        .chain(TYPES.iter().map(|(_, short)| *short))
        .chain(["SNAPSHOT"])
        .map(str::to_string)
        .collect()];
    for client in clients["clients"].as_array().into_iter().flatten() {
        let text = |key: &str| client[key].as_str().unwrap_or("").to_string();
        let mut row = vec![
            Some(text("node_id"))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("(stream {})", client["stream_id"])),
            text("kind"),
            text("protocol"),
            text("service"),
        ];
        for (type_name, _) in TYPES {
            let status = client["types"][type_name]["status"].as_str().unwrap_or("-");
            row.push(status.to_string());
        }
        row.push(text("snapshot_version"));
        rows.push(row);
    }
    columns(&rows)
}

/// Rows as left-aligned columns, two spaces apart (the first row is the header).
pub fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|column| rows.iter().map(|r| r[column].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_client_with_each_types_status() {
        let clients = serde_json::json!({"clients": [
            {"stream_id": 1, "node_id": "envoy-1", "kind": "envoy", "protocol": "delta", "service": "ads",
             "snapshot_version": "abc", "types": {
                "Cluster": {"status": "SYNCED"}, "ClusterLoadAssignment": {"status": "STALE"},
                "Listener": {"status": "NACKED"}, "RouteConfiguration": {"status": "SYNCED"}}},
            {"stream_id": 2, "node_id": "", "kind": "unknown", "protocol": "sotw", "service": "Cluster",
             "types": {"Cluster": {"status": "NOT_SENT"}}}
        ]});
        assert_eq!(
            table(&clients),
            "NODE        KIND     PROTOCOL  SERVICE  CDS       EDS    LDS     RDS     SDS  SNAPSHOT\n\
             envoy-1     envoy    delta     ads      SYNCED    STALE  NACKED  SYNCED  -    abc\n\
             (stream 2)  unknown  sotw      Cluster  NOT_SENT  -      -       -       -\n"
        );
    }
}
