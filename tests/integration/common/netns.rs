//! Running a test in a private network namespace (as `unshare -n` does), so that it may add
//! netfilter rules without touching the machine's: the namespace belongs to one thread, and
//! everything the test starts from it (runtime threads, Switchyard, the sidecar, backends)
//! lives in it and goes with it. Needs root on Linux, and `iptables` for the rules.

use std::future::Future;
use std::process::Command;

/// Runs `test` on a two-worker runtime inside a network namespace of its own, with only the
/// loopback interface, up.
pub fn in_private_network<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let outcome = std::thread::spawn(move || {
        // SAFETY: unshare changes only this thread's network namespace.
        let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            unshared,
            0,
            "a private network namespace (unshare -n) needs root: {}",
            std::io::Error::last_os_error()
        );
        run(
            "ip",
            &["link", "set", "lo", "up"],
            "apt-get install -y iproute2",
        );
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Adds a netfilter rule to the namespace's `nat` table (`iptables -t nat -A ...`, or
/// `ip6tables` for IPv6).
pub fn add_nat_rule(ipv6: bool, rule: &[&str]) {
    let mut args = vec!["-t", "nat", "-A"];
    args.extend_from_slice(rule);
    let program = if ipv6 { "ip6tables" } else { "iptables" };
    run(program, &args, "apt-get install -y iptables");
}

/// Gives the namespace's loopback interface one more address (an IPv6 one, say).
pub fn add_loopback_address(address: &str) {
    run(
        "ip",
        &["addr", "add", address, "dev", "lo"],
        "apt-get install -y iproute2",
    );
}

fn run(program: &str, args: &[&str], install: &str) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); install it: {install}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}
