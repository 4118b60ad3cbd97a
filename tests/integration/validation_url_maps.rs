//! Validation of URL-map actions, one rule per test, asserting the exact message: cloud
//! fields Switchyard does not serve are named as such; conflicting actions, bad regexes,
//! header names Envoy would refuse and unknown retry conditions are errors with their path;
//! so are the ports an external forwarding rule to a target HTTP proxy may not use.

use switchyard::config::load_str;

/// A URL map with one path matcher whose route rule the tests rewrite.
const VALID: &str = r#"networkEndpointGroups:
- {name: neg-a, zone: us-central1-a, endpoints: [{ipAddress: 127.0.0.1, port: 8080}]}
backendServices:
- {name: web, backends: [{group: zones/us-central1-a/networkEndpointGroups/neg-a, balancingMode: RATE, maxRatePerEndpoint: 10}]}
urlMaps:
- name: map
  defaultService: global/backendServices/web
  hostRules: [{hosts: ['*'], pathMatcher: main}]
  pathMatchers:
  - name: main
    defaultService: global/backendServices/web
    routeRules:
    - priority: 1
      matchRules: [{prefixMatch: /a/}]
      service: global/backendServices/web
targetHttpProxies:
- {name: proxy, urlMap: global/urlMaps/map}
forwardingRules:
- {name: fr, portRange: "80", target: global/targetHttpProxies/proxy}
"#;

const RULE: &str =
    "      matchRules: [{prefixMatch: /a/}]\n      service: global/backendServices/web\n";

/// The diagnostics of config `text` read as `file`, one per line.
fn lines(text: &str, file: &str) -> Vec<String> {
    load_str(text, file)
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The diagnostics of VALID with the route rule's match and action replaced by `rule`.
fn with_rule(rule: &str) -> Vec<String> {
    assert!(VALID.contains(RULE));
    lines(&VALID.replacen(RULE, rule, 1), "lb.yaml")
}

fn one_error(rule: &str) -> String {
    let found = with_rule(rule);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one diagnostic: {found:#?}"
    );
    found[0].clone()
}

const AT: &str = "urlMaps[map].pathMatchers[main].routeRules[0]";

#[test]
fn every_action_is_accepted_together() {
    let found = with_rule(
        "      matchRules: [{regexMatch: '/a/[0-9]+', queryParameterMatches: [{name: v, exactMatch: '1'}]}]\n      \
         headerAction: {requestHeadersToAdd: [{headerName: x-a, headerValue: '1', replace: true}], responseHeadersToRemove: [x-b]}\n      \
         routeAction:\n        weightedBackendServices: [{backendService: global/backendServices/web, weight: 1}]\n        \
         urlRewrite: {hostRewrite: internal}\n        retryPolicy: {retryConditions: [5xx, unavailable], numRetries: 2, perTryTimeout: {seconds: 1}}\n",
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn cloud_fields_not_served_are_named_as_such() {
    let custom_errors = VALID.replacen(
        "    defaultService: global/backendServices/web\n    routeRules:",
        "    defaultService: global/backendServices/web\n    defaultCustomErrorResponsePolicy: {errorService: global/backendServices/web}\n    routeRules:",
        1,
    );
    assert_eq!(
        lines(&custom_errors, "lb.yaml"),
        ["error: lb.yaml:12: urlMaps[map].pathMatchers[main].defaultCustomErrorResponsePolicy: `defaultCustomErrorResponsePolicy` is a cloud field Switchyard does not serve yet; remove it (its traffic would otherwise behave differently than written)"]
    );
    assert!(one_error("      matchRules: [{prefixMatch: /a/, metadataFilters: [{filterMatchCriteria: MATCH_ALL}]}]\n      service: global/backendServices/web\n")
        .contains(".matchRules[0].metadataFilters: `metadataFilters` is a cloud field Switchyard does not serve yet"));
}

#[test]
fn request_policies_are_checked_with_the_clouds_ranges() {
    let with_action = |action: &str| one_error(&format!("{RULE}      routeAction: {{{action}}}\n"));
    assert_eq!(
        with_action("faultInjectionPolicy: {abort: {httpStatus: 503}}"),
        format!("error: lb.yaml:16: {AT}.routeAction.faultInjectionPolicy.abort.percentage: this field is required")
    );
    assert_eq!(
        with_action("faultInjectionPolicy: {abort: {httpStatus: 700, percentage: 10}}"),
        format!("error: lb.yaml:16: {AT}.routeAction.faultInjectionPolicy.abort.httpStatus: 700 is out of range; allowed: 200 to 599")
    );
    assert_eq!(
        with_action("faultInjectionPolicy: {delay: {fixedDelay: {seconds: 1}, percentage: 150}}"),
        format!("error: lb.yaml:16: {AT}.routeAction.faultInjectionPolicy.delay.percentage: 150 is out of range; allowed: 0 to 100")
    );
    assert_eq!(
        with_action("faultInjectionPolicy: {}"),
        format!("error: lb.yaml:16: {AT}.routeAction.faultInjectionPolicy: a fault injection policy needs a delay, an abort or both")
    );
    assert_eq!(
        with_action("requestMirrorPolicy: {backendService: global/backendServices/shadow}"),
        format!("error: lb.yaml:16: {AT}.routeAction.requestMirrorPolicy.backendService: `shadow` refers to no resource in backendServices; defined backendServices: web")
    );
    assert!(with_action("corsPolicy: {allowOriginRegexes: ['https://(']}").starts_with(&format!(
        "error: lb.yaml:16: {AT}.routeAction.corsPolicy.allowOriginRegexes[0]: `https://(` is not a valid regular expression: "
    )));
    let all = with_rule(&format!("{RULE}      routeAction: {{faultInjectionPolicy: {{delay: {{fixedDelay: {{nanos: 5000}}, percentage: 0.5}}}}, requestMirrorPolicy: {{backendService: web, mirrorPercent: 10}}, corsPolicy: {{allowOrigins: ['*'], maxAge: 60}}, maxStreamDuration: {{seconds: 5}}}}\n"));
    assert!(all.is_empty(), "{all:#?}");
}

#[test]
fn a_default_route_action_splits_unless_another_default_is_set() {
    let weighted = "    defaultRouteAction: {weightedBackendServices: [{backendService: global/backendServices/web, weight: 1}], timeout: {seconds: 5}}\n";
    let alone = VALID.replacen(
        "    defaultService: global/backendServices/web\n    routeRules:",
        &format!("{weighted}    routeRules:"),
        1,
    );
    assert_eq!(lines(&alone, "lb.yaml"), Vec::<String>::new());
    let both = VALID.replacen("    routeRules:", &format!("{weighted}    routeRules:"), 1);
    assert_eq!(
        lines(&both, "lb.yaml"),
        ["error: lb.yaml:12: urlMaps[map].pathMatchers[main].defaultRouteAction: set only one of defaultService, defaultUrlRedirect and defaultRouteAction.weightedBackendServices"]
    );
    let redirect = VALID.replacen(
        "    defaultService: global/backendServices/web\n    routeRules:",
        "    defaultUrlRedirect: {httpsRedirect: true}\n    defaultRouteAction: {timeout: {seconds: 5}}\n    routeRules:",
        1,
    );
    assert_eq!(
        lines(&redirect, "lb.yaml"),
        ["error: lb.yaml:12: urlMaps[map].pathMatchers[main].defaultRouteAction: defaultUrlRedirect takes no defaultRouteAction: redirected requests are not forwarded"]
    );
}

#[test]
fn path_templates_are_checked_with_their_rewrites() {
    assert_eq!(
        with_rule("      matchRules: [{pathTemplateMatch: '/a/{x}/{rest=**}'}]\n      service: global/backendServices/web\n      routeAction: {urlRewrite: {pathTemplateRewrite: '/b/{rest}/{x}'}}\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        one_error("      matchRules: [{pathTemplateMatch: '/a/**/b'}]\n      service: global/backendServices/web\n"),
        format!("error: lb.yaml:14: {AT}.matchRules[0].pathTemplateMatch: `/a/**/b`: `**` may only be the last segment")
    );
    assert_eq!(
        one_error("      matchRules: [{pathTemplateMatch: '/a/{x}'}]\n      service: global/backendServices/web\n      routeAction: {urlRewrite: {pathTemplateRewrite: '/b/{y}'}}\n"),
        format!("error: lb.yaml:13: {AT}.routeAction.urlRewrite.pathTemplateRewrite: `/b/{{y}}`: `{{y}}` is not a variable of the rule's pathTemplateMatch (it captures: x)")
    );
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/}]\n      service: global/backendServices/web\n      routeAction: {urlRewrite: {pathTemplateRewrite: '/b'}}\n"),
        format!("error: lb.yaml:13: {AT}.routeAction.urlRewrite.pathTemplateRewrite: pathTemplateRewrite needs every matchRule to be a pathTemplateMatch")
    );
}

#[test]
fn a_rule_has_exactly_one_destination() {
    assert_eq!(
        one_error(&format!("{RULE}      urlRedirect: {{hostRedirect: b.example}}\n")),
        format!("error: lb.yaml:13: {AT}: set only one of service, routeAction.weightedBackendServices and urlRedirect")
    );
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/}]\n      urlRedirect: {hostRedirect: b.example}\n      routeAction: {urlRewrite: {hostRewrite: c}}\n"),
        format!("error: lb.yaml:15: {AT}.urlRedirect: a rule with urlRedirect takes no routeAction: the request is not forwarded")
    );
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/}]\n"),
        format!("error: lb.yaml:13: {AT}.service: the rule needs one of service, routeAction.weightedBackendServices and urlRedirect")
    );
}

#[test]
fn redirects_take_one_path_and_a_known_code() {
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/}]\n      urlRedirect: {pathRedirect: /x, prefixRedirect: /y}\n"),
        format!("error: lb.yaml:15: {AT}.urlRedirect.prefixRedirect: set only one of pathRedirect and prefixRedirect")
    );
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/}]\n      urlRedirect: {hostRedirect: b, redirectResponseCode: MOVED}\n"),
        format!("error: lb.yaml:15: {AT}.urlRedirect.redirectResponseCode: `MOVED` is not allowed; allowed: MOVED_PERMANENTLY_DEFAULT, FOUND, SEE_OTHER, TEMPORARY_REDIRECT, PERMANENT_REDIRECT")
    );
}

#[test]
fn regexes_must_compile_and_prefix_rewrites_need_a_prefix() {
    let bad = one_error(
        "      matchRules: [{regexMatch: '/a/(['}]\n      service: global/backendServices/web\n",
    );
    assert!(
        bad.starts_with(&format!("error: lb.yaml:14: {AT}.matchRules[0].regexMatch: `/a/([` is not a valid RE2 regular expression:")),
        "{bad}"
    );
    assert_eq!(
        one_error("      matchRules: [{regexMatch: '/a/.*'}]\n      service: global/backendServices/web\n      routeAction: {urlRewrite: {pathPrefixRewrite: /b/}}\n"),
        format!("error: lb.yaml:13: {AT}: pathPrefixRewrite and prefixRedirect replace the matched prefix, which a regexMatch does not have; use prefixMatch or fullPathMatch")
    );
}

#[test]
fn header_actions_cannot_touch_host_and_retry_conditions_are_the_clouds() {
    assert_eq!(
        one_error(&format!("{RULE}      headerAction: {{requestHeadersToRemove: [Host]}}\n")),
        format!("error: lb.yaml:16: {AT}.headerAction.requestHeadersToRemove[0]: `Host`: Host and pseudo-headers cannot be changed by a header action")
    );
    assert_eq!(
        one_error(&format!("{RULE}      routeAction: {{retryPolicy: {{retryConditions: [5xx, timeout]}}}}\n")),
        format!("error: lb.yaml:16: {AT}.routeAction.retryPolicy.retryConditions[1]: `timeout` is not a retry condition; allowed: 5xx, gateway-error, connect-failure, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable")
    );
    assert_eq!(
        one_error("      matchRules: [{prefixMatch: /a/, queryParameterMatches: [{name: q, presentMatch: false}]}]\n      service: global/backendServices/web\n"),
        format!("error: lb.yaml:14: {AT}.matchRules[0].queryParameterMatches[0].presentMatch: presentMatch can only be true (a parameter that must be absent cannot be matched)")
    );
}

#[test]
fn a_default_is_a_service_or_a_redirect() {
    let text = VALID.replacen(
        "    defaultService: global/backendServices/web\n    routeRules:",
        "    defaultService: global/backendServices/web\n    defaultUrlRedirect: {httpsRedirect: true}\n    routeRules:",
        1,
    );
    let found: Vec<String> = lines(&text, "lb.yaml");
    assert_eq!(
        found,
        ["error: lb.yaml:12: urlMaps[map].pathMatchers[main].defaultUrlRedirect: set only one of defaultService, defaultUrlRedirect and defaultRouteAction.weightedBackendServices"]
    );
}

#[test]
fn external_rules_to_http_proxies_listen_on_80_or_8080() {
    let at = |rule: &str| VALID.replacen("- {name: fr, portRange: \"80\",", rule, 1);
    let errors = |text: String| -> Vec<String> { lines(&text, "lb.yaml") };
    assert!(errors(at(
        "- {name: fr, loadBalancingScheme: EXTERNAL_MANAGED, portRange: \"8080\","
    ))
    .is_empty());
    assert!(
        errors(at("- {name: fr, portRange: \"9090\",")).is_empty(),
        "no scheme: any port"
    );
    assert_eq!(
        errors(at("- {name: fr, loadBalancingScheme: EXTERNAL, portRange: \"9090\",")),
        ["error: lb.yaml:19: forwardingRules[fr].portRange: an EXTERNAL forwarding rule to a target HTTP proxy listens on port 80 or 8080, not 9090; for another port use loadBalancingScheme INTERNAL_SELF_MANAGED"]
    );
    assert_eq!(
        errors(at("- {name: fr, ports: [\"80\"], portRange: \"80\",")),
        ["error: lb.yaml:19: forwardingRules[fr].ports: `ports` lists the ports of a passthrough load balancer's forwarding rule; a rule that targets a proxy takes one port in portRange"]
    );
}

#[test]
fn a_target_grpc_proxy_is_reached_only_under_internal_self_managed() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/grpc.yaml"))
            .unwrap();
    // The forwarding rule's scheme (the backend service writes one too, earlier).
    let rule = "- name: who-grpc\n  loadBalancingScheme: INTERNAL_SELF_MANAGED\n";
    assert!(example.contains(rule));
    let external = example.replacen(
        rule,
        "- name: who-grpc\n  loadBalancingScheme: EXTERNAL_MANAGED\n",
        1,
    );
    let found: Vec<String> = lines(&external, "grpc.yaml");
    assert_eq!(
        found,
        ["error: grpc.yaml:54: forwardingRules[who-grpc].loadBalancingScheme: EXTERNAL_MANAGED cannot reach a target gRPC proxy; proxyless clients are served under INTERNAL_SELF_MANAGED"]
    );
}
