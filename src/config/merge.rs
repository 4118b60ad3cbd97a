//! What the dialects lowered, merged into the one model that is served: a name may be used
//! once in each collection whichever dialect wrote it, and an address and port may be listened
//! on by one frontend. A clash is an error at the later of the two places, naming the earlier
//! one; the earlier is kept. Must not: check anything a single dialect can check itself.

use std::collections::BTreeMap;

use crate::model::{Diagnostics, Loc, Model};

/// Adds `from` to `into`.
pub fn merge(into: &mut Model, from: Model, diagnostics: &mut Diagnostics) {
    let Model {
        health_checks,
        endpoint_groups,
        services,
        route_tables,
        frontends,
        proxyless,
        certificates,
        region_order,
        xds_clients,
        inputs,
    } = from;
    for frontend in frontends.values() {
        let taken = into
            .frontends
            .values()
            .find(|other| (other.address, other.port) == (frontend.address, frontend.port));
        if let Some(other) = taken {
            let (later, earlier) = ordered(frontend, other, |f| &f.loc);
            diagnostics.clash(
                &later.loc,
                &earlier.loc,
                format!("frontends[{}]", later.name),
                format!(
                    "{}:{} is already used by `{}` at {}; an address and port pair may front one \
                     target",
                    frontend.address, frontend.port, earlier.name, earlier.loc
                ),
            );
        }
    }
    let named = |kind: &'static str| move |name: &str| format!("{kind}[{name}]");
    add(
        &mut into.health_checks,
        health_checks,
        |c| &c.loc,
        named("health checks"),
        diagnostics,
    );
    add(
        &mut into.endpoint_groups,
        endpoint_groups,
        |g| &g.loc,
        named("endpoint groups"),
        diagnostics,
    );
    // A service is named as its dialect writes it (`backendServices[web]`).
    add_located(&mut into.services, services, diagnostics, |_, service| {
        (service.loc.clone(), service.path.clone())
    });
    add(
        &mut into.route_tables,
        route_tables,
        |t| &t.loc,
        named("route tables"),
        diagnostics,
    );
    add(
        &mut into.frontends,
        frontends,
        |f| &f.loc,
        named("frontends"),
        diagnostics,
    );
    into.proxyless.extend(proxyless);
    add(
        &mut into.certificates,
        certificates,
        |c| &c.loc,
        named("certificates"),
        diagnostics,
    );
    into.region_order.extend(region_order);
    add(
        &mut into.xds_clients,
        xds_clients,
        |r| &r.loc,
        named("xdsClients"),
        diagnostics,
    );
    into.inputs.extend(inputs);
}

/// The later of two resources by where they are written, then the earlier.
fn ordered<'a, T>(a: &'a T, b: &'a T, loc: impl Fn(&T) -> &Loc) -> (&'a T, &'a T) {
    if loc(a) >= loc(b) {
        (a, b)
    } else {
        (b, a)
    }
}

fn add<T>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    loc: impl Fn(&T) -> &Loc,
    path: impl Fn(&str) -> String,
    diagnostics: &mut Diagnostics,
) {
    add_located(into, from, diagnostics, |name, value| {
        (loc(value).clone(), path(name))
    });
}

/// Adds each of `from` to `into`; a name used in both is reported at the later place (with the
/// path `located` gives), naming the earlier, which is kept.
fn add_located<T>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    diagnostics: &mut Diagnostics,
    located: impl Fn(&str, &T) -> (Loc, String),
) {
    for (name, value) in from {
        let Some(existing) = into.get(&name) else {
            into.insert(name, value);
            continue;
        };
        let (new_loc, new_path) = located(&name, &value);
        let (old_loc, old_path) = located(&name, existing);
        let new_is_later = new_loc >= old_loc;
        let (later_loc, later_path, earlier_loc) = if new_is_later {
            (new_loc, new_path, old_loc)
        } else {
            (old_loc, old_path, new_loc)
        };
        diagnostics.clash(
            &later_loc,
            &earlier_loc,
            later_path,
            format!(
                "the name `{name}` is already used at {earlier_loc}; names must be unique across \
                 the files of a config, whichever dialect they are written in"
            ),
        );
        if !new_is_later {
            into.insert(name, value);
        }
    }
}
