//! AWS defaults and attributes end to end through a real Envoy, with backends on 127.0.0.1:
//! anomaly mitigation off unless asked for, app_cookie stickiness that follows the
//! application's own cookie, and the load balancer and listener attributes that have an
//! Envoy meaning (idle timeout, client keep-alive, invalid header fields, X-Forwarded-For
//! processing and client port, the Host header, TLS version and cipher headers), each seen in
//! what the backend received or in Envoy's config dump.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::aws_alb::{attribute_items, http_front, target_list, Alb};
use crate::common::*;

/// A target group named `name` of the targets at `ports` (in us-east-1a), unchecked, with
/// `attributes`, as a template's resource.
fn group(name: &str, ports: &[u16], attributes: &[(&str, &str)]) -> String {
    let zoned: Vec<(u16, &str)> = ports.iter().map(|port| (*port, "us-east-1a")).collect();
    format!(
        r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: {first}
      HealthCheckEnabled: false
      Targets: [{targets}]
      TargetGroupAttributes:
      - {{Key: deregistration_delay.timeout_seconds, Value: "0"}}
{attributes}"#,
        first = ports[0],
        targets = target_list(&zoned),
        attributes = attribute_items(attributes),
    )
}

/// Envoy's dynamic resources of one kind (`dynamic_active_clusters`, …) from its config dump.
async fn envoy_resources(alb: &Alb, section: &str, inner: &str) -> Vec<Value> {
    let dump = get_json(&format!("{}/config_dump", alb.envoy.admin))
        .await
        .expect("Envoy's config dump");
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|config| config[section].as_array())
        .flatten()
        .map(|entry| entry[inner].clone())
        .collect()
}

/// The cluster Envoy runs for `name`.
async fn envoy_cluster(alb: &Alb, name: &str) -> Value {
    envoy_resources(alb, "dynamic_active_clusters", "cluster")
        .await
        .into_iter()
        .find(|cluster| cluster["name"] == name)
        .unwrap_or_else(|| panic!("Envoy has no cluster {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_random_has_no_anomaly_mitigation_unless_it_is_turned_on() {
    let backend = Backend::start("b").await;
    let listen = free_port();
    let random = [("load_balancing.algorithm.type", "weighted_random")];
    let mitigated = [
        ("load_balancing.algorithm.type", "weighted_random"),
        ("load_balancing.algorithm.anomaly_mitigation", "on"),
    ];
    let template = format!(
        "{}{}{}",
        http_front(listen, "Plain"),
        group("Plain", &[backend.port()], &random),
        group("Mitigated", &[backend.port()], &mitigated),
    );
    let alb = Alb::start(&template, "aws-anomaly-default", "/", "b").await;
    let plain = envoy_cluster(&alb, "Plain").await;
    assert_eq!(plain["lb_policy"], "RANDOM", "{plain}");
    assert!(
        plain.get("outlier_detection").is_none(),
        "the API's default is off: no outlier detection without the attribute: {plain}"
    );
    let mitigated = envoy_cluster(&alb, "Mitigated").await;
    assert!(
        mitigated.get("outlier_detection").is_some(),
        "`on` turns it on: {mitigated}"
    );
}

/// A target that answers with its name and, on `/login`, sets the application's own cookie
/// `session=<name>` (as an application starting a session does).
struct SessionTarget {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SessionTarget {
    async fn start(name: &str) -> SessionTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let name = name.to_string();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let name = name.clone();
            async move {
                let mut headers = axum::http::HeaderMap::new();
                if uri.path() == "/login" {
                    let cookie = format!("session={name}; Path=/");
                    headers.insert("set-cookie", cookie.parse().unwrap());
                }
                (headers, name)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SessionTarget { port, task }
    }
}

impl Drop for SessionTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `name=value` of the Set-Cookie headers of `response` whose cookie is `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| value.split(';').next().unwrap().to_string())
}

/// GETs `url` `count` times with `cookie` (if any), tallying the targets that answered.
async fn tally_cookie(url: &str, cookie: Option<&str>, count: usize) -> BTreeMap<String, usize> {
    let client = crate::aws_alb::client();
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let mut request = client.get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let key = if response.status().is_success() {
            response.text().await.unwrap()
        } else {
            format!("<{}>", response.status().as_u16())
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_stickiness_follows_the_applications_own_cookie() {
    let targets = [
        SessionTarget::start("one").await,
        SessionTarget::start("two").await,
        SessionTarget::start("three").await,
    ];
    let ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
    let listen = free_port();
    let stickiness = [
        ("stickiness.enabled", "true"),
        ("stickiness.type", "app_cookie"),
        ("stickiness.app_cookie.cookie_name", "session"),
        ("stickiness.app_cookie.duration_seconds", "120"),
    ];
    let template = format!(
        "{}{}",
        http_front(listen, "Web"),
        group("Web", &ports, &stickiness)
    );
    let alb = Alb::start(&template, "aws-app-cookie-follows", "/", "one").await;
    let client = crate::aws_alb::client();

    // Before the application sets its cookie there is no session: no load balancer cookie,
    // and round robin reaches every target.
    let plain = client.get(alb.url("/")).send().await.unwrap();
    assert_eq!(
        set_cookie(&plain, "AWSALBAPP-0"),
        None,
        "no AWSALBAPP cookie on a response without the application's cookie: {:?}",
        plain.headers()
    );
    let spread = tally_cookie(&alb.url("/"), None, 60).await;
    assert_eq!(spread.len(), 3, "round robin without a session: {spread:?}");

    // The application starts a session: the load balancer's cookie comes with its own.
    let login = client.get(alb.url("/login")).send().await.unwrap();
    let application = set_cookie(&login, "session").expect("the target sets its cookie");
    let balancer = set_cookie(&login, "AWSALBAPP-0")
        .unwrap_or_else(|| panic!("AWSALBAPP-0 comes with it: {:?}", login.headers()));
    let first = login.text().await.unwrap();
    assert_eq!(application, format!("session={first}"));

    // With both cookies every request goes back to the target that set the session.
    let both = format!("theme=dark; {application}; {balancer}");
    let held = tally_cookie(&alb.url("/"), Some(&both), 60).await;
    assert_eq!(
        held,
        BTreeMap::from([(first.clone(), 60)]),
        "both cookies hold the client on {first}"
    );
    // Once the application's cookie is gone, its session is over: the load balancer's cookie
    // alone holds no one (60 round-robin requests reach all three targets).
    let alone = format!("theme=dark; {balancer}");
    let released = tally_cookie(&alb.url("/"), Some(&alone), 60).await;
    assert_eq!(
        released.len(),
        3,
        "AWSALBAPP-0 without the application's cookie is not sticky: {released:?}"
    );
}
