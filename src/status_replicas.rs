//! `switchyard status --admin A,B,C`: the same look at several replicas at once. One line per
//! replica (the version it serves, its clients, and its place in the replica set when it runs
//! with `--etcd`), a verdict on whether they all serve the same version, then every client
//! with the replica it is connected to. A replica that does not answer gets a line saying why
//! and makes the command fail, so a script notices. Fetching is in [`fetch_replica`];
//! formatting is pure.

use std::net::SocketAddr;

use serde_json::Value;

use crate::status::{columns, fetch_clients, fetch_json, table};

/// What one replica's admin endpoint answered.
#[derive(Debug)]
pub struct ReplicaAnswer {
    /// `/config_status`.
    pub config: Value,
    /// `/clients`.
    pub clients: Value,
    /// `/cluster`; None when the replica runs without `--etcd`.
    pub cluster: Option<Value>,
}

/// Reads one replica's status, clients and replica-set report.
pub async fn fetch_replica(admin: SocketAddr) -> anyhow::Result<ReplicaAnswer> {
    let config = fetch_json(admin, "/config_status").await?;
    let clients = fetch_clients(admin).await?;
    let cluster = fetch_json(admin, "/cluster").await.ok();
    Ok(ReplicaAnswer {
        config,
        clients,
        cluster,
    })
}

/// The report for several replicas, and whether every one answered.
pub fn fleet_table(answers: &[(SocketAddr, Result<ReplicaAnswer, String>)]) -> (String, bool) {
    let mut rows = vec![[
        "REPLICA", "NAME", "SERVING", "CLIENTS", "ETCD", "SHARING", "TARGETS",
    ]
    .map(str::to_string)
    .to_vec()];
    let mut versions = Vec::new();
    let mut failures = Vec::new();
    for (admin, answer) in answers {
        match answer {
            Ok(answer) => {
                let version = answer.config["serving_version"]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .unwrap_or("-")
                    .to_string();
                versions.push(version.clone());
                rows.push(replica_row(*admin, &version, answer));
            }
            Err(error) => failures.push(format!("{admin}: no answer: {error}")),
        }
    }
    let mut out = columns(&rows);
    for failure in &failures {
        out.push_str(failure);
        out.push('\n');
    }
    out.push_str(&verdict(&versions, answers.len()));
    for (admin, answer) in answers {
        if let Ok(answer) = answer {
            out.push_str(&format!("\nclients of {admin}:\n"));
            out.push_str(&table(&answer.clients));
        }
    }
    (out, failures.is_empty())
}

fn replica_row(admin: SocketAddr, version: &str, answer: &ReplicaAnswer) -> Vec<String> {
    let clients = answer.clients["clients"]
        .as_array()
        .map_or(0, Vec::len)
        .to_string();
    let (name, etcd, sharing, targets) = match &answer.cluster {
        None => ("-".into(), "off".into(), "-".into(), "-".into()),
        Some(cluster) => {
            let name = cluster["replica"].as_str().unwrap_or("-").to_string();
            let owned = cluster["members"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|member| member["name"] == cluster["replica"])
                .and_then(|member| member["targets_owned"].as_u64())
                .unwrap_or(0);
            (
                name,
                cluster["etcd"]["state"].as_str().unwrap_or("-").to_string(),
                cluster["sharing"].to_string(),
                format!("{owned} of {}", cluster["targets"]),
            )
        }
    };
    vec![
        admin.to_string(),
        name,
        version.to_string(),
        clients,
        etcd,
        sharing,
        targets,
    ]
}

/// One line: whether the replicas that answered serve one version.
fn verdict(versions: &[String], asked: usize) -> String {
    let mut distinct: Vec<&String> = versions.iter().collect();
    distinct.sort();
    distinct.dedup();
    match distinct.as_slice() {
        [] => format!("none of {asked} replicas answered\n"),
        [one] => format!(
            "{} of {asked} replicas answered, all serving version {one}\n",
            versions.len()
        ),
        several => format!(
            "{} of {asked} replicas answered, serving {} different versions: {}\n",
            versions.len(),
            several.len(),
            several
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(version: &str, replica: &str, owned: u64) -> ReplicaAnswer {
        ReplicaAnswer {
            config: json!({"serving_version": version}),
            clients: json!({"clients": [{"stream_id": 1, "node_id": format!("envoy-on-{replica}"),
                "kind": "envoy", "protocol": "sotw", "service": "ads", "snapshot_version": version,
                "types": {"Cluster": {"status": "SYNCED"}}}]}),
            cluster: Some(json!({"replica": replica, "etcd": {"state": "connected"},
                "sharing": true, "targets": 6,
                "members": [{"name": replica, "targets_owned": owned}]})),
        }
    }

    fn admin(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn replicas_serving_one_version_say_so_with_each_client_under_its_replica() {
        let answers = vec![
            (admin(19000), Ok(answer("abc", "r1", 4))),
            (admin(19001), Ok(answer("abc", "r2", 2))),
        ];
        let (text, all) = fleet_table(&answers);
        assert!(all);
        assert!(
            text.starts_with(
                "REPLICA          NAME  SERVING  CLIENTS  ETCD       SHARING  TARGETS\n\
                 127.0.0.1:19000  r1    abc      1        connected  true     4 of 6\n\
                 127.0.0.1:19001  r2    abc      1        connected  true     2 of 6\n\
                 2 of 2 replicas answered, all serving version abc\n"
            ),
            "{text}"
        );
        assert!(text.contains("clients of 127.0.0.1:19001:\nNODE"), "{text}");
        assert!(text.contains("envoy-on-r2"), "{text}");
    }

    #[test]
    fn different_versions_and_a_silent_replica_are_told() {
        let mut alone = answer("def", "-", 0);
        alone.cluster = None;
        let answers = vec![
            (admin(19000), Ok(answer("abc", "r1", 6))),
            (admin(19001), Ok(alone)),
            (admin(19002), Err("connection refused".to_string())),
        ];
        let (text, all) = fleet_table(&answers);
        assert!(!all, "a replica that did not answer fails the command");
        assert!(
            text.contains("127.0.0.1:19001  -     def      1        off   "),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:19002: no answer: connection refused\n"),
            "{text}"
        );
        assert!(
            text.contains("2 of 3 replicas answered, serving 2 different versions: abc, def\n"),
            "{text}"
        );
    }
}
