//! The AWS dialect: Application Load Balancer target groups, listeners and rules written as
//! CloudFormation YAML. Reading: `template` (the CloudFormation document: resources, their
//! types, references between them, and clear errors for what a file-based control plane
//! cannot evaluate), `intrinsics` (CloudFormation functions evaluated or refused by name
//! before anything is read), `target_groups` with `health_check` and `attributes` (ALB
//! target groups, their targets, checks and attributes, with the AWS document's ranges,
//! defaults and combination rules), and `listeners` with `conditions`, `actions` and
//! `balancer_attributes` (load balancers, listeners, rules, and the attributes of the first
//! two, whose keys are in `balancer_attribute_keys`). Lowering into the model: `lower`
//! (resources) and `routes` (conditions and actions). docs/aws-dialect.md has the map.
//! Must not: know xDS.

pub mod actions;
pub mod attributes;
mod balancer_attribute_keys;
pub mod balancer_attributes;
pub mod conditions;
pub mod health_check;
pub mod intrinsics;
pub mod listeners;
pub mod lower;
mod lower_frontends;
mod lower_groups;
pub mod routes;
pub mod target_groups;
pub mod template;
