//! CloudFormation templates as people write them, served as they are: the shared fixture
//! tests/fixtures/aws/stack/web-alb.yaml (Parameters with defaults, Conditions, Mappings,
//! `!Sub` with parameters and pseudo parameters, `!FindInMap`, `!If`) through `switchyard
//! serve` and a real Envoy, with its defaults, with `--parameter` and with
//! `--parameters-file`; and the command line's refusals of a value a parameter does not allow
//! and of a parameter nobody gave.

use std::path::{Path, PathBuf};

use crate::cli::switchyard;
use crate::common::process::ServeProcess;
use crate::common::*;

fn fixture_path() -> String {
    format!(
        "{}/tests/fixtures/aws/stack/web-alb.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The fixture as written.
fn fixture() -> String {
    std::fs::read_to_string(fixture_path()).unwrap()
}

/// The fixture's listener port per environment (its `Ports` mapping) and its two targets.
const DEV: u16 = 10080;
const STAGING: u16 = 10081;
const PROD: u16 = 10082;
const WEB: u16 = 18081;
const API: u16 = 18082;

/// The fixture with free ports in place of its own, written as `web-alb.yaml` in a folder of
/// its own; each listener port's stand-in is returned by environment.
struct Stack {
    _dir: tempfile::TempDir,
    path: PathBuf,
    ports: [(u16, u16); 3],
    _web: Backend,
    _api: Backend,
}

impl Stack {
    async fn new() -> Stack {
        let web = Backend::start("web").await;
        let api = Backend::start("api").await;
        let ports = [DEV, STAGING, PROD].map(|port| (port, free_port()));
        let mut text = fixture()
            .replace(&WEB.to_string(), &web.addr.port().to_string())
            .replace(&API.to_string(), &api.addr.port().to_string());
        for (from, to) in ports {
            text = text.replace(&from.to_string(), &to.to_string());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web-alb.yaml");
        std::fs::write(&path, text).unwrap();
        Stack {
            _dir: dir,
            path,
            ports,
            _web: web,
            _api: api,
        }
    }

    fn port(&self, environment: u16) -> u16 {
        self.ports
            .iter()
            .find(|(from, _)| *from == environment)
            .unwrap()
            .1
    }

    /// Serves the stack with `args` to an Envoy, and waits until the listener of
    /// `environment` answers.
    async fn serve(&self, args: &[&str], environment: u16) -> (ServeProcess, Envoy) {
        let serve = ServeProcess::start(&self.path, args).await;
        let envoy = Envoy::start_in(serve.xds, "stack-envoy", "us-east-1", "us-east-1a").await;
        wait_for_body(&self.url(environment, "/"), "web").await;
        (serve, envoy)
    }

    fn url(&self, environment: u16, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(environment))
    }
}

/// GET `url`: status and body.
async fn get(url: &str) -> (u16, String) {
    let response = http().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn text_of(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn the_template_as_written_serves_through_envoy_with_its_defaults() {
    let stack = Stack::new().await;
    let (serve, _envoy) = stack.serve(&[], DEV).await;
    // Env defaults to dev: the dev port of the Ports mapping, the API rule, and the debug
    // rule whose Condition (NotProd) holds, answering with the Sub of the parameter.
    assert_eq!(get(&stack.url(DEV, "/")).await, (200, "web".to_string()));
    assert_eq!(
        get(&stack.url(DEV, "/api/users")).await,
        (200, "api".to_string())
    );
    assert_eq!(
        get(&stack.url(DEV, "/debug")).await,
        (200, "debug on dev".to_string())
    );
    assert!(
        http().get(stack.url(STAGING, "/")).send().await.is_err(),
        "nothing listens on the staging port"
    );
    let status = serve.status().await;
    let inputs = status["inputs"]
        .as_array()
        .expect("/config_status has inputs");
    let env = inputs
        .iter()
        .find(|input| input["name"] == "Env")
        .unwrap_or_else(|| panic!("Env among {inputs:?}"));
    assert_eq!(env["value"], "dev");
    assert_eq!(env["source"], "default");
}

#[tokio::test]
async fn a_parameter_on_the_command_line_moves_the_listener_to_the_staging_port() {
    let stack = Stack::new().await;
    let (serve, _envoy) = stack.serve(&["--parameter", "Env=staging"], STAGING).await;
    assert_eq!(
        get(&stack.url(STAGING, "/api/x")).await,
        (200, "api".to_string())
    );
    assert_eq!(
        get(&stack.url(STAGING, "/debug")).await,
        (200, "debug on staging".to_string())
    );
    assert!(
        http().get(stack.url(DEV, "/")).send().await.is_err(),
        "the dev port is not listened on"
    );
    let status = serve.status().await;
    let env = status["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|input| input["name"] == "Env")
        .cloned()
        .unwrap();
    assert_eq!(env["value"], "staging");
    assert_eq!(env["source"], "--parameter Env");
}

#[tokio::test]
async fn a_false_condition_from_a_parameters_file_leaves_the_debug_rule_out() {
    let stack = Stack::new().await;
    let parameters = stack.path.with_file_name("prod.json");
    std::fs::write(
        &parameters,
        "[\n  {\"ParameterKey\": \"Env\", \"ParameterValue\": \"prod\"}\n]\n",
    )
    .unwrap();
    let (_serve, _envoy) = stack
        .serve(&["--parameters-file", text_of(&parameters)], PROD)
        .await;
    // Without the debug rule, /debug falls to the default action: the web target group.
    assert_eq!(
        get(&stack.url(PROD, "/debug")).await,
        (200, "web".to_string())
    );
    assert_eq!(
        get(&stack.url(PROD, "/api/x")).await,
        (200, "api".to_string())
    );
}

#[test]
fn validate_translate_and_explain_take_the_same_parameters() {
    let path = fixture_path();
    let (code, out, err) = switchyard(&["validate", &path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web-alb.yaml: 0 error(s)"), "{out}");

    let (code, out, err) = switchyard(&["translate", &path, "--parameter", "Env=staging"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("port_value: {STAGING}")), "{out}");
    assert!(!out.contains(&format!("port_value: {DEV}")), "{out}");

    let (code, out, err) =
        switchyard(&["explain", &path, "WebTargets", "--parameter", "Env=staging"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\nparameters: VpcId = vpc-0a1b2c3d4e5f60718 (default), Subnets = subnet-0a1b2c3d,subnet-4e5f6a7b (default), HealthPath = /healthz (default), Env = staging (--parameter Env), AWS::StackName = web-alb (the file's stem)\n"),
        "{out}"
    );
}

#[test]
fn the_readme_example_keeps_its_redirect_only_in_production() {
    let example = format!("{}/examples/aws-alb.yaml", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = switchyard(&["translate", &example]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("regex: (/old/.*)"), "{out}");
    assert!(out.contains("port_value: 10000"), "{out}");
    let (code, out, err) = switchyard(&[
        "translate",
        &example,
        "--parameter",
        "EnvironmentName=staging",
        "--parameter",
        "ListenerPort=10500",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("/old/"),
        "MovedRule's Condition is false: {out}"
    );
    assert!(out.contains("port_value: 10500"), "{out}");
}

#[test]
fn a_value_the_parameter_does_not_allow_is_refused_naming_the_parameter() {
    let path = fixture_path();
    let (code, out, _) = switchyard(&["validate", &path, "--parameter", "Env=qa"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        format!(
            "error: {path}:23: Parameters.Env: parameter Env: `qa` (given by --parameter Env) is not one of its AllowedValues: dev, staging, prod\n{path}: 1 error(s), 0 warning(s), 0 note(s)\n"
        )
    );
    // A value for a parameter no template declares is refused too, as CloudFormation does.
    let (code, out, _) = switchyard(&["validate", &path, "--parameter", "Envv=prod"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("error: command line: Parameters: --parameter Envv: `Envv` is no parameter of the templates of this load (they declare Env, HealthPath, Subnets, VpcId; did you mean Env?)"),
        "{out}"
    );
}

#[test]
fn a_parameter_with_no_default_and_no_value_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web-alb.yaml");
    std::fs::write(&path, fixture().replace("    Default: dev\n", "")).unwrap();
    let (code, out, _) = switchyard(&["validate", text_of(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "error: {}:23: Parameters.Env: parameter Env has no Default and no value is given; give one with --parameter Env=VALUE (or in a --parameters-file)\n",
            text_of(&path)
        )),
        "{out}"
    );
    // Given on the command line, it loads.
    let (code, out, _) = switchyard(&["validate", text_of(&path), "--parameter", "Env=prod"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_error_in_a_value_from_a_mapping_says_which_parameter_and_mapping_gave_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web-alb.yaml");
    std::fs::write(
        &path,
        fixture().replace("Listener: 10081", "Listener: eighty"),
    )
    .unwrap();
    let file = text_of(&path);
    let (code, out, _) = switchyard(&["validate", file]);
    assert_eq!(
        code, 0,
        "the default (dev) does not use the staging port: {out}"
    );
    let (code, out, _) = switchyard(&["validate", file, "--parameter", "Env=staging"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "error: {file}:58: Resources.HttpListener.Properties.Port: expected a whole number, found `eighty` (the value of parameter Env, {file}:23, given by --parameter Env; from mapping Ports.staging.Listener, {file}:38)\n"
        )),
        "{out}"
    );
}
