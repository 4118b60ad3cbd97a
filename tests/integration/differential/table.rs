//! The differential table: the requests sent through Envoy and through the sidecar, each with
//! what its answer must hold and must not (so that two proxies ignoring a feature alike cannot
//! agree their way past it). Rows go to the GCP listener or to one of the AWS ones of
//! `config.rs`.
//!
//! Left out because the sidecar refuses them by name today (issue #26 adds them here): from
//! examples/aws-alb.yaml the target group stickiness of the 80/20 split and lb_cookie
//! stickiness (the stateful-session filter), slow start; AWS source-ip conditions (an early
//! header mutation), outlier detection and circuit breakers. Request mirroring is compared in
//! mirror.rs (its copies arrive beside the answer, not in it), TLS facts in sidecar_tls.rs.
//! examples/grpc.yaml (proxyless gRPC, an API listener) is served to gRPC clients, not to
//! proxies; its maxStreamDuration is a proxyless-only route field. examples/https.yaml's
//! routes are here; its TLS listener is a listener feature, not a route one.

use std::sync::LazyLock;

use super::exchange::{self, Request};

mod policies;

/// Which listener of the config a row is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    Gcp,
    /// The ALB with the default attributes.
    Aws,
    /// X-Forwarded-For and the Host kept as sent, header names with underscores dropped.
    AwsKept,
    /// X-Forwarded-For removed.
    AwsRemoved,
    /// The client's port after its address in X-Forwarded-For.
    AwsPorted,
}

/// One row: where it goes, the request, lines its record must hold, and beginnings of lines
/// it must not hold.
#[derive(Clone, Debug)]
pub struct Row {
    pub front: Front,
    pub request: Request,
    pub expect: Vec<String>,
    pub absent: Vec<String>,
}

impl Row {
    fn new(front: Front, method: &'static str, host: &str, target: &str) -> Row {
        Row {
            front,
            request: Request {
                method,
                host: host.to_string(),
                target: target.to_string(),
                headers: Vec::new(),
                body: None,
            },
            expect: Vec::new(),
            absent: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Row {
        self.request.headers.push((name, value));
        self
    }

    fn body(mut self, body: &'static str) -> Row {
        self.request.body = Some(body);
        self
    }

    /// Lines the answer's record must hold (`backend api`, `status 301`, ...).
    fn expect(mut self, lines: &[&str]) -> Row {
        self.expect.extend(lines.iter().map(|l| l.to_string()));
        self
    }

    /// Beginnings of lines the answer's record must not hold (`saw x-forwarded-for`).
    fn lacks(mut self, beginnings: &[&str]) -> Row {
        self.absent.extend(beginnings.iter().map(|b| b.to_string()));
        self
    }

    /// The echo backend that must answer.
    fn to(self, backend: &str) -> Row {
        self.expect(&["status 200", &format!("backend {backend}")])
    }
}

fn gcp(host: &str, target: &str) -> Row {
    Row::new(Front::Gcp, "GET", host, target)
}

fn aws(host: &str, target: &str) -> Row {
    Row::new(Front::Aws, "GET", host, target)
}

/// Every row, GCP then AWS.
pub fn rows() -> Vec<Row> {
    let mut rows = host_and_path_grid();
    rows.extend(header_and_query_matches());
    rows.extend(redirects());
    rows.extend(rewrites_and_header_actions());
    rows.extend(methods_and_forwarding_headers());
    rows.extend(timeouts_retries_affinity());
    rows.extend(policies::fault_and_cors());
    rows.extend(policies::templates_deadlines_and_facts());
    rows.extend(aws_rows());
    rows.extend(aws_attribute_rows());
    rows
}

/// Host rules × paths: which matcher a host reaches (exact, wildcard, `*`, with a port, in
/// capitals), and in it the path rules (longest first) or route rules. Each path lists the
/// backend it reaches under the main matcher and under the shop matcher; api.example.test
/// sends every path to `api`, old.example.com redirects every path to HTTPS.
fn host_and_path_grid() -> Vec<Row> {
    const PATHS: [(&str, &str, &str); 20] = [
        ("/", "web", "shop"),
        ("/api", "api", "shop"),
        ("/api/users", "api", "shop"),
        ("/apix", "api", "shop"),
        ("/exact", "admin", "shop"),
        ("/exact/more", "web", "shop"),
        ("/admin", "web", "shop"),
        ("/cart", "web", "api"),
        ("/cart/1", "web", "api"),
        ("/cart/special", "web", "admin"),
        ("/cartoon", "web", "shop"),
        ("/checkout", "web", "payments"),
        ("/checkout/pay?card=1", "web", "payments"),
        ("/CI/x", "admin", "shop"),
        ("/ci/x", "admin", "shop"),
        ("/v1", "web", "shop"),
        ("/v1/users?id=3", "web", "shop"),
        ("/items/42", "shop", "shop"),
        ("/items/x", "web", "shop"),
        ("/either/b/1", "mobile", "shop"),
    ];
    let mut rows = Vec::new();
    for (path, main, shop) in PATHS {
        for host in ["any.host", "www.example.com"] {
            rows.push(gcp(host, path).to(main));
        }
        // strip_any_host_port: the port goes before routing, and the backend never sees it.
        rows.push(
            gcp("WWW.Example.com:8080", path)
                .to(main)
                .expect(&["saw host: WWW.Example.com"]),
        );
        rows.push(gcp("shop.example.com", path).to(shop));
        rows.push(
            gcp("SHOP.example.com:8080", path)
                .to(shop)
                .expect(&["saw host: SHOP.example.com"]),
        );
        rows.push(gcp("api.example.test", path).to("api"));
        rows.push(gcp("old.example.com", path).expect(&["status 301"]));
    }
    rows
}

/// Route rules' header matches (exact, present, regex, range, prefix inverted, suffix) and
/// query parameter matches (exact, regex, present), with the ones that must not match.
fn header_and_query_matches() -> Vec<Row> {
    vec![
        gcp("any.host", "/anything")
            .header("x-client", "mobile")
            .to("mobile"),
        gcp("any.host", "/anything")
            .header("x-client", "Mobile")
            .to("web"),
        gcp("shop.example.com", "/")
            .header("x-client", "mobile")
            .to("shop"),
        gcp("any.host", "/admin/panel")
            .header("x-role", "")
            .to("admin"),
        gcp("any.host", "/admin/panel")
            .header("x-role", "root")
            .to("admin"),
        gcp("any.host", "/admin/panel").to("web"),
        gcp("any.host", "/v2/x").header("x-version", "v2").to("api"),
        gcp("any.host", "/v2/x")
            .header("x-version", "v2beta")
            .to("web"),
        gcp("any.host", "/range").header("x-n", "9").to("admin"),
        gcp("any.host", "/range").header("x-n", "1").to("admin"),
        gcp("any.host", "/range").header("x-n", "10").to("web"),
        gcp("any.host", "/range").header("x-n", "0").to("web"),
        gcp("any.host", "/range").header("x-n", "five").to("web"),
        gcp("any.host", "/not").header("x-debug", "on").to("web"),
        gcp("any.host", "/not").header("x-debug", "only").to("web"),
        gcp("any.host", "/not").header("x-debug", "off").to("api"),
        // A missing header matches no value, inverted or not.
        gcp("any.host", "/not").to("web"),
        gcp("any.host", "/agent")
            .header("x-agent", "search-bot")
            .to("admin"),
        gcp("any.host", "/agent")
            .header("x-agent", "search-bots")
            .to("web"),
        gcp("any.host", "/q?lang=en").to("api"),
        gcp("any.host", "/q?lang=english").to("web"),
        gcp("any.host", "/q?a=1&lang=en&b=2").to("api"),
        gcp("any.host", "/q?v=42").to("admin"),
        gcp("any.host", "/q?v=4x").to("web"),
        gcp("any.host", "/q?debug").to("mobile"),
        gcp("any.host", "/q?debug=").to("mobile"),
        gcp("any.host", "/q?nodebug=1").to("web"),
        gcp("any.host", "/query?lang=en").to("api"),
    ]
}

/// urlRedirect of every kind and defaultUrlRedirect: scheme, host, path, prefix, each
/// response code, the query kept or stripped.
fn redirects() -> Vec<Row> {
    vec![
        gcp("any.host", "/legacy/a/b?x=1").expect(&[
            "status 302",
            "response location: http://any.host/modern/a/b?x=1",
        ]),
        gcp("any.host:8080", "/legacy/")
            .expect(&["status 302", "response location: http://any.host/modern/"]),
        gcp("any.host", "/go-https/x?y=2").expect(&[
            "status 308",
            "response location: https://any.host/go-https/x?y=2",
        ]),
        gcp("any.host:8080", "/go-https")
            .expect(&["status 308", "response location: https://any.host/go-https"]),
        gcp("any.host", "/elsewhere/deep?drop=1").expect(&[
            "status 303",
            "response location: http://new.example.com/landing",
        ]),
        gcp("any.host", "/temporary?kept=1").expect(&[
            "status 307",
            "response location: http://any.host/kept?kept=1",
        ]),
        gcp("old.example.com", "/a?b=c").expect(&[
            "status 301",
            "response location: https://old.example.com/a?b=c",
        ]),
        gcp("old.example.com:80", "/a").expect(&["status 301"]),
        gcp("old.example.com:8080", "/a")
            .expect(&["status 301", "response location: https://old.example.com/a"]),
        Row::new(Front::Gcp, "POST", "old.example.com", "/form")
            .body("a=1")
            .expect(&["status 301"]),
    ]
}

/// urlRewrite (prefix and host, https.yaml's /v1/ → / under a weighted service) and
/// headerAction at the URL map, path matcher and route rule: request headers added (appended
/// or replaced, the outer level winning) and removed, response headers added and removed.
fn rewrites_and_header_actions() -> Vec<Row> {
    vec![
        gcp("any.host", "/rewrite/a/b?q=1").to("api").expect(&[
            "path /new/a/b?q=1",
            "saw host: internal.example",
            "saw x-envoy-original-path: /rewrite/a/b?q=1",
            "saw x-envoy-original-host: any.host",
            "saw x-route: added",
            "saw x-level: map",
            "response x-route-response: yes",
            "response x-map-response: 100%",
        ]),
        gcp("any.host", "/rewrite/x")
            .header("x-route", "client")
            .header("x-level", "client")
            .header("x-remove-me", "1")
            .header("x-secret", "s")
            .header("x-map", "client")
            .header("x-matcher", "client")
            .to("api")
            .expect(&["saw x-route: client, added", "saw x-level: map"]),
        gcp("any.host", "/rewrite/")
            .to("api")
            .expect(&["path /new/"]),
        gcp("any.host", "/rewrite").to("web"),
        gcp("any.host", "/anything")
            .header("x-secret", "s")
            .header("x-keep", "k")
            .to("web")
            .expect(&["saw x-keep: k", "saw x-matcher: main", "saw x-map: site"]),
        gcp("api.example.test", "/v1/users?id=7")
            .to("api")
            .expect(&["path /users?id=7"]),
        gcp("api.example.test", "/v1/")
            .to("api")
            .expect(&["path /"]),
        gcp("api.example.test", "/v1")
            .to("api")
            .expect(&["path /v1"]),
        gcp("api.example.test", "/v2/users")
            .header("x-secret", "kept here")
            .to("api")
            .expect(&["saw x-secret: kept here"]),
        gcp("shop.example.com", "/cart/1")
            .header("x-level", "client")
            .to("api")
            .expect(&["saw x-level: map"]),
    ]
}

/// Methods other than GET, bodies, and the target proxy's forwarding headers
/// (X-Forwarded-For with a value the client supplied, X-Forwarded-Proto, Via).
fn methods_and_forwarding_headers() -> Vec<Row> {
    vec![
        Row::new(Front::Gcp, "POST", "any.host", "/api/items")
            .header("content-type", "application/json")
            .body("{\"name\": \"widget\"}")
            .to("api")
            .expect(&[
                "method POST",
                "request body \"{\\\"name\\\": \\\"widget\\\"}\"",
            ]),
        Row::new(Front::Gcp, "PUT", "any.host", "/api/items/1")
            .body("replacement")
            .to("api"),
        Row::new(Front::Gcp, "DELETE", "any.host", "/api/items/1").to("api"),
        Row::new(Front::Gcp, "PATCH", "shop.example.com", "/cart/1")
            .body("qty=2")
            .to("api"),
        Row::new(Front::Gcp, "OPTIONS", "any.host", "/").to("web"),
        Row::new(Front::Gcp, "HEAD", "any.host", "/").expect(&["status 200"]),
        Row::new(Front::Gcp, "POST", "any.host", "/rewrite/form")
            .body("x=1")
            .to("api")
            .expect(&["path /new/form"]),
        gcp("any.host", "/")
            .header("x-forwarded-for", "203.0.113.9")
            .to("web"),
        gcp("any.host", "/")
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
            .header("x-forwarded-proto", "https")
            .to("web"),
        gcp("any.host", "/")
            .header("via", "1.1 corporate")
            .to("web"),
        gcp("any.host", "/")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "dropped")
            .to("web"),
        gcp("any.host", "/")
            .header("x-repeated", "one")
            .header("x-repeated", "two")
            .to("web"),
    ]
}

/// A body longer than 16 KiB that Envoy still keeps for retries.
static KEPT_BODY: LazyLock<String> = LazyLock::new(|| "k".repeat(64 * 1024));
/// A body longer than Envoy keeps for retries (1 MiB), shorter than the echo takes (2 MB).
static UNKEPT_BODY: LazyLock<String> = LazyLock::new(|| "u".repeat(1536 * 1024));

fn seen_body(body: &str) -> String {
    format!("request body {}", exchange::shown_body(body))
}

/// A backend service's timeoutSec and a route rule's timeout (a backend that answers in 3 s
/// against 1 s: no machine is that slow the other way), retryPolicy on 5xx and gateway
/// errors (counted at the backend), bodies sent again whole up to the retry buffer limit, no
/// retry without a policy, and session affinity.
fn timeouts_retries_affinity() -> Vec<Row> {
    vec![
        gcp("any.host", "/slow")
            .header("x-echo-delay-ms", "3000")
            .expect(&["status 504", "hits 1", "body \"upstream request timeout\""]),
        gcp("any.host", "/slow").to("slow").expect(&["hits 1"]),
        gcp("any.host", "/deadline")
            .header("x-echo-delay-ms", "3000")
            .expect(&["status 504", "body \"upstream request timeout\""]),
        gcp("any.host", "/deadline").to("web"),
        gcp("any.host", "/retry")
            .header("x-echo-status", "503")
            .expect(&["status 503", "hits 3"]),
        gcp("any.host", "/retry")
            .header("x-echo-status", "500")
            .expect(&["status 500", "hits 3"]),
        gcp("any.host", "/retry")
            .header("x-echo-status", "404")
            .expect(&["status 404", "hits 1"]),
        gcp("any.host", "/retry").to("flaky").expect(&["hits 1"]),
        Row::new(Front::Gcp, "DELETE", "any.host", "/retry")
            .header("x-echo-status", "503")
            .expect(&["status 503", "hits 3"]),
        // A body is kept for retries, and each attempt sends it whole (the last one's echo
        // shows it)...
        Row::new(Front::Gcp, "POST", "any.host", "/retry")
            .header("x-echo-status", "503")
            .body("order=1")
            .expect(&["status 503", "hits 3", "request body \"order=1\""]),
        Row::new(Front::Gcp, "POST", "any.host", "/retry")
            .header("x-echo-status", "503")
            .body(KEPT_BODY.as_str())
            .expect(&["status 503", "hits 3", &seen_body(&KEPT_BODY)]),
        // ... up to Envoy's buffer limit (1 MiB by default); a longer one goes once.
        Row::new(Front::Gcp, "POST", "any.host", "/retry")
            .header("x-echo-status", "503")
            .body(UNKEPT_BODY.as_str())
            .expect(&["status 503", "hits 1", &seen_body(&UNKEPT_BODY)]),
        gcp("any.host", "/gateway")
            .header("x-echo-status", "502")
            .expect(&["status 502", "hits 2"]),
        gcp("any.host", "/gateway")
            .header("x-echo-status", "500")
            .expect(&["status 500", "hits 1"]),
        gcp("any.host", "/once")
            .header("x-echo-status", "503")
            .expect(&["status 503", "hits 1"]),
        gcp("any.host", "/sticky")
            .to("sticky")
            .expect(&["response set-cookie: GCLB=<opaque>; Max-Age=3600; Path=/; HttpOnly"]),
        gcp("any.host", "/sticky/again")
            .header("cookie", "GCLB=\"0123456789abcdef\"")
            .to("sticky"),
        gcp("any.host", "/hashed")
            .header("x-user", "ann")
            .to("hashed"),
    ]
}

/// The AWS listener: aws-alb.yaml's path rule, host rule with a fixed response and redirect,
/// each condition type (with wildcards) and priority order, redirects keeping or replacing
/// each part (the Host the client wrote carries the listener's port by then, as the ALB's
/// `#{port}` does), fixed responses with and without a content type and body.
fn aws_rows() -> Vec<Row> {
    let method = |method, target| Row::new(Front::Aws, method, "lb.example", target);
    vec![
        aws("lb.example", "/").to("Web"),
        aws("lb.example", "/api/users").to("ApiTargets"),
        aws("lb.example", "/api").to("Web"),
        aws("lb.example", "/API/users").to("Web"),
        aws("admin.example.com", "/").expect(&[
            "status 403",
            "body \"admin is closed\"",
            "response content-type: text/plain",
        ]),
        aws("ADMIN.example.com", "/api/users").to("ApiTargets"),
        aws("admin.example.com", "/x").expect(&["status 403"]),
        aws("lb.example", "/old/page?x=1").expect(&[
            "status 301",
            "response location: http://lb.example:<listener port>/new?x=1",
        ]),
        aws("lb.example", "/keep/a/b?x=1").expect(&[
            "status 301",
            "response location: http://lb.example:<listener port>/new/keep/a/b?x=1",
        ]),
        aws("lb.example", "/keep/").expect(&[
            "status 301",
            "response location: http://lb.example:<listener port>/new/keep/",
        ]),
        aws("lb.example", "/secure/a?b=1").expect(&[
            "status 302",
            "response location: https://lb.example:8443/secure/a?b=1",
        ]),
        aws("lb.example", "/away?drop=1").expect(&[
            "status 301",
            "response location: http://new.example/landing?from=alb",
        ]),
        aws("lb.example", "/x")
            .header("x-canary", "yes")
            .to("Canary"),
        aws("lb.example", "/x")
            .header("X-Canary", "true")
            .to("Canary"),
        aws("lb.example", "/x").header("x-canary", "no").to("Web"),
        aws("lb.example", "/x?version=v2.1").to("Query"),
        aws("lb.example", "/x?a=1&version=v21").to("Query"),
        aws("lb.example", "/x?channel=beta").to("Query"),
        aws("lb.example", "/x?version=v1").to("Web"),
        method("POST", "/x").body("p").to("Method"),
        method("PUT", "/x").body("p").to("Method"),
        method("DELETE", "/x").to("Web"),
        method("POST", "/api/x").body("p").to("ApiTargets"),
        aws("a.shop.example", "/").to("Shops"),
        aws("shop1.example", "/").to("Shops"),
        aws("shop12.example", "/").to("Web"),
        aws("lb.example", "/img/a/b.png").to("Static"),
        aws("lb.example", "/img/a.jpg").to("Web"),
        aws("lb.example", "/v2/static/x.css").to("Static"),
        aws("lb.example", "/v22/static/x.css").to("Web"),
        aws("lb.example", "/missing")
            .expect(&["status 404", "response content-type: application/json"]),
        aws("lb.example", "/gone").expect(&["status 410", "body \"\""]),
        aws("lb.example", "/")
            .header("x-forwarded-for", "203.0.113.9")
            .to("Web")
            .expect(&["saw x-forwarded-for: 203.0.113.9,<client>"]),
    ]
}

/// What the load balancer's attributes tell the backend of the client: by default its
/// address appended to X-Forwarded-For and the listener's port on the Host (after any port
/// the client wrote is taken off); `preserve` and the preserved Host keep both as sent (and
/// header names with underscores are dropped there); `remove` sends no X-Forwarded-For; the
/// client port puts `<address>:<port>` after what the client sent.
fn aws_attribute_rows() -> Vec<Row> {
    let to = |front, host: &str| Row::new(front, "GET", host, "/");
    let sent = |row: Row| row.header("x-forwarded-for", "203.0.113.9, 198.51.100.2");
    vec![
        to(Front::Aws, "lb.example")
            .header("x_tenant", "blue")
            .to("Web")
            .expect(&[
                "saw host: lb.example:<listener port>",
                "saw x-forwarded-for: <client>",
                "saw x_tenant: blue",
            ]),
        to(Front::Aws, "LB.example:8080")
            .to("Web")
            .expect(&["saw host: LB.example:<listener port>"]),
        sent(to(Front::Aws, "lb.example"))
            .to("Web")
            .expect(&["saw x-forwarded-for: 203.0.113.9, 198.51.100.2,<client>"]),
        to(Front::AwsKept, "lb.example:8080")
            .header("x_tenant", "blue")
            .to("Web")
            .expect(&["saw host: lb.example:8080"])
            .lacks(&["saw x_tenant", "saw x-forwarded-for"]),
        sent(to(Front::AwsKept, "lb.example")).to("Web").expect(&[
            "saw host: lb.example",
            "saw x-forwarded-for: 203.0.113.9, 198.51.100.2",
        ]),
        sent(to(Front::AwsRemoved, "lb.example"))
            .to("Web")
            .expect(&["saw host: lb.example:<listener port>"])
            .lacks(&["saw x-forwarded-for"]),
        to(Front::AwsRemoved, "lb.example")
            .to("Web")
            .lacks(&["saw x-forwarded-for"]),
        sent(to(Front::AwsPorted, "lb.example"))
            .to("Web")
            .expect(&["saw x-forwarded-for: 203.0.113.9, 198.51.100.2,<client>:<port>"]),
        to(Front::AwsPorted, "lb.example")
            .to("Web")
            .expect(&["saw x-forwarded-for: <client>:<port>"]),
    ]
}
