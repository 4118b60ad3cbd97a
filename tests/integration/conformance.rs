//! xDS protocol conformance, with a raw client and no Envoy: one test per scenario, each run
//! for state-of-the-world and delta, over ADS and over the per-type services where the
//! scenario applies. "Nothing else was sent" is checked with a barrier (a request for a type
//! the server does not serve, whose one answer comes after every response that was due),
//! never by waiting.

use std::collections::HashMap;

use crate::common::xds::*;
use crate::common::*;

/// Backend services `names`, each on its own NEG (endpoint port from `ports`), routed by path
/// from one URL map `lb` on one listener.
fn config(names: &[&str], ports: &HashMap<&str, u16>) -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for name in names {
        let port = ports.get(name).copied().unwrap_or(8080);
        text += &format!("- name: {name}-neg\n  zone: us-central1-a\n  endpoints: [{{ipAddress: 10.0.0.1, port: {port}}}]\n");
    }
    text += "backendServices:\n";
    for name in names {
        text += &format!("- name: {name}\n  backends: [{{group: {name}-neg, balancingMode: RATE, maxRate: 10}}]\n");
    }
    text += &format!(
        "urlMaps:\n- name: lb\n  defaultService: {}\n  hostRules: [{{hosts: ['*'], pathMatcher: m}}]\n  pathMatchers:\n  - name: m\n    defaultService: {}\n    pathRules:\n",
        names[0], names[0]
    );
    for name in names {
        text += &format!("    - {{paths: [/{name}], service: {name}}}\n");
    }
    text += "targetHttpProxies:\n- {name: proxy, urlMap: lb}\nforwardingRules:\n- {name: fr, IPAddress: 127.0.0.1, portRange: '10080', target: proxy}\n";
    text
}

fn ports(entries: &[(&'static str, u16)]) -> HashMap<&'static str, u16> {
    entries.iter().copied().collect()
}

async fn serve(names: &[&str]) -> Switchyard {
    Switchyard::start(&config(names, &ports(&[]))).await
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

/// One response of `type_url`, naming `names`.
fn sotw(type_url: &str, names: &[&str]) -> (String, Vec<String>) {
    (short(type_url).to_string(), s(names))
}

fn delta(type_url: &str, names: &[&str], removed: &[&str]) -> (String, Vec<String>, Vec<String>) {
    (short(type_url).to_string(), s(names), s(removed))
}

mod sotw {
    use super::*;

    #[tokio::test]
    async fn the_first_request_is_answered_even_for_names_that_do_not_exist() {
        let switchyard = serve(&["a"]).await;
        for service in [Service::Ads, Service::PerType(ENDPOINT)] {
            let mut client = SotwClient::open(switchyard.running.xds_addr, service).await;
            client.request(ENDPOINT, &["nope"], "", "");
            let first = client.recv().await;
            assert_eq!(sotw_summary(&[first]), [sotw(ENDPOINT, &[])], "{service:?}");
        }
    }

    #[tokio::test]
    async fn an_ack_is_not_answered() {
        let switchyard = serve(&["a", "b"]).await;
        for service in [Service::Ads, Service::PerType(CLUSTER)] {
            let mut client = SotwClient::open(switchyard.running.xds_addr, service).await;
            client.request(CLUSTER, &[], "", "");
            let clusters = client.recv().await;
            assert_eq!(
                sotw_summary(std::slice::from_ref(&clusters)),
                [sotw(CLUSTER, &["a", "b"])]
            );
            client.ack(&clusters, &[]);
            assert!(client.drain().await.is_empty(), "{service:?}");
        }
    }

    #[tokio::test]
    async fn a_nack_is_not_answered_and_the_next_config_is_sent() {
        let switchyard = serve(&["a"]).await;
        let mut client = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.request(CLUSTER, &[], "", "");
        let first = client.recv().await;
        client.ack(&first, &[]);
        switchyard.edit(&config(&["a", "b"], &ports(&[]))).await;
        let pushed = client.drain().await;
        assert_eq!(sotw_summary(&pushed), [sotw(CLUSTER, &["a", "b"])]);
        client.nack(
            &pushed[0],
            &[],
            &first.version_info,
            "cluster b is not acceptable",
        );
        assert!(
            client.drain().await.is_empty(),
            "the rejected content is not sent again"
        );
        let status = switchyard.client("conformance").await.unwrap();
        assert_eq!(
            status["types"]["Cluster"]["last_nack"]["error_detail"],
            "cluster b is not acceptable"
        );
        assert_eq!(status["types"]["Cluster"]["status"], "NACKED");
        switchyard.edit(&config(&["a", "c"], &ports(&[]))).await;
        let fixed = client.drain().await;
        assert_eq!(sotw_summary(&fixed), [sotw(CLUSTER, &["a", "c"])]);
        client.ack(&fixed[0], &[]);
        assert!(client.drain().await.is_empty());
    }

    #[tokio::test]
    async fn a_request_with_a_stale_nonce_is_ignored() {
        let switchyard = serve(&["a", "b"]).await;
        let mut client = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.request(ENDPOINT, &["a"], "", "");
        let first = client.recv().await;
        client.ack(&first, &["a"]);
        switchyard
            .edit(&config(&["a", "b"], &ports(&[("a", 9000)])))
            .await;
        let pushed = client.drain().await;
        assert_eq!(sotw_summary(&pushed), [sotw(ENDPOINT, &["a"])]);
        // Superseded by `pushed`, which the client has not seen yet in this story.
        client.request(ENDPOINT, &["a", "b"], &first.nonce, &first.version_info);
        assert!(client.drain().await.is_empty());
        client.request(
            ENDPOINT,
            &["a", "b"],
            &pushed[0].nonce,
            &pushed[0].version_info,
        );
        assert_eq!(
            sotw_summary(&client.drain().await),
            [sotw(ENDPOINT, &["b"])]
        );
    }

    #[tokio::test]
    async fn a_resubscription_after_an_unsubscription_is_answered() {
        let switchyard = serve(&["a", "b"]).await;
        for service in [Service::Ads, Service::PerType(ENDPOINT)] {
            let mut client = SotwClient::open(switchyard.running.xds_addr, service).await;
            client.request(ENDPOINT, &["a", "b"], "", "");
            let first = client.recv().await;
            assert_eq!(
                sotw_summary(std::slice::from_ref(&first)),
                [sotw(ENDPOINT, &["a", "b"])]
            );
            client.ack(&first, &["a"]);
            let dropped = client.drain().await;
            assert_eq!(dropped.len(), 1, "a change of subscription is answered");
            client.ack(&dropped[0], &["a", "b"]);
            assert_eq!(
                sotw_summary(&client.drain().await),
                [sotw(ENDPOINT, &["b"])],
                "{service:?}"
            );
        }
    }

    #[tokio::test]
    async fn routes_stop_naming_a_cluster_before_it_is_removed() {
        let switchyard = serve(&["a", "b", "c"]).await;
        let mut client = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.request(CLUSTER, &[], "", "");
        client.request(ENDPOINT, &["a", "b", "c"], "", "");
        client.request(LISTENER, &[], "", "");
        client.request(ROUTE, &["lb"], "", "");
        let names = |type_url: &str| -> &'static [&'static str] {
            match type_url {
                ENDPOINT => &["a", "b", "c"],
                ROUTE => &["lb"],
                _ => &[],
            }
        };
        for response in client.drain().await {
            client.ack(&response, names(&response.type_url));
        }
        assert!(client.drain().await.is_empty());
        switchyard.edit(&config(&["a", "b"], &ports(&[]))).await;
        let pushed = client.drain().await;
        let order: Vec<String> = pushed
            .iter()
            .map(|r| short(&r.type_url).to_string())
            .collect();
        assert_eq!(
            order,
            ["RouteConfiguration", "Cluster"],
            "{:?}",
            sotw_summary(&pushed)
        );
        assert_eq!(sotw_summary(&pushed[1..]), [sotw(CLUSTER, &["a", "b"])]);
    }

    #[tokio::test]
    async fn clients_get_only_their_own_changes_one_message_each() {
        let switchyard = serve(&["a", "b"]).await;
        let mut only_a = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
        let mut only_b =
            SotwClient::open(switchyard.running.xds_addr, Service::PerType(ENDPOINT)).await;
        for (client, name) in [(&mut only_a, "a"), (&mut only_b, "b")] {
            client.request(ENDPOINT, &[name], "", "");
            let first = client.recv().await;
            client.ack(&first, &[name]);
        }
        switchyard
            .edit(&config(&["a", "b"], &ports(&[("b", 9000)])))
            .await;
        assert!(only_a.drain().await.is_empty());
        assert_eq!(
            sotw_summary(&only_b.drain().await),
            [sotw(ENDPOINT, &["b"])]
        );
    }

    #[tokio::test]
    async fn a_client_that_nacks_everything_never_gets_the_same_content_twice() {
        let switchyard = serve(&["a"]).await;
        let mut client = SotwClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.request(CLUSTER, &[], "", "");
        client.request(ENDPOINT, &["a"], "", "");
        let mut seen: Vec<(String, String)> = Vec::new();
        for round in 0..3 {
            for response in client.drain().await {
                let key = (response.type_url.clone(), response.version_info.clone());
                assert!(!seen.contains(&key), "{key:?} was sent twice");
                seen.push(key);
                let names: &[&str] = if response.type_url == ENDPOINT {
                    &["a"]
                } else {
                    &[]
                };
                client.nack(&response, names, "", "rejected by a picky client");
            }
            assert!(client.drain().await.is_empty());
            switchyard
                .edit(&config(&["a"], &ports(&[("a", 9000 + round)])))
                .await;
        }
        assert!(seen.len() >= 4, "{seen:?}");
    }
}

mod delta {
    use super::*;

    #[tokio::test]
    async fn the_first_request_is_answered_and_missing_names_are_reported_removed() {
        let switchyard = serve(&["a"]).await;
        for service in [Service::Ads, Service::PerType(ENDPOINT)] {
            let mut client = DeltaClient::open(switchyard.running.xds_addr, service).await;
            client.subscribe(ENDPOINT, &["a", "nope"], &[]);
            let first = client.recv().await;
            assert_eq!(
                delta_summary(&[first]),
                [delta(ENDPOINT, &["a"], &["nope"])],
                "{service:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_ack_is_not_answered_and_every_response_has_a_fresh_nonce() {
        let switchyard = serve(&["a", "b"]).await;
        for service in [Service::Ads, Service::PerType(CLUSTER)] {
            let mut client = DeltaClient::open(switchyard.running.xds_addr, service).await;
            client.subscribe(CLUSTER, &["*"], &[]);
            let first = client.recv().await;
            client.ack(&first);
            assert!(client.drain().await.is_empty());
            switchyard
                .edit(&config(&["a", "b", "c"], &ports(&[])))
                .await;
            let pushed = client.drain().await;
            assert_eq!(delta_summary(&pushed), [delta(CLUSTER, &["c"], &[])]);
            assert_ne!(pushed[0].nonce, first.nonce);
            client.ack(&pushed[0]);
            switchyard.edit(&config(&["a", "b"], &ports(&[]))).await;
            let removed = client.drain().await;
            assert_eq!(
                delta_summary(&removed),
                [delta(CLUSTER, &[], &["c"])],
                "{service:?}"
            );
            client.ack(&removed[0]);
        }
    }

    #[tokio::test]
    async fn a_nack_keeps_the_stream_and_the_next_config_is_sent() {
        let switchyard = serve(&["a"]).await;
        let mut client = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.subscribe(CLUSTER, &["*"], &[]);
        let first = client.recv().await;
        client.ack(&first);
        switchyard.edit(&config(&["a", "b"], &ports(&[]))).await;
        let pushed = client.drain().await;
        client.nack(&pushed[0], "cluster b is not acceptable");
        assert!(client.drain().await.is_empty());
        let status = switchyard.client("conformance").await.unwrap();
        assert_eq!(status["protocol"], "delta");
        assert_eq!(status["types"]["Cluster"]["status"], "NACKED");
        switchyard.edit(&config(&["a", "c"], &ports(&[]))).await;
        let fixed = client.drain().await;
        assert_eq!(
            delta_summary(&fixed),
            [delta(CLUSTER, &["c"], &[])],
            "what differs from the last ACKed state: c added (b never applied)"
        );
    }

    #[tokio::test]
    async fn subscription_changes_apply_whatever_the_nonce() {
        let switchyard = serve(&["a", "b"]).await;
        let mut client = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.subscribe(ENDPOINT, &["a"], &[]);
        let first = client.recv().await;
        client.ack(&first);
        // A subscription change that carries an old nonce is still a subscription change.
        let mut late = envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest {
            type_url: ENDPOINT.into(),
            resource_names_subscribe: vec!["b".into()],
            response_nonce: "0".into(),
            ..Default::default()
        };
        late.node = None;
        client.send(late);
        assert_eq!(
            delta_summary(&client.drain().await),
            [delta(ENDPOINT, &["b"], &[])]
        );
    }

    #[tokio::test]
    async fn a_resubscription_after_an_unsubscription_is_answered() {
        let switchyard = serve(&["a", "b"]).await;
        for service in [Service::Ads, Service::PerType(ENDPOINT)] {
            let mut client = DeltaClient::open(switchyard.running.xds_addr, service).await;
            client.subscribe(ENDPOINT, &["a", "b"], &[]);
            let first = client.recv().await;
            client.ack(&first);
            client.subscribe(ENDPOINT, &[], &["b"]);
            assert!(client.drain().await.is_empty());
            client.subscribe(ENDPOINT, &["b"], &[]);
            assert_eq!(
                delta_summary(&client.drain().await),
                [delta(ENDPOINT, &["b"], &[])],
                "{service:?}"
            );
        }
    }

    #[tokio::test]
    async fn wildcard_and_named_subscriptions_mix() {
        let switchyard = serve(&["a", "b", "c"]).await;
        let mut client = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.subscribe(ENDPOINT, &["a"], &[]);
        let named = client.recv().await;
        client.ack(&named);
        client.subscribe(ENDPOINT, &["*"], &[]);
        let everything = client.drain().await;
        assert_eq!(
            delta_summary(&everything),
            [delta(ENDPOINT, &["b", "c"], &[])]
        );
        client.ack(&everything[0]);
        client.subscribe(ENDPOINT, &[], &["*"]);
        assert!(client.drain().await.is_empty());
        switchyard
            .edit(&config(
                &["a", "b", "c"],
                &ports(&[("b", 9000), ("a", 9001)]),
            ))
            .await;
        assert_eq!(
            delta_summary(&client.drain().await),
            [delta(ENDPOINT, &["a"], &[])],
            "only the named subscription is left"
        );
    }

    #[tokio::test]
    async fn a_reconnecting_client_is_sent_only_what_differs() {
        let switchyard = serve(&["a", "b", "c"]).await;
        let mut first = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        first.subscribe(CLUSTER, &["*"], &[]);
        let held: HashMap<String, String> = first
            .recv()
            .await
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        drop(first);
        switchyard
            .edit(&config(&["a", "b", "d"], &ports(&[])))
            .await;
        let mut again = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        let mut reconnect = envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest {
            node: Some(node("conformance")),
            type_url: CLUSTER.into(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: held,
            ..Default::default()
        };
        reconnect
            .initial_resource_versions
            .insert("gone".into(), "0123".into());
        again.send(reconnect);
        assert_eq!(
            delta_summary(&again.drain().await),
            [delta(CLUSTER, &["d"], &["c", "gone"])],
            "a and b are held at their versions; c and gone are removed"
        );
    }

    #[tokio::test]
    async fn routes_stop_naming_a_cluster_before_it_is_removed() {
        let switchyard = serve(&["a", "b", "c"]).await;
        let mut client = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.subscribe(CLUSTER, &["*"], &[]);
        client.subscribe(ENDPOINT, &["a", "b", "c"], &[]);
        client.subscribe(LISTENER, &["*"], &[]);
        client.subscribe(ROUTE, &["lb"], &[]);
        for response in client.drain().await {
            client.ack(&response);
        }
        switchyard.edit(&config(&["a", "b"], &ports(&[]))).await;
        assert_eq!(
            delta_summary(&client.drain().await),
            [
                delta(ROUTE, &["lb"], &[]),
                delta(CLUSTER, &[], &["c"]),
                delta(ENDPOINT, &[], &["c"]),
            ]
        );
    }

    #[tokio::test]
    async fn clients_get_only_their_own_changes_one_message_each() {
        let switchyard = serve(&["a", "b"]).await;
        let mut only_a = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        let mut only_b =
            DeltaClient::open(switchyard.running.xds_addr, Service::PerType(ENDPOINT)).await;
        for (client, name) in [(&mut only_a, "a"), (&mut only_b, "b")] {
            client.subscribe(ENDPOINT, &[name], &[]);
            let first = client.recv().await;
            client.ack(&first);
        }
        switchyard
            .edit(&config(&["a", "b"], &ports(&[("b", 9000)])))
            .await;
        assert!(only_a.drain().await.is_empty());
        assert_eq!(
            delta_summary(&only_b.drain().await),
            [delta(ENDPOINT, &["b"], &[])]
        );
    }

    #[tokio::test]
    async fn a_client_that_nacks_everything_never_gets_the_same_content_twice() {
        let switchyard = serve(&["a"]).await;
        let mut client = DeltaClient::open(switchyard.running.xds_addr, Service::Ads).await;
        client.subscribe(CLUSTER, &["*"], &[]);
        client.subscribe(ENDPOINT, &["a"], &[]);
        let mut seen: Vec<(String, String)> = Vec::new();
        for round in 0..3 {
            for response in client.drain().await {
                let key = (
                    response.type_url.clone(),
                    response.system_version_info.clone(),
                );
                assert!(!seen.contains(&key), "{key:?} was sent twice");
                seen.push(key);
                client.nack(&response, "rejected by a picky client");
            }
            assert!(client.drain().await.is_empty());
            switchyard
                .edit(&config(&["a"], &ports(&[("a", 9000 + round)])))
                .await;
        }
        assert!(seen.len() >= 4, "{seen:?}");
    }
}
