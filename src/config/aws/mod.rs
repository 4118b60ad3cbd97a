//! The AWS dialect: Application Load Balancer target groups, listeners and rules written as
//! CloudFormation YAML (issue 14, in progress). So far: `template`, the CloudFormation
//! document (resources, their types, references between them, and clear errors for what a
//! file-based control plane cannot evaluate); `target_groups`, ALB target groups with their
//! targets (by IP or by instance); `health_check`, their health check properties; and
//! `attributes`, the target-group attributes of the AWS document with their ranges, defaults
//! and combination rules. Listeners, rules and the lowering into the model come next; until
//! then no file is read as AWS. Must not: know xDS.

pub mod attributes;
pub mod health_check;
pub mod target_groups;
pub mod template;
