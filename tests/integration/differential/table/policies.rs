//! The table's rows for route policies: fault injection and CORS, URI templates, a route's
//! maxStreamDuration, and the connection facts a service writes into headers with Envoy's
//! formatters.

use super::{gcp, Front, Row};

/// The fault and CORS filters on requests whose answer does not depend on a draw: an abort of
/// every request, a delay (its length is tested in filters.rs), CORS preflights answered
/// locally or passed on, actual requests from allowed and other origins.
pub(super) fn fault_and_cors() -> Vec<Row> {
    let preflight = |origin: &'static str| {
        Row::new(Front::Gcp, "OPTIONS", "any.host", "/cors")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
    };
    let cors_lines = ["response access-control-"];
    vec![
        // A local reply gets the route's response headers (the URL map's, here).
        gcp("any.host", "/fault/all").expect(&[
            "status 418",
            "body \"fault filter abort\"",
            "hits 0",
            "response x-map-response: 100%",
        ]),
        gcp("any.host", "/fault/delay").to("web"),
        preflight("https://app.example")
            .header("access-control-request-headers", "x-custom")
            .expect(&[
                "status 200",
                "hits 0",
                "response access-control-allow-origin: https://app.example",
                "response access-control-allow-methods: GET,PUT",
                "response access-control-allow-headers: x-custom,content-type",
                "response access-control-max-age: 600",
                "response access-control-allow-credentials: true",
                // Envoy's filter encodes its own answer too, as for an actual request.
                "response access-control-expose-headers: x-backend",
            ])
            .lacks(&["backend", "response x-map-response"]),
        preflight("https://api.trusted.example").expect(&[
            "hits 0",
            "response access-control-allow-origin: https://api.trusted.example",
        ]),
        // Another origin's preflight goes on to the backend, without CORS headers.
        preflight("https://evil.example")
            .to("web")
            .lacks(&cors_lines),
        preflight("https://app.example.evil")
            .to("web")
            .lacks(&cors_lines),
        // An OPTIONS without Access-Control-Request-Method is an actual request.
        Row::new(Front::Gcp, "OPTIONS", "any.host", "/cors")
            .header("origin", "https://app.example")
            .to("web")
            .expect(&["response access-control-allow-origin: https://app.example"]),
        gcp("any.host", "/cors/page")
            .header("origin", "https://app.example")
            .to("web")
            .expect(&[
                "response access-control-allow-origin: https://app.example",
                "response access-control-allow-credentials: true",
                "response access-control-expose-headers: x-backend",
            ])
            .lacks(&[
                "response access-control-allow-methods",
                "response access-control-max-age",
            ]),
        gcp("any.host", "/cors/page")
            .header("origin", "https://evil.example")
            .to("web")
            .lacks(&cors_lines),
        gcp("any.host", "/cors/page").to("web").lacks(&cors_lines),
        // `*` allows every origin, and is answered with the origin itself.
        Row::new(Front::Gcp, "OPTIONS", "any.host", "/open-cors")
            .header("origin", "https://any.example")
            .header("access-control-request-method", "GET")
            .expect(&[
                "status 200",
                "hits 0",
                "response access-control-allow-origin: https://any.example",
                "response access-control-allow-methods: GET",
            ])
            .lacks(&["response access-control-allow-credentials"]),
        // A route without a policy answers no origin.
        gcp("any.host", "/")
            .header("origin", "https://app.example")
            .to("web")
            .lacks(&cors_lines),
    ]
}

/// URI templates (match and rewrite), a route's maxStreamDuration, and the connection facts a
/// service writes into headers with Envoy's formatters.
pub(super) fn templates_deadlines_and_facts() -> Vec<Row> {
    use super::super::config::STREAM_LIMIT_MS;
    let late = (STREAM_LIMIT_MS * 2).to_string().leak();
    vec![
        gcp("any.host", "/tpl/7/a/b?q=1").to("api").expect(&[
            "path /t/a/b/of/7?q=1",
            "saw x-envoy-original-path: /tpl/7/a/b?q=1",
        ]),
        gcp("any.host", "/tpl/7/")
            .to("api")
            .expect(&["path /t//of/7"]),
        gcp("any.host", "/tpl/7").to("web"),
        gcp("any.host", "/tpl//x").to("web"),
        gcp("any.host", "/files/a/b.txt")
            .to("admin")
            .expect(&["path /files/a/b.txt"]),
        gcp("any.host", "/files/a/b/c").to("web"),
        gcp("any.host", "/files/a").to("web"),
        gcp("any.host", "/limited/x").to("web"),
        gcp("any.host", "/limited/x")
            .header("x-echo-delay-ms", late)
            .expect(&[
                "status 504",
                "body \"downstream duration timeout\"",
                "hits 1",
                "response x-map-response: 100%",
            ]),
        gcp("any.host", "/facts")
            .header("origin", "https://app.example")
            .to("facts")
            .expect(&[
                "saw x-fact-protocol: HTTP/1.1",
                "saw x-fact-encrypted: false",
                "saw x-fact-origin: https://app.example",
                "response x-fact-origin-response: https://app.example",
                "response x-fact-protocol-response: HTTP/1.1",
            ])
            .lacks(&["saw x-fact-cipher", "saw x-fact-sni"]),
        gcp("any.host", "/facts")
            .header("x-fact-cipher", "client")
            .header("x-fact-protocol", "client")
            .to("facts")
            .expect(&["saw x-fact-protocol: HTTP/1.1"])
            .lacks(&["saw x-fact-origin", "response x-fact-origin-response"]),
    ]
}
