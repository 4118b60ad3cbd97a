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
pub fn group(name: &str, ports: &[u16], attributes: &[(&str, &str)]) -> String {
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
pub struct SessionTarget {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SessionTarget {
    pub async fn start(name: &str) -> SessionTarget {
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
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| value.split(';').next().unwrap().to_string())
}

/// GETs `url` `count` times with `cookie` (if any), tallying the targets that answered.
pub async fn tally_cookie(
    url: &str,
    cookie: Option<&str>,
    count: usize,
) -> BTreeMap<String, usize> {
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

/// Three session targets behind one group with app_cookie stickiness on the application's
/// `session` cookie: the targets (kept running), the listener's port and the template.
pub(crate) async fn app_cookie_group() -> ([SessionTarget; 3], u16, String) {
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
    (targets, listen, template)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_stickiness_follows_the_applications_own_cookie() {
    let (_targets, _listen, template) = app_cookie_group().await;
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

/// A load balancer `name` on 127.0.0.1 with `attributes`, and its HTTP listener on `listen`
/// forwarding to target group `group`.
fn balancer(name: &str, listen: u16, group: &str, attributes: &[(&str, &str)]) -> String {
    let attributes: String = attributes
        .iter()
        .map(|(key, value)| format!("      - {{Key: {key}, Value: \"{value}\"}}\n"))
        .collect();
    format!(
        r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties:
      Type: application
      LoadBalancerAttributes:
      - {{Key: deletion_protection.enabled, Value: "false"}}
{attributes}  {name}Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref {name}
      Port: {listen}
      Protocol: HTTP
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref {group}}}]
"#
    )
}

/// What the echo target received for a GET of `path` on `listen` with `headers`.
async fn received(listen: u16, headers: &[(&str, &str)]) -> Value {
    let mut request = crate::aws_alb::client().get(format!("http://127.0.0.1:{listen}/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_attributes_shape_the_request_the_target_receives() {
    let echo = crate::common::echo::EchoBackend::start_named("echo").await;
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let template = format!(
        "Resources:\n{}{}{}{}{}",
        balancer("Plain", ports[0], "Echo", &[]),
        balancer(
            "Kept",
            ports[1],
            "Echo",
            &[
                ("routing.http.xff_header_processing.mode", "preserve"),
                ("routing.http.preserve_host_header.enabled", "true"),
                ("routing.http.drop_invalid_header_fields.enabled", "true"),
            ]
        ),
        balancer(
            "Removed",
            ports[2],
            "Echo",
            &[("routing.http.xff_header_processing.mode", "remove")]
        ),
        balancer(
            "Ported",
            ports[3],
            "Echo",
            &[("routing.http.xff_client_port.enabled", "true")]
        ),
        group("Echo", &[echo.port()], &[]),
    );
    let switchyard = Switchyard::start(&template).await;
    let _envoy = Envoy::start(switchyard.running.xds_addr, "aws-lb-attributes").await;
    switchyard.wait_for_acks("aws-lb-attributes").await;
    for port in &ports {
        wait_for_body_containing(*port, "echo").await;
    }
    let sent = [
        ("host", "shop.example"),
        ("x-forwarded-for", "10.1.1.1"),
        ("x_tenant", "blue"),
    ];
    let header = |seen: &Value, name: &str| seen["headers"][name].as_str().map(str::to_string);
    // X-Forwarded-For's entries. (For a loopback peer Envoy writes the machine's own address,
    // so the client's entry is an address, not necessarily 127.0.0.1.)
    let forwarded_for = |seen: &Value| -> Vec<String> {
        header(seen, "x-forwarded-for")
            .unwrap_or_default()
            .split(',')
            .map(|entry| entry.trim().to_string())
            .filter(|entry| !entry.is_empty())
            .collect()
    };

    // The defaults: the listener's port appended to Host, the client's address appended to
    // X-Forwarded-For (and nothing after it), headers with underscores passed on.
    let plain = received(ports[0], &sent).await;
    assert_eq!(
        header(&plain, "host"),
        Some(format!("shop.example:{}", ports[0])),
        "{plain}"
    );
    let entries = forwarded_for(&plain);
    assert!(
        entries.len() == 2
            && entries[0] == "10.1.1.1"
            && entries[1].parse::<std::net::IpAddr>().is_ok(),
        "{plain}"
    );
    assert_eq!(
        header(&plain, "x_tenant").as_deref(),
        Some("blue"),
        "{plain}"
    );

    // preserve: X-Forwarded-For and Host as the client sent them; invalid header names dropped.
    let kept = received(ports[1], &sent).await;
    assert_eq!(
        header(&kept, "host").as_deref(),
        Some("shop.example"),
        "{kept}"
    );
    assert_eq!(forwarded_for(&kept), ["10.1.1.1"], "{kept}");
    assert_eq!(header(&kept, "x_tenant"), None, "{kept}");

    // remove: no X-Forwarded-For at all.
    let removed = received(ports[2], &sent).await;
    assert_eq!(header(&removed, "x-forwarded-for"), None, "{removed}");

    // The client's port after its address.
    let ported = received(ports[3], &sent).await;
    let entries = forwarded_for(&ported);
    let with_port = entries
        .get(1)
        .and_then(|entry| entry.parse::<std::net::SocketAddr>().ok());
    assert!(
        entries.len() == 2 && entries[0] == "10.1.1.1" && with_port.is_some_and(|a| a.port() > 0),
        "X-Forwarded-For ends with the client's address and port: {ported}"
    );
}

/// Waits until GET / on `listen` answers 200 with a body holding `text`.
async fn wait_for_body_containing(listen: u16, text: &str) {
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for(&format!("{url} to answer"), || async {
        let body = get_text(&url).await?;
        body.contains(text).then_some(())
    })
    .await;
}

/// A target that answers `/slow` after `delay` and everything else at once, with its name.
async fn slow_target(name: &str, delay: std::time::Duration) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let name = name.to_string();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let name = name.clone();
        async move {
            if uri.path() == "/slow" {
                tokio::time::sleep(delay).await;
            }
            name
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, task)
}

/// The HTTP connection manager Envoy runs on the listener named `name`.
async fn envoy_connection_manager(alb: &Alb, name: &str) -> Value {
    let listener = envoy_resources(alb, "dynamic_listeners", "active_state")
        .await
        .into_iter()
        .find(|state| state["listener"]["name"] == name)
        .unwrap_or_else(|| panic!("Envoy has no listener {name}"));
    listener["listener"]["filter_chains"][0]["filters"][0]["typed_config"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_and_client_keep_alive_bound_client_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (target, _task) = slow_target("slow", std::time::Duration::from_secs(4)).await;
    let (quick, patient) = (free_port(), free_port());
    let template = format!(
        "Resources:\n{}{}{}",
        balancer(
            "Quick",
            quick,
            "Slow",
            &[
                ("idle_timeout.timeout_seconds", "1"),
                ("client_keep_alive.seconds", "120"),
            ]
        ),
        balancer("Patient", patient, "Slow", &[]),
        group("Slow", &[target], &[]),
    )
    .replacen(
        &format!("Port: {quick}"),
        &format!("Port: {quick} # listener"),
        1,
    );
    let alb = Alb::start(&template, "aws-idle-timeout", "/", "slow").await;
    wait_for_body_containing(patient, "slow").await;

    let quick_manager = envoy_connection_manager(&alb, "QuickHttp").await;
    let options = &quick_manager["common_http_protocol_options"];
    assert_eq!(options["idle_timeout"], "1s", "{quick_manager}");
    assert_eq!(
        options["max_connection_duration"], "120s",
        "{quick_manager}"
    );
    let patient_manager = envoy_connection_manager(&alb, "PatientHttp").await;
    let options = &patient_manager["common_http_protocol_options"];
    assert_eq!(
        (
            &options["idle_timeout"],
            &options["max_connection_duration"]
        ),
        (&Value::from("60s"), &Value::from("3600s")),
        "the ALB's defaults: 60 s idle, one hour of keep-alive: {patient_manager}"
    );

    // A target silent for 4 s outlasts a 1 s idle timeout but not the default 60 s.
    let client = crate::aws_alb::client();
    let cut = client.get(alb.url("/slow")).send().await.unwrap();
    assert_eq!(cut.status().as_u16(), 504, "silent past the idle timeout");
    let waited = client
        .get(format!("http://127.0.0.1:{patient}/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(waited.status().as_u16(), 200);

    // A client connection without requests is closed after the idle timeout (1 s; Envoy's
    // own default is an hour, so 30 s tells them apart).
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", quick))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut seen),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the idle connection is closed: {closed:?}"
    );
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "after its request was answered: {}",
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_version_and_cipher_headers_reach_the_target_under_their_names() {
    use crate::common::pki::Authority;
    use crate::https::{https_get, install_certificate};
    use tokio_rustls::rustls::version::TLS12;
    let echo = crate::common::echo::EchoBackend::start_named("echo").await;
    let (told, untold) = (free_port(), free_port());
    let pki_dir = tempfile::tempdir().unwrap();
    let (certs, staging) = (pki_dir.path().join("certs"), pki_dir.path().join("staging"));
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let ca = Authority::new(&staging, "test-ca");
    let ca_pem = std::fs::read_to_string(staging.join("test-ca.pem")).unwrap();
    install_certificate(&ca, &certs, "www.example.test");
    let https = |name: &str, port: u16, lb_attributes: &str, listener_attributes: &str| {
        format!(
            r#"  {name}:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {{Switchyard: {{Ipv4Address: 127.0.0.1}}}}
    Properties:
      LoadBalancerAttributes: [{lb_attributes}]
  {name}Https:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref {name}
      Port: {port}
      Protocol: HTTPS
      Certificates:
      - {{CertificateFile: {certs}/www.example.test.pem, PrivateKeyFile: {certs}/www.example.test.key}}
      ListenerAttributes: [{listener_attributes}]
      DefaultActions: [{{Type: forward, TargetGroupArn: !Ref Echo}}]
"#,
            certs = certs.display()
        )
    };
    let template = format!(
        "Resources:\n{}{}{}",
        https(
            "Told",
            told,
            "{Key: routing.http.x_amzn_tls_version_and_cipher_suite.enabled, Value: 'true'}",
            "{Key: routing.http.request.x_amzn_tls_version.header_name, Value: x-tls-version}"
        ),
        https("Untold", untold, "", ""),
        group("Echo", &[echo.port()], &[]),
    );
    let switchyard = Switchyard::start(&template).await;
    let _envoy = Envoy::start(switchyard.running.xds_addr, "aws-tls-headers").await;
    switchyard.wait_for_acks("aws-tls-headers").await;
    let fetch = |port: u16| {
        let ca_pem = ca_pem.clone();
        async move {
            wait_for("the HTTPS listener to answer", || async {
                https_get(port, "www.example.test", "/", &ca_pem, &[&TLS12])
                    .await
                    .ok()
            })
            .await
        }
    };
    let told = fetch(told).await;
    let headers = &told.body["headers"];
    assert_eq!(headers["x-tls-version"], "TLSv1.2", "{headers}");
    let cipher = headers["x-amzn-tls-cipher-suite"].as_str().unwrap_or("");
    assert!(
        cipher.starts_with("ECDHE-") && cipher.contains("GCM"),
        "the cipher in OpenSSL's naming: {headers}"
    );
    assert!(headers.get("x-amzn-tls-version").is_none(), "{headers}");
    let untold = fetch(untold).await;
    let headers = &untold.body["headers"];
    assert!(
        headers.get("x-amzn-tls-cipher-suite").is_none() && headers.get("x-tls-version").is_none(),
        "off by default: {headers}"
    );
}
