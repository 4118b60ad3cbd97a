//! The sidecar against Envoy, differentially: one config folder (a GCP URL map and an AWS ALB
//! template using every route feature of examples/ the sidecar serves) is served to a real
//! Envoy and to the sidecar, and a table of requests (table.rs) goes through both. For each
//! request the status, the body, every response header and what the backend saw must be the
//! same (exchange.rs lists what may legitimately differ, and why), and hold what the row
//! expects. Weighted splits are compared as distributions, branch by branch.

mod config;
pub mod exchange;
mod filters;
mod mirror;
mod table;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;

use crate::common::echo::EchoBackend;
use crate::common::sidecar::Sidecar;
use crate::common::*;
use config::{Ports, AWS_GROUPS, GCP_SERVICES};
use exchange::{differences, exchange, Record, Request};
use table::{Front, Row};

/// The echo backends of every service and target group, by name.
struct Backends(BTreeMap<&'static str, EchoBackend>);

impl Backends {
    async fn start() -> Backends {
        let mut all = BTreeMap::new();
        for name in GCP_SERVICES.into_iter().chain(AWS_GROUPS) {
            all.insert(name, EchoBackend::start_controllable(name).await);
        }
        Backends(all)
    }

    fn ports(&self) -> BTreeMap<&'static str, u16> {
        self.0.iter().map(|(name, b)| (*name, b.port())).collect()
    }

    /// Requests every backend has received so far, together.
    fn hits(&self) -> u64 {
        self.0.values().map(EchoBackend::hit_count).sum()
    }
}

/// A Switchyard serving the config folder (the GCP file and aws.yaml) for listeners on
/// `ports`.
async fn serve_folder(ports: Ports, backends: &BTreeMap<&str, u16>) -> Switchyard {
    let gcp = config::gcp(ports.gcp, backends);
    let aws = config::aws(ports, backends);
    Switchyard::start_with(&gcp, move |options| {
        // start_with wrote the GCP file as lb.yaml; the folder holding it becomes the config.
        let folder = options.config.parent().unwrap().to_path_buf();
        std::fs::write(folder.join("aws.yaml"), aws).unwrap();
        options.config = folder;
    })
    .await
}

/// Waits until `node_id` has ACKed everything it was sent; fails at once, with the client's
/// own words, if it NACKed anything.
async fn wait_for_acks_without_nacks(switchyard: &Switchyard, node_id: &str) {
    wait_for(&format!("{node_id} to take the config"), || async {
        let client = switchyard.client(node_id).await?;
        for (kind, status) in client["types"].as_object()? {
            assert!(
                status["last_nack"].is_null(),
                "{node_id} NACKed the {kind}s: {}",
                status["last_nack"]
            );
        }
        Some(())
    })
    .await;
    switchyard.wait_for_acks(node_id).await;
}

/// Envoy and the sidecar, each with its own Switchyard (the listener ports differ, nothing
/// else), both having taken the whole config.
struct SideBySide {
    envoy_ports: Ports,
    sidecar_ports: Ports,
    envoy: Envoy,
    sidecar: Sidecar,
    _servers: (Switchyard, Switchyard),
}

impl SideBySide {
    async fn start(backends: &Backends) -> SideBySide {
        SideBySide::start_on(backends.ports()).await
    }

    /// Both proxies, with each service and target group at the port `ports` gives it.
    async fn start_on(ports: BTreeMap<&'static str, u16>) -> SideBySide {
        let envoy_ports = Ports::free();
        let sidecar_ports = Ports::free();
        let for_envoy = serve_folder(envoy_ports, &ports).await;
        let for_sidecar = serve_folder(sidecar_ports, &ports).await;
        let envoy = Envoy::start(for_envoy.running.xds_addr, "envoy-differential").await;
        let sidecar = Sidecar::start(
            "envoy-bootstrap.yaml",
            for_sidecar.running.xds_addr,
            "sidecar-differential",
        )
        .await;
        wait_for_acks_without_nacks(&for_envoy, "envoy-differential").await;
        wait_for_acks_without_nacks(&for_sidecar, "sidecar-differential").await;
        sidecar.wait_ready().await;
        for ports in [envoy_ports, sidecar_ports] {
            wait_for_backend(ports.gcp, "any.host", "/api", "api").await;
            for aws in [
                ports.aws,
                ports.aws_kept,
                ports.aws_removed,
                ports.aws_ported,
            ] {
                wait_for_backend(aws, "lb.example", "/", "Web").await;
            }
        }
        SideBySide {
            envoy_ports,
            sidecar_ports,
            envoy,
            sidecar,
            _servers: (for_envoy, for_sidecar),
        }
    }

    fn port(&self, through: Through, front: Front) -> u16 {
        let ports = match through {
            Through::Envoy => self.envoy_ports,
            Through::Sidecar => self.sidecar_ports,
        };
        match front {
            Front::Gcp => ports.gcp,
            Front::Aws => ports.aws,
            Front::AwsKept => ports.aws_kept,
            Front::AwsRemoved => ports.aws_removed,
            Front::AwsPorted => ports.aws_ported,
        }
    }
}

/// Waits until GET `path` for `host` through the listener on `port` is answered by `backend`.
async fn wait_for_backend(port: u16, host: &str, path: &str, backend: &str) {
    let client = exchange::client();
    let request = Request {
        method: "GET",
        host: host.into(),
        target: path.into(),
        headers: Vec::new(),
        body: None,
    };
    wait_for(
        &format!("{host}{path} on :{port} to reach {backend}"),
        || async {
            let record = exchange(&client, port, &request).await;
            (record.backend() == Some(backend)).then_some(())
        },
    )
    .await;
}

/// The record of one request, with how many requests the backends got for it (the table's
/// requests go one at a time, and nothing else calls the backends).
async fn counted(
    backends: &Backends,
    client: &reqwest::Client,
    port: u16,
    request: &Request,
) -> Record {
    let before = backends.hits();
    let record = exchange(client, port, request).await;
    record.with_hits(backends.hits() - before)
}

/// What is wrong with one row: the lines the two answers do not share, the expected lines
/// an answer lacks, and the lines it holds that the row rules out.
fn row_problems(row: &Row, by_envoy: &Record, by_sidecar: &Record) -> Vec<String> {
    let mut problems = differences(("Envoy", by_envoy), ("sidecar", by_sidecar));
    for (who, record) in [("Envoy", by_envoy), ("sidecar", by_sidecar)] {
        for line in &row.expect {
            if !record.has(line) {
                problems.push(format!("{who}'s answer lacks `{line}`"));
            }
        }
        for beginning in &row.absent {
            for line in record
                .0
                .iter()
                .filter(|l| l.starts_with(beginning.as_str()))
            {
                problems.push(format!("{who}'s answer holds `{line}`"));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_of_the_table_gets_the_same_answer_through_envoy_and_the_sidecar() {
    let backends = Backends::start().await;
    let proxies = SideBySide::start(&backends).await;
    let client = exchange::client();
    let rows = table::rows();
    assert!(rows.len() >= 150, "the table has {} rows", rows.len());

    let mut failures = Vec::new();
    let mut reached = BTreeSet::new();
    for (index, row) in rows.iter().enumerate() {
        let through = |who| proxies.port(who, row.front);
        let by_envoy = counted(&backends, &client, through(Through::Envoy), &row.request).await;
        let by_sidecar = counted(&backends, &client, through(Through::Sidecar), &row.request).await;
        let problems = row_problems(row, &by_envoy, &by_sidecar);
        if !problems.is_empty() {
            failures.push(format!(
                "row {index}, {:?} {}:\n  {}\n  Envoy:\n{by_envoy}  sidecar:\n{by_sidecar}",
                row.front,
                row.request,
                problems.join("\n  ")
            ));
        }
        reached.extend(by_envoy.backend().map(str::to_string));
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows answered differently or not as expected:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    // Every service and target group but the split-only ones answers some row.
    let split_only = [
        "canary-a", "canary-b", "stable", "next", "Blue", "Green", "shadow",
    ];
    let unreached: Vec<_> = backends
        .0
        .keys()
        .filter(|name| !reached.contains(**name) && !split_only.contains(name))
        .collect();
    assert!(unreached.is_empty(), "no row reaches {unreached:?}");
    assert_eq!(
        proxies.sidecar.config_names().await,
        proxies.envoy.config_names().await
    );
}

/// A weighted split: where its requests go, the share each branch must get, and lines each
/// branch's answers must hold (its weighted service's header action).
struct Split {
    front: Front,
    host: &'static str,
    target: &'static str,
    shares: &'static [(&'static str, f64)],
    tolerance: f64,
    branch_lines: &'static [(&'static str, &'static str)],
}

/// The splits of the config: the route rule's 75/25 with a header action per service,
/// dual-stack.yaml's 95/5 on an empty prefix, aws-alb.yaml's 80/20 of target groups.
/// With SPLIT_REQUESTS requests a share's standard deviation is √(p(1−p)/n): 0.97 points at
/// 75%, 0.49 at 95%, 0.89 at 80%; each tolerance is about four of them, which a split that
/// ignores its weights (50/50, all to one side) misses many times over.
const SPLITS: [Split; 3] = [
    Split {
        front: Front::Gcp,
        host: "any.host",
        target: "/split/x?y=1",
        shares: &[("canary-a", 0.75), ("canary-b", 0.25)],
        tolerance: 0.04,
        branch_lines: &[
            ("canary-a", "saw x-canary: a"),
            ("canary-a", "response x-canary-response: a"),
            ("canary-b", "saw x-canary: b"),
        ],
    },
    Split {
        front: Front::Gcp,
        host: "split.example",
        target: "/anything",
        shares: &[("stable", 0.95), ("next", 0.05)],
        tolerance: 0.02,
        branch_lines: &[],
    },
    Split {
        front: Front::Aws,
        host: "lb.example",
        target: "/blue-green/page",
        shares: &[("Blue", 0.8), ("Green", 0.2)],
        tolerance: 0.04,
        branch_lines: &[],
    },
];

const SPLIT_REQUESTS: usize = 2000;

/// Per branch (the backend that answered, or the status when none did): how many requests it
/// got and the distinct records of its answers.
type Branches = BTreeMap<String, (usize, BTreeSet<Vec<String>>)>;

/// Sends SPLIT_REQUESTS requests of `split` through `port`, eight at a time.
async fn tally_split(port: u16, split: &Split) -> Branches {
    let client = exchange::client();
    let request = Request {
        method: "GET",
        host: split.host.into(),
        target: split.target.into(),
        headers: Vec::new(),
        body: None,
    };
    let records: Vec<Record> = futures_util::stream::iter(0..SPLIT_REQUESTS)
        .map(|_| exchange(&client, port, &request))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut branches = Branches::new();
    for record in records {
        let branch = record.backend().map_or_else(
            || record.0.iter().next().cloned().unwrap_or_default(),
            str::to_string,
        );
        let entry = branches.entry(branch).or_default();
        entry.0 += 1;
        entry.1.insert(record.0.into_iter().collect());
    }
    branches
}

/// What is wrong with one proxy's split: shares out of tolerance, answers from elsewhere,
/// branch lines missing.
fn split_problems(who: &str, split: &Split, branches: &Branches) -> Vec<String> {
    let mut problems = Vec::new();
    for (backend, share) in split.shares {
        let count = branches.get(*backend).map_or(0, |(count, _)| *count);
        let got = count as f64 / SPLIT_REQUESTS as f64;
        if (got - share).abs() >= split.tolerance {
            problems.push(format!(
                "{who}: {backend} got {got:.3} of the requests, not {share} ± {}",
                split.tolerance
            ));
        }
    }
    for branch in branches.keys() {
        if !split.shares.iter().any(|(backend, _)| backend == branch) {
            problems.push(format!("{who}: {branch} answered"));
        }
    }
    for (backend, line) in split.branch_lines {
        let records = branches.get(*backend).map(|(_, r)| r.iter()).into_iter();
        if !records
            .flatten()
            .all(|record| record.iter().any(|l| l == line))
        {
            problems.push(format!("{who}: {backend}'s answers lack `{line}`"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weighted_splits_divide_alike_through_envoy_and_the_sidecar() {
    let backends = Backends::start().await;
    let proxies = SideBySide::start(&backends).await;
    let mut problems = Vec::new();
    for split in &SPLITS {
        let by_envoy = tally_split(proxies.port(Through::Envoy, split.front), split).await;
        let by_sidecar = tally_split(proxies.port(Through::Sidecar, split.front), split).await;
        let counts = |branches: &Branches| -> Vec<(String, usize)> {
            branches.iter().map(|(b, (n, _))| (b.clone(), *n)).collect()
        };
        eprintln!(
            "{}{}: Envoy {:?}, sidecar {:?}",
            split.host,
            split.target,
            counts(&by_envoy),
            counts(&by_sidecar)
        );
        problems.extend(split_problems("Envoy", split, &by_envoy));
        problems.extend(split_problems("sidecar", split, &by_sidecar));
        // Each branch answers alike through both: the same lines in its answers.
        for (backend, _) in split.shares {
            let lines = |branches: &Branches| -> BTreeSet<String> {
                let records = branches.get(*backend).map(|(_, r)| r.iter()).into_iter();
                records.flatten().flatten().cloned().collect()
            };
            let (envoy_lines, sidecar_lines) = (lines(&by_envoy), lines(&by_sidecar));
            for (who, one, other) in [
                ("Envoy", &envoy_lines, &sidecar_lines),
                ("sidecar", &sidecar_lines, &envoy_lines),
            ] {
                for line in one.difference(other) {
                    problems.push(format!(
                        "{}{} {backend}: only {who}: {line}",
                        split.host, split.target
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The sidecar's counters saw every request of the splits.
    let answered = proxies
        .sidecar
        .stat("switchyard_proxy_downstream_responses_total{code_class=\"2xx\"}")
        .await;
    assert!(
        answered >= (SPLITS.len() * SPLIT_REQUESTS) as u64,
        "{answered}"
    );
}
