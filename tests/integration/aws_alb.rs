//! The AWS dialect end to end: CloudFormation templates → Switchyard → ADS → a real Envoy →
//! HTTP backends on 127.0.0.1. Covers examples/aws-alb.yaml (rules, redirect, fixed response,
//! the weighted split and group stickiness), a rules table with every served condition type
//! and priority order, and lb_cookie stickiness under round robin (app_cookie stickiness,
//! which follows the application's cookie: aws_attributes.rs).

use std::collections::BTreeMap;

use crate::common::*;

/// An HTTP client that follows no redirect, so that they can be looked at.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The template with its ports replaced: each (from, to) in order.
pub fn with_ports(template: &str, ports: &[(u16, u16)]) -> String {
    ports.iter().fold(template.to_string(), |text, (from, to)| {
        text.replace(&from.to_string(), &to.to_string())
    })
}

pub struct Alb {
    pub switchyard: Switchyard,
    pub envoy: Envoy,
    pub listen: u16,
}

impl Alb {
    /// Serves `template` to an Envoy and waits until GET `ready_path` answers `ready_body`.
    pub async fn start(template: &str, node_id: &str, ready_path: &str, ready_body: &str) -> Alb {
        Self::start_in(
            template,
            node_id,
            ("us-east-1", "us-east-1a"),
            ready_path,
            ready_body,
        )
        .await
    }

    /// As [`Alb::start`], with an Envoy reporting `locality` (region, zone).
    pub async fn start_in(
        template: &str,
        node_id: &str,
        locality: (&str, &str),
        ready_path: &str,
        ready_body: &str,
    ) -> Alb {
        let switchyard = Switchyard::start(template).await;
        let (region, zone) = locality;
        let envoy = Envoy::start_in(switchyard.running.xds_addr, node_id, region, zone).await;
        switchyard.wait_for_acks(node_id).await;
        let listen = listen_port(template);
        wait_for_body(
            &format!("http://127.0.0.1:{listen}{ready_path}"),
            ready_body,
        )
        .await;
        Alb {
            switchyard,
            envoy,
            listen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen)
    }
}

/// The start of a template: a load balancer on 127.0.0.1 and an HTTP listener on `listen`
/// (marked for [`listen_port`]) forwarding by default to target group `group`.
pub fn http_front(listen: u16, group: &str) -> String {
    format!(
        r#"Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties: {{Type: application}}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {listen} # listener
      Protocol: HTTP
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref {group}}}]
"#
    )
}

/// Targets on 127.0.0.1 at (port, zone), as a template's `Targets` list items.
pub fn target_list(targets: &[(u16, &str)]) -> String {
    targets
        .iter()
        .map(|(port, zone)| format!("{{Id: 127.0.0.1, Port: {port}, AvailabilityZone: {zone}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `TargetGroupAttributes` items, one line each under a six-space indent.
pub fn attribute_items(attributes: &[(&str, &str)]) -> String {
    attributes
        .iter()
        .map(|(key, value)| format!("      - {{Key: {key}, Value: \"{value}\"}}\n"))
        .collect()
}

/// The listener port of a template, which the tests mark: `Port: <listen> # listener`.
fn listen_port(template: &str) -> u16 {
    template
        .lines()
        .find(|line| line.contains("# listener"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|port| port.parse().ok())
        .expect("the template marks its listener port with `# listener`")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_template_routes_splits_and_keeps_groups() {
    let blue_a = Backend::start("blue-a").await;
    let blue_b = Backend::start("blue-b").await;
    let green = Backend::start("green").await;
    let api_a = Backend::start("api-a").await;
    let api_b = Backend::start("api-b").await;
    let listen = free_port();
    let example = std::fs::read_to_string(repo_root().join("examples/aws-alb.yaml")).unwrap();
    let template = with_ports(
        &example.replace("Default: 10000", "Default: 10000 # listener"),
        &[
            (10000, listen),
            (8081, blue_a.port()),
            (8082, blue_b.port()),
            (8083, green.port()),
            (8084, api_a.port()),
            (8085, api_b.port()),
        ],
    );
    let alb = Alb::start(&template, "aws-example", "/api/ready", "api-a").await;
    let client = client();

    // Rules, in priority order.
    let api = tally(&alb.url("/api/items"), 20).await;
    // Rejects /api requests that fail (the tally's total counts failures, so it could not).
    assert_no_errors(&api, "GET /api/items");
    assert!(
        api.keys().all(|body| body.starts_with("api-")),
        "/api/* goes to ApiTargets: {api:?}"
    );
    let admin = client
        .get(alb.url("/anything"))
        .header("host", "Admin.Example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 403);
    assert_eq!(admin.headers()["content-type"], "text/plain");
    assert_eq!(admin.text().await.unwrap(), "admin is closed");
    let moved = client.get(alb.url("/old/page?x=1")).send().await.unwrap();
    assert_eq!(moved.status().as_u16(), 301);
    let location = moved.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.ends_with("/new/old/page?x=1"),
        "#{{path}} is the request's path without its slash, the query is kept: {location}"
    );

    // The default action: 80/20 between the groups, drawn per request for clients without
    // the group cookie. 1,000 requests: the blue share is 0.8 ± 0.05 (more than 3.9 standard
    // deviations of a binomial share).
    let mut by_group: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..1000 {
        let response = client.get(alb.url("/")).send().await.unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.text().await.unwrap();
        let group = if body == "green" { "green" } else { "blue" };
        *by_group.entry(group).or_default() += 1;
        cookies.insert(group.to_string(), cookie);
    }
    let blue_share = by_group["blue"] as f64 / 1000.0;
    assert!(
        (blue_share - 0.8).abs() <= 0.05,
        "blue share {blue_share} (by group: {by_group:?})"
    );
    assert!(
        cookies["green"].starts_with("AWSALBTG=WebGreen;")
            && cookies["green"].contains("Max-Age=3600"),
        "the group cookie names the group: {cookies:?}"
    );

    // Group stickiness: with the cookie of the minority group, every request stays there.
    let green_cookie = cookies["green"].split(';').next().unwrap().to_string();
    for _ in 0..50 {
        let body = client
            .get(alb.url("/"))
            .header("cookie", format!("theme=dark; {green_cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            body, "green",
            "the AWSALBTG cookie keeps the client on WebGreen"
        );
    }
    // Inside the blue group both zones' targets serve.
    let blue = tally_with_cookie(&alb.url("/"), "AWSALBTG=WebBlue", 40).await;
    assert!(
        blue.contains_key("blue-a") && blue.contains_key("blue-b"),
        "both WebBlue targets (us-east-1a and us-east-1b) serve: {blue:?}"
    );
    drop(alb.switchyard);
}

/// GETs `url` `count` times with a Cookie header, tallying bodies.
async fn tally_with_cookie(url: &str, cookie: &str, count: usize) -> BTreeMap<String, usize> {
    let client = client();
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let body = client
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        *seen.entry(body).or_default() += 1;
    }
    seen
}

/// A listener whose rules use every served condition type; each rule forwards to its own
/// single-target group, named after the rule.
fn rules_template(listen: u16, ports: &BTreeMap<&str, u16>) -> String {
    let front = http_front(listen, "Fallback");
    let mut text = format!(
        r#"
AWSTemplateFormatVersion: "2010-09-09"
{front}  HostRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 5
      Conditions: [{{Field: host-header, HostHeaderConfig: {{Values: ["*.shop.example", "shop?.example"]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Host}}]
  PathRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions: [{{Field: path-pattern, PathPatternConfig: {{Values: ["/img/*.png", "/v?/static/*"]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Path}}]
  HeaderRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 20
      Conditions: [{{Field: http-header, HttpHeaderConfig: {{HttpHeaderName: X-Canary, Values: ["yes", "tru*"]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Header}}]
  QueryRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 30
      Conditions: [{{Field: query-string, QueryStringConfig: {{Values: [{{Key: version, Value: "v2*"}}, {{Value: beta}}]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Query}}]
  MethodRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 40
      Conditions: [{{Field: http-request-method, HttpRequestMethodConfig: {{Values: [POST, PUT]}}}}]
      Actions: [{{Type: forward, TargetGroupArn: !Ref Method}}]
  BothRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 3
      Conditions:
      - {{Field: path-pattern, Values: ["/both/*"]}}
      - {{Field: http-header, HttpHeaderConfig: {{HttpHeaderName: X-Canary, Values: ["yes"]}}}}
      Actions: [{{Type: forward, TargetGroupArn: !Ref Both}}]
  LoopbackRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 50
      Conditions:
      - {{Field: source-ip, SourceIpConfig: {{Values: ["10.0.0.0/8", "127.0.0.0/8"]}}}}
      - {{Field: path-pattern, Values: ["/from-loopback"]}}
      Actions: [{{Type: forward, TargetGroupArn: !Ref Source}}]
  TenRule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 51
      Conditions:
      - {{Field: source-ip, SourceIpConfig: {{Values: ["10.0.0.0/8"]}}}}
      Actions: [{{Type: forward, TargetGroupArn: !Ref Source}}]
"#
    );
    for (name, port) in ports {
        text.push_str(&format!(
            r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: {port}
      HealthCheckEnabled: false
      Targets: [{{Id: 127.0.0.1, AvailabilityZone: us-east-1a}}]
"#
        ));
    }
    text
}

/// A request (method, host, path, an extra header) and the group expected to answer it.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_rules_match_every_condition_type_in_priority_order() {
    let names = [
        "Fallback", "Host", "Path", "Header", "Query", "Method", "Both", "Source",
    ];
    let mut backends = Vec::new();
    for name in names {
        backends.push(Backend::start(name).await);
    }
    let ports: BTreeMap<&str, u16> = names
        .iter()
        .zip(&backends)
        .map(|(name, backend)| (*name, backend.port()))
        .collect();
    let listen = free_port();
    let alb = Alb::start(
        &rules_template(listen, &ports),
        "aws-rules",
        "/",
        "Fallback",
    )
    .await;
    let client = client();
    // (method, host, path, extra header, expected group)
    let cases: &[Case] = &[
        ("GET", "www.example", "/", None, "Fallback"),
        ("GET", "eu.shop.example", "/", None, "Host"),
        ("GET", "EU.SHOP.EXAMPLE", "/img/a.png", None, "Host"),
        ("GET", "shop1.example", "/", None, "Host"),
        ("GET", "shop12.example", "/", None, "Fallback"),
        ("GET", "shop.example", "/", None, "Fallback"),
        ("GET", "www.example", "/img/cat.png", None, "Path"),
        ("GET", "www.example", "/img/sub/cat.png", None, "Path"),
        ("GET", "www.example", "/IMG/cat.png", None, "Fallback"),
        ("GET", "www.example", "/img/cat.jpg", None, "Fallback"),
        ("GET", "www.example", "/v2/static/app.js", None, "Path"),
        ("GET", "www.example", "/v10/static/app.js", None, "Fallback"),
        (
            "GET",
            "www.example",
            "/img/cat.png?version=v2",
            None,
            "Path",
        ),
        (
            "GET",
            "www.example",
            "/",
            Some(("x-canary", "yes")),
            "Header",
        ),
        (
            "GET",
            "www.example",
            "/",
            Some(("x-canary", "TRUE")),
            "Header",
        ),
        (
            "GET",
            "www.example",
            "/",
            Some(("x-canary", "no")),
            "Fallback",
        ),
        ("GET", "www.example", "/x?version=v2.1", None, "Query"),
        ("GET", "www.example", "/x?a=1&VERSION=V2&b=2", None, "Query"),
        ("GET", "www.example", "/x?channel=beta", None, "Query"),
        ("GET", "www.example", "/x?version=v1", None, "Fallback"),
        ("GET", "www.example", "/version=v2", None, "Fallback"),
        ("POST", "www.example", "/", None, "Method"),
        ("PUT", "www.example", "/x", None, "Method"),
        ("DELETE", "www.example", "/", None, "Fallback"),
        ("POST", "www.example", "/x?version=v2", None, "Query"),
        (
            "POST",
            "www.example",
            "/",
            Some(("x-canary", "yes")),
            "Header",
        ),
        (
            "GET",
            "www.example",
            "/both/x",
            Some(("x-canary", "yes")),
            "Both",
        ),
        ("GET", "www.example", "/both/x", None, "Fallback"),
        (
            "GET",
            "a.shop.example",
            "/both/x",
            Some(("x-canary", "yes")),
            "Both",
        ),
        ("GET", "a.shop.example", "/both/x", None, "Host"),
        ("GET", "www.example", "/from-loopback", None, "Source"),
        (
            "GET",
            "www.example",
            "/from-loopback",
            Some(("x-forwarded-for", "10.9.9.9")),
            "Source",
        ),
        (
            "GET",
            "www.example",
            "/from-ten",
            Some(("x-forwarded-for", "10.9.9.9")),
            "Fallback",
        ),
        (
            "GET",
            "www.example",
            "/from-ten",
            Some(("x-switchyard-source-address", "10.9.9.9")),
            "Fallback",
        ),
    ];
    let mut wrong = Vec::new();
    for (method, host, path, header, expected) in cases {
        let mut request = client
            .request(method.parse().unwrap(), alb.url(path))
            .header("host", *host);
        if let Some((name, value)) = header {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let body = response.text().await.unwrap();
        if body != *expected {
            wrong.push(format!(
                "{method} {host}{path} {header:?}: got {body}, expected {expected}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} requests went elsewhere:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// One round-robin target group of three targets with the given stickiness attributes.
fn sticky_template(listen: u16, ports: &[u16], stickiness: &str) -> String {
    let zoned: Vec<(u16, &str)> = ports.iter().map(|port| (*port, "us-east-1a")).collect();
    let targets = target_list(&zoned);
    let front = http_front(listen, "Web");
    format!(
        r#"
{front}  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: {first}
      HealthCheckEnabled: false
      Targets: [{targets}]
      TargetGroupAttributes:
      - {{Key: stickiness.enabled, Value: "true"}}
{stickiness}
"#,
        first = ports[0],
    )
}

/// Without the cookie requests spread over all three targets; with the cookie the proxy
/// issued, every request goes to the target that issued it.
async fn assert_sticky(stickiness: &str, cookie_name: &str, node_id: &str) {
    let backends = [
        Backend::start("one").await,
        Backend::start("two").await,
        Backend::start("three").await,
    ];
    let ports: Vec<u16> = backends.iter().map(Backend::port).collect();
    let listen = free_port();
    let template = sticky_template(listen, &ports, stickiness);
    let alb = Alb::start(&template, node_id, "/", "one").await;
    let client = client();
    let spread = tally(&alb.url("/"), 60).await;
    assert_eq!(
        spread.len(),
        3,
        "round robin without a cookie reaches every target: {spread:?}"
    );
    let response = client.get(alb.url("/")).send().await.unwrap();
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{cookie_name}=")))
        .unwrap_or_else(|| panic!("the proxy issues {cookie_name}: {:?}", response.headers()));
    assert!(
        set_cookie.contains("Max-Age=120"),
        "the cookie lasts the configured duration: {set_cookie}"
    );
    let first = response.text().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let held = tally_with_cookie(&alb.url("/"), &cookie, 60).await;
    assert_eq!(
        held,
        BTreeMap::from([(first.clone(), 60)]),
        "{cookie_name} holds the client on {first} under round robin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_holds_a_client_under_round_robin() {
    assert_sticky(
        "      - {Key: stickiness.type, Value: lb_cookie}\n      - {Key: stickiness.lb_cookie.duration_seconds, Value: \"120\"}",
        "AWSALB",
        "aws-lb-cookie",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dualstack_load_balancer_listens_on_both_families_before_an_ipv6_group() {
    assert!(
        has_ipv6_loopback(),
        "this test needs the IPv6 loopback ::1, which this machine lacks"
    );
    let target = Backend::start_on("v6-target", "[::1]:0".parse().unwrap()).await;
    let listen = free_port();
    let template = format!(
        r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1, Ipv6Address: "::1"}}}}
    Properties: {{Type: application, IpAddressType: dualstack}}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: {listen} # listener
      Protocol: HTTP
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Six}}]
  Six:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      IpAddressType: ipv6
      Port: {port}
      HealthCheckEnabled: false
      Targets: [{{Id: "::1", AvailabilityZone: us-east-1a}}]
"#,
        port = target.port()
    );
    let alb = Alb::start(&template, "aws-dualstack", "/", "v6-target").await;
    wait_for_body(&format!("http://[::1]:{listen}/"), "v6-target").await;
    let over_ipv6 = tally(&format!("http://[::1]:{listen}/"), 20).await;
    let over_ipv4 = tally(&alb.url("/"), 20).await;
    assert_eq!(over_ipv6, BTreeMap::from([("v6-target".to_string(), 20)]));
    assert_eq!(over_ipv4, BTreeMap::from([("v6-target".to_string(), 20)]));
}
