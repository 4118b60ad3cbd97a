//! AWS stickiness and source-address rules through the sidecar and through Envoy with the same
//! resources, and the same answers: lb_cookie stickiness (the stateful session filter's
//! cookie, which each proxy honours when the other wrote it), app_cookie stickiness (Switchyard's
//! application-cookie step), source-ip rules (the early header mutation that writes the
//! client's address before routing), and examples/aws-alb.yaml with its group stickiness,
//! served to the sidecar with every type SYNCED. Backends on 127.0.0.1; proxies in us-east-1a,
//! the targets' zone.

use std::collections::BTreeMap;

use crate::aws_alb::{client, http_front, target_list, with_ports};
use crate::aws_attributes::{group, set_cookie, tally_cookie};
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// Starts the proxy `through` in us-east-1a as `node_id` against `switchyard`, and waits for
/// its ACKs.
async fn start_proxy(through: Through, switchyard: &Switchyard, node_id: &str) -> Proxy {
    let xds = switchyard.running.xds_addr;
    let proxy = match through {
        Through::Envoy => {
            Proxy::Envoy(Envoy::start_in(xds, node_id, "us-east-1", "us-east-1a").await)
        }
        Through::Sidecar => Proxy::Sidecar(
            Sidecar::start_replacing(
                "envoy-bootstrap.yaml",
                xds,
                node_id,
                &[
                    ("region: us-central1\n", "region: us-east-1\n"),
                    ("zone: us-central1-a\n", "zone: us-east-1a\n"),
                ],
            )
            .await,
        ),
    };
    switchyard.wait_for_acks(node_id).await;
    proxy
}

/// Waits until GET `url` answers 200.
async fn wait_for_success(url: &str) {
    wait_for(&format!("GET {url} to answer 200"), || async {
        let response = http().get(url).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

/// The whole Set-Cookie header of `response` for cookie `name`.
fn set_cookie_header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// What one proxy did with an lb_cookie group: the cookie it issued (`name=value`), the
/// attributes after the value, and the target the cookie names.
struct Issued {
    cookie: String,
    attributes: String,
    target: String,
}

/// Without a cookie, 60 round-robin requests reach all three targets; the AWSALB cookie the
/// proxy issues holds 60 requests on the target that answered; the cookie `earlier` another
/// proxy issued holds 60 requests on its target here too (the same encoding).
async fn lb_cookie_through(
    through: Through,
    switchyard: &Switchyard,
    listen: u16,
    earlier: Option<&Issued>,
) -> Issued {
    let node_id = format!("lb-cookie-{through:?}-{}", earlier.is_some()).to_lowercase();
    let proxy = start_proxy(through, switchyard, &node_id).await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for_success(&url).await;
    let spread = tally_cookie(&url, None, 60).await;
    assert_eq!(
        spread.len(),
        3,
        "{through:?}: round robin without a cookie: {spread:?}"
    );

    let response = client().get(&url).send().await.unwrap();
    let header = set_cookie_header(&response, "AWSALB")
        .unwrap_or_else(|| panic!("{through:?} issues AWSALB: {:?}", response.headers()));
    let target = response.text().await.unwrap();
    let (cookie, attributes) = header.split_once(';').unwrap();
    let held = tally_cookie(&url, Some(&format!("theme=dark; {cookie}")), 60).await;
    assert_eq!(
        held,
        BTreeMap::from([(target.clone(), 60)]),
        "{through:?}: AWSALB holds the client on {target}"
    );
    if let Some(earlier) = earlier {
        let held = tally_cookie(&url, Some(&earlier.cookie), 60).await;
        assert_eq!(
            held,
            BTreeMap::from([(earlier.target.clone(), 60)]),
            "{through:?} honours the AWSALB cookie the other proxy wrote"
        );
        assert_eq!(
            attributes, earlier.attributes,
            "{through:?} writes the cookie's attributes as the other proxy does"
        );
    }
    drop(proxy);
    Issued {
        cookie: cookie.to_string(),
        attributes: attributes.to_string(),
        target,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_stickiness_holds_alike_through_envoy_and_the_sidecar() {
    let backends = [
        Backend::start("one").await,
        Backend::start("two").await,
        Backend::start("three").await,
    ];
    let ports: Vec<u16> = backends.iter().map(Backend::port).collect();
    let listen = free_port();
    let stickiness = [
        ("stickiness.enabled", "true"),
        ("stickiness.type", "lb_cookie"),
        ("stickiness.lb_cookie.duration_seconds", "120"),
    ];
    let template = format!(
        "{}{}",
        http_front(listen, "Web"),
        group("Web", &ports, &stickiness)
    );
    let switchyard = Switchyard::start(&template).await;
    let envoy = lb_cookie_through(Through::Envoy, &switchyard, listen, None).await;
    assert!(
        envoy.attributes == " Max-Age=120; Path=/; HttpOnly",
        "Envoy's cookie: {}",
        envoy.attributes
    );
    let sidecar = lb_cookie_through(Through::Sidecar, &switchyard, listen, Some(&envoy)).await;
    // And back: Envoy holds the sidecar's cookie on its target.
    let again = lb_cookie_through(Through::Envoy, &switchyard, listen, Some(&sidecar)).await;
    assert_eq!(again.attributes, sidecar.attributes);
}

/// Before the application sets its cookie there is no session (no AWSALBAPP-0, round robin
/// over all three targets); with the application's cookie and the proxy's, 60 requests go to
/// the target that set the session; the proxy's cookie alone holds no one.
async fn app_cookie_through(through: Through, switchyard: &Switchyard, listen: u16) {
    let node_id = format!("app-cookie-{through:?}").to_lowercase();
    let proxy = start_proxy(through, switchyard, &node_id).await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    wait_for_success(&url("/")).await;
    let client = client();
    let plain = client.get(url("/")).send().await.unwrap();
    assert_eq!(
        set_cookie(&plain, "AWSALBAPP-0"),
        None,
        "{through:?}: no AWSALBAPP-0 without the application's cookie: {:?}",
        plain.headers()
    );
    let spread = tally_cookie(&url("/"), None, 60).await;
    assert_eq!(spread.len(), 3, "{through:?}: round robin: {spread:?}");

    let login = client.get(url("/login")).send().await.unwrap();
    let application = set_cookie(&login, "session").expect("the target sets its cookie");
    let issued = set_cookie(&login, "AWSALBAPP-0").unwrap_or_else(|| {
        panic!(
            "{through:?}: AWSALBAPP-0 comes with it: {:?}",
            login.headers()
        )
    });
    let first = login.text().await.unwrap();
    let both = format!("theme=dark; {application}; {issued}");
    let held = tally_cookie(&url("/"), Some(&both), 60).await;
    assert_eq!(
        held,
        BTreeMap::from([(first.clone(), 60)]),
        "{through:?}: both cookies hold the client on {first}"
    );
    let alone = format!("theme=dark; {issued}");
    let released = tally_cookie(&url("/"), Some(&alone), 60).await;
    assert_eq!(
        released.len(),
        3,
        "{through:?}: AWSALBAPP-0 without the application's cookie is not sticky: {released:?}"
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_stickiness_follows_the_application_alike_through_envoy_and_the_sidecar() {
    let (_targets, listen, template) = crate::aws_attributes::app_cookie_group().await;
    let switchyard = Switchyard::start(&template).await;
    app_cookie_through(Through::Envoy, &switchyard, listen).await;
    app_cookie_through(Through::Sidecar, &switchyard, listen).await;
}

/// Rules on the client's address: 10.0.0.0/8 (not this client) first, then 127.0.0.0/8, and
/// a default group; each group one target named after it.
fn source_ip_template(listen: u16, far: u16, near: u16, fallback: u16) -> String {
    let front = http_front(listen, "Fallback");
    let one = |name: &str, port: u16| {
        format!(
            "  {name}:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n      TargetType: ip\n      Protocol: HTTP\n      Port: {port}\n      HealthCheckEnabled: false\n      Targets: [{}]\n",
            target_list(&[(port, "us-east-1a")])
        )
    };
    format!(
        r#"{front}  FarRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions: [{{Field: source-ip, SourceIpConfig: {{Values: ["10.0.0.0/8"]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Far}}]
  NearRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 20
      Conditions: [{{Field: source-ip, SourceIpConfig: {{Values: ["127.0.0.0/8"]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Near}}]
{}{}{}"#,
        one("Far", far),
        one("Near", near),
        one("Fallback", fallback),
    )
}

/// From 127.0.0.1 every request takes the 127.0.0.0/8 rule, also when it claims another
/// address in the header the proxy writes the client's address into.
async fn source_ip_through(through: Through, switchyard: &Switchyard, listen: u16) {
    let node_id = format!("source-ip-{through:?}").to_lowercase();
    let proxy = start_proxy(through, switchyard, &node_id).await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for_success(&url).await;
    let plain = tally(&url, 20).await;
    assert_eq!(
        plain,
        BTreeMap::from([("near".to_string(), 20)]),
        "{through:?}: the loopback client takes the 127.0.0.0/8 rule"
    );
    let client = client();
    for claimed in ["10.1.2.3", "::1, 10.0.0.1"] {
        let body = client
            .get(&url)
            .header("x-switchyard-source-address", claimed)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            body, "near",
            "{through:?}: a client claiming {claimed} is still routed by its own address"
        );
    }
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_rules_route_alike_through_envoy_and_the_sidecar() {
    let far = Backend::start("far").await;
    let near = Backend::start("near").await;
    let fallback = Backend::start("fallback").await;
    let listen = free_port();
    let template = source_ip_template(listen, far.port(), near.port(), fallback.port());
    let switchyard = Switchyard::start(&template).await;
    source_ip_through(Through::Envoy, &switchyard, listen).await;
    source_ip_through(Through::Sidecar, &switchyard, listen).await;
}

/// examples/aws-alb.yaml as written, on free ports.
fn aws_example(listen: u16, ports: [u16; 5]) -> String {
    let example = std::fs::read_to_string(repo_root().join("examples/aws-alb.yaml")).unwrap();
    with_ports(
        &example,
        &[
            (10000, listen),
            (8081, ports[0]),
            (8082, ports[1]),
            (8083, ports[2]),
            (8084, ports[3]),
            (8085, ports[4]),
        ],
    )
}

/// Every resource type the proxy subscribed to is SYNCED in Switchyard's /clients.
async fn assert_every_type_synced(switchyard: &Switchyard, node_id: &str) {
    let client = switchyard.client(node_id).await.unwrap();
    let types = client["types"].as_object().unwrap();
    assert!(types.len() >= 4, "{client}");
    for (name, status) in types {
        assert_eq!(status["status"], "SYNCED", "{node_id}: {name}: {client}");
    }
}

/// The example's sticky parts: /api/* (ApiTargets, lb_cookie for 600 s) held by AWSALB, and
/// the default split held on WebGreen by the group cookie the proxy issues.
async fn aws_example_through(through: Through, switchyard: &Switchyard, listen: u16) {
    let node_id = format!("aws-example-{through:?}").to_lowercase();
    let proxy = start_proxy(through, switchyard, &node_id).await;
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    wait_for_success(&url("/api/ready")).await;
    assert_every_type_synced(switchyard, &node_id).await;
    if let Proxy::Sidecar(sidecar) = &proxy {
        assert_eq!(
            sidecar
                .stat("switchyard_proxy_xds_updates_rejected_total")
                .await,
            0,
            "{}",
            sidecar.log()
        );
    }
    let client = client();
    let api = client.get(url("/api/items")).send().await.unwrap();
    let header = set_cookie_header(&api, "AWSALB")
        .unwrap_or_else(|| panic!("{through:?}: /api issues AWSALB: {:?}", api.headers()));
    assert!(header.contains("Max-Age=600"), "{through:?}: {header}");
    let first = api.text().await.unwrap();
    let cookie = header.split(';').next().unwrap();
    let held = tally_cookie(&url("/api/items"), Some(cookie), 60).await;
    assert_eq!(
        held,
        BTreeMap::from([(first.clone(), 60)]),
        "{through:?}: AWSALB holds /api on {first}"
    );

    // Group stickiness: the split issues AWSALBTG naming the group it drew; with the cookie of
    // WebGreen, 60 requests stay on green.
    let mut green_cookie = None;
    for _ in 0..200 {
        let response = client.get(url("/")).send().await.unwrap();
        let header = set_cookie_header(&response, "AWSALBTG");
        if response.text().await.unwrap() == "green" {
            green_cookie = header;
            break;
        }
    }
    let green_cookie = green_cookie.expect("20% of 200 draws reach green, with its cookie");
    assert!(
        green_cookie.starts_with("AWSALBTG=WebGreen;") && green_cookie.contains("Max-Age=3600"),
        "{through:?}: {green_cookie}"
    );
    let cookie = green_cookie.split(';').next().unwrap();
    let held = tally_cookie(&url("/"), Some(cookie), 60).await;
    assert_eq!(
        held,
        BTreeMap::from([("green".to_string(), 60)]),
        "{through:?}: AWSALBTG holds the client on WebGreen"
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_example_is_served_to_the_sidecar_with_every_type_synced_and_sticks_alike() {
    let backends = [
        Backend::start("blue-a").await,
        Backend::start("blue-b").await,
        Backend::start("green").await,
        Backend::start("api-a").await,
        Backend::start("api-b").await,
    ];
    let listen = free_port();
    let ports = backends.each_ref().map(Backend::port);
    let switchyard = Switchyard::start(&aws_example(listen, ports)).await;
    aws_example_through(Through::Envoy, &switchyard, listen).await;
    aws_example_through(Through::Sidecar, &switchyard, listen).await;
}
