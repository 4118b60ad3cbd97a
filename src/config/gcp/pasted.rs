//! What `gcloud … describe` leaves out of a pasted resource: the members of a group. A NEG's
//! endpoints and an instance group's instances are listed by other commands, so a group that
//! was pasted from `describe` without them is warned about, naming the command that lists
//! them and where they go in the file.

use crate::config::gcp::resources::{EndpointGroup, GroupKind};
use crate::config::reader::Fields;
use crate::model::Diagnostics;

/// Which members a group holds.
#[derive(Clone, Copy)]
enum Members {
    Endpoints,
    Instances,
}

/// gcloud's flag for where a group is: `--zone=us-central1-a`, `--region=…` (a regional
/// instance group) or `--global` (an internet NEG).
fn gcloud_location(group: &EndpointGroup) -> String {
    match group.kind {
        GroupKind::InstanceGroup if group.zone.is_empty() => format!("--region={}", group.region),
        kind if kind.is_internet() => "--global".to_string(),
        _ => format!("--zone={}", group.zone),
    }
}

/// Warns when a group read from `fields` that looks pasted from `describe` (it carries the
/// `kind`, `selfLink` or `size` gcloud prints) lists no members.
pub(super) fn warn_without_members(
    fields: &mut Fields<'_>,
    group: &EndpointGroup,
    diagnostics: &mut Diagnostics,
) {
    let (name, location) = (&group.name, gcloud_location(group));
    let members = if group.kind.is_instance_group() {
        Members::Instances
    } else {
        Members::Endpoints
    };
    let key = match members {
        Members::Endpoints => "endpoints",
        Members::Instances => "instances",
    };
    let described = ["kind", "selfLink", "size"]
        .into_iter()
        .any(|printed| fields.get(printed).is_some());
    if !described || fields.get(key).is_some() {
        return;
    }
    let message = match members {
        Members::Endpoints => format!(
            "`gcloud compute network-endpoint-groups describe` does not list a NEG's endpoints, \
             so this one has none to serve; list them with `gcloud compute \
             network-endpoint-groups list-network-endpoints {name} {location}` and write them \
             in this resource under `endpoints:`, one `{{instance: VM, ipAddress: ADDRESS, \
             port: PORT}}` each"
        ),
        Members::Instances => format!(
            "`gcloud compute instance-groups describe` does not list a group's instances, so \
             this one has none to serve; list them with `gcloud compute instance-groups \
             list-instances {name} {location}` and write them in this resource under \
             `instances:`, one `{{name: VM, ipAddress: ADDRESS}}` each (`gcloud compute \
             instances describe VM` shows the address; in a regional group add the instance's \
             `zone`)"
        ),
    };
    diagnostics.warning(&fields.loc(), fields.field_path(key), message);
}
