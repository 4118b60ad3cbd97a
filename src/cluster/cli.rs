//! The `serve` flags of the replica set (`--etcd` and its companions), read into
//! [`EtcdOptions`]. Without `--etcd` there are none.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{default_replica_name, EtcdOptions, EtcdTls, DEFAULT_PREFIX};

/// Replicas sharing health checking through etcd.
#[derive(Args, Debug, Clone)]
pub struct EtcdArgs {
    /// etcd's client URLs (comma-separated): replicas given the same etcd and prefix share
    /// health checking and publish the same endpoint health, and decide capacity from the
    /// load reports of all their clients.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        help_heading = "Replicas (etcd)"
    )]
    pub etcd: Vec<String>,
    /// The key prefix of this replica set in etcd.
    #[arg(long, default_value = DEFAULT_PREFIX, value_name = "PREFIX", requires = "etcd", help_heading = "Replicas (etcd)")]
    pub etcd_prefix: String,
    /// This replica's name among the members (HOSTNAME-PID by default); unique per replica.
    #[arg(
        long,
        value_name = "NAME",
        requires = "etcd",
        help_heading = "Replicas (etcd)"
    )]
    pub replica_name: Option<String>,
    /// Seconds of the membership lease: a replica silent that long is dropped and its
    /// targets probed by the others; etcd out of reach that long, a replica probes everything.
    #[arg(long, default_value_t = super::DEFAULT_LEASE.as_secs(), value_name = "SECONDS", requires = "etcd", help_heading = "Replicas (etcd)")]
    pub etcd_lease: u64,
    /// The authority etcd's certificate is checked against (PEM); implies TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "etcd",
        help_heading = "Replicas (etcd)"
    )]
    pub etcd_tls_ca: Option<PathBuf>,
    /// This replica's certificate for etcd's client-certificate auth (PEM); implies TLS.
    #[arg(long, value_name = "FILE", requires_all = ["etcd", "etcd_tls_key"], help_heading = "Replicas (etcd)")]
    pub etcd_tls_cert: Option<PathBuf>,
    /// The key of --etcd-tls-cert (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "etcd_tls_cert",
        help_heading = "Replicas (etcd)"
    )]
    pub etcd_tls_key: Option<PathBuf>,
    /// The etcd user (with --etcd-password-file).
    #[arg(long, value_name = "NAME", requires_all = ["etcd", "etcd_password_file"], help_heading = "Replicas (etcd)")]
    pub etcd_user: Option<String>,
    /// A file holding the etcd user's password (its first line), kept off the command line.
    #[arg(
        long,
        value_name = "FILE",
        requires = "etcd_user",
        help_heading = "Replicas (etcd)"
    )]
    pub etcd_password_file: Option<PathBuf>,
}

impl EtcdArgs {
    /// The options, or None without `--etcd`.
    pub fn options(&self) -> anyhow::Result<Option<EtcdOptions>> {
        if self.etcd.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            cfg!(feature = "etcd"),
            "--etcd: this build has no etcd client; build with `cargo install --path . --features \
             etcd` (etcd-client's build needs protoc: Debian's protobuf-compiler)"
        );
        self.parsed().map(Some)
    }

    /// The options `--etcd` and its companions spell, checked (whether this build can use
    /// them is [`Self::options`]' to say).
    fn parsed(&self) -> anyhow::Result<EtcdOptions> {
        anyhow::ensure!(
            (1..=3600).contains(&self.etcd_lease),
            "--etcd-lease must be a whole number of seconds from 1 to 3600, not {}",
            self.etcd_lease
        );
        let mut prefix = self.etcd_prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let tls = (self.etcd_tls_ca.is_some() || self.etcd_tls_cert.is_some()).then(|| EtcdTls {
            ca: self.etcd_tls_ca.clone(),
            identity: self.etcd_tls_cert.clone().zip(self.etcd_tls_key.clone()),
        });
        let user = match (&self.etcd_user, &self.etcd_password_file) {
            (Some(user), Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|error| {
                    anyhow::anyhow!("--etcd-password-file {}: {error}", file.display())
                })?;
                let password = text.lines().next().unwrap_or("").to_string();
                Some((user.clone(), password))
            }
            _ => None,
        };
        Ok(EtcdOptions {
            endpoints: self.etcd.iter().map(|e| e.trim().to_string()).collect(),
            prefix,
            replica_name: self
                .replica_name
                .clone()
                .unwrap_or_else(default_replica_name),
            lease: Duration::from_secs(self.etcd_lease),
            tls,
            user,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        etcd: EtcdArgs,
    }

    /// The options as a build with etcd reads them.
    fn parse(args: &[&str]) -> Result<Option<EtcdOptions>, String> {
        let serve = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        match serve.etcd.etcd.is_empty() {
            true => serve.etcd.options(),
            false => serve.etcd.parsed().map(Some),
        }
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_build_without_etcd_refuses_etcd_and_says_how_to_build_one() {
        let serve = Serve::try_parse_from(["serve", "--etcd", "http://a:2379"]).unwrap();
        let options = serve.etcd.options();
        match cfg!(feature = "etcd") {
            true => assert!(options.unwrap().is_some()),
            false => {
                let refused = options.unwrap_err().to_string();
                assert!(refused.contains("--features etcd"), "{refused}");
            }
        }
    }

    #[test]
    fn without_etcd_there_are_no_options() {
        assert!(parse(&[]).unwrap().is_none());
        let refused = parse(&["--etcd-lease", "5"]).unwrap_err();
        assert!(refused.contains("--etcd"), "{refused}");
    }

    #[test]
    fn urls_split_on_commas_and_the_prefix_ends_with_a_slash() {
        let options = parse(&[
            "--etcd",
            "http://a:2379,http://b:2379",
            "--etcd-prefix",
            "/fleet",
            "--replica-name",
            "r1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.endpoints, ["http://a:2379", "http://b:2379"]);
        assert_eq!(options.prefix, "/fleet/");
        assert_eq!(options.replica_name, "r1");
        assert_eq!(options.lease, crate::cluster::DEFAULT_LEASE);
        assert!(options.tls.is_none() && options.user.is_none());
    }

    #[test]
    fn a_lease_out_of_range_and_a_user_without_password_are_refused() {
        let refused = parse(&["--etcd", "http://a:2379", "--etcd-lease", "0"]).unwrap_err();
        assert!(
            refused.contains("--etcd-lease") && refused.contains("1 to 3600"),
            "{refused}"
        );
        let refused = parse(&["--etcd", "http://a:2379", "--etcd-user", "me"]).unwrap_err();
        assert!(refused.contains("--etcd-password-file"), "{refused}");
    }

    #[test]
    fn the_password_is_the_first_line_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let options = parse(&[
            "--etcd",
            "http://a:2379",
            "--etcd-user",
            "me",
            "--etcd-password-file",
            file.to_str().unwrap(),
            "--etcd-tls-ca",
            "/ca.pem",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.user, Some(("me".into(), "s3cret".into())));
        let tls = options.tls.unwrap();
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(tls.identity.is_none());
    }
}
